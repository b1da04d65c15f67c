"""RadEval's side of ``--with-radeval`` / ``srr_bert``: how RadEval is built and how its
per-sample answer becomes per-study figures, and (run as a script) RadEval in an interpreter
of its own. Only the standard library and RadEval are imported here, so this file also runs
in RadEval's environment, which has none of reportgen (``REPORTGEN_RADEVAL_PYTHON``).

RadEval pins numpy 1.26 and spaCy 3.7, so it rarely shares an environment with reportgen:
``reportgen eval --with-radeval --radeval-python PY`` starts this script with PY and talks
to it over pipes, one JSON object per line (as the vLLM server is reached over HTTP):

    in  (first line)   {"metrics": ["bleu", "rouge", ...]}
    out                {"ready": true, "radeval": "2.2.1"} or {"error": "TypeName: message"}
    in  (each request) {"refs": [...], "hyps": [...]}
    out                {"scores": {key: [float or null per pair]}} or {"error": "..."}

Checked against radeval 2.2.1 (``radeval.RadEval(metrics=[...], per_sample=True)``); the
1.x interface (``RadEval.RadEval(do_bleu=True, ..., do_per_sample=True)``) is kept for
older installs. Report text travels only through the pipes; nothing is printed or logged.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
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


def _answer(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    first = sys.stdin.readline()
    if not first:
        return 0
    try:
        evaluator = make_evaluator(json.loads(first)["metrics"])
        _answer({"ready": True, "radeval": radeval_version()})
    except Exception as exc:  # the parent turns this into E854 with the fix
        _answer({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    for line in sys.stdin:
        try:
            req = json.loads(line)
            _answer({"scores": per_sample(evaluator(refs=req["refs"], hyps=req["hyps"]), len(req["hyps"]))})
        except Exception as exc:
            _answer({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
