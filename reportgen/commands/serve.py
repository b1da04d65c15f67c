"""`reportgen serve`: start a vLLM OpenAI-compatible server with LoRA adapters.

    reportgen serve --model Qwen/Qwen2-VL-2B-Instruct --adapter cxr=runs/lora
    reportgen serve --model DIR --adapter a=A --adapter b=B --port 8001 -- --max-num-seqs 8

Waits until the server is healthy, prints its URL and served model names (base model and
adapters; use an adapter's NAME as `--backend vllm:URL?model=NAME`), then runs until
Ctrl-C or SIGTERM and stops the server's whole process group cleanly.

The server binds 127.0.0.1. Any other address is refused (E905) unless ``--allow-public``,
which then requires an API key in $REPORTGEN_VLLM_API_KEY (or $VLLM_API_KEY) (E906): it
goes to vLLM as $VLLM_API_KEY, never on its command line or in a log, and `reportgen draft`
sends it from the same variable. A key written as `-- --api-key KEY` is refused (E907).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time

from reportgen.errors import ReportgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="base model: hub id or local directory")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                   help="a LoRA adapter directory served under NAME (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-public", action="store_true",
                   help="allow a non-loopback --host; requires an API key in $REPORTGEN_VLLM_API_KEY")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--max-lora-rank", type=int, default=16, help="largest LoRA rank to serve (default 16)")
    p.add_argument("--max-loras", type=int, default=None, help="adapters active in one batch (default: the number of adapters)")
    p.add_argument("--limit-mm-per-prompt", default=None,
                   help='images per prompt, JSON (default: made from --max-images, \'{"image": 2, "video": 0}\')')
    p.add_argument("--max-images", type=int, default=None,
                   help="images per study, as `train`/`draft --max-images` (default 2: frontal + lateral)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="pass --trust-remote-code to vLLM: RUNS the model author's Python code (only for trusted models)")
    p.add_argument("--dtype", default=None, help="vLLM --dtype (default: vLLM's auto)")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM --max-model-len (default: the model's)")
    p.add_argument("--python", default=None, metavar="PATH",
                   help="python of the environment that has vLLM (default: $REPORTGEN_VLLM_PYTHON, `vllm` on PATH, this python, .venv-vllm)")
    p.add_argument("--startup-timeout", type=float, default=900.0, help="seconds to wait for the server to be healthy (default 900)")
    p.add_argument("--log", default=None, metavar="FILE", help="server log file (default: a file in the temp folder, printed at start)")
    p.add_argument("--print-command", action="store_true", help="print the vLLM command line and exit")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after `--`: further vLLM arguments, passed as they are")


def _config(args: argparse.Namespace):
    from reportgen.serve import ServeConfig, parse_adapter

    extra = list(args.extra or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    return ServeConfig(
        model=args.model, adapters=tuple(parse_adapter(a) for a in args.adapter), host=args.host, port=args.port,
        max_lora_rank=args.max_lora_rank, max_loras=args.max_loras, limit_mm_per_prompt=args.limit_mm_per_prompt,
        max_images=args.max_images, trust_remote_code=args.trust_remote_code,
        dtype=args.dtype, max_model_len=args.max_model_len, python=args.python, extra_args=tuple(extra),
    )


def run(args: argparse.Namespace) -> int:
    from reportgen.serve import VLLMServer, api_key_from_env, build_command, check_exposure, find_launcher, is_loopback, log_tail

    cfg = _config(args)
    key = api_key_from_env()
    check_exposure(cfg, args.allow_public, key)
    server = VLLMServer(cfg, log_path=args.log, api_key=key)
    if args.print_command:
        print(shlex.join(build_command(server.cfg, find_launcher(cfg.python))))
        return 0
    if not is_loopback(cfg.host):
        print(f"reportgen serve: warning: binding to {cfg.host} (--allow-public) exposes the server beyond this "
              "machine; requests need the API key", file=sys.stderr)

    def on_term(signum, frame):  # SIGTERM behaves like Ctrl-C: stop the server cleanly
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        print(f"reportgen serve: starting vLLM for {cfg.model} (log: {server.log_path})", file=sys.stderr, flush=True)
        try:
            server.start(timeout_s=args.startup_timeout)
        except KeyboardInterrupt:
            server.stop()
            print("reportgen serve: stopped before it was ready", file=sys.stderr)
            return 130
        try:  # from here on, Ctrl-C / SIGTERM is a clean stop
            adapters = [n for n, _ in server.cfg.adapters]
            print(f"vLLM server ready at {server.url}", flush=True)
            print(f"models: {', '.join(server.model_names)}", flush=True)
            for name in adapters:
                print(f"  draft with: reportgen draft --backend 'vllm:{server.url}?model={name}' ...", flush=True)
            print(f"Press Ctrl-C to stop (vLLM pid {server.proc.pid}, log: {server.log_path}).", file=sys.stderr, flush=True)
            while server.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("reportgen serve: stopping ...", file=sys.stderr, flush=True)
            rc = server.stop()
            print(f"reportgen serve: stopped (exit status {rc})", file=sys.stderr, flush=True)
            return 0
        rc = server.proc.returncode if server.proc else None
        raise ReportgenError(
            "E558", f"the vLLM server exited with status {rc}; last lines of {server.log_path}:\n{log_tail(server.log_path)}\n",
            fix="read the log above",
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.alive():
            server.stop()
