"""`reportgen run`: the main job end to end (draft -> check every claim -> metrics -> HTML).

    reportgen run --studies S.jsonl --backend hf:DIR [--reference R.jsonl] --out DIR
    reportgen run --reports D.jsonl [--reference R.jsonl] --out DIR      # existing drafts
    reportgen run --out runs/demo                                        # the demo (README command one)
    reportgen run --config run.toml [flags override it] [--print-config]

Writes DIR/drafts.jsonl, DIR/verdicts.jsonl, DIR/metrics.json, DIR/report/index.html (one
page per study under DIR/report/studies/) and DIR/run.json. Rerun the same command to
resume: a finished stage whose inputs did not change is not redone. Without --studies and
--reports it runs the demo: real IU reports with errors injected by the open benchmark
stand in as drafts (every page says so), the original reports are the references.
See reportgen/run.py and docs/run.md.
"""

from __future__ import annotations

import argparse
import sys

# flag -> RunConfig field (defaults None: only given flags override the config file)
VALUE_FLAGS = (
    ("--studies", "studies", str, "S.jsonl", "studies JSONL {id, images: [paths], view(s)?, indication?} to draft"),
    ("--backend", "backend", str, "SPEC", "hf:PATH_OR_ID[?adapter=DIR] or vllm:http://HOST:PORT[?model=NAME]"),
    ("--reports", "reports", str, "D.jsonl", 'existing drafts {"id", "report"} instead of drafting'),
    ("--reference", "reference", str, "R.jsonl", 'reference reports {"id", "report"}, matched by id (metrics)'),
    ("--out", "out", str, "DIR", "output folder (default runs/demo); rerun to resume"),
    ("--task", "task", str, "TASK", "what to draft: findings (default), impression or full"),
    ("--max-new-tokens", "max_new_tokens", int, "N", "longest draft in tokens (default 256)"),
    ("--batch-size", "batch_size", int, "N", "studies per generate call (hf backend)"),
    ("--concurrency", "concurrency", int, "N", "requests in flight (vllm backend, default 4)"),
    ("--extractor", "extractor", str, "NAME", "entity graphs: rules (default, offline) or radgraph"),
    ("--region-model", "region_model", str, "SPEC", "open_clip model for region evidence (local-dir:PATH, ...)"),
    ("--region-calibration", "region_calibration", str, "PATH", "reportgen_region.json with the region thresholds"),
    ("--region-device", "region_device", str, "DEVICE", "torch device of the region model (default cpu)"),
    ("--bootstrap", "bootstrap", int, "N", "bootstrap resamples for the 95%% CIs (default 1000; 0: none)"),
    ("--seed", "seed", int, "N", "seed of the bootstrap and of the demo's injection (default 0)"),
    ("--repair-prompt", "repair_prompt", str, "JSON", "prompt template for --repair (default prompts/repair.json)"),
    ("--repair-keep", "repair_keep", str, "WHICH", "both (default) or better: mark the version with fewer flagged claims kept"),
    ("--demo-n", "demo_n", int, "N", "demo: IU reports used (default 25)"),
    ("--demo-rate", "demo_rate", float, "P", "demo: probability that a sentence gets an injected error (default 0.3)"),
    ("--title", "title", str, "TEXT", "title of the HTML report"),
    ("--checkers", "checkers", str, "NAMES", "graph (default), or graph,llm | cascade with --llm-url and --llm-model"),
    ("--convention", "convention", str, "NAME", "how an unmentioned finding is read: chexpert (default) or radfact"),
    ("--llm-url", "llm_url", str, "URL", "OpenAI-compatible endpoint of the llm/cascade checker, e.g. http://127.0.0.1:8000/v1"),
    ("--llm-model", "llm_model", str, "NAME", "model name served at --llm-url"),
    ("--llm-api-key-env", "llm_api_key_env", str, "VAR", "environment variable with the endpoint's API key (default OPENAI_API_KEY)"),
    ("--engine", "engine", str, "NAME", "local (default: this process) or ray (Ray Data actors, same outputs; pip install 'reportgen-cxr[ray]')"),
    ("--ray-address", "ray_address", str, "ADDR", "join this Ray cluster ('auto' or ray://HOST:PORT); default: start a local Ray"),
    ("--ray-num-cpus", "ray_num_cpus", int, "N", "CPUs of the local Ray (default: all)"),
    ("--ray-actors", "ray_actors", int, "N", "actors per stage: drafting clients, checkers (default 2)"),
    ("--ray-block-size", "ray_block_size", int, "N", "studies per block, the unit of retry (default 64)"),
    ("--ray-backends", "ray_backends", str, "SPECS", "more backend specs, comma-separated, sharing the drafting with --backend"),
    ("--ray-drafter", "ray_drafter", str, "HOW", "how --engine ray drafts: auto (default: vllm-engine for an hf: backend when vLLM "
     "imports in the Ray workers, else actors), actors (our client on Ray actors), http (ray.data.llm's HTTP request processor "
     "against the vllm: servers), vllm-engine (ray.data.llm's vLLM engine replicas; docs/scale.md)"),
    ("--ray-qps", "ray_qps", int, "N", "http: requests per second per HTTP actor (default: as fast as the answers come)"),
    ("--ray-api-key-env", "ray_api_key_env", str, "VAR", "http: environment variable the Ray workers read the servers' API key "
     "from (default REPORTGEN_VLLM_API_KEY, then VLLM_API_KEY)"),
    ("--ray-replicas", "ray_replicas", int, "N", "vllm-engine: engine replicas (default 1)"),
    ("--ray-tensor-parallel", "ray_tensor_parallel", int, "N", "vllm-engine: tensor-parallel GPUs per replica (default 1)"),
    ("--ray-pipeline-parallel", "ray_pipeline_parallel", int, "N", "vllm-engine: pipeline-parallel stages per replica (default 1)"),
    ("--ray-max-lora-rank", "ray_max_lora_rank", int, "N", "vllm-engine: the engine's max_lora_rank (default 16; at least the adapter's rank)"),
    ("--ray-max-loras", "ray_max_loras", int, "N", "vllm-engine: adapters held at once per replica (default 1)"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="run.toml", help="TOML file with the run's configuration (flags override it)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration as TOML and exit")
    for flag, dest, typ, metavar, help_text in VALUE_FLAGS:
        p.add_argument(flag, dest=dest, type=typ, metavar=metavar, default=None, help=help_text)
    p.add_argument("--no-self-check", dest="self_check", action="store_const", const=False, default=None,
                   help="do not compare claims with the report's other sentences")
    p.add_argument("--repair", dest="repair", action="store_const", const=True, default=None,
                   help="redraft each flagged draft once with its flagged sentences and evidence in the prompt, re-check, keep both")
    p.add_argument("--allow-outside-root", dest="allow_outside_root", action="store_const", const=True, default=None,
                   help="read study images outside the studies file's folder ('../', absolute paths, symlinks out)")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage (inputs, draft, check, repair, metrics, report)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no stage lines")


def run(args: argparse.Namespace) -> int:
    from reportgen.run import config_toml, load_config, run as run_all

    overrides = {dest: getattr(args, dest) for _, dest, *_ in VALUE_FLAGS}
    overrides.update(self_check=args.self_check, repair=args.repair, allow_outside_root=args.allow_outside_root)
    config = load_config(args.config, overrides)
    if args.print_config:
        sys.stdout.write(config_toml(config))
        return 0
    err = sys.stderr

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"reportgen run: {msg}", file=err, flush=True)

    if config.demo and not args.quiet:
        say(f"demo: {config.demo_n} real IU reports with injected errors stand in as drafts (no model writes them); "
            "give --studies and --backend to draft with a model")
    result = run_all(config, until=args.until, progress=not args.quiet and err.isatty(), say=say)
    total = sum(result.errors.values())
    if result.index.exists() and (args.until in (None, "report")):
        print(f"report: {result.index.resolve()}")
    if total:
        say("errors per stage: " + ", ".join(f"{k} {v}" for k, v in result.errors.items() if v) + " (see run.json and the study pages)")
    return 0

