"""The other side of ``reportgen.pyproc``: run THERE, by another interpreter, as
``python reportgen/sideproc/serve.py BACKEND.py``. Only the standard library is imported here; the
backend file (e.g. evals/metrics/radeval_runner.py) is loaded by path and gives two
functions: ``start(hello) -> (state, info)``, called with the first message (its answer is
``{"ready": true, **info}``), and ``handle(state, request) -> answer`` for every later line.
A failure answers ``{"error": "Type: message"}``. The package may print on stdout (radgraph
prints "Using device: cpu"), so while this runs sys.stdout is stderr and the answers go to
the real stdout. Report text travels only through the pipes; nothing is printed or logged.
"""

import importlib.util
import json
import sys


def main() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr

    def answer(obj) -> None:
        out.write(json.dumps(obj, default=str) + "\n")
        out.flush()

    spec = importlib.util.spec_from_file_location("reportgen_side_backend", sys.argv[1])
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    first = sys.stdin.readline()
    if not first:
        return 0
    try:
        state, info = backend.start(json.loads(first))
        answer({"ready": True, **info})
    except Exception as exc:  # the parent turns this into its load error, with the fix
        answer({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    for line in sys.stdin:
        try:
            answer(backend.handle(state, json.loads(line)))
        except Exception as exc:
            answer({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
