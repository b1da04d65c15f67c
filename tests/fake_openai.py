"""A small fake of vLLM's OpenAI-compatible server for the serving tests (loopback only).

``FakeOpenAI`` serves /health, /v1/models and /v1/chat/completions from a thread and can
fail on demand, per study: a plan maps a study id (found in the request's text) to the
actions of its next requests: "ok", an HTTP status (503, 400, ...), "drop" (close the
connection without answering) or ("sleep", seconds). It records every request and the
peak number in flight.

Run as a module it is a stand-in for ``python -m vllm.entrypoints.openai.api_server``
(see ``write_fake_vllm_package``): it reads vLLM's flags, serves the base model and the
``--lora-modules`` names, and behaves as $FAKE_VLLM_MODE says: ok, die (exit 3 at start),
ignore-term (ignores SIGTERM), child (forks a child that stays in the process group).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STUDY_RE = re.compile(r"\bSTUDY=([A-Za-z0-9_.:-]+)")


def report_for(study_id: str, model: str) -> str:
    return f"FINDINGS: Report for {study_id} by {model}."


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        fake = self.server.fake
        if self.path == "/health":
            self._send(200 if fake.healthy else 503, {})
        elif self.path == "/v1/models":
            data = [{"id": fake.base, "object": "model", "root": fake.base, "parent": None}]
            data += [{"id": n, "object": "model", "root": p, "parent": fake.base} for n, p in fake.adapters.items()]
            self._send(200, {"object": "list", "data": data})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        text = json.dumps(body.get("messages", []))
        m = STUDY_RE.search(text)
        sid = m.group(1).rstrip(".") if m else "?"
        with fake.lock:
            fake.requests.append(body)
            fake.by_study[sid] += 1
            fake.inflight += 1
            fake.max_inflight = max(fake.max_inflight, fake.inflight)
            plan = fake.plan.get(sid)
            action = plan.popleft() if plan else fake.default
        try:
            if fake.delay_s:
                time.sleep(fake.delay_s)
            if isinstance(action, tuple) and action[0] == "sleep":
                time.sleep(action[1])
                action = "ok"
            if action == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(action, int):
                msg = fake.messages.get(action, f"fake error {action}")
                self._send(action, {"object": "error", "error": {"message": msg, "type": "BadRequestError", "code": action}})
                return
            model = body.get("model")
            if model != fake.base and model not in fake.adapters:
                self._send(404, {"error": {"message": f"The model `{model}` does not exist."}})
                return
            report = fake.respond(body) if fake.respond is not None else report_for(sid, model)
            ids = [ord(c) for c in report]
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": report}, "finish_reason": "stop"}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [{"token": f"token_id:{i}", "logprob": 0.0} for i in ids]}
            with fake.lock:
                fake.completed[sid] += 1
            self._send(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "model": model, "choices": [choice],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(ids), "total_tokens": 10 + len(ids)},
            })
        finally:
            with fake.lock:
                fake.inflight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: "FakeOpenAI"


class FakeOpenAI:
    """The fake server; ``with FakeOpenAI() as fake: fake.url``."""

    def __init__(self, base: str = "tiny-base", adapters: dict[str, str] | None = None, host: str = "127.0.0.1", port: int = 0):
        self.base = base
        self.adapters = dict(adapters if adapters is not None else {"cxr": "/adapters/cxr"})
        self.plan: dict[str, deque] = {}
        self.default: Any = "ok"
        self.delay_s = 0.0
        self.healthy = True
        self.messages: dict[int, str] = {}
        # respond(request body) -> the assistant's content (default: a report naming the study)
        self.respond: Any = None
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.by_study: dict[str, int] = defaultdict(int)
        self.completed: dict[str, int] = defaultdict(int)
        self.inflight = 0
        self.max_inflight = 0
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, study_id: str, *actions: Any) -> None:
        """The next requests for ``study_id`` do ``actions`` in turn, then succeed."""
        self.plan[study_id] = deque(actions)

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


API_SERVER = '''
import os, sys, signal, time, argparse, subprocess
sys.path.insert(0, {repo!r})
from tests.fake_openai import FakeOpenAI

p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--host", default="127.0.0.1"); p.add_argument("--port", type=int, default=8000)
p.add_argument("--lora-modules", nargs="*", default=[])
args, _ = p.parse_known_args()
print("fake vllm argv:", " ".join(sys.argv[1:]), flush=True)
mode = os.environ.get("FAKE_VLLM_MODE", "ok")
if mode == "die":
    print("RuntimeError: fake engine failed to start (out of memory)", flush=True)
    sys.exit(3)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "child":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("fake vllm child pid", child.pid, flush=True)
time.sleep(float(os.environ.get("FAKE_VLLM_STARTUP_S", "0.3")))
adapters = dict(m.split("=", 1) for m in args.lora_modules)
fake = FakeOpenAI(base=args.model, adapters=adapters, host=args.host, port=args.port).start()
print("fake vllm serving", flush=True)
while True:
    time.sleep(1)
'''


def write_fake_vllm_package(root: Path, repo: Path) -> Path:
    """Write a package ``vllm`` under ``root`` whose api_server is the fake; put ``root`` on PYTHONPATH."""
    pkg = root / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True, exist_ok=True)
    for d in (root / "vllm", root / "vllm" / "entrypoints", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(API_SERVER.format(repo=str(repo)))
    return root
