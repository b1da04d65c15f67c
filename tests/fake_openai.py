"""A small fake of vLLM's OpenAI-compatible server for the serving tests (loopback only).

``FakeOpenAI`` serves /health, /v1/models and /v1/chat/completions from a thread and can
fail on demand, per study: a plan maps a study id (found in the request's text) to the
actions of its next requests: "ok", an HTTP status (503, 400, ...), "drop" (close the
connection without answering), ("sleep", seconds) (then answer), ("http", status, headers)
(e.g. 429 with Retry-After), "hang" (accept, never answer, until the server stops),
"malformed" (200 with a body that is not JSON), "truncate" (200, Content-Length of the
whole body, half of it sent, connection closed), "wrong-model" (a completion that names
another model) or "die" (the whole server goes away at once: in-flight connections are
cut, the port closes). ``kill_after(n)`` dies after n completions. With ``upstream=URL`` it
is a fault proxy in front of a real server: "ok" forwards the request and returns the real
answer, "wrong-model" and "truncate" mutate the real answer, the other faults are injected
as they are. It records every
request, the completions it sent and the peak number in flight.

Run as a module it is a stand-in for ``python -m vllm.entrypoints.openai.api_server``
(see ``write_fake_vllm_package``): it reads vLLM's flags, serves the base model and the
``--lora-modules`` names, requires $VLLM_API_KEY on /v1 when set (as vLLM does), and behaves as $FAKE_VLLM_MODE says: ok, die (exit 3 at start),
ignore-term (ignores SIGTERM), child (forks a child that stays in the process group).
"""

from __future__ import annotations

import json
import re
import socket
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

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None,
              cut: bool = False) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if cut:  # a truncated response: half the promised bytes, then the connection closes
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    def setup(self) -> None:
        super().setup()
        with self.server.fake.lock:
            self.server.fake.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.fake.lock:
            self.server.fake.connections.discard(self.connection)

    def _authorised(self) -> bool:
        """vLLM's --api-key / $VLLM_API_KEY: every /v1 route needs the bearer token."""
        key = self.server.fake.api_key
        if not key or not self.path.startswith("/v1") or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self.server.fake.unauthorised += 1
        self._send(401, {"error": "Unauthorized"})
        return False

    def do_GET(self) -> None:  # noqa: N802
        fake = self.server.fake
        if not self._authorised():
            return
        if fake.upstream is not None:
            status, data = fake.forward("GET", self.path, None, self.headers.get("Authorization"))
            self._send(status, None, raw=data)
        elif self.path == "/health":
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
        if not self._authorised():
            return
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
                fake.stopped.wait(fake.delay_s)
            if isinstance(action, tuple) and action[0] == "sleep":
                fake.stopped.wait(action[1])
                action = "ok"
            if action == "hang":
                fake.stopped.wait()
                action = "drop"
            if action == "die":
                fake.kill()
                return
            if fake.stopped.is_set() or action == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(action, int):
                action = ("http", action, {})
            if isinstance(action, tuple) and action[0] == "http":
                status, headers = action[1], action[2]
                msg = fake.messages.get(status, f"fake error {status}")
                self._send(status, {"object": "error", "error": {"message": msg, "type": "BadRequestError", "code": status}},
                           headers)
                return
            if action == "malformed":
                self._send(200, None, raw=b'{"id": "chatcmpl-fake", "choices": [{"message": <html>502 Bad Gateway')
                return
            model = body.get("model")
            if fake.upstream is not None:  # a fault proxy: the real server answers, the fault mutates it
                status, data = fake.forward("POST", self.path, body, self.headers.get("Authorization"))
                if status != 200:
                    self._send(status, None, raw=data)
                    return
                answer = json.loads(data)
                if action == "wrong-model":
                    answer["model"] = "other-model"
            else:
                if model != fake.base and model not in fake.adapters:
                    self._send(404, {"error": {"message": f"The model `{model}` does not exist."}})
                    return
                report = fake.respond(body) if fake.respond is not None else report_for(sid, model)
                answered = "other-model" if action == "wrong-model" else model
                ids = [ord(c) for c in report]
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": report}, "finish_reason": "stop"}
                if body.get("logprobs"):
                    choice["logprobs"] = {"content": [{"token": f"token_id:{i}", "logprob": 0.0} for i in ids]}
                answer = {
                    "id": "chatcmpl-fake", "object": "chat.completion", "model": answered, "choices": [choice],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(ids), "total_tokens": 10 + len(ids)},
                }
            if action == "truncate":
                self._send(200, answer, cut=True)
                return
            with fake.lock:
                fake.completed[sid] += 1
                dying = fake.kill_at is not None and sum(fake.completed.values()) >= fake.kill_at
            self._send(200, answer)
            if dying:
                self.wfile.flush()
                fake.kill()
        finally:
            with fake.lock:
                fake.inflight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: "FakeOpenAI"

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that went away: quiet
        pass


class FakeOpenAI:
    """The fake server; ``with FakeOpenAI() as fake: fake.url``."""

    def __init__(self, base: str = "tiny-base", adapters: dict[str, str] | None = None, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, upstream: str | None = None):
        self.base = base
        self.upstream = upstream.rstrip("/") if upstream else None
        self.api_key = api_key
        self.unauthorised = 0
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
        self.kill_at: int | None = None
        self.stopped = threading.Event()  # set when the server stops or dies: hung handlers end
        self.connections: set[socket.socket] = set()
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

    def forward(self, method: str, path: str, body: Any, auth: str | None) -> tuple[int, bytes]:
        """(status, body) of the same request to the upstream server (fault-proxy mode)."""
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
        req = urllib.request.Request(self.upstream + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=600) as r:  # noqa: S310 - loopback test server
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def kill_after(self, completions: int) -> None:
        """The server dies right after sending its ``completions``-th completion."""
        self.kill_at = completions

    def kill(self) -> None:
        """Die now, as a killed process does: the port closes, open connections are cut."""
        with self.lock:
            if self.stopped.is_set():
                return
            self.stopped.set()  # handlers still running answer nothing from here on
        self._httpd.shutdown()  # the accept loop ends (from a handler thread: it is not that loop)
        self._httpd.server_close()  # the port closes: new connections are refused
        with self.lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.kill()

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
fake = FakeOpenAI(base=args.model, adapters=adapters, host=args.host, port=args.port,
                  api_key=os.environ.get("VLLM_API_KEY") or None).start()
print("fake vllm api key required:", fake.api_key is not None, flush=True)
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
