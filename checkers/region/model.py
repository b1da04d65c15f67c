"""open_clip backend of the region checker: dense (patch-level) image embeddings and text
embeddings in the joint space. Imports torch/open_clip; loaded only when a region check
runs (``import checkers`` stays light).

Model names (``ClipBackend(spec)``):
- ``hf-hub:ORG/REPO`` -- an open_clip model on the Hugging Face hub, e.g. the default
  ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`` (downloaded by
  open_clip on first use, for users with network access);
- ``local-dir:PATH`` -- a folder with ``open_clip_config.json`` and weights
  (``open_clip_model.safetensors``, ...), e.g. what ``reportgen train-clip`` writes;
- a built-in open_clip architecture name (``ViT-B-16``, ``RN50``, ...) with an optional
  ``pretrained`` tag or weights file (without one the weights are RANDOM: benchmarks only);
- a path to a JSON model config (``{"embed_dim":..,"vision_cfg":..,"text_cfg":..}``), random
  weights unless ``pretrained`` names a weights file.

Dense embeddings per vision tower (the patch tokens get the same final norm and
projection as the pooled token, so both live in the joint space):
- open_clip ``VisionTransformer``: tokens after the transformer, ``ln_post`` applied to
  every token, the class token dropped, ``@ proj``. Towers with an attentional pooler
  (CoCa) are not supported.
- ``TimmModel`` (e.g. BiomedCLIP's ViT-B/16): ``trunk.forward_features`` (which ends with
  the trunk's norm), prefix tokens dropped, ``trunk.fc_norm`` and ``trunk.head`` applied per
  token, then open_clip's projection head (linear or MLP) per token. Convolutional timm
  trunks: every feature-map location goes through ``trunk.forward_head`` as a 1x1 map,
  then the projection head. Attention-pool heads (abs_attn/rot_attn) are not supported.
- ``ModifiedResNet`` (OpenAI RN50...): MaskCLIP's rule: every location of the last stage,
  plus its positional embedding, goes through the attention pool's value and output
  projections.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reportgen.errors import BackendUnavailable, ReportgenError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
MODEL_FORMS = (
    "'hf-hub:ORG/REPO' (e.g. the default 'hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224'), "
    "'local-dir:PATH' (a folder with open_clip_config.json and weights, e.g. from `reportgen train-clip`), "
    "a built-in open_clip name such as 'ViT-B-16' (random weights unless pretrained=TAG|FILE), "
    "or a path to a model-config JSON file"
)


def import_backend():
    """(torch, open_clip), or the error that names what is missing or broken."""
    try:
        import open_clip
        import torch
    except ImportError as e:
        raise BackendUnavailable(
            "E611", f"the region checker needs torch and open_clip ({e})",
            fix="pip install 'reportgen-cxr[clip]'",
        ) from None
    except Exception as e:  # installed but broken: name the package that failed, not the model
        culprit = _failing_package(e)
        fix = "reinstall open_clip_torch and its dependencies so that their builds match torch"
        if culprit == "torchvision":
            fix = ("install the torchvision build that matches torch (CPU torch: pip install torchvision "
                   "--index-url https://download.pytorch.org/whl/cpu); this repository's dev environment "
                   "does it with scripts/torchvision_cpu_shim.py (scripts/setup_env.sh)")
        raise BackendUnavailable(
            "E340", f"importing open_clip failed in {culprit} ({type(e).__name__}: {e}); "
                    "the model spec was not read yet", fix=fix,
        ) from e
    return torch, open_clip


def _failing_package(e: BaseException) -> str:
    """The installed package whose code raised ``e`` (the innermost frame inside
    site-packages), e.g. "torchvision" for its missing compiled ops; "open_clip" if unknown."""
    import traceback

    culprit = "open_clip"
    for frame in traceback.extract_tb(e.__traceback__):
        parts = Path(frame.filename).parts
        for marker in ("site-packages", "dist-packages"):
            if marker in parts and parts.index(marker) + 1 < len(parts):
                culprit = parts[parts.index(marker) + 1].removesuffix(".py")
    return culprit


def resolve_model_spec(spec: str) -> tuple[str, str]:
    """(kind, identifier) for a model spec; kind in hf-hub | local-dir | config-file | builtin.
    Checks what can be checked offline; never downloads."""
    if not isinstance(spec, str) or not spec.strip():
        raise ReportgenError("E600", f"invalid model name {spec!r}", fix=f"use {MODEL_FORMS}")
    spec = spec.strip()
    if spec.startswith("hf-hub:"):
        ident = spec[len("hf-hub:"):]
        if ident.count("/") != 1 or not all(ident.split("/")):
            raise ReportgenError("E600", f"invalid hub id in {spec!r}", fix=f"use {MODEL_FORMS}")
        return "hf-hub", ident
    if spec.startswith("local-dir:"):
        path = Path(spec[len("local-dir:"):]).expanduser()
        if not path.is_dir():
            raise ReportgenError("E601", f"model folder {path} not found", fix=f"use {MODEL_FORMS}")
        if not (path / "open_clip_config.json").is_file():
            raise ReportgenError("E601", f"{path} has no open_clip_config.json",
                                 fix="point local-dir: at a folder written by `reportgen train-clip` or open_clip's save format")
        return "local-dir", str(path)
    if spec.endswith(".json"):
        if not Path(spec).is_file():
            raise ReportgenError("E600", f"model config {spec} not found", fix=f"use {MODEL_FORMS}")
        return "config-file", spec
    if Path(spec).is_dir() and (Path(spec) / "open_clip_config.json").is_file():
        raise ReportgenError("E600", f"{spec!r} is a folder", fix=f"write 'local-dir:{spec}'")
    return "builtin", spec


def register_config_file(path: str | Path) -> str:
    """Register a model-config JSON with open_clip; returns its model name (the file stem)."""
    _, open_clip = import_backend()
    p = Path(path)
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ReportgenError("E600", f"model config {p} could not be read ({e})") from None
    if "model_cfg" in cfg:  # an open_clip_config.json given as a file
        cfg = cfg["model_cfg"]
    if not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ReportgenError("E600", f"model config {p} needs embed_dim, vision_cfg and text_cfg")
    open_clip.add_model_config(p)
    return p.stem


class ClipBackend:
    """An open_clip model: dense image embeddings, text embeddings. Loads on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, *, pretrained: str | None = None, device: str = "cpu",
                 precision: str = "fp32", threads: int | None = None, warn_random: bool = True,
                 trim_text: bool = True):
        self.spec = model
        self.trim_text = trim_text
        self.kind, self.ident = resolve_model_spec(model)
        self.pretrained = pretrained
        self.device = device
        self.precision = precision
        self.threads = threads
        self.warn_random = warn_random
        self._model = None
        self._tokenizer = None
        self._tower = None

    # ---- loading ---------------------------------------------------------------------
    @property
    def random_weights(self) -> bool:
        """True when the weights are open_clip's random initialisation (a built-in name or a
        config file without a pretrained tag or weights file): its evidence means nothing."""
        return self.kind in ("builtin", "config-file") and not self.pretrained

    @property
    def local_dir(self) -> Path | None:
        return Path(self.ident) if self.kind == "local-dir" else None

    def load(self) -> "ClipBackend":
        if self._model is not None:
            return self
        torch, open_clip = import_backend()
        from reportgen.models import pick_device

        if self.device is not None:
            self.device = pick_device(self.device)  # E505 for an unknown device or CUDA without a GPU, not E600
        if self.threads:
            torch.set_num_threads(self.threads)
        name = self.spec
        if self.kind == "config-file":
            name = register_config_file(self.ident)
        try:
            model = open_clip.create_model(
                name, pretrained=self.pretrained if self.kind in ("builtin", "config-file") else None,
                device=self.device, precision=self.precision,
            )
            tokenizer = open_clip.get_tokenizer(name)
        except ReportgenError:
            raise
        except Exception as e:  # noqa: BLE001 - open_clip raises many types
            raise BackendUnavailable(
                "E600", f"open_clip could not load {self.spec!r} ({type(e).__name__}: {e})",
                fix=f"use {MODEL_FORMS}; hf-hub models need network access on first use",
            ) from None
        if self.warn_random and self.kind in ("builtin", "config-file") and not self.pretrained:
            log.warning("region model %s has RANDOM weights (no pretrained tag or file): use for benchmarks only", self.spec)
        model.eval()
        self._model, self._tokenizer = model, tokenizer
        self._tower = _tower_kind(model.visual)
        return self

    @property
    def model(self):
        return self.load()._model

    @property
    def tokenizer(self):
        return self.load()._tokenizer

    @property
    def tower(self) -> str:
        return self.load()._tower  # type: ignore[return-value]

    @property
    def image_size(self) -> tuple[int, int]:
        visual = self.model.visual
        size = getattr(visual, "image_size", None) or visual.preprocess_cfg["size"]
        if isinstance(size, int):
            return (size, size)
        return (int(size[0]), int(size[1]))

    # ---- encoding --------------------------------------------------------------------
    def prepare(self, pixels: np.ndarray):
        """(H, W) grey pixels in 0..1 -> a normalised (3, S, S) tensor. The whole image is
        resized (not cropped) to the model's input size, so the dense map covers it all and
        maps back to normalised image coordinates exactly."""
        torch, _ = import_backend()
        import torch.nn.functional as F

        cfg = self.model.visual.preprocess_cfg
        t = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
        t = F.interpolate(t, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        t = t.clamp(0, 1).expand(1, 3, *self.image_size)
        mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        return ((t - mean) / std)[0]

    def encode_images(self, batch, *, normalize: bool = True):
        """(B, 3, S, S) -> (pooled (B, D), dense (B, gh, gw, D)), one forward pass."""
        torch, _ = import_backend()
        with torch.inference_mode():
            pooled, dense = dense_forward(self.model.visual, batch.to(self.device), self.tower)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                dense = torch.nn.functional.normalize(dense.float(), dim=-1)
        return pooled, dense

    def encode_texts(self, texts: Sequence[str], *, normalize: bool = True, trim: bool | None = None):
        """Texts -> (N, D) embeddings, one batch.

        ``trim`` (default: the backend's ``trim_text``, True): run the text tower on the
        batch's longest sequence instead of the full
        context (77 tokens for CLIP, 256 for BiomedCLIP) where that gives the same
        embeddings (``encode_text_trimmed``); a claim is ~10-20 tokens, so this is the
        largest cost of a cold region check cut several-fold."""
        torch, _ = import_backend()
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            feats = encode_text_trimmed(self.model, tokens) if (self.trim_text if trim is None else trim) else None
            if feats is None:
                feats = self.model.encode_text(tokens)
            if normalize:
                feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats


def _used_length(tokens, pad_id: int) -> int:
    """1 + the last position holding a non-pad token in any row (at least 1)."""
    used = (tokens != pad_id).any(dim=0).nonzero()
    return int(used[-1]) + 1 if len(used) else 1


def encode_text_trimmed(model: Any, tokens):
    """``model.encode_text(tokens)`` computed on ``tokens[:, :L]`` (L = longest sequence in
    the batch), or None when trimming could change the result.

    Exact where the padding cannot reach the pooled token:
    - open_clip's own text transformer (``CLIP`` or a ``TextTransformer`` text tower) with a
      CAUSAL mask and pooling at the EOT/EOS token or the first token: no position attends
      to a later one, so the padded tail never reaches the pooled position;
    - a Hugging Face text tower (``HFTextEncoder``, BiomedCLIP's PubMedBERT): its attention
      mask already excludes the pad tokens, so dropping them changes nothing.
    Anything else (a class token appended at the end, pad masks, 'last' pooling) -> None and
    the caller uses the full context. tests/test_region_model.py checks equality with
    ``encode_text`` for each kind.
    """
    from open_clip.transformer import text_global_pool

    text = getattr(model, "text", None)
    if text is not None and type(text).__name__ == "HFTextEncoder":
        pad = getattr(getattr(text, "config", None), "pad_token_id", None)
        if pad is None:
            return None
        return model.encode_text(tokens[:, :_used_length(tokens, pad)])
    # the module holding the text transformer: CLIP keeps it inline, CustomTextCLIP in .text
    t = text if text is not None else model
    pool = getattr(t, "pool_type", None) or getattr(t, "text_pool_type", None)
    eos = getattr(t, "eos_id", None) if text is not None else getattr(t, "text_eos_id", None)
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if (not all(hasattr(t, a) for a in needed) or t.attn_mask is None or pool not in ("argmax", "eos", "first")
            or getattr(t, "cls_emb", None) is not None or getattr(t, "use_pad_mask", False)
            or (pool == "eos" and eos is None)):
        return None
    pad = getattr(t, "pad_id", 0) or 0
    n = _used_length(tokens, pad)
    if pool == "argmax":  # the EOT token is the largest id in each row: it must be kept
        n = max(n, int(tokens.argmax(dim=-1).max()) + 1)
    tok = tokens[:, :n]
    cast = t.transformer.get_cast_dtype()
    x = t.token_embedding(tok).to(cast) + t.positional_embedding[:n].to(cast)
    x = t.transformer(x, attn_mask=t.attn_mask[:n, :n])
    x = t.ln_final(x)
    x = text_global_pool(x, tok, pool, eos_token_id=eos)
    proj = t.text_projection
    if proj is not None:
        x = proj(x) if hasattr(proj, "weight") else x @ proj
    return x


def _tower_kind(visual: Any) -> str:
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    if isinstance(visual, VisionTransformer):
        if getattr(visual, "attn_pool", None) is not None:
            raise ReportgenError("E602", "dense maps are not supported for vision towers with an attentional pooler (CoCa)",
                                 fix="use a ViT with token or average pooling, a timm ViT, or a ModifiedResNet")
        return "vit"
    if isinstance(visual, ModifiedResNet):
        return "resnet"
    if type(visual).__name__ == "TimmModel":
        if any(n == "pool" for n, _ in visual.head.named_children()):
            raise ReportgenError("E602", "dense maps are not supported for timm towers with an attention-pool head",
                                 fix="use timm_pool 'avg', 'token' or '' with a linear/mlp projection")
        return "timm"
    raise ReportgenError("E602", f"dense maps are not supported for vision tower {type(visual).__name__}",
                         fix="use an open_clip VisionTransformer, TimmModel or ModifiedResNet tower")


def dense_forward(visual: Any, x, tower: str):
    """(pooled, dense (B, gh, gw, D)) from one forward pass of an open_clip vision tower,
    both in the joint embedding space (see the module docstring for each tower type)."""
    import torch
    import torch.nn.functional as F

    B = x.shape[0]
    if tower == "vit":
        h = visual._embeds(x)
        h = visual.transformer(h)
        pooled, _ = visual._pool(h)
        tokens = visual.ln_post(h[:, 1:])
        if visual.proj is not None:
            pooled = pooled @ visual.proj
            tokens = tokens @ visual.proj
        gh, gw = visual.grid_size
        return pooled, tokens.reshape(B, gh, gw, -1)
    if tower == "timm":
        trunk = visual.trunk
        feats = trunk.forward_features(x)
        if feats.ndim == 3:  # ViT-like: (B, N, C)
            n_prefix = int(getattr(trunk, "num_prefix_tokens", 1))
            pooled = visual.head(trunk.forward_head(feats))
            tokens = feats[:, n_prefix:]
            tokens = getattr(trunk, "fc_norm", torch.nn.Identity())(tokens)
            tokens = getattr(trunk, "head", torch.nn.Identity())(tokens)
            tokens = visual.head(tokens)
            grid = getattr(getattr(trunk, "patch_embed", None), "grid_size", None)
            gh, gw = (int(grid[0]), int(grid[1])) if grid is not None else (int(tokens.shape[1] ** 0.5),) * 2
            return pooled, tokens.reshape(B, gh, gw, -1)
        # convolutional: (B, C, H, W); every location through the head as a 1x1 map
        pooled = visual.head(trunk.forward_head(feats))
        _, C, gh, gw = feats.shape
        cells = feats.permute(0, 2, 3, 1).reshape(B * gh * gw, C, 1, 1)
        tokens = visual.head(trunk.forward_head(cells))
        return pooled, tokens.reshape(B, gh, gw, -1)
    if tower == "resnet":
        h = visual.stem(x)
        h = visual.layer4(visual.layer3(visual.layer2(visual.layer1(h))))
        ap = visual.attnpool
        pooled = ap(h)
        _, C, gh, gw = h.shape
        tokens = h.reshape(B, C, gh * gw).permute(0, 2, 1) + ap.positional_embedding[1:].to(h.dtype)[None]
        tokens = F.linear(F.linear(tokens, ap.v_proj.weight, ap.v_proj.bias), ap.c_proj.weight, ap.c_proj.bias)
        return pooled, tokens.reshape(B, gh, gw, -1)
    raise ReportgenError("E602", f"unknown tower kind {tower!r}")


def smooth_and_upsample(sim, sigma: float, size: tuple[int, int]):
    """Gaussian smoothing (sigma in patch units) then bilinear upsampling to ``size``.
    ``sim``: (N, gh, gw) tensor -> (N, *size) numpy float32."""
    import torch
    import torch.nn.functional as F

    x = sim.float()[:, None]
    if sigma and sigma > 0:
        radius = max(1, int(round(3 * sigma)))
        k = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
        k = torch.exp(-0.5 * (k / sigma) ** 2)
        k = k / k.sum()
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[:, 0].cpu().numpy().astype(np.float32)
