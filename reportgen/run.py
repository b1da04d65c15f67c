"""The main job end to end: draft -> check every claim -> metrics -> a browsable HTML report.

    from reportgen.run import RunConfig, run
    summary = run(RunConfig(out="runs/x", studies="S.jsonl", backend="hf:DIR", reference="R.jsonl"))

``reportgen run`` (reportgen/commands/run.py) is a thin layer over this module.

Stages, each written to the output folder ``out``:

- ``inputs`` (demo only): real IU reports with errors injected by the open benchmark
  (``reportgen.evals.inject``) written as stand-in drafts (``inputs/drafts.jsonl``) and the
  original reports as references (``inputs/reference.jsonl``). Nothing pretends a model
  wrote them: every record says ``"stand_in": "iu-injected"`` and the pages say so.
- ``draft``: ``drafts.jsonl``, one record per study (the ``reportgen draft`` record:
  ``{"id", "report", "model", "adapter", "prompt_version", "latency_s", "error", ...}``),
  drafted with ``backend`` from ``studies``, or taken from existing drafts (``reports``).
  Appended as each study finishes, so an interrupted stage resumes where it stopped.
- ``check``: ``verdicts.jsonl``, the ``reportgen check`` record of every draft plus
  ``problems`` (``[{"stage", "error"}]``: draft failed, empty draft, missing reference,
  missing image, ...). A failed or empty draft is an error record, never dropped.
- ``repair`` (``repair = true``): each draft with a contradicted or unsupported claim is
  redrafted once with the flagged sentences and their evidence in the prompt
  (``prompts/repair.json``), re-checked, and both versions kept (``repair.jsonl``).
- ``metrics``: ``metrics.json``, the ``reportgen eval`` figures with bootstrap CIs over the
  studies that have a reference; failed drafts are listed and scored as failures in
  ``corpus_with_failures`` (0 for every per-report score); claim status counts; before and
  after repair.
- ``report``: ``report/index.html`` and one page per study (``report/studies/``).

``run.json`` holds the resolved configuration, package and model versions, adapter, prompt
and data file hashes, and per stage its input hash, time and error count. A stage whose
inputs hash is unchanged and whose outputs exist is not redone.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from reportgen.errors import ReportgenError
from reportgen.jsonl import json_safe
from reportgen.types import FLAGGED, VERDICT_STATUSES as STATUSES  # the one vocabulary

log = logging.getLogger("reportgen.run")

STAGES = ("inputs", "draft", "check", "repair", "metrics", "report")
STAND_IN = "iu-injected"
RUN_JSON_VERSION = 1
MAX_CONSECUTIVE_FAILURES = 8  # unreachable backend: the remaining studies get error records (retried next run)
# per-report scores of metrics.json's per_study rows that a failed draft scores 0 in corpus_with_failures
FAILURE_SCORED = ("bleu4", "rouge_l", "radgraph_partial", "green", "radfact_logical_f1")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs. TOML keys and ``reportgen run`` flags have these names
    (``-`` for ``_`` in flags)."""

    out: str = "runs/demo"
    studies: str | None = None  # studies JSONL (drafted with backend)
    backend: str | None = None  # hf:PATH[?adapter=DIR] or vllm:http://HOST:PORT[?model=NAME]
    reports: str | None = None  # existing drafts JSONL {"id", "report"} instead of drafting
    reference: str | None = None  # reference reports JSONL {"id", "report"}
    task: str = "findings"
    max_new_tokens: int = 256
    batch_size: int | None = None
    concurrency: int = 4
    extractor: str = "rules"
    self_check: bool = True
    region_model: str | None = None
    region_calibration: str | None = None
    region_device: str = "cpu"
    bootstrap: int = 1000
    seed: int = 0
    repair: bool = False
    repair_prompt: str | None = None  # default: prompts/repair.json
    repair_keep: str = "both"  # both | better (the version with fewer flagged claims is marked kept)
    demo_n: int = 25  # demo: IU reports used
    demo_rate: float = 0.3  # demo: probability that a sentence gets an injected error
    title: str | None = None
    checkers: str = "graph"  # graph, or with an LLM endpoint: graph,llm | cascade (docs/checking.md)
    convention: str = "chexpert"  # how an unmentioned finding is read: chexpert | radfact
    llm_url: str | None = None  # OpenAI-compatible endpoint of the llm/cascade checker (e.g. http://127.0.0.1:8000/v1)
    llm_model: str | None = None  # model name served there
    llm_api_key_env: str = "OPENAI_API_KEY"  # environment variable holding its API key (never in the config)
    allow_outside_root: bool = False  # read study images outside the studies file's folder ('../', absolute, symlinks out)
    engine: str = "local"  # local (this process) or ray (Ray Data actors; same outputs, docs/scale.md)
    ray_address: str | None = None  # join this Ray cluster ("auto", ray://HOST:PORT); default: a local Ray
    ray_num_cpus: int | None = None  # CPUs of the local Ray (default: all)
    ray_actors: int = 2  # actors per stage (drafting clients, checkers)
    ray_block_size: int = 64  # studies per block: the unit of retry
    ray_backends: str | None = None  # more backend specs, comma-separated, that share the drafting with backend
    ray_drafter: str = "auto"  # auto | actors | http (ray.data.llm HTTP processor) | vllm-engine (ray.data.llm vLLM engine)
    ray_qps: int | None = None  # http: requests per second per HTTP actor (default: as fast as answers come)
    ray_api_key_env: str | None = None  # http: env var the Ray workers read the servers' API key from (default REPORTGEN_VLLM_API_KEY, VLLM_API_KEY)
    ray_replicas: int = 1  # vllm-engine: engine replicas (Ray Data concurrency)
    ray_tensor_parallel: int = 1  # vllm-engine: tensor-parallel GPUs per replica
    ray_pipeline_parallel: int = 1  # vllm-engine: pipeline-parallel stages per replica
    ray_max_lora_rank: int = 16  # vllm-engine: max_lora_rank of the engine (at least the adapter's rank)
    ray_max_loras: int = 1  # vllm-engine: adapters held at once per replica

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            want = _TYPES[f.name]
            if v is None and f.default is None:
                continue
            ok = isinstance(v, want) and not (want in (int, float) and isinstance(v, bool))
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, f.name, float(v))
                ok = True
            if not ok:
                raise ReportgenError("E801", f"run configuration: {f.name} must be {want.__name__}, got {v!r}",
                                     fix=f"give {f.name} as a {want.__name__}")
        if self.task not in ("findings", "impression", "full"):
            raise ReportgenError("E801", f"run configuration: task {self.task!r} is not findings, impression or full")
        if self.extractor not in ("rules", "radgraph"):
            raise ReportgenError("E801", f"run configuration: extractor {self.extractor!r} is not rules or radgraph")
        if self.repair_keep not in ("both", "better"):
            raise ReportgenError("E801", f"run configuration: repair_keep {self.repair_keep!r} is not both or better")
        for name in ("max_new_tokens", "concurrency", "demo_n"):
            if getattr(self, name) < 1:
                raise ReportgenError("E801", f"run configuration: {name} must be at least 1")
        if self.convention not in ("chexpert", "radfact"):
            raise ReportgenError("E801", f"run configuration: convention {self.convention!r} is not chexpert or radfact")
        if self.engine not in ("local", "ray"):
            raise ReportgenError("E801", f"run configuration: engine {self.engine!r} is not local or ray")
        if self.ray_actors < 1 or self.ray_block_size < 1:
            raise ReportgenError("E801", "run configuration: ray_actors and ray_block_size must be at least 1")
        if self.ray_drafter not in ("auto", "actors", "http", "vllm-engine"):
            raise ReportgenError("E801", f"run configuration: ray_drafter {self.ray_drafter!r} is not auto, actors, http or vllm-engine")
        for name in ("ray_replicas", "ray_tensor_parallel", "ray_pipeline_parallel", "ray_max_lora_rank", "ray_max_loras"):
            if getattr(self, name) < 1:
                raise ReportgenError("E801", f"run configuration: {name} must be at least 1")
        if self.ray_qps is not None and self.ray_qps < 1:
            raise ReportgenError("E801", "run configuration: ray_qps must be at least 1")
        if self.engine == "local" and (self.ray_address or self.ray_num_cpus or self.ray_backends or self.ray_drafter != "auto"
                                       or self.ray_qps or self.ray_api_key_env):
            raise ReportgenError("E801", "run configuration: ray_* settings given with engine local", fix="set engine = \"ray\" (--engine ray)")
        if self.bootstrap < 0 or not 0.0 <= self.demo_rate <= 1.0:
            raise ReportgenError("E801", "run configuration: bootstrap must be >= 0 and demo_rate within 0..1")
        if self.seed < 0:  # numpy's generators take no negative seed (a traceback after the check stage)
            raise ReportgenError("E801", f"run configuration: seed must be >= 0, got {self.seed}", fix="give --seed 0 or more")

    @property
    def demo(self) -> bool:
        """No studies and no drafts given: the embedded demo (IU reports as stand-in drafts)."""
        return not self.studies and not self.reports

    def validate(self) -> None:
        """The combinations a run accepts (E802)."""
        if self.studies and self.reports:
            raise ReportgenError("E802", "both studies and reports given", fix="draft from --studies with --backend, or take drafts with --reports")
        if self.studies and not self.backend:
            raise ReportgenError("E802", "--studies needs --backend to draft", fix="add --backend hf:PATH or vllm:http://HOST:PORT")
        if self.backend and not self.studies:
            raise ReportgenError("E802", "--backend given without --studies: drafting needs studies with images",
                                 fix="add --studies S.jsonl ({id, images: [paths]} per line); without both, the demo runs on stand-in drafts")
        if self.demo and self.reference:
            raise ReportgenError("E802", "--reference given without --studies or --reports",
                                 fix="the demo uses the original IU reports as references; give --reports D.jsonl to check your drafts")
        if self.repair and not self.backend:
            raise ReportgenError("E812", "--repair redrafts with the model: it needs --studies and --backend",
                                 fix="add --studies S.jsonl --backend SPEC, or leave out --repair")
        from reportgen.jsonl import check_in_file, has_record_line

        extra = [f"--{k.replace('_', '-')}" for k, unset in (("region_calibration", None), ("region_device", "cpu"))
                 if getattr(self, k) != unset]
        if extra and not self.region_model:  # they were ignored without a word
            raise ReportgenError("E700", f"{', '.join(extra)} given without --region-model", fix="add --region-model SPEC (e.g. local-dir:PATH)")
        if self.repair:  # the template is read before the drafting, not when a flagged draft is redrafted
            from reportgen.prompting import load_template

            prompt = repair_prompt_path(self)
            check_in_file(prompt, "repair prompt", "E813", fix="give repair_prompt a prompt template JSON (see prompts/repair.json)")
            load_template(prompt)  # E520 for a malformed template
        for name in ("studies", "reports", "reference"):
            p = getattr(self, name)
            if p:
                check_in_file(p, f"--{name}", "E802", fix=f"check the path given to --{name}")
                if not has_record_line(p):  # an empty run would 'succeed' with nothing in it
                    raise ReportgenError("E739", f"--{name} {p!r} holds no record (the file is empty)",
                                         fix=f"check the path given to --{name}: one JSON object per line")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_TYPES = {f.name: _TYPES[str(f.type).split(" |")[0].strip()] for f in fields(RunConfig)}


# -- configuration files ---------------------------------------------------------------------

def load_config(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The configuration of a TOML file (keys: RunConfig's fields, top level or under
    ``[run]``) with ``overrides`` (flags; None values ignored) on top."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ReportgenError("E800", "reading a TOML config on Python 3.10 needs the tomli package",
                                     fix="pip install tomli, or use Python 3.11+") from None
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as e:
            raise ReportgenError("E800", f"config {str(path)!r} cannot be read ({e.strerror or e})", fix="check --config") from None
        except tomllib.TOMLDecodeError as e:
            raise ReportgenError("E800", f"config {str(path)!r} is not valid TOML: {e}", fix="fix the file (see docs/run.md)") from None
        if isinstance(data.get("run"), dict):
            rest = {k: v for k, v in data.items() if k != "run"}
            data = {**rest, **data["run"]}
        known = {f.name for f in fields(RunConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ReportgenError("E801", f"config {str(path)!r}: unknown key(s) {', '.join(unknown)}",
                                 fix=f"use only: {', '.join(sorted(known))}")
        base = Path(path).resolve().parent
        for k in ("studies", "reports", "reference", "region_calibration", "repair_prompt"):
            if isinstance(data.get(k), str) and not Path(data[k]).expanduser().is_absolute():
                data[k] = str(base / data[k])  # relative paths in a config file are read from its folder
        values.update(data)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return RunConfig(**values)


def config_toml(config: RunConfig) -> str:
    """The configuration as TOML (unset options as comments)."""
    lines = ["# reportgen run configuration (resolved)", "[run]"]
    for f in fields(RunConfig):
        v = getattr(config, f.name)
        if v is None:
            lines.append(f"# {f.name} = (not set)")
        else:
            lines.append(f"{f.name} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)


# -- hashes and versions ---------------------------------------------------------------------

def file_hash(path: str | os.PathLike[str] | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dir_hash(path: str | os.PathLike[str] | None) -> str | None:
    """sha256 over the names and bytes of the files in a folder (an adapter, a model)."""
    if not path or not Path(path).is_dir():
        return None
    h = hashlib.sha256()
    root = Path(path)
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(root)).encode())
        h.update((file_hash(p) or "").encode())
    return h.hexdigest()


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_file_hashes() -> dict[str, str]:
    """sha256 of the versioned data files the checkers, prompts and benchmark read."""
    from importlib.resources import files

    out = {}
    for pkg, label in (("reportgen.checkers.data", "checkers/data"), ("reportgen.evals.data", "evals/data"), ("reportgen.prompts", "prompts")):
        for p in sorted(files(pkg).iterdir(), key=lambda x: x.name):
            if p.name.endswith((".json", ".yaml", ".txt")) and p.is_file():
                out[f"{label}/{p.name}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def package_versions() -> dict[str, str | None]:
    """Versions from installed metadata (nothing heavy is imported)."""
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("reportgen-cxr", "torch", "transformers", "peft", "open_clip_torch", "spacy", "numpy", "vllm", "torchxrayvision"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def repair_prompt_path(config: RunConfig) -> Path:
    if config.repair_prompt:
        return Path(config.repair_prompt)
    from importlib.resources import files

    return Path(str(files("reportgen.prompts").joinpath("repair.json")))


# -- the run state -----------------------------------------------------------------------------

class RunState:
    """run.json: read at the start, rewritten (atomically) after every stage."""

    def __init__(self, out: Path, config: RunConfig):
        self.out = out
        self.path = out / "run.json"
        self.data: dict[str, Any] = {}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                log.warning("E811 %s is unreadable (%s): every stage is redone", self.path, type(e).__name__)
                self.data = {}
        if not isinstance(self.data.get("stages"), dict):
            self.data["stages"] = {}
        self.data.update({"version": RUN_JSON_VERSION, "config": config.to_dict()})

    def done(self, stage: str, inputs: str, outputs: Iterable[Path]) -> bool:
        """Finished with these inputs, its outputs there, and nothing left to retry (a draft
        that failed because the server was down is retried by the next run)."""
        s = self.data["stages"].get(stage) or {}
        return (s.get("status") == "done" and s.get("inputs") == inputs and not s.get("retry")
                and all(p.exists() for p in outputs))

    def stage(self, stage: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(stage, {})

    def save(self) -> None:
        from reportgen.jsonl import atomic_writer

        self.data["errors"] = {k: v.get("errors", 0) for k, v in self.data["stages"].items() if isinstance(v, dict) and v.get("status")}
        with atomic_writer(self.path) as fh:
            json.dump(self.data, fh, indent=1, ensure_ascii=False, default=str)
            fh.write("\n")


@dataclass
class RunResult:
    """What a run did: the output folder, per stage 'done' or 'skipped', the report path."""

    out: Path
    stages: dict[str, str] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.out / "report" / "index.html"


# -- the run -----------------------------------------------------------------------------------

Progress = Callable[[str], None]


def run(config: RunConfig, *, until: str | None = None, progress: bool = False, say: Progress | None = None) -> RunResult:
    """Run (or resume) every stage up to ``until`` (default: all). ``say`` gets one line
    per stage; ``progress`` shows a bar per stage on stderr."""
    config.validate()
    if until is not None and until not in STAGES:
        raise ReportgenError("E802", f"unknown stage {until!r}", fix=f"use one of {', '.join(STAGES)}")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ReportgenError("E803", f"--out {config.out!r} is a file", fix="give a folder for the run's outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportgenError("E803", f"--out {config.out!r}: the folder cannot be created ({e.strerror or e})") from None
    say = say or (lambda msg: None)
    state = RunState(out, config)
    state.data.update({"versions": package_versions(), "data_files": data_file_hashes()})
    result = RunResult(out)
    ctx = _Context(config, out, state, progress, say)
    for stage in STAGES:
        if (stage == "inputs" and not config.demo) or (stage == "repair" and not config.repair):
            if stage == until:
                break
            continue
        fn = getattr(ctx, f"stage_{stage}")
        inputs = ctx.inputs_hash(stage)
        outputs = ctx.outputs(stage)
        if state.done(stage, inputs, outputs):
            result.stages[stage] = "skipped"
            say(f"{stage}: done earlier, inputs unchanged (skipped)")
        else:
            st = state.stage(stage)
            st.clear()
            st.update({"status": "running", "inputs": inputs, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            state.save()
            t0 = time.perf_counter()
            info = fn() or {}
            st.update(info)
            st.update({"status": "done", "seconds": round(time.perf_counter() - t0, 3),
                       "outputs": {str(p.relative_to(out)): file_hash(p) for p in outputs if p.is_file()}})
            state.save()
            result.stages[stage] = "done"
            say(f"{stage}: {info.get('summary', 'done')} ({st['seconds']:.1f}s)")
        result.errors[stage] = state.stage(stage).get("errors", 0)
        if stage == until:
            break
    return result


class _Context:
    def __init__(self, config: RunConfig, out: Path, state: RunState, progress: bool, say: Progress):
        self.c = config
        self.out = out
        self.state = state
        self.progress = progress
        self.say = say
        self._png_names: set[str] = set()

    # paths
    @property
    def drafts_in(self) -> Path | None:
        """The drafts file the draft stage copies (demo: the stand-ins; else --reports)."""
        if self.c.demo:
            return self.out / "inputs" / "drafts.jsonl"
        return Path(self.c.reports) if self.c.reports else None

    @property
    def reference(self) -> Path | None:
        if self.c.demo:
            return self.out / "inputs" / "reference.jsonl"
        return Path(self.c.reference) if self.c.reference else None

    def outputs(self, stage: str) -> list[Path]:
        o = self.out
        return {
            "inputs": [o / "inputs" / "drafts.jsonl", o / "inputs" / "reference.jsonl"],
            "draft": [o / "drafts.jsonl"],
            "check": [o / "verdicts.jsonl"],
            "repair": [o / "repair.jsonl"],
            "metrics": [o / "metrics.json"],
            "report": [o / "report" / "index.html"],
        }[stage]

    def inputs_hash(self, stage: str) -> str:
        c = self.c
        if stage == "inputs":
            return _digest(stage, c.demo_n, c.demo_rate, c.seed, self.state.data.get("data_files"))
        if stage == "draft":
            if c.studies:
                prompt = self.state.data.get("data_files", {}).get("prompts/draft.json")
                return _digest(stage, file_hash(c.studies), c.backend, c.task, c.max_new_tokens, prompt, c.allow_outside_root)
            return _digest(stage, file_hash(self.drafts_in))
        prev = {s: (self.state.data["stages"].get(s) or {}).get("outputs") for s in STAGES}
        check_cfg = (c.extractor, c.self_check, c.region_model, c.region_calibration, file_hash(self.reference),
                     c.checkers, c.convention, c.llm_url, c.llm_model,
                     file_hash(c.studies), self.state.data.get("data_files"))
        if stage == "check":
            return _digest(stage, prev["draft"], check_cfg)
        if stage == "repair":
            return _digest(stage, prev["check"], check_cfg, c.backend, c.repair_keep, file_hash(repair_prompt_path(c)))
        if stage == "metrics":
            return _digest(stage, prev["check"], prev["repair"] if c.repair else None, check_cfg, c.bootstrap, c.seed)
        if stage == "report":
            from reportgen import __version__

            return _digest(stage, prev["metrics"], prev["check"], prev["repair"] if c.repair else None, check_cfg, __version__)
        raise KeyError(stage)

    def bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="study", file=sys.stderr, disable=not self.progress or not total,
                    dynamic_ncols=True, leave=False)

    # -- inputs (demo) -------------------------------------------------------------------------
    def stage_inputs(self) -> dict[str, Any]:
        import random

        from reportgen.evals.inject import Vocabulary, inject_report
        from reportgen.iu import load_iu_reports
        from reportgen.jsonl import atomic_writer, dumps

        reports = [r for r in load_iu_reports(require_text=True) if r.findings]
        rng = random.Random(self.c.seed)
        chosen = sorted(rng.sample(range(len(reports)), min(self.c.demo_n, len(reports))))
        vocab = Vocabulary.load()
        folder = self.out / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        n_inj = 0
        with atomic_writer(folder / "drafts.jsonl") as d, atomic_writer(folder / "reference.jsonl") as r:
            for k in chosen:
                rep = reports[k]
                text = rep.report.text
                inj = inject_report(rep.id, text, seed=self.c.seed, rate=self.c.demo_rate, vocab=vocab)
                n_inj += len(inj.injections)
                d.write(dumps({"id": rep.id, "report": inj.perturbed, "stand_in": STAND_IN, "indication": rep.indication,
                               "injections": [i.to_dict() for i in inj.injections]}) + "\n")
                r.write(dumps({"id": rep.id, "report": text, "indication": rep.indication}) + "\n")
        return {"summary": f"{len(chosen)} IU reports as stand-in drafts with {n_inj} injected errors (vocabulary {vocab.version})",
                "errors": 0, "studies": len(chosen), "injected": n_inj, "vocabulary": vocab.version}

    # -- draft ---------------------------------------------------------------------------------
    def stage_draft(self) -> dict[str, Any]:
        path = self.out / "drafts.jsonl"
        prev = self.state.data.get("draft_resume") or {}
        if prev.get("inputs") != self.inputs_hash("draft") and path.exists():
            path.unlink()  # inputs changed: the old drafts are not these studies' drafts
        self.state.data["draft_resume"] = {"inputs": self.inputs_hash("draft")}
        self.state.save()
        if self.c.studies:
            return self._draft_with_backend(path)
        return self._take_drafts(path)

    def _take_drafts(self, path: Path) -> dict[str, Any]:
        from reportgen.errors import with_error_code
        from reportgen.jsonl import atomic_writer, dumps, read_jsonl

        n = errors = 0
        seen: set[str] = set()
        with atomic_writer(path) as fh:
            for rec in read_jsonl(self.drafts_in, require=("id",), text_fields=()):
                n += 1
                sid = rec.fallback_id()
                if rec.error:
                    errors += 1
                    fh.write(dumps(with_error_code({"id": sid, "report": None, "error": f"E810 {rec.error}", "error_kind": "input"})) + "\n")
                    continue
                if sid in seen:
                    log.warning("%s: duplicate id %r: the later line is skipped", rec.where, sid)
                    continue
                seen.add(sid)
                data = dict(rec.data)
                report = data.get("report")
                if report is not None and not isinstance(report, str):
                    data.update({"report": None, "error": f"E810 {rec.where}: 'report' must be a string", "error_kind": "input"})
                else:
                    data.setdefault("error", None)
                    if report is None and not data["error"]:
                        data.update({"error": f"E804 {rec.where}: no draft (report is null)", "error_kind": "input"})
                errors += bool(data["error"]) or not (data.get("report") or "").strip()
                fh.write(dumps(with_error_code(data)) + "\n")
        what = "stand-in drafts" if self.c.demo else "drafts"
        return {"summary": f"{n} {what} taken from {self.drafts_in.name} ({errors} errors)", "errors": errors, "studies": n}

    def _draft_with_backend(self, path: Path) -> dict[str, Any]:
        from reportgen.backends import parse_spec
        from reportgen.backends.base import TRANSIENT_KINDS
        from reportgen.drafts import drop_records, scan_output, studies_to_draft, to_retry

        spec = parse_spec(self.c.backend)
        previous = scan_output(path)
        retry = to_retry(previous, retry_errors=False)
        if retry:
            drop_records(path, retry)
        done = set(previous) - retry
        todo = studies_to_draft(Path(self.c.studies), done, self.c.allow_outside_root)
        pending, bad, order = todo.pending, todo.bad, todo.order
        n_ok = n_err = 0
        model_info: dict[str, Any] = {}
        if self.c.engine == "ray" and pending:
            n_ok, n_err, model_info = self._draft_on_ray(path, pending, bad, order)
        else:
            n_ok, n_err, model_info = self._draft_here(path, spec, pending, bad)
        _in_input_order(path, order)
        if model_info:
            self.state.data["model"] = {**model_info, "backend": str(spec), "adapter_hash": dir_hash(model_info.get("adapter")),
                                        "model_hash": dir_hash(model_info.get("model"))}
        final = scan_output(path).values()
        total_err = sum(1 for r in final if r.get("error"))
        retry = sum(1 for r in final if r.get("error") and r.get("error_kind") in TRANSIENT_KINDS)
        return {"summary": f"{n_ok} drafted, {n_err} errors, {len(done)} already done"
                           + (f"; {retry} to retry (backend unreachable): rerun to retry them" if retry else ""),
                "errors": total_err, "retry": retry, "studies": len(order), "drafted": n_ok}

    def _draft_here(self, path: Path, spec: Any, pending: list[Any], bad: list[Any]) -> tuple[int, int, dict[str, Any]]:
        """The local engine's drafting loop (reportgen.drafts.write_drafts, as `reportgen
        draft`): (drafted, errors, model info)."""
        from reportgen.backends import get_drafter
        from reportgen.backends.base import UNAVAILABLE, DraftResult
        from reportgen.drafts import record_maker, write_drafts
        from reportgen.jsonl import AppendWriter

        model_info: dict[str, Any] = {}
        with AppendWriter(path) as writer:
            drafter = get_drafter(spec, task=self.c.task, max_new_tokens=self.c.max_new_tokens, concurrency=self.c.concurrency,
                                  batch_size=self.c.batch_size) if pending else None
            make_draft = record_maker(drafter, backend=str(spec), task=self.c.task)

            def make_record(r: DraftResult) -> dict[str, Any]:
                rec = make_draft(r)
                if r.draft is not None:
                    model_info.update({"model": rec["model"], "adapter": rec["adapter"], "prompt_version": rec["prompt_version"]})
                return rec

            for r in bad:
                writer.write(make_record(r))
            bar = self.bar(len(pending), "draft")
            try:
                tally = write_drafts(drafter, pending, writer, make_record=make_record, batch_size=self.c.batch_size,
                                     max_consecutive_failures=MAX_CONSECUTIVE_FAILURES, progress=lambda t: bar.update(1))
            finally:
                bar.close()
            n_err = len(bad) + tally.errors
            if tally.stopped is not None:  # the rest are not tried: error records, retried next run
                for st in pending:
                    if st.id not in tally.written:
                        writer.write(make_record(DraftResult(st.id, None, f"E814 not tried: the backend was unreachable for "
                                                             f"{MAX_CONSECUTIVE_FAILURES} studies in a row; rerun to retry",
                                                             UNAVAILABLE)))
                        n_err += 1
        return tally.ok, n_err, model_info

    def _draft_on_ray(self, path: Path, pending: list[Any], bad: list[Any], order: list[str]) -> tuple[int, int, dict[str, Any]]:
        """``--engine ray``: blocks of studies on Ray actors (each a drafter per backend spec;
        ray_backends spread the blocks over several servers); each finished block is
        appended at once (a rerun skips it), then drafts.jsonl is rewritten in input order."""
        from reportgen.backends import parse_spec
        from reportgen.drafts import record_maker
        from reportgen.engines.ray_engine import DraftJob
        from reportgen.jsonl import AppendWriter

        specs = (self.c.backend, *[b.strip() for b in (self.c.ray_backends or "").split(",") if b.strip()])
        drafter_options = {"task": self.c.task, "max_new_tokens": self.c.max_new_tokens, "concurrency": self.c.concurrency,
                           "batch_size": self.c.batch_size}
        make_record = functools.partial(_ray_draft_record, task=self.c.task)
        job = DraftJob(specs, drafter_options, make_record)
        counts = {"ok": 0, "err": 0}
        model_info: dict[str, Any] = {}
        bar = self.bar(len(pending), "draft")
        with AppendWriter(path) as writer:
            if bad:  # as the local engine's: a vLLM error record names the model asked for (built, never contacted)
                from contextlib import nullcontext

                from reportgen.backends import get_drafter

                first = parse_spec(specs[0])
                with get_drafter(first, **drafter_options) if first.kind == "vllm" else nullcontext() as d:
                    make_bad = record_maker(d, backend=str(first), task=self.c.task)
                    for r in bad:
                        writer.write(make_bad(r))
                        counts["err"] += 1

            def on_block(records: list[dict[str, Any]]) -> None:
                for rec in records:
                    writer.write(rec)
                    bar.update(1)
                    if rec.get("error"):
                        counts["err"] += 1
                    else:
                        counts["ok"] += 1
                        model_info.update({"model": rec["model"], "adapter": rec["adapter"], "prompt_version": rec["prompt_version"]})

            try:
                self._draft_blocks_on_ray(specs, drafter_options, make_record, job, pending, on_block)
            finally:
                bar.close()
        return counts["ok"], counts["err"], model_info

    def _draft_blocks_on_ray(self, specs: tuple[str, ...], drafter_options: dict[str, Any], make_record: Any, job: Any,
                             pending: list[Any], on_block: Callable[[list[dict[str, Any]]], None]) -> None:
        """The drafting route of ``--ray-drafter`` (reportgen.engines.ray_llm): actors with
        our drafter, ray.data.llm's HTTP request processor, or its vLLM engine processor."""
        from reportgen.backends import parse_spec
        from reportgen.engines.ray_engine import draft_studies, ray_session

        mode = self.c.ray_drafter
        kinds = {parse_spec(s).kind for s in specs}
        with ray_session(self.ray_options()) as ray:
            if mode == "auto":
                mode = "actors"
                if kinds == {"hf"} and len(specs) == 1:
                    from reportgen.engines.ray_llm import vllm_in_workers

                    if vllm_in_workers(ray)[0]:
                        mode = "vllm-engine"
            self.state.data["ray_drafter"] = mode
            if mode == "http":
                from reportgen.engines.ray_llm import HttpDraftJob, draft_studies_http

                http = HttpDraftJob(specs, drafter_options, make_record, concurrency=self.c.concurrency, qps=self.c.ray_qps,
                                    api_key_env=self.c.ray_api_key_env)
                draft_studies_http(http, pending, self.ray_options(), on_block=on_block)
            elif mode == "vllm-engine":
                from reportgen.engines.ray_llm import EngineOptions, draft_studies_vllm_engine

                if len(specs) != 1:
                    raise ReportgenError("E964", "--ray-drafter vllm-engine runs its own engine replicas: give one hf: backend and no --ray-backends",
                                         fix="scale with --ray-replicas N (and --ray-tensor-parallel T per replica)")
                engine = EngineOptions(replicas=self.c.ray_replicas, tensor_parallel=self.c.ray_tensor_parallel,
                                       pipeline_parallel=self.c.ray_pipeline_parallel, max_lora_rank=self.c.ray_max_lora_rank,
                                       max_loras=self.c.ray_max_loras)
                draft_studies_vllm_engine(specs[0], drafter_options, make_record, pending, self.ray_options(), engine, on_block=on_block)
            else:
                draft_studies(job, pending, self.ray_options(), on_block=on_block)

    # -- check ---------------------------------------------------------------------------------
    def _studies_by_id(self) -> dict[str, dict[str, Any]]:
        """Images and views per study id (from --studies, or from the drafts' records)."""
        from reportgen.jsonl import read_jsonl

        src = self.c.studies or self.drafts_in
        out: dict[str, dict[str, Any]] = {}
        if not src or not Path(src).is_file():
            return out
        base = Path(src).resolve().parent
        for rec in read_jsonl(src, require=("id",), text_fields=()):
            if rec.error or not rec.data:
                continue
            images = rec.data.get("images", rec.data.get("image")) or []
            if isinstance(images, str):
                images = [images]
            context = {k: rec.data[k] for k in ("indication", "comparison") if isinstance(rec.data.get(k), str) and rec.data[k].strip()}
            if not isinstance(images, list) or not (images or context):
                continue
            paths = [str(p if Path(p).is_absolute() else base / p) for p in images if isinstance(p, str)]
            views = rec.data.get("views") or ([rec.data["view"]] * len(paths) if rec.data.get("view") else [])
            out[rec.id] = {"images": paths, "views": views, **context}
        return out

    def _region(self):
        if not self.c.region_model:
            return None
        from reportgen.checkers.region.checker import load_region_checker

        return load_region_checker(self.c.region_model, calibration=self.c.region_calibration, device=self.c.region_device)

    def _checker(self):
        from reportgen.checkers.pipeline import Pipeline

        region = self._region()
        names = [n.strip() for n in self.c.checkers.split(",") if n.strip()]
        llm = None
        if any(n in ("llm", "cascade") for n in names):
            if not (self.c.llm_url and self.c.llm_model):
                raise ReportgenError("E801", f"run configuration: checkers {self.c.checkers!r} need llm_url and llm_model",
                                     fix="give --llm-url URL --llm-model NAME (an OpenAI-compatible endpoint)")
            from reportgen.checkers.llm_checker import LLMChecker

            llm = LLMChecker.from_endpoint(self.c.llm_url, self.c.llm_model, api_key=os.environ.get(self.c.llm_api_key_env))
        return Pipeline(extractor=self.c.extractor, checkers=names, self_check=self.c.self_check, region=region,
                        convention=self.c.convention, llm=llm), region

    def ray_options(self):
        from reportgen.engines.ray_engine import RayOptions

        return RayOptions(address=self.c.ray_address, num_cpus=self.c.ray_num_cpus, actors=self.c.ray_actors,
                          block_size=self.c.ray_block_size)

    def _references(self) -> tuple[dict[str, str], dict[str, str]]:
        from reportgen.checkers.batch import load_reference

        if self.reference is None:
            return {}, {}
        return load_reference(str(self.reference), 200_000, lambda m: log.warning("%s", m))

    def check_one(self, pipeline, region, sid: str, draft: Mapping[str, Any], refs: Mapping[str, str],
                  ref_problems: Mapping[str, str], images: Mapping[str, Any] | None) -> dict[str, Any]:
        """The verdict record of one draft (an error record when the draft failed or is empty)."""
        from reportgen.checkers.batch import CheckFailed, check_report
        from reportgen.checkers.pipeline import empty_summary

        problems: list[dict[str, str]] = []
        ref_text = refs.get(sid) if self.reference is not None else None
        ref_state = None
        if self.reference is not None and ref_text is None:
            ref_state = "invalid" if sid in ref_problems else "missing"
            problems.append({"stage": "reference", "error": ref_problems.get(sid) or f"E806 study {sid!r} has no reference report "
                             "(checked for self-consistency only; not in the metrics)"})
        report = draft.get("report")
        err = draft.get("error")
        if err or not isinstance(report, str) or not report.strip():
            msg = (f"E805 draft failed: {err}" if err and not str(err).startswith("E8") else str(err)) if err else \
                f"E804 study {sid!r}: the draft is empty"
            problems.insert(0, {"stage": "draft", "error": msg})
            rec = {"id": sid, "error": msg, "claims": [], "summary": empty_summary()}
        else:
            study = None
            if region is not None and images and images.get("images"):
                study, problem = self._region_study(sid, images)
                if problem:
                    problems.append({"stage": "image", "error": problem})
            region_error = None
            if region is not None and images and images.get("images") and study is None:
                region_error = problems[-1]["error"]
            out, result = check_report(pipeline, sid, report, ref_text, study, region_error)
            if isinstance(out, CheckFailed):  # a bug on one record must not lose the run
                msg = out.message("E808", where=f"study {sid!r}: ")
                problems.insert(0, {"stage": "check", "error": msg})
                rec = {"id": sid, "error": msg, "claims": [], "summary": empty_summary()}
            else:
                rec = out
                if region is not None and study is not None and not rec.get("error"):
                    self._region_png(region, sid, study, result, rec, problems)
                if rec.get("error"):
                    problems.insert(0, {"stage": "check", "error": rec["error"]})
        if ref_state:
            rec["summary"]["reference"] = ref_state
        elif ref_text is not None:
            rec["summary"].setdefault("reference", "given")
        if images:
            rec.update({k: images[k] for k in ("indication", "comparison") if images.get(k)})
            rec["images"] = images.get("images", [])
            if images.get("views"):
                rec["views"] = images["views"]
            missing = [p for p in rec["images"] if not Path(p).is_file()]
            said = any(p["stage"] == "image" or "E576" in p["error"] for p in problems)  # named already
            if missing and not said:
                problems.append({"stage": "image", "error": f"E807 study {sid!r}: image {missing[0]!r} not found"})
        for k in ("stand_in", "injections", "model", "adapter", "prompt_version", "backend"):
            if draft.get(k) is not None:
                rec.setdefault("draft", {})[k] = draft[k]
        from reportgen.errors import error_code, with_error_code

        rec["problems"] = [{**p, "code": error_code(p["error"])} for p in problems]
        return with_error_code(rec)

    def _region_png(self, region, sid: str, study, result, rec: dict[str, Any], problems: list[dict[str, str]]) -> None:
        """The study's region map (each flagged claim's similarity map) as regions/<id>.png."""
        from reportgen.checkers.batch import png_name, render_region_png, write_png

        folder = self.out / "regions"
        folder.mkdir(exist_ok=True)
        name = png_name(sid, self._png_names, 0)
        try:
            write_png(folder / name, render_region_png(region, result, study, sid))
            rec["region_png"] = f"regions/{name}"
        except Exception as e:  # the verdicts are kept; the page says why there is no map
            msg = str(e) if isinstance(e, ReportgenError) else f"{type(e).__name__}: {e}"
            problems.append({"stage": "image", "error": f"E807 study {sid!r}: the region map could not be drawn: {msg}"})

    def _region_study(self, sid: str, images: Mapping[str, Any]):
        from reportgen.types import Study

        paths = images.get("images") or []
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            return None, f"E807 study {sid!r}: image {missing[0]!r} not found"
        views = images.get("views") or []
        try:
            return Study(sid, images=tuple(paths), views=tuple(views) if len(views) == len(paths) else ()), None
        except ReportgenError as e:
            return None, f"E807 study {sid!r}: {e}"

    def stage_check(self) -> dict[str, Any]:
        from reportgen.checkers.pipeline import batch_gc
        from reportgen.drafts import scan_output
        from reportgen.jsonl import atomic_writer, dumps

        drafts = scan_output(self.out / "drafts.jsonl")
        refs, ref_problems = self._references()
        images = self._studies_by_id()
        pipeline, region = self._checker()
        counts = {s: 0 for s in STATUSES}
        per_stage: dict[str, int] = {}
        bar = self.bar(len(drafts), "check")
        if self.c.engine == "ray":  # the same check_one on Ray actors, records back in input order
            from reportgen.engines.ray_engine import map_rows

            rows = [{"sid": sid, "draft": draft, "images": images.get(sid)} for sid, draft in drafts.items()]
            records = map_rows(rows, functools.partial(_ray_check_fn, self.c.to_dict(), str(self.out)), self.ray_options())
        else:
            records = (self.check_one(pipeline, region, sid, draft, refs, ref_problems, images.get(sid)) for sid, draft in drafts.items())
        with batch_gc(), atomic_writer(self.out / "verdicts.jsonl") as fh:
            for rec in records:
                for p in rec["problems"]:
                    per_stage[p["stage"]] = per_stage.get(p["stage"], 0) + 1
                for s in STATUSES:
                    counts[s] += rec["summary"].get(s, 0)
                fh.write(dumps(rec) + "\n")
                bar.update(1)
        bar.close()
        missing_refs = sorted(set(refs) - set(drafts))
        errors = sum(per_stage.values())
        claims = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        return {"summary": f"{len(drafts)} studies checked; claims: {claims or 'none'}; {errors} problems",
                "errors": errors, "problems_by_stage": per_stage, "claims": counts, "studies": len(drafts),
                "references_without_draft": missing_refs[:100]}

    # -- repair --------------------------------------------------------------------------------
    def stage_repair(self) -> dict[str, Any]:
        from reportgen.backends import get_drafter, parse_spec
        from reportgen.backends.base import iter_results
        from reportgen.drafts import load_studies, scan_output
        from reportgen.jsonl import atomic_writer, dumps

        verdicts = scan_output(self.out / "verdicts.jsonl")
        flagged = {sid: v for sid, v in verdicts.items() if not v.get("error") and v["summary"].get("contradicted", 0) + v["summary"].get("unsupported", 0)}
        studies = {sid: st for sid, st, _, _ in load_studies(Path(self.c.studies), self.c.allow_outside_root) if st is not None and sid in flagged}
        prompt = repair_prompt_path(self.c)
        if not prompt.is_file():
            raise ReportgenError("E813", f"repair prompt {str(prompt)!r} does not exist", fix="give repair_prompt a prompt template JSON")
        todo = [dataclasses.replace(studies[sid], meta={**studies[sid].meta, "repair": repair_notes(flagged[sid])})
                for sid in flagged if sid in studies]
        out_path = self.out / "repair.jsonl"
        refs, ref_problems = self._references()
        images = self._studies_by_id()
        pipeline, region = self._checker()
        n_err = 0
        with atomic_writer(out_path) as fh:
            drafter = get_drafter(parse_spec(self.c.backend), task=self.c.task, max_new_tokens=self.c.max_new_tokens,
                                  concurrency=self.c.concurrency, batch_size=self.c.batch_size, template=str(prompt)) if todo else None
            bar = self.bar(len(todo), "repair")
            try:
                for r in (iter_results(drafter, todo, batch_size=self.c.batch_size) if drafter else ()):
                    d = r.draft
                    draft = {"id": r.study_id, "report": d.report if d else None, "error": r.error,
                             "model": d.model if d else None, "adapter": d.adapter if d else None,
                             "prompt_version": d.prompt_version if d else None}
                    rec = self.check_one(pipeline, region, r.study_id, draft, refs, ref_problems, images.get(r.study_id))
                    before, after = flagged[r.study_id]["summary"], rec["summary"]
                    nb = before.get("contradicted", 0) + before.get("unsupported", 0)
                    na = after.get("contradicted", 0) + after.get("unsupported", 0) if not rec.get("error") else None
                    better = na is not None and na < nb
                    kept = "repaired" if self.c.repair_keep == "better" and better else "original"
                    if self.c.repair_keep == "both":
                        kept = "both"
                    n_err += bool(rec.get("error"))
                    fh.write(dumps({"id": r.study_id, "report": draft["report"], "error": draft["error"],
                                    "prompt_version": draft["prompt_version"], "flagged_before": nb, "flagged_after": na,
                                    "kept": kept, "verdicts": rec}) + "\n")
                    bar.update(1)
            finally:
                bar.close()
                if drafter is not None and hasattr(drafter, "close"):
                    drafter.close()
        return {"summary": f"{len(todo)} flagged drafts redrafted once ({n_err} errors)", "errors": n_err,
                "redrafted": len(todo), "prompt": str(prompt), "prompt_hash": file_hash(prompt)}

    # -- metrics -------------------------------------------------------------------------------
    def stage_metrics(self) -> dict[str, Any]:
        from reportgen.drafts import scan_output
        from reportgen.jsonl import atomic_writer

        verdicts = scan_output(self.out / "verdicts.jsonl")
        drafts = scan_output(self.out / "drafts.jsonl")
        refs, _ = self._references()
        m = compute_metrics(verdicts, drafts, refs, bootstrap=self.c.bootstrap, seed=self.c.seed, extractor=self.c.extractor,
                            self_check=self.c.self_check)
        if self.c.repair and (self.out / "repair.jsonl").is_file():
            repaired = scan_output(self.out / "repair.jsonl")
            after_drafts = dict(drafts)
            after_verdicts = dict(verdicts)
            for sid, r in repaired.items():
                if r.get("kept") in ("both", "repaired") and r.get("report"):
                    after_drafts[sid] = {"id": sid, "report": r["report"], "error": r.get("error")}
                    after_verdicts[sid] = r["verdicts"]
            after = compute_metrics(after_verdicts, after_drafts, refs, bootstrap=self.c.bootstrap, seed=self.c.seed,
                                    extractor=self.c.extractor, self_check=self.c.self_check, per_study=False)
            m["repair"] = {"redrafted": len(repaired), "keep": self.c.repair_keep,
                           "before": {k: m[k] for k in ("claims", "corpus") if k in m},
                           "after": {k: after[k] for k in ("claims", "corpus") if k in after}}
        with atomic_writer(self.out / "metrics.json") as fh:
            json.dump(m, fh, indent=1, ensure_ascii=False, allow_nan=False)
            fh.write("\n")
        hr = (m.get("corpus") or {}).get("hallucination_rate", {}).get("estimate")
        tail = f"; hallucination rate {hr:.3f}" if isinstance(hr, float) else ""
        return {"summary": f"{m['n_scored']} of {m['n_with_reference']} studies with a reference scored, "
                           f"{len(m['failed'])} failed drafts{tail}", "errors": len(m["failed"])}

    # -- report --------------------------------------------------------------------------------
    def stage_report(self) -> dict[str, Any]:
        from reportgen.drafts import scan_output
        from reportgen.evals.run_html import write_report

        verdicts = list(scan_output(self.out / "verdicts.jsonl").values())
        refs, _ = self._references()
        metrics = json.loads((self.out / "metrics.json").read_text(encoding="utf-8"))
        repaired = scan_output(self.out / "repair.jsonl") if self.c.repair else {}
        drafts = scan_output(self.out / "drafts.jsonl")
        n, errors = write_report(self.out / "report", verdicts, refs, metrics, run=self.state.data, repaired=repaired,
                                 title=self.c.title, stand_in=self.c.demo, drafts=drafts)
        return {"summary": f"{n} study pages + index -> {self.out / 'report' / 'index.html'}", "errors": 0, "pages": n,
                "problems_shown": errors}


def _ray_check_fn(config: Mapping[str, Any], out: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The check stage's per-study function, built once in each Ray actor (``--engine ray``):
    the same pipeline and ``check_one`` as the local engine, so the records are the same."""
    cfg = RunConfig(**config)
    ctx = _Context(cfg, Path(out), RunState(Path(out), cfg), False, lambda msg: None)
    pipeline, region = ctx._checker()
    refs, ref_problems = ctx._references()
    return lambda row: ctx.check_one(pipeline, region, row["sid"], row["draft"], refs, ref_problems, row["images"])


def _in_input_order(path: Path, order: Sequence[str]) -> None:
    """Rewrite the drafts in the studies' input order (atomically): drafts are appended as
    they finish, in an order that depends on the server and the engine; the files a run
    leaves, and so its verdicts, do not."""
    from reportgen.drafts import scan_output
    from reportgen.jsonl import atomic_writer, dumps

    by_id = scan_output(path)
    if list(by_id) == [sid for sid in order if sid in by_id] and len(by_id) == sum(1 for _ in path.open("rb")):
        return  # already in order, one line per id
    with atomic_writer(path) as fh:
        for sid in order:
            if sid in by_id:
                fh.write(dumps(by_id.pop(sid)) + "\n")
        for rec in by_id.values():
            fh.write(dumps(rec) + "\n")


def _ray_draft_record(result: Any, drafter: Any, spec: str, *, task: str) -> dict[str, Any]:
    """A draft record built in a Ray actor, by the local engine's record builder."""
    from reportgen.backends import parse_spec
    from reportgen.drafts import record_maker

    return record_maker(drafter, backend=str(parse_spec(spec)), task=task)(result)


def repair_notes(verdict: Mapping[str, Any]) -> str:
    """The flagged sentences of a verdict record and their evidence, for the repair prompt."""
    lines = []
    for c in verdict.get("claims") or []:
        if c.get("status") not in FLAGGED:
            continue
        ev = [e for v in c.get("verdicts") or [] for e in v.get("evidence") or []]
        reason = (c.get("reasons") or [""])[0]
        line = f"- {c.get('text')!s} ({c.get('status')}): {reason}"
        if ev:
            line += f" Evidence: {'; '.join(map(str, ev[:3]))}"
        lines.append(line)
    return "\n".join(lines)


# -- metrics -----------------------------------------------------------------------------------

def compute_metrics(verdicts: Mapping[str, Mapping[str, Any]], drafts: Mapping[str, Mapping[str, Any]],
                    refs: Mapping[str, str], *, bootstrap: int = 1000, seed: int = 0, extractor: str = "rules",
                    self_check: bool = True, per_study: bool = True) -> dict[str, Any]:
    """metrics.json: claim status counts over every draft, the eval suite's figures with CIs
    over the studies with a reference, and failed drafts listed and scored as failures."""
    import numpy as np

    from reportgen.evals.metrics import bootstrap as bs
    from reportgen.evals.suite import Suite

    claims = {s: 0 for s in STATUSES}
    flagged_studies = 0
    for v in verdicts.values():
        for s in STATUSES:
            claims[s] += (v.get("summary") or {}).get(s, 0)
        flagged_studies += bool((v.get("summary") or {}).get("contradicted", 0) + (v.get("summary") or {}).get("unsupported", 0))
    failed: list[dict[str, str]] = []
    pairs: list[tuple[str, str, str]] = []
    for sid, v in verdicts.items():
        if sid not in refs:
            continue
        report = (drafts.get(sid) or {}).get("report")
        if v.get("error") or not isinstance(report, str) or not report.strip():
            failed.append({"id": sid, "error": str(v.get("error") or "E804 empty draft")})
        else:
            pairs.append((sid, report, refs[sid]))
    out: dict[str, Any] = {
        "version": 1,
        "settings": {"extractor": extractor, "bootstrap": bootstrap, "seed": seed, "entailment": "graph", "self_check": self_check},
        "n_studies": len(verdicts), "n_with_reference": len(pairs) + len(failed), "n_scored": 0,
        "claims": claims, "studies_flagged": flagged_studies, "failed": failed,
    }
    if not pairs:
        if failed:  # every draft with a reference failed: each scores 0
            out["corpus_with_failures"] = {**{k: {"estimate": 0.0} for k in FAILURE_SCORED}, "draft_failure_rate": {"estimate": 1.0}}
        return json_safe(out)
    res = Suite(extractor, self_check=self_check).evaluate(pairs, n_bootstrap=bootstrap, seed=seed)
    rows = [r.row() for r in res.results]
    for r in rows:  # a pair the suite could not score is a failure too
        if r.get("error"):
            failed.append({"id": r["id"], "error": str(r["error"])})
    out["n_scored"] = len(res.scored)
    out["corpus"] = {k: v.to_dict() for k, v in res.corpus.items()}
    # failures count: every study with a reference, a failed draft scoring 0
    by_id = {r["id"]: r for r in rows if not r.get("error")}
    ids = [sid for sid in verdicts if sid in refs]
    with_failures = {}
    if ids:
        idx = bs.resample_indices(len(ids), bootstrap, seed) if bootstrap else None
        for key in FAILURE_SCORED:
            vals = np.array([float(by_id[i][key]) if i in by_id and by_id[i].get(key) is not None else
                             (0.0 if i not in by_id else float("nan")) for i in ids])
            if idx is not None:
                with_failures[key] = bs.bootstrap_mean(vals, indices=idx, seed=seed).to_dict()
            else:
                with_failures[key] = {"estimate": float(np.nanmean(vals)) if vals.size else None}
        with_failures["draft_failure_rate"] = {"estimate": len(failed) / len(ids)}
    out["corpus_with_failures"] = with_failures
    out["chexpert"] = {"per_label_f1": res.chexpert_per_label}
    out["green_totals"] = res.green_totals
    out["timings_s"] = {k: round(v, 4) for k, v in res.timings.items()}
    if per_study:
        out["per_study"] = rows
    return json_safe(out)
