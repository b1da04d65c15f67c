"""Contrastive fine-tuning of an open_clip model on (image, sentence) pairs
(``reportgen train-clip``), saved as an open_clip ``local-dir`` checkpoint.

Manifest (JSONL), one of per line:
- ``{"image": "a.png", "text": "Right upper lobe opacity.", "view": "PA"}`` -- one pair;
- ``{"id": "s1", "images": ["a.png", ...], "report": "FINDINGS: ..."}`` (or ``findings`` /
  ``impression`` keys) -- a study: each sentence of the report becomes a pair with the
  study's first image (its frontal one when ``views`` say which).
Relative image paths are resolved against the manifest's folder. Bad lines (not JSON, no
image, no text, unreadable image) are skipped with a warning naming ``file:line``.

Loss: the symmetric InfoNCE of CLIP with the model's learnable temperature; identical
sentences in a batch are treated as positives of each other (soft targets), since
radiology reports repeat sentences ("No pneumothorax.") a lot. Options (Python API):
- ``dense_weight`` w > 0 adds a token-level term (FILIP-style multiple-instance loss): the
  image-text score is the MAXIMUM cosine between the sentence and any patch embedding (the
  same dense embeddings the region checker maps), and the loss is ``(1 - w) * global + w *
  token``. The global loss alone only constrains the pooled embedding; a small model can then
  spread a finding over every patch, and its dense maps do not point at the finding.
- ``group_by(pair) -> key`` draws every batch from one group (e.g. one patient or one base
  image): the in-batch negatives then differ in what the sentences describe, not in who
  the patient is. Named groupings (also ``reportgen train-clip --group-by``): ``"image"``
  (the pair's image file), ``"study"`` (the manifest record's ``study`` or ``id``, else the
  image), ``"none"``.
- ``warmup`` steps of linear learning-rate warm-up and ``schedule="cosine"`` decay.
Biases, norm gains, other 1-D parameters and the temperature get no weight decay (the
CLIP recipe; weight decay on ``logit_scale`` would pull the temperature toward 1).

The checkpoint folder: ``open_clip_config.json`` ({"model_cfg", "preprocess_cfg"}),
``open_clip_model.safetensors``, tokenizer files for HF tokenizers, ``reportgen_train.json``
(what was trained on, losses) and, when calibrated, ``reportgen_region.json``. It loads back
with ``local-dir:OUT`` in open_clip and the region checker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from reportgen.errors import ReportgenError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """One training pair: an image path (or in-memory pixels) and a sentence."""

    image: Any
    text: str
    view: str | None = None
    group: str | None = None  # the study (manifest "id" / "study"), for group_by="study"


@dataclass(frozen=True)
class TrainResult:
    out: Path
    n_pairs: int
    epochs: int
    losses: tuple[float, ...]  # mean loss per epoch
    skipped: tuple[str, ...] = ()  # "file:line: problem"
    seconds: float = 0.0
    calibration: Any = None
    extra: dict = field(default_factory=dict)


def split_sentences(text: str) -> list[str]:
    """Report -> texts for training: the report's claims (``reportgen.checkers.read``, the
    one claim splitter: sections, sentences, coordinations; headings dropped)."""
    from reportgen.checkers.read import read_report

    return [t for t in (c.claim.text.strip() for c in read_report(text).claims) if t]


def read_pairs(manifest: str | Path, allow_outside_root: bool = False) -> tuple[list[Pair], list[str]]:
    """Pairs from a manifest, and the skipped lines (``file:line: problem``). Images outside
    the manifest's folder are skipped (E904) unless ``allow_outside_root``."""
    from reportgen.jsonl import read_jsonl
    from reportgen.paths import image_path

    base = Path(manifest).resolve().parent
    pairs: list[Pair] = []
    skipped: list[str] = []
    for rec in read_jsonl(manifest, require=()):
        if rec.error:
            skipped.append(rec.error if rec.error.startswith(rec.where) else f"{rec.where}: {rec.error}")
            continue
        d = rec.data or {}
        if "image" in d and "text" in d:
            imgs, views, texts = [d["image"]], [d.get("view")], [d["text"]]
        elif "images" in d or "image" in d:
            imgs = d.get("images") or [d.get("image")]
            imgs = [imgs] if isinstance(imgs, str) else list(imgs)
            views = list(d.get("views") or [d.get("view")] * len(imgs))
            report = d.get("report") or " ".join(str(d[k]) for k in ("findings", "impression") if d.get(k))
            if not isinstance(report, str) or not report.strip():
                skipped.append(f"{rec.where}: no 'text', 'report', 'findings' or 'impression'")
                continue
            texts = split_sentences(report)
        else:
            skipped.append(f"{rec.where}: needs 'image' and 'text', or 'images' and 'report'")
            continue
        if not imgs or not all(isinstance(i, str) and i for i in imgs) or not all(isinstance(t, str) for t in texts):
            skipped.append(f"{rec.where}: image paths and texts must be non-empty strings")
            continue
        if len(views) != len(imgs):
            views = [None] * len(imgs)
        from reportgen.checkers.region.zones import normalise_view

        k = next((i for i, v in enumerate(views) if normalise_view(v) in ("PA", "AP")), 0)
        path, outside = image_path(imgs[k], base, allow_outside=allow_outside_root)
        if outside:
            skipped.append(f"{rec.where}: {outside}")
            continue
        if not path.is_file():
            skipped.append(f"{rec.where}: image {k} of the record not found")
            continue
        group = d.get("study", d.get("id"))
        group = str(group) if group is not None else None
        pairs += [Pair(str(path), t.strip(), views[k], group) for t in texts if t.strip()]
    return pairs, skipped


def model_config(spec: str) -> tuple[str, dict]:
    """(open_clip name, model_cfg) for a model spec, registering config files."""
    from reportgen.checkers.region.model import import_backend, register_config_file, resolve_model_spec

    _, open_clip = import_backend()
    kind, ident = resolve_model_spec(spec)
    name = register_config_file(ident) if kind == "config-file" else spec
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ReportgenError("E600", f"no open_clip config for {spec!r}", fix="use a built-in name, hf-hub:, local-dir: or a config JSON")
    return name, json.loads(json.dumps(cfg))


def save_local_dir(model: Any, model_cfg: dict, out: str | Path, *, tokenizer: Any = None, extra: dict | None = None) -> Path:
    """Write an open_clip local-dir checkpoint (config + safetensors weights)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pp = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    pp = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()}
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": pp}, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    hf_tok = getattr(tokenizer, "tokenizer", None)
    if hf_tok is not None and hasattr(hf_tok, "save_pretrained"):
        hf_tok.save_pretrained(str(out))
    if extra is not None:
        (out / "reportgen_train.json").write_text(json.dumps(extra, indent=2) + "\n")
    return out


def _soft_targets(texts: Sequence[str]):
    import torch

    same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32)
    return same / same.sum(dim=1, keepdim=True)


def clip_loss(img, txt, logit_scale, texts: Sequence[str]):
    """Symmetric InfoNCE with soft targets for repeated texts (img, txt normalised)."""
    return _soft_infonce(img @ txt.T, logit_scale, texts)


def token_clip_loss(dense, txt, logit_scale, texts: Sequence[str]):
    """The token-level (multiple-instance) InfoNCE: image-text score = max over the image's
    patch embeddings of their cosine with the text. ``dense`` (B, ..., D) and ``txt`` (B, D)
    normalised."""
    import torch

    tokens = dense.reshape(dense.shape[0], -1, dense.shape[-1])
    return _soft_infonce(torch.einsum("bnd,td->btn", tokens, txt).amax(dim=-1), logit_scale, texts)


def loss_floor(texts: Sequence[str]) -> float:
    """The lowest value ``clip_loss`` can reach on a batch with these texts: repeated texts
    are soft targets, so a batch with k copies of a sentence cannot go below ln k for them
    (chance is ln(batch size))."""
    counts = {t: texts.count(t) for t in set(texts)}
    return float(np.mean([np.log(counts[t]) for t in texts]))


def _soft_infonce(sim, logit_scale, texts: Sequence[str]):
    import torch.nn.functional as F

    logits = logit_scale.exp().clamp(max=100) * sim
    target = _soft_targets(texts).to(logits.device)
    li = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    lt = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (li + lt) / 2


def train_clip(
    pairs: Sequence[Pair] | str | Path, model: str, out: str | Path, *, epochs: int = 5, lr: float = 1e-4,
    batch_size: int = 32, seed: int = 0, pretrained: str | None = None, device: str = "cpu",
    weight_decay: float = 0.01, augment: Callable[[np.ndarray, Pair, np.random.Generator], tuple[np.ndarray, str]] | None = None,
    calibrate_labels: str | Path | None = None, progress: Callable[[int, float], None] | None = None,
    dense_weight: float = 0.0, group_by: Callable[[Pair], Hashable] | str | None = None, warmup: int = 0,
    schedule: str = "constant", allow_outside_root: bool = False,
) -> TrainResult:
    """Fine-tune ``model`` on ``pairs`` (or a manifest path) and save a local-dir checkpoint.

    ``augment(pixels, pair, rng) -> (pixels, text)`` may rewrite each pair per step (the
    semi-synthetic evaluation inserts lesions this way). ``calibrate_labels`` runs
    ``reportgen.checkers.region.calibrate.calibrate`` on the saved checkpoint. ``dense_weight``,
    ``group_by``, ``warmup`` and ``schedule`` ("constant" or "cosine"): see the module
    docstring. ``TrainResult.extra["step_losses"]`` and ``["loss_floors"]`` hold the loss
    of every step and the lowest loss its batch allows (``loss_floor``).
    """
    from reportgen.checkers.region.images import load_radiograph
    from reportgen.checkers.region.model import ClipBackend

    from reportgen.checkers.region.model import resolve_model_spec
    from reportgen.jsonl import check_in_file, check_out_dir

    t0 = time.perf_counter()
    check_out_dir(out)  # a file at --out, or a missing labels file, fails now, not after the training
    if calibrate_labels is not None:
        check_in_file(calibrate_labels, "calibration labels file", fix="check --calibrate")
    if pretrained and resolve_model_spec(model)[0] in ("local-dir", "hf-hub"):
        raise ReportgenError("E608", f"--pretrained {pretrained!r} was given with {model!r}, whose weights are its own",
                             fix="drop --pretrained, or give a built-in name or a config JSON with it")
    skipped: list[str] = []
    source = None
    if isinstance(pairs, (str, Path)):
        source = str(pairs)
        pairs, skipped = read_pairs(pairs, allow_outside_root)
        for s in skipped:
            log.warning("train-clip: skipped %s", s)
    pairs = list(pairs)
    if not pairs:
        raise ReportgenError("E608", "no usable (image, text) pairs" + (f" in {source}" if source else ""),
                             fix="give records {'image': PATH, 'text': SENTENCE} or studies with 'images' and 'report'")
    for name, v, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 2)):
        if int(v) < lo:
            raise ReportgenError("E608", f"{name} must be >= {lo}, not {v}")
    if not lr > 0:
        raise ReportgenError("E608", f"lr must be > 0, not {lr}")
    if not float(weight_decay) >= 0 or int(seed) < 0:
        raise ReportgenError("E608", f"weight_decay and seed must be >= 0, not {weight_decay}, {seed}")
    if not 0.0 <= float(dense_weight) <= 1.0:
        raise ReportgenError("E608", f"dense_weight must be in [0, 1], not {dense_weight}")
    if int(warmup) < 0 or schedule not in ("constant", "cosine"):
        raise ReportgenError("E608", f"warmup must be >= 0 and schedule 'constant' or 'cosine', not {warmup}, {schedule!r}")
    group_name = group_by if isinstance(group_by, str) else ("custom" if group_by is not None else "none")
    if isinstance(group_by, str):
        if group_by not in GROUPINGS:
            raise ReportgenError("E608", f"group_by must be one of {', '.join(map(repr, GROUPINGS))} or a function, not {group_by!r}")
        group_by = GROUPINGS[group_by]

    import torch

    from reportgen.models import pick_device

    device = pick_device(device)  # E505 for 'cuda' without a GPU or an unknown device name
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    name, cfg = model_config(model)
    backend = ClipBackend(model, pretrained=pretrained, device=device, warn_random=False)
    backend.load()
    net = backend.model
    net.train()
    opt = torch.optim.AdamW(param_groups(net, weight_decay), lr=lr)

    pixel_cache: dict[str, np.ndarray] = {}

    def pixels_of(p: Pair) -> np.ndarray | None:
        if not isinstance(p.image, (str, Path)):
            return np.asarray(p.image, dtype=np.float32)
        key = str(p.image)
        if key not in pixel_cache:
            try:
                pixel_cache[key] = load_radiograph(key).pixels
            except ReportgenError as e:
                skipped.append(f"{key}: {e}")
                log.warning("train-clip: skipped image %s", e)
                pixel_cache[key] = None  # type: ignore[assignment]
        return pixel_cache[key]

    losses: list[float] = []
    step_losses: list[float] = []
    floors: list[float] = []
    bs = min(int(batch_size), len(pairs))
    groups = None
    if group_by is not None:
        groups = {}
        for i, p in enumerate(pairs):
            groups.setdefault(group_by(p), []).append(i)
        single = sum(len(v) < 2 for v in groups.values())
        if single == len(groups):
            raise ReportgenError("E608", f"group_by={group_name}: each of the {len(groups)} groups holds one pair, "
                                 "so no batch has anything to contrast",
                                 fix="group by a key shared by several sentences (a study with a report, an image "
                                     "with several sentences) or use --group-by none")
        if single:
            log.warning("train-clip: %d of %d groups hold one pair; their batches are skipped", single, len(groups))
    n_batches = len(_batches(len(pairs), bs, groups, np.random.default_rng(0)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(int(warmup), schedule, n_batches * int(epochs)))
    tower = backend.tower if dense_weight > 0 else None
    for epoch in range(int(epochs)):
        total, n = 0.0, 0
        for idx in _batches(len(pairs), bs, groups, rng):
            batch = [pairs[i] for i in idx]
            imgs, texts = [], []
            for p in batch:
                px = pixels_of(p)
                if px is None:
                    continue
                text = p.text
                if augment is not None:
                    px, text = augment(px, p, rng)
                imgs.append(backend.prepare(px))
                texts.append(text)
            if len(imgs) < 2:
                continue
            x = torch.stack(imgs).to(device)
            tok = backend.tokenizer(texts).to(device)
            txt_f = torch.nn.functional.normalize(net.encode_text(tok), dim=-1)
            if dense_weight > 0:
                from reportgen.checkers.region.model import dense_forward

                pooled, dense = dense_forward(net.visual, x, tower)
                img_f = torch.nn.functional.normalize(pooled, dim=-1)
                dense = torch.nn.functional.normalize(dense, dim=-1)
                loss = (1 - dense_weight) * clip_loss(img_f, txt_f, net.logit_scale, texts) \
                    + dense_weight * token_clip_loss(dense, txt_f, net.logit_scale, texts)
            else:
                img_f = torch.nn.functional.normalize(net.encode_image(x), dim=-1)
                loss = clip_loss(img_f, txt_f, net.logit_scale, texts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(texts)
            n += len(texts)
            step_losses.append(round(float(loss.detach()), 5))
            floors.append(round(loss_floor(texts), 5))
        losses.append(total / max(n, 1))
        if progress is not None:
            progress(epoch, losses[-1])
        log.info("train-clip epoch %d loss %.4f", epoch + 1, losses[-1])
    net.eval()
    extra = {
        "version": 1, "base_model": model, "pretrained": pretrained, "open_clip_name": name,
        "n_pairs": len(pairs), "epochs": int(epochs), "lr": lr, "batch_size": bs, "seed": seed,
        "losses": losses, "manifest": source, "dense_weight": float(dense_weight), "grouped": group_by is not None, "group_by": group_name,
        "weight_decay": weight_decay,
        "warmup": int(warmup), "schedule": schedule, "steps": len(step_losses),
        "manifest_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else None,
        "skipped": len(skipped),
    }
    out = save_local_dir(net, cfg, Path(out).resolve(), tokenizer=backend.tokenizer, extra=extra)
    calib = None
    if calibrate_labels is not None:
        from reportgen.checkers.region.calibrate import calibrate

        calib = calibrate(f"local-dir:{out}", calibrate_labels, save=True)
    return TrainResult(out, len(pairs), int(epochs), tuple(losses), tuple(skipped), time.perf_counter() - t0, calib,
                       {**extra, "step_losses": step_losses, "loss_floors": floors})


def param_groups(net: Any, weight_decay: float) -> list[dict]:
    """AdamW groups as in CLIP training: weight decay on matrices and convolution kernels
    only; biases, norm gains, 1-D embeddings and ``logit_scale`` get none."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "logit_scale" in name or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _image_key(p: Pair) -> Hashable:
    return p.image if isinstance(p.image, str) else id(p.image)  # a path, or in-memory pixels


GROUPINGS: dict[str, Callable[[Pair], Hashable] | None] = {
    "none": None,
    "image": _image_key,
    "study": lambda p: p.group if p.group is not None else _image_key(p),
}


def lr_lambda(warmup: int, schedule: str, total: int) -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up, then constant or cosine."""
    import math

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine" and total > warmup:
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))
        return 1.0

    return f


def _batches(n: int, bs: int, groups: dict | None, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches: a permutation cut into batches, or (with groups) each group
    permuted and cut on its own, then the batches shuffled."""
    if groups is None:
        order = rng.permutation(n)
        return [order[s:s + bs] for s in range(0, n, bs)]
    out = []
    for idx in groups.values():
        idx = np.asarray(idx)[rng.permutation(len(idx))]
        out += [idx[s:s + bs] for s in range(0, len(idx), bs)]
    return [out[i] for i in rng.permutation(len(out))]
