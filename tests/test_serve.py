"""`reportgen serve`: vLLM's command line, finding vLLM, waiting for health, clean stops.

A fake ``vllm`` package (tests/fake_openai.py) stands in for vLLM's OpenAI server, so the
real launch path (``python -m vllm.entrypoints.openai.api_server ...``) is exercised."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen.errors import ReportgenError
from reportgen.serve import (
    API_SERVER_MODULE, ServeConfig, VLLMServer, build_command, check_adapter, find_launcher, free_port,
    parse_adapter,
)
from tests.fake_openai import write_fake_vllm_package

REPO = Path(__file__).resolve().parents[1]


def make_adapter(path: Path, rank: int = 8) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return path


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch) -> Path:
    """PYTHONPATH with a fake vllm package; no real vLLM reachable otherwise."""
    root = write_fake_vllm_package(tmp_path / "fakepkg", REPO)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), str(REPO)]))
    monkeypatch.delenv("REPORTGEN_VLLM_PYTHON", raising=False)
    return root


def group_gone(pgid: int, wait_s: float = 5.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def pid_gone(pid: int, wait_s: float = 5.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# -- arguments ---------------------------------------------------------------------------
def test_parse_adapter():
    assert parse_adapter("cxr=runs/a") == ("cxr", "runs/a")
    assert parse_adapter("cxr=/x=y") == ("cxr", "/x=y")
    for bad in ("runs/a", "=runs/a", "cxr=", "my name=x"):
        with pytest.raises(ReportgenError, match="E553"):
            parse_adapter(bad)


def test_check_adapter_needs_a_peft_dir_and_a_servable_rank(tmp_path):
    with pytest.raises(ReportgenError, match="E554.*adapter_config.json"):
        check_adapter("a", str(tmp_path), 16)
    make_adapter(tmp_path / "r32", rank=32)
    with pytest.raises(ReportgenError, match="E555.*rank 32.*--max-lora-rank 16") as e:
        check_adapter("a", str(tmp_path / "r32"), 16)
    assert "--max-lora-rank 32" in e.value.fix
    name, path = check_adapter("a", str(make_adapter(tmp_path / "r8")), 16)
    assert (name, path) == ("a", str((tmp_path / "r8").resolve()))


def test_server_config_is_validated(tmp_path):
    a = make_adapter(tmp_path / "a")
    with pytest.raises(ReportgenError, match="E553.*repeat"):
        VLLMServer(ServeConfig(model="m", adapters=(("x", str(a)), ("x", str(a)))))
    with pytest.raises(ReportgenError, match="E555.*not supported"):
        VLLMServer(ServeConfig(model="m", max_lora_rank=12))
    with pytest.raises(ReportgenError, match="E556"):
        VLLMServer(ServeConfig(model="m", limit_mm_per_prompt="{image: 2}"))
    with pytest.raises(ReportgenError, match="E556"):
        VLLMServer(ServeConfig(model="m", limit_mm_per_prompt='{"image": -1}'))


def test_build_command_for_both_launchers(tmp_path):
    a = make_adapter(tmp_path / "lora")
    model = tmp_path / "model"
    model.mkdir()
    srv = VLLMServer(ServeConfig(model=str(model), adapters=(("cxr", str(a)),), port=8123, max_lora_rank=8,
                                 dtype="float32", extra_args=("--max-num-seqs", "4")))
    cmd = build_command(srv.cfg, ["/env/bin/python", "-m", API_SERVER_MODULE])
    assert cmd[:5] == ["/env/bin/python", "-m", API_SERVER_MODULE, "--model", str(model.resolve())]
    joined = " ".join(cmd)
    assert "--host 127.0.0.1 --port 8123" in joined
    assert "--enable-lora --max-lora-rank 8 --max-loras 1" in joined
    assert f"--lora-modules cxr={a.resolve()}" in joined
    assert '--limit-mm-per-prompt {"image": 2, "video": 0}' in joined
    assert cmd[-4:] == ["--dtype", "float32", "--max-num-seqs", "4"]
    hub = build_command(ServeConfig(model="Qwen/Qwen2-VL-2B-Instruct"), ["/usr/bin/vllm", "serve"])
    assert hub[:3] == ["/usr/bin/vllm", "serve", "Qwen/Qwen2-VL-2B-Instruct"] and "--lora-modules" not in hub


# -- finding vLLM ------------------------------------------------------------------------
def test_missing_vllm_names_both_install_routes(tmp_path, monkeypatch):
    import reportgen.serve as serve

    monkeypatch.setenv("PATH", str(tmp_path))  # no `vllm` executable
    monkeypatch.delenv("REPORTGEN_VLLM_PYTHON", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setattr(serve, "_default_venv_pythons", lambda: [tmp_path / ".venv-vllm" / "bin" / "python"])
    if serve._has_vllm(sys.executable):
        pytest.skip("this interpreter has vllm")
    with pytest.raises(ReportgenError, match="E550: no vLLM installation found") as e:
        find_launcher()
    assert "pip install vllm" in e.value.fix and "scripts/setup_vllm_env.sh" in e.value.fix
    with pytest.raises(ReportgenError, match="E550.*cannot import vllm"):
        find_launcher(sys.executable)
    with pytest.raises(ReportgenError, match="E550.*does not exist"):
        find_launcher(str(tmp_path / "nope" / "python"))


def test_finds_vllm_in_order(tmp_path, monkeypatch, fake_vllm):
    import reportgen.serve as serve

    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    venv_py = tmp_path / "venv" / "bin" / "python"
    venv_py.parent.mkdir(parents=True)
    venv_py.symlink_to(sys.executable)
    monkeypatch.setattr(serve, "_default_venv_pythons", lambda: [venv_py])
    # this interpreter sees the fake vllm through PYTHONPATH -> python -m
    assert find_launcher() == [sys.executable, "-m", API_SERVER_MODULE]
    monkeypatch.setenv("REPORTGEN_VLLM_PYTHON", str(venv_py))
    assert find_launcher() == [str(venv_py), "-m", API_SERVER_MODULE]
    monkeypatch.delenv("REPORTGEN_VLLM_PYTHON")
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert find_launcher() == [str(exe), "serve"]
    assert find_launcher(str(venv_py)) == [str(venv_py), "-m", API_SERVER_MODULE]  # explicit wins


# -- start, health, stop -----------------------------------------------------------------
def test_starts_waits_for_health_and_stops_the_whole_group(tmp_path, fake_vllm, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "child")
    a = make_adapter(tmp_path / "lora")
    srv = VLLMServer(ServeConfig(model="tiny", adapters=(("cxr", str(a)),), port=0, python=sys.executable),
                     log_path=tmp_path / "vllm.log")
    with srv:
        assert srv.url.startswith("http://127.0.0.1:")
        assert srv.model_names == ["tiny", "cxr"]
        log = (tmp_path / "vllm.log").read_text()
        assert "--enable-lora" in log and f"cxr={a.resolve()}" in log
        child = int(log.split("fake vllm child pid")[1].split()[0])
        pgid = srv.proc.pid
    assert group_gone(pgid) and pid_gone(child)
    assert srv.proc.returncode is not None


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path, fake_vllm, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "ignore-term")
    srv = VLLMServer(ServeConfig(model="tiny", port=0, python=sys.executable), log_path=tmp_path / "vllm.log").start()
    t0 = time.monotonic()
    rc = srv.stop(grace_s=1.0)
    assert rc == -signal.SIGKILL and 0.9 < time.monotonic() - t0 < 10


def test_a_server_dying_at_start_shows_its_log(tmp_path, fake_vllm, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "die")
    srv = VLLMServer(ServeConfig(model="tiny", port=0, python=sys.executable), log_path=tmp_path / "vllm.log")
    with pytest.raises(ReportgenError, match=r"(?s)E551.*status 3.*out of memory"):
        srv.start()


def test_startup_timeout_stops_the_server(tmp_path, fake_vllm, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_S", "30")
    srv = VLLMServer(ServeConfig(model="tiny", port=0, python=sys.executable), log_path=tmp_path / "vllm.log")
    with pytest.raises(ReportgenError, match="E552.*within 1 s"):
        srv.start(timeout_s=1.0, poll_s=0.1)
    assert not srv.alive()


def test_port_in_use(tmp_path, fake_vllm):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = VLLMServer(ServeConfig(model="tiny", port=port, python=sys.executable))
        with pytest.raises(ReportgenError, match=f"E557.*port {port}"):
            srv.start()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_cli_prints_url_and_models_and_stops_on_signal(tmp_path, fake_vllm, sig):
    a = make_adapter(tmp_path / "lora")
    port = free_port()
    cmd = [sys.executable, "-m", "reportgen", "serve", "--model", "tiny", "--adapter", f"cxr={a}", "--port", str(port),
           "--python", sys.executable, "--log", str(tmp_path / "vllm.log"), "--", "--max-num-seqs", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == f"vLLM server ready at http://127.0.0.1:{port}"
        assert lines[1].strip() == "models: tiny, cxr"
        assert f"vllm:http://127.0.0.1:{port}?model=cxr" in lines[2]
        assert "--max-num-seqs 4" in (tmp_path / "vllm.log").read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_serve_cli_reports_missing_vllm(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    env.pop("REPORTGEN_VLLM_PYTHON", None)
    r = subprocess.run([sys.executable, "-m", "reportgen", "serve", "--model", "m", "--python", str(tmp_path / "python")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 1 and "E550" in r.stderr and "setup_vllm_env.sh" in r.stderr
