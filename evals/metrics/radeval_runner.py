"""RadEval's side of ``--with-radeval`` / ``srr_bert``: how RadEval is built and how its
per-sample answer becomes per-study figures. Only the standard library and RadEval are
imported here, so this file also runs in RadEval's own environment, which has none of
reportgen (``REPORTGEN_RADEVAL_PYTHON``; loaded there by reportgen/sideproc/serve.py).

RadEval pins numpy 1.26 and spaCy 3.7, so it rarely shares an environment with reportgen:
``reportgen eval --with-radeval --radeval-python PY`` runs it in PY, one JSON object per line:

    first   {"metrics": ["bleu", "rouge", ...]} -> {"ready": true, "radeval": "2.2.1"}
    then    {"refs": [...], "hyps": [...]} -> {"scores": {key: [float or null per pair]}}

Checked against radeval 2.2.1 (``radeval.RadEval(metrics=[...], per_sample=True)``); the
1.x interface (``RadEval.RadEval(do_bleu=True, ..., do_per_sample=True)``) is kept for
older installs.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence


def radeval_module() -> Any:
    """RadEval's module: ``radeval`` (2.x) or ``RadEval`` (1.x); ImportError when neither."""
    try:
        import radeval as mod
    except ImportError:
        import RadEval as mod  # RadEval 1.x's import name
    return mod


def radeval_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("radeval")
    except PackageNotFoundError:
        return None


def make_evaluator(metrics: Sequence[str]) -> Any:
    """RadEval asked for per-sample scores of ``metrics`` (RadEval 2.x metric names)."""
    cls = radeval_module().RadEval
    if "metrics" in inspect.signature(cls.__init__).parameters:  # RadEval 2.x
        return cls(metrics=list(metrics), per_sample=True, show_progress=False)
    return cls(**{f"do_{m}": True for m in metrics}, do_per_sample=True, show_progress=False)  # 1.x


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def per_sample(res: Any, n: int) -> dict[str, list[float | None]]:
    """RadEval's answer for ``n`` pairs: its list-valued entries of length ``n`` (a corpus
    summary is no per-study figure), numbers or None (NaN, text)."""
    return {str(k): [_number(v) for v in per] for k, per in (res.items() if isinstance(res, dict) else ())
            if isinstance(per, (list, tuple)) and len(per) == n}


def start(hello: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """reportgen/sideproc/serve.py's first message: RadEval for ``hello["metrics"]``."""
    return make_evaluator(hello["metrics"]), {"radeval": radeval_version()}


def handle(evaluator: Any, request: dict[str, Any]) -> dict[str, Any]:
    return {"scores": per_sample(evaluator(refs=request["refs"], hyps=request["hyps"]), len(request["hyps"]))}
