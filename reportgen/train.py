"""LoRA fine-tuning of a vision-language model on studies with reference reports.

    from reportgen.train import TrainConfig, train
    result = train(TrainConfig(manifest="train.jsonl", model="Qwen/Qwen2-VL-2B-Instruct", out="runs/cxr-lora"))

The manifest is JSONL, one study per line: ``{"id", "images", "indication"?, "comparison"?,
"views"?, "report"}``. A study's prompt is exactly what drafting renders
(:func:`reportgen.prompting.render_messages` + the model's chat template), the target is
the report as the chat template writes the assistant turn; prompt, image and padding
tokens are masked from the loss (label -100). Losses are averaged over target tokens of
a whole optimizer step, so gradient accumulation gives the same update as a bigger batch.

Output folder (``out``):

- ``adapter_config.json`` + ``adapter_model.safetensors``: the adapter, for
  ``PeftModel.from_pretrained`` and ``vllm serve --enable-lora --lora-modules NAME=OUT``.
  LoRA sits on the text decoder's q/k/v/o/gate/up/down projections only (vLLM applies
  LoRA to the language model; vision-tower LoRA would be ignored there).
- ``reportgen_train.json``: resolved config, package versions, data hash (sha256 of the
  manifest and every image's bytes), split sizes, skipped records, final metrics.
- ``metrics.jsonl``: one line per evaluation (step, epoch, train/val loss, lr, seconds).
- ``val_examples.jsonl``: a few validation studies drafted with the final adapter.
- ``checkpoints/step-N/``: adapter + optimizer, scheduler, RNG states and the position in
  the data; ``--resume`` continues from the newest one, bit-for-bit as if uninterrupted.

Bad manifest records (malformed JSON, no report, missing image files, unreadable images)
are skipped with an error naming the record (file:line or id); training goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from reportgen.errors import InputError, ReportgenError, error_code
from reportgen.jsonl import AppendWriter, atomic_writer, check_in_file, check_out_dir, dumps, read_jsonl
from reportgen.prompting import clean_optional_fields
from reportgen.types import Study

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
SUMMARY_FILE = "reportgen_train.json"


@dataclass
class TrainConfig:
    """Everything a run depends on; validated on construction (``E510`` names the field).

    ``max_steps`` caps the optimizer steps (None: ``epochs`` full passes). ``eval_every``
    and ``save_every`` count optimizer steps (0: only at the end of each epoch).
    ``target_modules`` is a peft regex (full match) or list; None: the family default
    (text-decoder projections). ``dtype``/``device`` None: bfloat16 on GPU, float32 on CPU.
    """

    manifest: str
    model: str
    out: str
    epochs: int = 3
    lr: float = 2e-4
    batch_size: int = 1
    grad_accum: int = 4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0
    resume: bool = False
    max_steps: int | None = None
    eval_every: int = 50
    save_every: int | None = None
    keep_checkpoints: int = 2
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 4096
    task: str = "findings"
    target_modules: Any = None
    eval_examples: int = 3
    max_new_tokens: int = 256
    template: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_pixels: int | None = None
    min_pixels: int | None = None
    max_images: int | None = None
    max_skipped_share: float = 0.05
    gradient_checkpointing: bool = False
    quantize: str | None = None
    trust_remote_code: bool = False
    eval_drafts: int = 0
    allow_outside_root: bool = False

    def __post_init__(self) -> None:
        from reportgen.prompting import TASKS

        def bad(name: str, why: str, fix: str) -> ReportgenError:
            return ReportgenError("E510", f"train config: {name} {why}", fix=fix)

        for name in ("manifest", "model", "out"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise bad(name, "must be a non-empty path or id", f"give --{name}")
        for name in ("epochs", "batch_size", "grad_accum", "rank", "max_length", "max_new_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, f"must be a positive integer, got {v!r}", f"set --{name.replace('_', '-')} to 1 or more")
        for name in ("eval_every", "keep_checkpoints", "eval_examples", "seed", "eval_drafts"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise bad(name, f"must be an integer >= 0, got {v!r}", f"set --{name.replace('_', '-')} to 0 or more")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise bad("max_steps", f"must be a positive integer or None, got {self.max_steps!r}", "omit --max-steps or give 1 or more")
        if self.save_every is not None and (not isinstance(self.save_every, int) or self.save_every < 0):
            raise bad("save_every", f"must be an integer >= 0, got {self.save_every!r}", "omit it to save with each evaluation")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise bad("lr", f"must be in (0, 1), got {self.lr!r}", "LoRA learning rates are around 1e-4 to 1e-3")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise bad("alpha", f"must be positive, got {self.alpha!r}", "alpha = 2 x rank is a common choice")
        for name, hi in (("dropout", 1.0), ("val_fraction", 1.0), ("warmup_ratio", 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v < hi:
                raise bad(name, f"must be in [0, {hi:g}), got {v!r}", f"e.g. --{name.replace('_', '-')} 0.1")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise bad("weight_decay/max_grad_norm", "must be >= 0", "use 0 to turn them off")
        if self.task not in TASKS:
            raise bad("task", f"{self.task!r} is not a drafting task", f"use one of {', '.join(TASKS)}")
        if self.target_modules is not None and not isinstance(self.target_modules, (str, list, tuple)):
            raise bad("target_modules", "must be a regex string or a list of module names", "omit it for the family default")
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        if isinstance(self.target_modules, str):
            import re

            try:
                re.compile(self.target_modules)
            except re.error as e:
                raise bad("target_modules", f"{self.target_modules!r} is not a regular expression ({e})",
                          "give a Python regex such as '.*language_model.*\\.(q_proj|v_proj)'") from None
        if not isinstance(self.max_skipped_share, (int, float)) or not 0 <= self.max_skipped_share <= 1:
            raise bad("max_skipped_share", f"must be in [0, 1], got {self.max_skipped_share!r}", "e.g. --max-skipped-share 0.05")
        if self.quantize not in (None, "4bit"):
            raise bad("quantize", f"must be None or '4bit', got {self.quantize!r}", "use --quantize 4bit (QLoRA, CUDA only)")
        self.image_policy  # validates the image bounds (E580)

    @property
    def image_policy(self):
        from reportgen.images import DEFAULT_MAX_IMAGES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, ImagePolicy

        return ImagePolicy.of(DEFAULT_MAX_PIXELS if self.max_pixels is None else self.max_pixels,
                              DEFAULT_MIN_PIXELS if self.min_pixels is None else self.min_pixels,
                              DEFAULT_MAX_IMAGES if self.max_images is None else self.max_images)

    @property
    def steps_between_saves(self) -> int:
        return self.eval_every if self.save_every is None else self.save_every

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Example:
    """A usable manifest record: the study and its target report."""

    study: Study
    report: str
    where: str


@dataclass
class ManifestData:
    examples: list[Example]
    errors: list[dict[str, str]] = field(default_factory=list)
    sha256: str = ""


def read_manifest(path: str | os.PathLike[str], allow_outside_root: bool = False) -> ManifestData:
    """Usable examples and per-record errors of a training manifest, plus its data hash
    (sha256 over the manifest bytes and then each referenced image's bytes in order).
    Images outside the manifest's folder are record errors (E904) unless ``allow_outside_root``."""
    p = Path(path)
    base = p.parent
    h = hashlib.sha256()
    check_in_file(p, "manifest", "E511", fix="check --manifest")
    h.update(p.read_bytes())
    examples: list[Example] = []
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for rec in read_jsonl(p, require=("id", "report"), text_fields=("report",)):
        rid = rec.fallback_id()
        if rec.error:
            errors.append({"id": rid, "where": rec.where, "error": rec.error})
            continue
        data = dict(rec.data or {})
        problem = clean_optional_fields(data) or _check_record(data, base, allow_outside_root)
        if problem is None and rid in seen:
            problem = f"E512 duplicate id {rid!r}"
        if problem:
            errors.append({"id": rid, "where": rec.where, "error": f"{rec.where}: record {rid!r}: {problem}"})
            continue
        seen.add(rid)
        images = [str(_resolve(base, x)) for x in data["images"]]
        for img in images:
            with open(img, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        data["images"] = images
        report = data.pop("report")
        try:
            study = Study.from_dict(data)
        except ReportgenError as e:
            errors.append({"id": rid, "where": rec.where, "error": f"{rec.where}: record {rid!r}: {e}"})
            continue
        examples.append(Example(study, report.strip(), rec.where))
    for e in errors:
        log.warning("skipping %s", e["error"])
    return ManifestData(examples, errors, h.hexdigest())


def _resolve(base: Path, image: str) -> Path:
    p = Path(os.path.expanduser(image))
    return p if p.is_absolute() else base / p


def _check_record(data: dict[str, Any], base: Path, allow_outside_root: bool = False) -> str | None:
    from reportgen.paths import image_path, not_an_image_file

    images = data.get("images")
    if isinstance(images, str):
        images = data["images"] = [images]
    if not isinstance(images, list) or not images:
        return "E512 'images' must be a non-empty list of image paths"
    for img in images:
        if not isinstance(img, str) or not img.strip():
            return "E512 every entry of 'images' must be a path string"
        p, outside = image_path(img, base, allow_outside=allow_outside_root)
        if outside:
            return f"images[{images.index(img)}]: {outside}"
        if not p.is_file():
            return f"E513 image {img!r} {not_an_image_file(p) if p.is_dir() else 'does not exist'}"
    return None


PATIENT_KEYS = ("patient_id", "subject_id", "patient")
SPLIT_KEYS = ("split",)
VAL_SPLITS = frozenset({"validate", "validation", "val", "valid", "dev"})
TEST_SPLITS = frozenset({"test"})


def patient_of(study: Study) -> str:
    """The patient a study belongs to (``patient_id``/``subject_id`` of the record, kept in
    ``Study.meta``); a study without one is its own patient."""
    for k in PATIENT_KEYS:
        v = study.meta.get(k)
        if v not in (None, ""):
            return str(v)
    return f"study:{study.id}"


def official_split(study: Study) -> str | None:
    v = study.meta.get("split")
    return str(v).strip().lower() if v not in (None, "") else None


def split_examples(examples: Sequence[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A train/validation split BY PATIENT: every study of one patient lands on the same
    side. When records carry an official ``split`` ("train", "validate", "test", as in
    MIMIC-CXR's split file) it is honoured: "validate" studies validate, "test" studies are
    never trained on (nor validated on). Otherwise a seeded share ``val_fraction`` of the
    patients (at least one when positive and there are two or more) validates."""
    if any(official_split(e.study) for e in examples):
        train = [e for e in examples if official_split(e.study) not in VAL_SPLITS | TEST_SPLITS]
        val = [e for e in examples if official_split(e.study) in VAL_SPLITS]
        return train, val
    patients = sorted({patient_of(e.study) for e in examples})
    random.Random(seed).shuffle(patients)
    n_val = 0
    if val_fraction > 0 and len(patients) >= 2:
        n_val = min(len(patients) - 1, max(1, round(val_fraction * len(patients))))
    val_p = set(patients[:n_val])
    train = [e for e in examples if patient_of(e.study) not in val_p]
    val = [e for e in examples if patient_of(e.study) in val_p]
    return train, val


# ------------------------------------------------------------------------------ encoding
def encode_example(processor, ex: Example, task: str, template, max_length: int, policy=None, family=None,
                   stop_ids: Sequence[int] | None = None) -> dict:
    """Model inputs for one example with ``labels``: -100 on the prompt (text, image and
    special tokens) and on padding, the target tokens elsewhere.

    The prompt is tokenized exactly as the ``hf`` backend tokenizes it for drafting (same
    image ``policy``, same family chat template); the target's tokens follow it, so the
    adapter learns to continue the drafting prompt. When the target the chat template
    writes holds none of ``stop_ids`` (e.g. llava-1.5's template ends the answer with a
    space), the tokenizer's EOS is appended so the adapter learns to stop. Per-token
    inputs other than ids and mask continue over the target as the family says
    (``extend_over_report`` in reportgen/data/models.json; 0 otherwise)."""
    import torch

    from reportgen.encoding import conversation_text, encode, load_images
    from reportgen.prompting import render_messages

    from reportgen.images import DEFAULT_POLICY

    policy = policy or DEFAULT_POLICY
    messages = render_messages(ex.study, task, template, policy)
    prompt, target = conversation_text(processor, messages, ex.report, family)
    inputs = encode(processor, [prompt], [load_images(messages, policy)], padding_side="right")
    tok = getattr(processor, "tokenizer", processor)
    target_ids = tok(target, add_special_tokens=False)["input_ids"]
    if stop_ids and not any(t in stop_ids for t in target_ids):
        if tok.eos_token_id is None:
            raise ReportgenError("E582", f"record {ex.study.id!r}: the chat template's answer has no stop token and the tokenizer no EOS",
                                 fix="give the family's stop_tokens in reportgen/data/models.json or use a tokenizer with an eos_token")
        target_ids = list(target_ids) + [int(tok.eos_token_id)]
    prompt_len = inputs["input_ids"].shape[1]
    if prompt_len >= max_length:
        raise InputError("E514", f"record {ex.study.id!r}: the prompt has {prompt_len} tokens, max_length is {max_length}",
                         fix="raise --max-length or use smaller images (--max-pixels) or fewer (--max-images)")
    if prompt_len + len(target_ids) > max_length:
        log.warning("record %s: target cut to %d tokens (max_length %d)", ex.study.id, max_length - prompt_len, max_length)
        target_ids = target_ids[: max_length - prompt_len]
    tgt = torch.tensor([target_ids], dtype=inputs["input_ids"].dtype)
    n_t = tgt.shape[1]
    rules = dict(getattr(family, "extend_over_report", None) or {})
    out: dict[str, Any] = {}
    for k, v in inputs.items():
        if k == "input_ids":
            out[k] = torch.cat([v, tgt], dim=1)
        elif k == "attention_mask" and v.dim() == 2:
            out[k] = torch.cat([v, torch.ones((1, n_t), dtype=v.dtype)], dim=1)
        elif hasattr(v, "dim") and v.dim() >= 2 and v.shape[0] == 1 and v.shape[1] == prompt_len and k != "pixel_values":
            rule = rules.get(k, 0)
            if rule == "last":
                fill = v[:, -1:].expand(1, n_t, *v.shape[2:])
            else:
                fill = torch.full((1, n_t, *v.shape[2:]), rule, dtype=v.dtype)
            out[k] = torch.cat([v, fill.to(v.dtype)], dim=1)
        else:
            out[k] = v
    labels = torch.full_like(out["input_ids"], -100)
    labels[0, prompt_len:] = tgt[0]
    out["labels"] = labels
    return out


def collate(encoded: Sequence[dict], pad_id: int) -> dict:
    """Right-pad sequence tensors of several encoded examples; concatenate the rest
    (pixel values, image grids) along the first axis."""
    import torch

    if len(encoded) == 1:
        return dict(encoded[0])
    length = max(e["input_ids"].shape[1] for e in encoded)
    out: dict[str, Any] = {}
    for k in encoded[0]:
        vals = [e[k] for e in encoded]
        if k in ("input_ids", "attention_mask", "labels") or (vals[0].dim() >= 2 and vals[0].shape[1] == encoded[0]["input_ids"].shape[1] and k != "pixel_values"):
            fill = pad_id if k == "input_ids" else -100 if k == "labels" else 0

            def pad(v):
                extra = torch.full((v.shape[0], length - v.shape[1], *v.shape[2:]), fill, dtype=v.dtype)
                return torch.cat([v, extra], dim=1)

            out[k] = torch.cat([pad(v) for v in vals], dim=0)
        else:
            out[k] = torch.cat(vals, dim=0)
    return out


def token_loss_sum(model, batch: dict) -> tuple[Any, int]:
    """(sum of next-token losses over target tokens, number of target tokens) of one
    encoded batch (``labels`` popped from it; -100 is ignored)."""
    import torch

    labels = batch.pop("labels")
    out = model(**batch)
    logits = out.logits[:, :-1, :].float()
    target = labels[:, 1:].to(logits.device)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum")
    return loss, int((target != -100).sum())


def _loss_over(model, batches) -> tuple[float, int]:
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            if batch is None:
                continue
            loss, n = token_loss_sum(model, batch)
            total += float(loss)
            count += n
    return total, count


def mean_loss(model, processor, examples: Sequence[Example], *, task: str = "findings", template=None,
              max_length: int = 4096) -> float:
    """Mean per-token target loss of ``model`` (base or peft) on ``examples``, one at a time."""
    from reportgen.prompting import default_template

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    t = template or default_template()

    def batches():
        for ex in examples:
            enc = encode_example(processor, ex, task, t, max_length)
            yield {k: (v.to(device).to(dtype) if v.is_floating_point() else v.to(device)) for k, v in enc.items()}

    was_training = model.training
    model.eval()
    total, count = _loss_over(model, batches())
    if was_training:
        model.train()
    return total / count if count else float("nan")


# -------------------------------------------------------------------------------- model
def lora_config(cfg: TrainConfig, model_type: str | None):
    from peft import LoraConfig

    from reportgen.models import default_target_modules

    return LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none", task_type="CAUSAL_LM",
        target_modules=cfg.target_modules or default_target_modules(model_type),
    )


def lora_module_names(model) -> list[str]:
    """Names of the modules that carry LoRA weights in a peft model."""
    return sorted({n.rsplit(".lora_A", 1)[0] for n, _ in model.named_modules() if n.endswith(".lora_A")})


def check_targets(names: Sequence[str]) -> None:
    from reportgen.models import VISION_MARKERS

    if not names:
        raise ReportgenError("E515", "target_modules matched no module of the model",
                             fix="give --target-modules a regex over the text decoder's linear layers")
    vision = [n for n in names if any(m in n.split(".") or m in n for m in VISION_MARKERS)]
    if vision:
        raise ReportgenError("E515", f"target_modules include vision-tower modules (e.g. {vision[0]}); vLLM ignores LoRA there",
                             fix="restrict --target-modules to the language model's layers")


# --------------------------------------------------------------------------- the trainer
@dataclass(frozen=True)
class TrainResult:
    out: str
    steps: int
    train_loss: float | None
    val_loss: float | None
    initial_val_loss: float | None
    skipped: int
    resumed_from: int | None


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("reportgen", "torch", "transformers", "peft", "accelerate", "pillow", "pydicom"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def latest_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder under ``out/checkpoints`` (or None)."""
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)


REASONS = {
    "E102": "not UTF-8", "E103": "malformed JSON", "E104": "not a JSON object", "E105": "missing field",
    "E106": "bad id", "E107": "field not a string", "E108": "field too long", "E109": "empty field",
    "E512": "bad 'images' or duplicate id", "E513": "image missing", "E500": "image missing", "E501": "image unreadable",
    "E502": "image pixels unsupported", "E514": "too long for --max-length",
}


def skipped_by_reason(errors: Sequence[dict[str, str]]) -> dict[str, int]:
    """Counts of skipped records per error code, e.g. {"E514 too long for --max-length": 3}."""
    import re

    out: dict[str, int] = {}
    for e in errors:
        m = re.search(r"\b(E\d{3})\b", e.get("error", ""))
        code = m.group(1) if m else "other"
        key = f"{code} {REASONS.get(code, 'other error')}".strip()
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def quantization_config(cfg: "TrainConfig", device: str, dtype):
    """bitsandbytes 4-bit (NF4, double quantization) for QLoRA, or None. QLoRA needs a CUDA
    GPU and the bitsandbytes package; elsewhere E587 says so."""
    if cfg.quantize is None:
        return None
    if not device.startswith("cuda"):
        raise ReportgenError("E587", f"--quantize {cfg.quantize} (QLoRA) needs a CUDA GPU; the device is {device!r}",
                             fix="train on a CUDA machine, or drop --quantize (LoRA on the full-precision model)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ReportgenError("E587", "--quantize 4bit (QLoRA) needs the bitsandbytes package",
                             fix="pip install 'reportgen-cxr[qlora]' (bitsandbytes) on the CUDA machine") from e
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


# Config fields that must match for --resume to continue the same run.
_RESUME_KEYS = ("model", "rank", "alpha", "dropout", "target_modules", "batch_size", "grad_accum", "seed",
                "val_fraction", "task", "max_length", "lr", "epochs", "max_steps", "warmup_ratio", "weight_decay",
                "max_pixels", "min_pixels", "max_images", "quantize")


class Trainer:
    """One LoRA run (see the module docstring). ``on_step(step)`` is called after every
    optimizer step (a test raises KeyboardInterrupt there to simulate Ctrl-C)."""

    def __init__(self, cfg: TrainConfig, on_step: Callable[[int], None] | None = None):
        self.cfg = cfg
        self.on_step = on_step
        self.out = Path(cfg.out)
        self.acc = None
        self.acc_device: str | None = None
        self.rank, self.world = 0, 1
        self.train_model = None

    # -- data parallel (accelerate launch) ------------------------------------------------
    def _init_distributed(self) -> None:
        """Under ``accelerate launch`` (WORLD_SIZE > 1) every process trains on its share
        of each step's micro-batches; DDP (through accelerate) averages the gradients.
        Process 0 alone evaluates, writes metrics, checkpoints and the adapter."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return
        from accelerate import Accelerator

        self.acc = Accelerator(cpu=str(self.cfg.device or "").startswith("cpu"))
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.acc_device = str(self.acc.device)
        if self.cfg.quantize:
            raise ReportgenError("E588", "--quantize with several processes is not supported yet",
                                 fix="run QLoRA in one process, or drop --quantize for data-parallel LoRA")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _barrier(self) -> None:
        if self.acc is not None:
            self.acc.wait_for_everyone()

    # -- setup ------------------------------------------------------------------------
    def _setup(self) -> None:
        import torch
        from peft import get_peft_model

        from reportgen.models import load_base_model, load_processor, pick_device, pick_dtype
        from reportgen.prompting import default_template, load_template

        from reportgen.encoding import stop_token_ids
        from reportgen.models import family_of

        cfg = self.cfg
        check_out_dir(cfg.out)  # a file at --out fails now, not when the first checkpoint is saved
        self._init_distributed()
        self.data = read_manifest(cfg.manifest, cfg.allow_outside_root)
        if not self.data.examples:
            raise InputError("E516", f"manifest {cfg.manifest!r} has no usable record ({len(self.data.errors)} bad)",
                             fix="see the errors above; each names its record")
        self.train_set, self.val_set = split_examples(self.data.examples, cfg.val_fraction, cfg.seed)
        self.n_test_held_out = len(self.data.examples) - len(self.train_set) - len(self.val_set)
        self.template = load_template(cfg.template) if cfg.template else default_template()
        self.policy = cfg.image_policy
        self.device = self.acc_device or pick_device(cfg.device)
        self.dtype = pick_dtype(cfg.dtype, self.device)
        quant = quantization_config(cfg, self.device, self.dtype)
        _seed_all(cfg.seed)
        self.processor = load_processor(cfg.model, trust_remote_code=cfg.trust_remote_code)
        base = load_base_model(cfg.model, device=self.device, dtype=self.dtype, trust_remote_code=cfg.trust_remote_code,
                               quantization_config=quant)
        self.model_type = getattr(base.config, "model_type", None)
        self.family = family_of(self.model_type)
        self.stop_ids = stop_token_ids(self.processor, self.family, base)
        if quant is not None:
            from peft import prepare_model_for_kbit_training

            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=cfg.gradient_checkpointing)
        elif cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.enable_input_require_grads()
        try:
            self.model = get_peft_model(base, lora_config(cfg, self.model_type))
        except ValueError as e:  # peft's NoMatchingPeftModuleError: the targets match no module
            if "not found in the base model" not in str(e) and "NoMatching" not in type(e).__name__:
                raise
            check_targets([])
        self.model.peft_config["default"].base_model_name_or_path = cfg.model
        self.lora_modules = lora_module_names(self.model)
        check_targets(self.lora_modules)
        tok = getattr(self.processor, "tokenizer", self.processor)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.bad_ids: set[str] = set()
        self.token_stats = self._preflight()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.train_model = self.acc.prepare_model(self.model) if self.acc is not None else self.model
        # float16 weights need loss scaling (bfloat16 and float32 do not): small gradients
        # underflow to 0 in float16 otherwise. The LoRA weights themselves stay float32.
        self.scaler = None
        if self.dtype == torch.float16:
            self.scaler = torch.amp.GradScaler(self.device.split(":")[0])
        per_epoch = math.ceil(len(self.train_set) / (cfg.batch_size * cfg.grad_accum * self.world))
        self.steps_per_epoch = per_epoch
        # max_steps, when given, overrides epochs (as in transformers' Trainer).
        self.total_steps = per_epoch * cfg.epochs if cfg.max_steps is None else cfg.max_steps
        warmup = int(round(cfg.warmup_ratio * self.total_steps))
        total = self.total_steps

        def schedule(step: int) -> float:  # linear warmup, then linear decay to 0
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)

    def _preflight(self) -> dict[str, Any]:
        """Encode every training and validation study once before the first step: studies
        that cannot be trained (too long, unreadable image, ...) are known up front and
        their share checked (E581), and the token counts per study go into the stats."""
        n_records = len(self.data.examples) + len(self.data.errors) - self.n_test_held_out
        prompt_tokens: list[int] = []
        target_tokens: list[int] = []
        images: list[int] = []
        for ex in list(self.train_set) + list(self.val_set):
            try:
                enc = encode_example(self.processor, ex, self.cfg.task, self.template, self.cfg.max_length,
                                     self.policy, self.family, self.stop_ids)
            except ReportgenError as e:
                self._record_error(ex, str(e))
                continue
            n_target = int((enc["labels"] != -100).sum())
            prompt_tokens.append(int(enc["input_ids"].shape[1]) - n_target)
            target_tokens.append(n_target)
            images.append(len(self.policy.order(ex.study.views or [None] * len(ex.study.images))))
        self.train_set = [e for e in self.train_set if e.study.id not in self.bad_ids]
        self.val_set = [e for e in self.val_set if e.study.id not in self.bad_ids]
        total = n_records
        skipped = len(self.data.errors)
        by_reason = skipped_by_reason(self.data.errors)
        share = skipped / total if total else 1.0
        if not self.train_set or share > self.cfg.max_skipped_share:
            reasons = ", ".join(f"{n} {r}" for r, n in by_reason.items())
            raise InputError(
                "E581", f"{skipped} of {total} studies cannot be trained ({share:.1%}, limit {self.cfg.max_skipped_share:.0%}"
                f"{'; none left to train' if not self.train_set else ''}): {reasons}",
                fix="fix the records named in the warnings above; for 'E514 too long' lower --max-pixels / --max-images "
                    "or raise --max-length; or accept more skips with --max-skipped-share",
            )

        def summary(xs: list[int]) -> dict[str, Any]:
            if not xs:
                return {}
            ys = sorted(xs)
            return {"min": ys[0], "median": ys[len(ys) // 2], "mean": round(sum(ys) / len(ys), 1), "max": ys[-1]}

        return {"prompt_tokens": summary(prompt_tokens), "target_tokens": summary(target_tokens),
                "total_tokens": summary([a + b for a, b in zip(prompt_tokens, target_tokens)]),
                "images": summary(images), "eos_added": self._eos_added(), "skipped_by_reason": by_reason}

    def _eos_added(self) -> bool:
        """Whether the chat template's answer lacks a stop token (training appends the EOS)."""
        from reportgen.encoding import conversation_text
        from reportgen.prompting import render_messages

        ex = (self.train_set or self.val_set)[0]
        _, target = conversation_text(self.processor, render_messages(ex.study, self.cfg.task, self.template, self.policy),
                                      ex.report, self.family)
        tok = getattr(self.processor, "tokenizer", self.processor)
        return not any(t in self.stop_ids for t in tok(target, add_special_tokens=False)["input_ids"])

    # -- data order ---------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[Example]]:
        """Micro-batches of an epoch, in an order fixed by (seed, epoch) so a resumed run
        sees exactly the batches the interrupted one would have seen."""
        order = list(range(len(self.train_set)))
        random.Random(f"{self.cfg.seed}:{epoch}").shuffle(order)
        bs = self.cfg.batch_size
        return [[self.train_set[i] for i in order[j : j + bs]] for j in range(0, len(order), bs)]

    def _encode(self, batch: Sequence[Example]) -> dict | None:
        encoded = []
        for ex in batch:
            if ex.study.id in self.bad_ids:
                continue
            try:
                encoded.append(encode_example(self.processor, ex, self.cfg.task, self.template, self.cfg.max_length,
                                              self.policy, self.family, self.stop_ids))
            except ReportgenError as e:
                self._record_error(ex, str(e))
        if not encoded:
            return None
        batch_t = collate(encoded, self.pad_id)
        out = {}
        for k, v in batch_t.items():
            v = v.to(self.device)
            out[k] = v.to(self.dtype) if v.is_floating_point() else v
        return out

    def _record_error(self, ex: Example, message: str) -> None:
        if ex.study.id in self.bad_ids:
            return
        self.bad_ids.add(ex.study.id)
        msg = message if ex.where in message else f"{ex.where}: {message}"
        log.warning("skipping %s", msg)
        self.data.errors.append({"id": ex.study.id, "where": ex.where, "error": msg})

    # -- loss -----------------------------------------------------------------------------
    def _loss_sum(self, batch: dict) -> tuple[Any, int]:
        return token_loss_sum(self.model, batch)

    def accumulate(self, window: Sequence[Sequence[Example]]) -> tuple[float, int]:
        """Gradients of one optimizer step over its micro-batches: the summed token losses
        divided by the step's target-token count, so accumulating N micro-batches gives
        the gradient of one batch N times bigger. Returns (summed loss, tokens)."""
        if self.world > 1:
            return self._accumulate_distributed(window)
        encoded = [b for b in (self._encode(w) for w in window) if b is not None]
        n_tokens = sum(int((b["labels"][:, 1:] != -100).sum()) for b in encoded)
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = 0.0
        for b in encoded:
            loss, _ = self._loss_sum(b)
            scaled = loss / max(1, n_tokens)
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_total += float(loss.detach())
        return loss_total, n_tokens

    def _accumulate_distributed(self, window: Sequence[Sequence[Example]]) -> tuple[float, int]:
        """accumulate() across processes: process r takes micro-batches r, r+W, ... of the
        step's window; the token count is summed over all processes, so the update equals
        the one-process update of the whole window. Every process runs the same number of
        backward passes (a process short of data repeats a micro-batch with weight 0)."""
        import contextlib

        import torch
        import torch.distributed as dist

        per = math.ceil(len(window) / self.world)
        real = [b for b in (self._encode(w) for w in window[self.rank :: self.world]) if b is not None]
        n_local = sum(int((b["labels"][:, 1:] != -100).sum()) for b in real)
        counts = torch.tensor([float(n_local), 0.0], dtype=torch.float64, device=self.device)
        dist.all_reduce(counts)
        n_tokens = int(counts[0].item())
        plan = [(b, 1.0) for b in real]
        if len(plan) < per:
            filler = real[0] if real else self._encode([self.train_set[0]])
            plan += [(filler, 0.0)] * (per - len(plan))
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = 0.0
        for i, (b, weight) in enumerate(plan):
            sync = i == len(plan) - 1
            with (contextlib.nullcontext() if sync else self.train_model.no_sync()):
                loss, _ = token_loss_sum(self.train_model, dict(b))
                scaled = loss * (weight * self.world / max(1, n_tokens))  # DDP averages over processes
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_total += float(loss.detach()) * weight
        total = torch.tensor([loss_total], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total.item()), n_tokens

    def evaluate(self, examples: Sequence[Example]) -> float | None:
        """Mean per-token loss over ``examples`` (None when there are none)."""
        if not examples:
            return None
        was_training = self.model.training
        self.model.eval()
        total, count = _loss_over(self.model, (self._encode(examples[i : i + self.cfg.batch_size]) for i in range(0, len(examples), self.cfg.batch_size)))
        if was_training:
            self.model.train()
        return total / count if count else None

    # -- checkpoints ----------------------------------------------------------------------
    def _save_checkpoint(self, step: int, epoch: int, batch_index: int, history: dict[str, Any]) -> Path:
        import torch

        root = self.out / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"step-{step}"
        tmp = root / f".tmp-step-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(str(tmp))
        torch.save({
            "step": step, "epoch": epoch, "batch_index": batch_index, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": _rng_state(), "history": history,
            "bad_ids": sorted(self.bad_ids), "config": self.cfg.to_dict(), "data_sha256": self.data.sha256,
            "prompt_version": self.template.version, "prompt_sha256": self.template.sha256,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }, tmp / STATE_FILE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        done = sorted((p for p in root.glob("step-*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:]))
        for old in done[: max(0, len(done) - max(1, self.cfg.keep_checkpoints))]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _load_checkpoint(self, ckpt: Path) -> dict[str, Any]:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
        old = state.get("config", {})
        diffs = [k for k in _RESUME_KEYS if old.get(k) != getattr(self.cfg, k)]
        if diffs:
            raise ReportgenError("E517", f"cannot resume from {ckpt}: {', '.join(diffs)} differ from the interrupted run",
                                 fix="resume with the same settings, or train into a new --out")
        if state.get("data_sha256") != self.data.sha256:
            raise ReportgenError("E517", f"cannot resume from {ckpt}: the manifest or its images changed",
                                 fix="restore the data of the interrupted run, or train into a new --out")
        old_hash = state.get("prompt_sha256")
        if old_hash is not None and old_hash != self.template.sha256:
            raise ReportgenError(
                "E517", f"cannot resume from {ckpt}: the prompt template changed (version {state.get('prompt_version')!r} "
                f"sha256 {old_hash[:12]} then, {self.template.version!r} sha256 {self.template.sha256[:12]} now)",
                fix="restore the template of the interrupted run (--template), or train into a new --out")
        weights = load_file(str(ckpt / "adapter_model.safetensors"), device=str(self.device))
        set_peft_model_state_dict(self.model, weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.bad_ids = set(state.get("bad_ids", ()))
        return state

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> TrainResult:
        import torch

        cfg = self.cfg
        ckpt = latest_checkpoint(self.out)
        if ckpt is not None and not cfg.resume:
            raise ReportgenError("E518", f"{cfg.out} already holds a training run (checkpoint {ckpt.name})",
                                 fix="pass --resume to continue it, or choose another --out")
        if cfg.resume and ckpt is None and (self.out / SUMMARY_FILE).is_file():
            raise ReportgenError("E518", f"{cfg.out} holds a finished run and no checkpoint to resume",
                                 fix="choose another --out to train again")
        self._setup()
        self._barrier()  # every process has checked --out before process 0 writes to it
        step, epoch, batch_index = 0, 0, 0
        history: dict[str, Any] = {"initial_val_loss": None, "last_train_loss": None}
        resumed_from = None
        metrics_path = self.out / "metrics.jsonl"
        self.out.mkdir(parents=True, exist_ok=True)
        if ckpt is not None:
            state = self._load_checkpoint(ckpt)
            step, epoch, batch_index, history = state["step"], state["epoch"], state["batch_index"], state["history"]
            resumed_from = step
            log.info("resuming from %s (step %d, epoch %d)", ckpt, step, epoch)
        elif self.main:
            if metrics_path.exists():
                metrics_path.unlink()
            history["initial_val_loss"] = self.evaluate(self.val_set)
        t_start = time.perf_counter()
        self.model.train()
        window_loss, window_tokens = 0.0, 0
        progress = _progress(self.total_steps, step)
        saved, consistent = False, True
        with (AppendWriter(metrics_path) if self.main else _NullWriter()) as metrics:
            if ckpt is None:
                metrics.write({"step": 0, "epoch": 0, "train_loss": None, "val_loss": history["initial_val_loss"], "lr": cfg.lr, "elapsed_s": 0.0})
            try:
                while step < self.total_steps:
                    batches = self._epoch_batches(epoch)
                    while batch_index < len(batches) and step < self.total_steps:
                        saved = False
                        consistent = False  # between here and the step's bookkeeping, a Ctrl-C leaves a half step
                        window = batches[batch_index : batch_index + cfg.grad_accum * self.world]
                        loss_total, n_tokens = self.accumulate(window)
                        if n_tokens and self.scaler is not None:
                            self.scaler.unscale_(self.optimizer)  # clip the true gradients
                        if n_tokens and cfg.max_grad_norm > 0:
                            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm)
                        if n_tokens and self.scaler is not None:
                            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
                            self.scaler.update()
                        elif n_tokens:
                            self.optimizer.step()
                        self.scheduler.step()
                        batch_index += len(window)
                        step += 1
                        consistent = True
                        window_loss += loss_total
                        window_tokens += n_tokens
                        progress.update(1)
                        last_of_epoch = batch_index >= len(batches)
                        if (cfg.eval_every and step % cfg.eval_every == 0) or last_of_epoch or step >= self.total_steps:
                            train_loss = window_loss / window_tokens if window_tokens else None
                            window_loss, window_tokens = 0.0, 0
                            history["last_train_loss"] = train_loss
                            if self.main:
                                val_loss = self.evaluate(self.val_set)
                                history["last_val_loss"] = val_loss
                                row = {"step": step, "epoch": epoch + (batch_index / len(batches)), "train_loss": train_loss,
                                       "val_loss": val_loss, "lr": self.scheduler.get_last_lr()[0]}
                                row.update(self.draft_metrics())
                                row["elapsed_s"] = round(time.perf_counter() - t_start, 3)
                                metrics.write(row)
                            self._barrier()
                        next_epoch, next_index = (epoch + 1, 0) if last_of_epoch else (epoch, batch_index)
                        save_every = cfg.steps_between_saves
                        if (save_every and step % save_every == 0) or last_of_epoch:
                            if self.main:
                                self._save_checkpoint(step, next_epoch, next_index, history)
                            self._barrier()
                            saved = True
                        if self.on_step is not None:
                            self.on_step(step)
                    epoch += 1
                    batch_index = 0
            except KeyboardInterrupt:
                # Keep what was done: the next run with --resume continues from here. A
                # step cut in half is dropped (the newest checkpoint is before it).
                if step and consistent and not saved and self.main:
                    next_epoch, next_index = (epoch + 1, 0) if batch_index >= len(self._epoch_batches(epoch)) else (epoch, batch_index)
                    self._save_checkpoint(step, next_epoch, next_index, history)
                log.warning("interrupted at step %d; rerun with --resume to continue from the newest checkpoint", step)
                progress.close()
                raise
        progress.close()
        if self.main:
            self._finish(step, history, resumed_from)
        self._barrier()
        return TrainResult(str(self.out), step, history.get("last_train_loss"), history.get("last_val_loss"),
                           history.get("initial_val_loss"), len(self.data.errors), resumed_from)

    def _finish(self, step: int, history: dict[str, Any], resumed_from: int | None) -> None:
        self.model.save_pretrained(str(self.out))
        examples = self._val_examples()
        with atomic_writer(self.out / "val_examples.jsonl") as fh:
            for row in examples:
                fh.write(dumps(row) + "\n")
        summary = {
            "config": self.cfg.to_dict(),
            "resolved": {
                "device": self.device, "dtype": str(self.dtype).replace("torch.", ""), "model_type": self.model_type,
                "target_modules": self.model.peft_config["default"].target_modules if isinstance(self.model.peft_config["default"].target_modules, str) else sorted(self.model.peft_config["default"].target_modules),
                "lora_modules": len(self.lora_modules), "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "processes": self.world,
                "prompt_version": self.template.version, "prompt_sha256": self.template.sha256,
                "image_policy": self.policy.to_dict(), "family": self.family.name if self.family else None,
                "stop_token_ids": self.stop_ids, "grad_scaler": self.scaler is not None,
                "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            },
            "versions": _versions(),
            "data": {"manifest": str(self.cfg.manifest), "sha256": self.data.sha256, "n_train": len(self.train_set),
                     "n_val": len(self.val_set), "val_ids": [e.study.id for e in self.val_set],
                     "n_test_held_out": self.n_test_held_out, "split": "official" if any(official_split(e.study) for e in self.data.examples) else "by patient",
                     "tokens_per_study": self.token_stats,
                     "skipped_by_reason": skipped_by_reason(self.data.errors),
                     "skipped": [{"id": e["id"], "where": e["where"], "error": e["error"], "error_code": error_code(e["error"])}
                                 for e in self.data.errors]},
            "result": {"steps": step, "initial_val_loss": history.get("initial_val_loss"),
                       "train_loss": history.get("last_train_loss"), "val_loss": history.get("last_val_loss"),
                       "resumed_from_step": resumed_from},
        }
        with atomic_writer(self.out / SUMMARY_FILE) as fh:
            json.dump(summary, fh, indent=2, default=str)
            fh.write("\n")

    def _drafter(self):
        from reportgen.backends.hf import HFDrafter
        from reportgen.models import LoadedModel

        loaded = LoadedModel(self.model, self.processor, self.cfg.model, str(self.out), self.device, self.dtype, self.family)
        p = self.policy
        return HFDrafter(self.cfg.model, str(self.out), task=self.cfg.task, max_new_tokens=self.cfg.max_new_tokens,
                         batch_size=self.cfg.batch_size, template=self.cfg.template, loaded=loaded,
                         max_pixels=p.max_pixels or 0, min_pixels=p.min_pixels or 0, max_images=p.max_images or 0)

    def draft_metrics(self) -> dict[str, Any]:
        """Quality beside the loss: the first ``eval_drafts`` validation studies drafted
        greedily with the current adapter and scored against their reports with the
        project's fast metrics (CheXpert-label micro F1 over 14 and 5 observations, the
        graph checker's hallucination rate, BLEU-4). Empty when ``eval_drafts`` is 0."""
        n = self.cfg.eval_drafts
        sample = [e for e in self.val_set if e.study.id not in self.bad_ids][:n] if n else []
        if not sample:
            return {}
        from reportgen.evals.suite import Suite

        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        drafts = self._drafter().draft([e.study for e in sample])
        if was_training:
            self.model.train()
        result = Suite().evaluate([(e.study.id, d.report, e.report) for e, d in zip(sample, drafts)], n_bootstrap=0)

        def num(name: str) -> float | None:
            ci = result.corpus.get(name)
            v = getattr(ci, "estimate", None)
            return None if v is None or v != v else round(float(v), 6)

        return {"val_drafted": len(sample), "val_chexpert_micro_f1_14": num("chexpert_micro_f1_14"),
                "val_chexpert_micro_f1_5": num("chexpert_micro_f1_5"), "val_hallucination_rate": num("hallucination_rate"),
                "val_bleu4": num("bleu4"), "val_draft_s": round(time.perf_counter() - t0, 3)}

    def _val_examples(self) -> list[dict[str, Any]]:
        if not self.cfg.eval_examples or not self.val_set:
            return []
        self.model.eval()
        drafter = self._drafter()
        rows = []
        for ex in self.val_set[: self.cfg.eval_examples]:
            if ex.study.id in self.bad_ids:
                continue
            try:
                d = drafter.draft([ex.study])[0]
                rows.append({"id": ex.study.id, "reference": ex.report, "draft": d.report})
            except ReportgenError as e:
                rows.append({"id": ex.study.id, "reference": ex.report, "draft": None, "error": str(e), "error_code": e.code})
        return rows


class _NullWriter:
    """What processes other than process 0 write metrics to: nothing."""

    def __enter__(self) -> "_NullWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, record: Any) -> None:
        return None


def _progress(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", disable=None, leave=False)


def train(cfg: TrainConfig, on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Run (or with ``cfg.resume`` continue) LoRA training; see the module docstring."""
    return Trainer(cfg, on_step=on_step).run()
