"""The server's surface (issue 16): `reportgen serve` binds 127.0.0.1, refuses a public
address without --allow-public and an API key, passes the key to vLLM only through
$VLLM_API_KEY (never argv or logs), and the drafting client sends it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from reportgen.errors import ReportgenError
from reportgen.serve import ServeConfig, VLLMServer, check_exposure, is_loopback
from tests.fake_openai import FakeOpenAI, write_fake_vllm_package

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-0123456789abcdef-secret"


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    for name in ("REPORTGEN_VLLM_API_KEY", "VLLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "myhost.example.org", ""))


def test_exposure_rules():
    check_exposure(ServeConfig(model="m"), False, None)  # the default: loopback, no key needed
    with pytest.raises(ReportgenError, match="E905.*0.0.0.0.*--allow-public"):
        check_exposure(ServeConfig(model="m", host="0.0.0.0"), False, KEY)
    with pytest.raises(ReportgenError, match="E906.*REPORTGEN_VLLM_API_KEY"):
        check_exposure(ServeConfig(model="m", host="10.1.2.3"), True, None)
    check_exposure(ServeConfig(model="m", host="0.0.0.0"), True, KEY)
    for extra in (("--api-key", KEY), (f"--api-key={KEY}",)):
        with pytest.raises(ReportgenError, match="E907") as e:
            check_exposure(ServeConfig(model="m", extra_args=extra), False, None)
        assert KEY not in str(e.value)


def test_serve_cli_refuses_a_public_host(capsys, monkeypatch, tmp_path):
    from reportgen.cli import main

    root = write_fake_vllm_package(tmp_path / "fakepkg", REPO)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), str(REPO)]))
    assert main(["serve", "--model", "m", "--host", "0.0.0.0", "--print-command"]) == 1
    assert "E905" in capsys.readouterr().err
    assert main(["serve", "--model", "m", "--host", "0.0.0.0", "--allow-public", "--print-command"]) == 1
    assert "E906" in capsys.readouterr().err
    monkeypatch.setenv("REPORTGEN_VLLM_API_KEY", KEY)
    assert main(["serve", "--model", "m", "--host", "0.0.0.0", "--allow-public", "--print-command",
                 "--python", sys.executable]) == 0
    out = capsys.readouterr()
    assert "--host 0.0.0.0" in out.out and "--api-key" not in out.out and KEY not in out.out + out.err


def test_the_key_reaches_vllm_by_env_only_and_the_client_sends_it(tmp_path, monkeypatch):
    root = write_fake_vllm_package(tmp_path / "fakepkg", REPO)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), str(REPO)]))
    log = tmp_path / "vllm.log"
    srv = VLLMServer(ServeConfig(model="tiny", port=0, python=sys.executable), log_path=log, api_key=KEY)
    with srv:
        assert srv.model_names == ["tiny"]  # /v1/models answered: the health check sent the key
        assert KEY not in " ".join(srv.command) and KEY not in repr(srv.cfg) and KEY not in repr(srv)
        text = log.read_text()
        assert "api key required: True" in text and KEY not in text
        from reportgen.backends.vllm import VLLMDrafter

        with VLLMDrafter(srv.url, retries=0) as d:  # no key: refused, not retried
            with pytest.raises(ReportgenError, match="E566.*401"):
                d.resolve()
        monkeypatch.setenv("REPORTGEN_VLLM_API_KEY", KEY)
        with VLLMDrafter(srv.url, retries=0) as d:
            assert d.resolve() == ("tiny", "tiny", None)
            assert KEY not in d.name


def test_client_reads_vllm_api_key_too(monkeypatch):
    from reportgen.backends.vllm import VLLMDrafter

    with FakeOpenAI(api_key=KEY) as fake:
        monkeypatch.setenv("VLLM_API_KEY", KEY)
        with VLLMDrafter(fake.url, retries=0) as d:
            assert d.resolve()[0] == "tiny-base"
        assert fake.unauthorised == 0
