"""A helper script run by another Python interpreter, spoken to in JSON lines over pipes.

Some backends pin versions that cannot share reportgen's environment (RadEval pins numpy
1.26 and spaCy 3.7; the radgraph package's bundled allennlp needs transformers < 5). Users
give them an environment of their own and name its python; reportgen starts a small
stand-alone script there (it imports nothing of reportgen) and exchanges one JSON object
per line: the first message configures the backend and is answered ``{"ready": true, ...}``
or ``{"error": "Type: message"}``; every later request gets one answer. Report text goes
only through the pipes; the script's stderr goes to a temporary file, of which only the last
lines are quoted when the process dies.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from reportgen.errors import BackendUnavailable

SERVE = Path(__file__).parent / "sideproc" / "serve.py"  # runs there: stdlib only


class JsonLinesProcess:
    """The backend file ``script`` (``start``/``handle``, see sideproc/serve.py) run by
    ``python``; ``hello`` is the first message. ``what`` names the
    backend in errors, ``code`` is the error code of a process that cannot start or stops
    answering, ``env_var`` the variable users set to the interpreter (named in the fix).
    ``ready`` holds the first answer; ``BackendUnavailable(load_code)`` when it is an error."""

    def __init__(self, python: str, script: str | Path, hello: dict[str, Any], *, what: str, code: str, env_var: str,
                 load_code: str, load_fix: str):
        self.what, self.code, self.env_var = what, code, env_var
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        try:
            self.proc = subprocess.Popen([python, str(SERVE), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                         text=True, encoding="utf-8", env=env)
        except OSError as exc:
            self.stderr.close()
            raise BackendUnavailable(code, f"{what}: cannot start the interpreter {python!r} ({exc})",
                                     fix=f"set {env_var} to the python of the environment that has it installed") from None
        self.ready = self.ask(hello)
        if "error" in self.ready:
            self.close()
            raise BackendUnavailable(load_code, f"{what} ({python}) could not be loaded ({self.ready['error']})", fix=load_fix)

    def ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        """One request, one answer; BackendUnavailable(code) when the process has died."""
        try:
            self.proc.stdin.write(json.dumps(obj) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        if not line:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.stderr.seek(0)
            tail = self.stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            raise BackendUnavailable(self.code, f"{self.what}: its interpreter stopped (exit {self.proc.returncode}): "
                                     + (" | ".join(tail) or "no message"),
                                     fix=f"run {self.proc.args[0]} with the same package imported to see why; {self.env_var} "
                                         "must name the python of an environment that has it installed")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
        self.stderr.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


__all__ = ["JsonLinesProcess"]
