"""Load a Hugging Face vision-language model (hub id or local folder), optionally with a
peft LoRA adapter, and know its family's defaults.

Nothing is imported or downloaded at import time: torch, transformers and peft are
imported by :func:`load_model`. A hub id is fetched by transformers' own cache logic
(``HF_HUB_OFFLINE=1`` makes it local-only).

Families come first when vLLM serves them with LoRA adapters, so a model tuned with
``reportgen train`` can be served by ``reportgen serve`` unchanged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from reportgen.errors import BackendUnavailable, ReportgenError

log = logging.getLogger(__name__)

# A small instruct VLM that drafts reasonable text out of the box and that vLLM serves
# with LoRA; about 4.5 GB in bfloat16. Needs network access (or a populated HF cache).
DEFAULT_MODEL = "Qwen/Qwen2-VL-2B-Instruct"

# The decoder's linear layers (attention and MLP). The vision tower is excluded by name:
# vLLM applies LoRA to the language model only, so vision-tower weights would be ignored
# there and the served model would differ from the trained one.
LM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VISION_MARKERS = ("visual", "vision", "image_tower", "vit", "multi_modal_projector", "merger", "connector")


def lm_target_regex(projections: tuple[str, ...] = LM_PROJECTIONS, lm_prefix: str = r"(?:language_model|text_model)",
                    blocks: tuple[str, ...] = ("self_attn", "mlp")) -> str:
    """A peft ``target_modules`` regex (full match) for the text decoder's projections."""
    names = "|".join(projections)
    return (rf"^(?!.*(?:visual|vision))(?:.*\.)?{lm_prefix}\.(?:model\.)?layers\.\d+\.(?:{'|'.join(blocks)})"
            rf"\.(?:{names})$")


MODELS_FILE = "models.json"
VLLM_LORA = ("yes", "no")


@dataclass(frozen=True)
class Family:
    """What reportgen knows about a model family (one entry of ``reportgen/data/models.json``)."""

    name: str
    model_types: tuple[str, ...]
    example: str
    vllm_lora: bool
    target_modules: str
    notes: str = ""
    chat_template: str | None = None
    stop_tokens: tuple[str, ...] = ()
    extend_over_report: Mapping[str, Any] = field(default_factory=dict)
    tested: Mapping[str, bool] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = MODELS_FILE) -> "Family":
        try:
            tm = d["target_modules"]
            target = tm if isinstance(tm, str) else lm_target_regex(
                tuple(tm.get("projections", LM_PROJECTIONS)), tm.get("lm_prefix", r"(?:language_model|text_model)"),
                tuple(tm.get("blocks", ("self_attn", "mlp"))))
            if d["vllm_lora"] not in VLLM_LORA:
                raise ValueError(f"vllm_lora must be one of {VLLM_LORA}")
            for k, v in dict(d.get("extend_over_report") or {}).items():
                if not (isinstance(v, (int, float)) and not isinstance(v, bool)) and v != "last":
                    raise ValueError(f"extend_over_report[{k!r}] must be a number or 'last'")
            return cls(
                name=d["name"], model_types=tuple(d["model_types"]), example=d["example"], vllm_lora=d["vllm_lora"] == "yes",
                target_modules=target, notes=d.get("notes", ""), chat_template=d.get("chat_template"),
                stop_tokens=tuple(d.get("stop_tokens", ())), extend_over_report=dict(d.get("extend_over_report") or {}),
                tested={k: bool(d.get("tested", {}).get(k, False)) for k in ("train", "hf", "vllm_lora")},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ReportgenError("E585", f"{where}: family {d.get('name', '?') if isinstance(d, Mapping) else '?'!r} is malformed ({e})",
                                 fix="compare it with the other entries of reportgen/data/models.json") from e


def load_families(path: str | os.PathLike[str] | None = None) -> tuple[Family, ...]:
    """The families of ``reportgen/data/models.json`` (or of a file with the same shape)."""
    import json

    if path is None:
        from importlib import resources

        text, where = (resources.files("reportgen.data") / MODELS_FILE).read_text(encoding="utf-8"), f"reportgen/data/{MODELS_FILE}"
    else:
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(text)
        entries = data["families"]
    except (ValueError, KeyError, TypeError) as e:
        raise ReportgenError("E585", f"{where} is not a model-family file ({e})", fix="restore reportgen/data/models.json") from e
    return tuple(Family.from_dict(d, where) for d in entries)


FAMILIES: tuple[Family, ...] = load_families()


def family_of(model_type: str | None) -> Family | None:
    """The family of a ``config.model_type`` (None for an unknown one)."""
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    return None


def default_target_modules(model_type: str | None) -> str:
    fam = family_of(model_type)
    return fam.target_modules if fam else lm_target_regex()


def pick_device(device: str | None = None) -> str:
    """``device`` as given, else "cuda" when available, else "cpu"."""
    import torch

    if device:
        device = str(device)
        try:
            torch.device(device)
        except (RuntimeError, ValueError) as e:
            raise ReportgenError("E505", f"unknown device {device!r}",
                                 fix="use cpu, cuda or cuda:N (or mps on a Mac)") from None
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ReportgenError("E505", f"device {device!r} was asked for but torch sees no CUDA GPU",
                                 fix="use --device cpu, or install a CUDA build of torch on a GPU machine")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


_DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}


def pick_dtype(dtype: Any = None, device: str = "cpu"):
    """A torch dtype: as given ("bfloat16", "float32", ...), else bfloat16 on a GPU that
    supports it (float16 on one that does not) and float32 on CPU."""
    import torch

    if dtype is not None and not isinstance(dtype, str):
        return dtype
    if isinstance(dtype, str):
        name = _DTYPES.get(dtype.lower().replace("torch.", ""))
        if name is None:
            raise ReportgenError("E505", f"unknown dtype {dtype!r}", fix="use float32, bfloat16 or float16")
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


@dataclass
class LoadedModel:
    """A model ready to run: ``model`` (a PeftModel when an adapter was given), its
    ``processor``, the resolved ``device``/``dtype``, and the family (None if unknown)."""

    model: Any
    processor: Any
    name: str
    adapter: str | None
    device: str
    dtype: Any
    family: Family | None

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)


def check_source(name_or_path: str, what: str = "model", allow_file: bool = False) -> None:
    """E504 when ``name_or_path`` looks like a local path (``/``, ``.``, ``~``, or more
    than one ``/``) but is no folder (no file either, with ``allow_file``: vLLM serves a
    single GGUF file); a hub id passes (train, draft --backend hf:, serve)."""
    p = Path(os.path.expanduser(str(name_or_path)))
    looks_local = str(name_or_path).startswith((".", "/", "~")) or p.exists() or str(name_or_path).count("/") > 1
    if looks_local and not (p.is_dir() or (allow_file and p.is_file())):
        state = "is a file, not a folder" if p.exists() else "does not exist"
        raise ReportgenError("E504", f"{what} folder {str(name_or_path)!r} {state}", fix="give an existing folder or a hub id such as " + DEFAULT_MODEL)


def load_processor(name_or_path: str, *, trust_remote_code: bool = False):
    """The model's processor (tokenizer + image processor + chat template).
    ``trust_remote_code`` runs the Python code shipped with the model (see load_base_model)."""
    from transformers import AutoProcessor

    check_source(name_or_path, "model")
    try:
        return AutoProcessor.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise BackendUnavailable("E506", f"cannot load the processor of {str(name_or_path)!r}: {e}", fix=_hub_fix()) from e


def _hub_fix() -> str:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return "offline mode is on (HF_HUB_OFFLINE=1): download the model once with network access, or give a local folder"
    return "check the hub id or folder; with network access the model is downloaded into the Hugging Face cache"


def load_base_model(name_or_path: str, *, device: str | None = None, dtype: Any = None,
                    trust_remote_code: bool = False, quantization_config: Any = None):
    """The base model in eval mode on ``device``: AutoModelForImageTextToText, falling
    back to the class its config names (``architectures``), then AutoModelForCausalLM.

    ``trust_remote_code=True`` imports and RUNS the Python files of the model's repository
    (its author's code, e.g. MAIRA-2, CheXagent): only for models whose source you trust.
    ``quantization_config`` (e.g. bitsandbytes 4-bit for QLoRA) is passed to transformers;
    such a model is placed on ``device`` by transformers."""
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText

    check_source(name_or_path, "model")
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    try:
        config = AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if "trust_remote_code" in str(e) and not trust_remote_code:
            raise ReportgenError("E586", f"{str(name_or_path)!r} ships its own model code: {e}",
                                 fix="pass --trust-remote-code if you trust its author's code (it runs on this machine)") from e
        raise BackendUnavailable("E506", f"cannot load the config of {str(name_or_path)!r}: {e}", fix=_hub_fix()) from e
    kw: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if quantization_config is not None:
        kw.update(quantization_config=quantization_config, device_map={"": device})
    try:
        model = AutoModelForImageTextToText.from_pretrained(str(name_or_path), **kw)
    except ValueError:
        arch = (getattr(config, "architectures", None) or [None])[0]
        cls = getattr(transformers, arch, None) if arch else None
        if cls is None and trust_remote_code:
            from transformers import AutoModelForCausalLM

            cls = AutoModelForCausalLM
        if cls is None:
            raise ReportgenError(
                "E507", f"{str(name_or_path)!r} (model_type {config.model_type!r}) is not a vision-language model transformers can load",
                fix="use an image-text-to-text model, e.g. " + ", ".join(f.example for f in FAMILIES[:3])
                + "; a model with its own code needs --trust-remote-code",
            ) from None
        model = cls.from_pretrained(str(name_or_path), **kw)
    if quantization_config is None:
        model.to(device)
    model.eval()
    return model


def load_model(
    name_or_path: str, adapter: str | None = None, *, device: str | None = None, dtype: Any = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load ``name_or_path`` (hub id or folder) with its processor and an optional LoRA
    ``adapter`` folder (``PeftModel.from_pretrained``), ready for generation."""
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    processor = load_processor(name_or_path, trust_remote_code=trust_remote_code)
    model = load_base_model(name_or_path, device=device, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    if adapter:
        model = load_adapter(model, adapter)
    fam = family_of(getattr(model.config, "model_type", None))
    if fam is None:
        log.info("model type %r is not a known family; using generic defaults", getattr(model.config, "model_type", None))
    return LoadedModel(model, processor, str(name_or_path), str(adapter) if adapter else None, device, torch_dtype, fam)


def load_adapter(model, adapter: str):
    """Wrap ``model`` with the LoRA adapter saved in folder ``adapter`` (inference mode)."""
    from peft import PeftModel

    p = Path(os.path.expanduser(str(adapter)))
    if not (p / "adapter_config.json").is_file():
        raise ReportgenError("E508", f"{str(adapter)!r} is not a LoRA adapter folder (no adapter_config.json)",
                             fix="give the --out folder of `reportgen train` or another peft adapter folder")
    wrapped = PeftModel.from_pretrained(model, str(p), is_trainable=False)
    wrapped.eval()
    return wrapped
