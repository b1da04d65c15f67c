"""Drafting backends, chosen by a URI-like spec; nothing heavy is imported until chosen.

Specs::

    hf:PATH_OR_ID                         in-process transformers (reportgen.backends.hf)
    hf:PATH_OR_ID?adapter=PATH&batch_size=4
    vllm:http://127.0.0.1:8000            a vLLM OpenAI-compatible server (reportgen.backends.vllm)
    vllm:http://127.0.0.1:8000?model=ADAPTER_NAME
    vllm                                  the same as vllm:http://127.0.0.1:8000

Query options are passed to the backend's constructor (numbers and true/false are
converted); keyword options given in code (``get_drafter(spec, task="impression")``) are
defaults that the spec's own options override. Unknown options are refused with the list
of valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qsl

from reportgen.errors import ReportgenError

# kind -> (module, class, what TARGET is)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "hf": ("reportgen.backends.hf", "HFDrafter", "a Hugging Face model id or local directory"),
    "vllm": ("reportgen.backends.vllm", "VLLMDrafter", "the server URL, default http://127.0.0.1:8000"),
}
DEFAULT_VLLM_URL = "http://127.0.0.1:8000"

VALID_FORMS = (
    "hf:PATH_OR_ID",
    "hf:PATH_OR_ID?adapter=ADAPTER_DIR",
    "vllm:http://HOST:PORT",
    "vllm:http://HOST:PORT?model=ADAPTER_NAME",
)


def _forms() -> str:
    return "; ".join(VALID_FORMS)


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend spec: ``kind:target?key=value&...``."""

    kind: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def _convert(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_spec(spec: str) -> BackendSpec:
    """Parse ``kind:target?options``; raise E560 listing the valid forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise ReportgenError("E560", "empty backend spec", fix=f"use one of: {_forms()}")
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    kind = kind.lower()
    if kind not in BACKENDS:
        raise ReportgenError(
            "E560", f"unknown backend {kind!r} in spec {spec!r}",
            fix=f"choose one of {', '.join(BACKENDS)}; valid forms: {_forms()}",
        )
    target, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    if query:
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if not key:
                continue
            options[key] = _convert(value)
        if not options and query.strip():
            raise ReportgenError("E560", f"cannot read the options {query!r} of spec {spec!r}", fix="write them as ?key=value&key2=value2")
    target = target.strip()
    for key in ("adapter", "model"):  # '?adapter=' drafted with the base model, without a word
        if key in options and (options[key] is None or not str(options[key]).strip()):
            raise ReportgenError("E560", f"the option {key}= of spec {spec!r} is empty", fix=f"write ?{key}=NAME_OR_PATH, or drop it")
    if kind == "vllm":
        target = target or DEFAULT_VLLM_URL
        if not target.startswith(("http://", "https://")):
            raise ReportgenError(
                "E560", f"the vllm backend needs a server URL, got {target!r}",
                fix=f"write vllm:http://HOST:PORT (start a server with `reportgen serve`); valid forms: {_forms()}",
            )
        from urllib.parse import urlsplit

        try:  # 'http://[::1' or port 99999 raised from the HTTP client, or retried as 'unreachable'
            parts = urlsplit(target)
            parts.port
        except ValueError as e:
            raise ReportgenError("E560", f"the server URL {target!r} is malformed ({e})",
                                 fix="write vllm:http://HOST:PORT with a port in 1-65535") from None
        if not parts.hostname:
            raise ReportgenError("E560", f"the server URL {target!r} names no host", fix="write vllm:http://HOST:PORT")
    elif not target:
        raise ReportgenError(
            "E560", f"spec {spec!r} names no model",
            fix=f"write {kind}:PATH_OR_ID ({BACKENDS[kind][2]}); valid forms: {_forms()}",
        )
    return BackendSpec(kind, target, options)


def _accepted(cls: type) -> tuple[set[str], bool]:
    """Keyword options the class takes (its first parameter is the spec's target)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def backend_class(kind: str) -> type:
    """Import and return the backend class for ``kind`` (E560 for an unknown kind)."""
    if kind not in BACKENDS:
        raise ReportgenError("E560", f"unknown backend {kind!r}", fix=f"choose one of {', '.join(BACKENDS)}; valid forms: {_forms()}")
    module, cls_name, _ = BACKENDS[kind]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        from reportgen.errors import BackendUnavailable

        raise BackendUnavailable(
            "E561", f"the {kind} backend cannot be imported ({e})", fix="pip install 'reportgen-cxr[draft]'",
        ) from e
    return getattr(mod, cls_name)


def get_drafter(spec: str | BackendSpec, **opts: Any):
    """Build the Drafter a spec names. ``opts`` are defaults; the spec's options win.

    Options that the backend does not take are dropped when they come from ``opts`` (so a
    caller can pass e.g. ``concurrency`` to every backend) but refused (E562) when written
    in the spec, with the list of valid ones.
    """
    parsed = spec if isinstance(spec, BackendSpec) else parse_spec(spec)
    cls = backend_class(parsed.kind)
    names, var_kw = _accepted(cls)
    unknown = [k for k in parsed.options if k not in names and not var_kw]
    if unknown:
        raise ReportgenError(
            "E562", f"backend {parsed.kind!r} has no option {', '.join(map(repr, unknown))}",
            fix=f"valid options: {', '.join(sorted(names))}",
        )
    numeric = {p.name: p.default for p in list(inspect.signature(cls.__init__).parameters.values())[2:]
               if type(p.default) in (int, float)}
    for k, v in parsed.options.items():  # '?max_new_tokens=abc' raised int()'s ValueError in the backend
        if k in numeric and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ReportgenError("E562", f"the option {k}={v!r} of spec {str(parsed)!r} is not a number",
                                 fix=f"write ?{k}=N, e.g. ?{k}={numeric[k]}")
    kwargs = {k: v for k, v in opts.items() if v is not None and (var_kw or k in names)}
    kwargs.update(parsed.options)
    return cls(parsed.target, **kwargs)


__all__ = ["BACKENDS", "BackendSpec", "VALID_FORMS", "backend_class", "get_drafter", "parse_spec"]
