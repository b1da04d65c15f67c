"""The Ray engine: the checking stage spread over Ray Data actors.

    reportgen check --reports R.jsonl --out V.jsonl --engine ray [--ray-address ADDR] [--ray-actors 2]

How it works (no scheduler of our own: Ray Data schedules, retries and restarts):
- The driver cuts the input file into blocks of ``block_size`` lines (byte ranges: only
  offsets travel, each actor reads its own lines from the file, so the input must be on a
  path every node sees, as for any Ray Data file input).
- ``map_batches`` runs a pool of ``actors`` checker actors; each builds its Pipeline once
  (one lexicon load per actor) and turns one block into one shard file of output records,
  written atomically (a temporary file renamed into place), so a shard is either whole or
  absent.
- When every block has its shard, the driver concatenates the shards in input order into
  the output (atomically) and removes them. The records are built by the same
  ``RecordChecker`` as the local engine, so the merged file equals the local engine's
  output byte for byte.
- Killed or failed workers: Ray restarts the actor and retries the block; if the run
  itself dies, the shards already written stay, and a rerun of the same command does only
  the blocks without a shard (a plan file beside the shards records the input, the block
  size and the job's settings; when any of them changed the old shards are discarded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from reportgen.errors import BackendUnavailable, ReportgenError
from reportgen.jsonl import MAX_RECORD_CHARS, atomic_writer, dumps, read_jsonl_block
from reportgen.types import VERDICT_STATUSES

log = logging.getLogger(__name__)

PLAN_VERSION = 1
_FIX_RAY = "pip install 'reportgen-cxr[ray]' (ray[data] with aiohttp), or use --engine local"


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise BackendUnavailable("E950", f"the ray engine needs Ray Data ({e})", fix=_FIX_RAY) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    ``address``: None starts a local Ray (``num_cpus`` caps it); "auto" or
    "ray://HOST:PORT" joins a running cluster. ``actors``: checker actors (one CPU each,
    or ``gpus_per_actor`` GPUs for region checking). ``block_size``: input lines per block,
    the unit of retry and of the shard files. ``max_retries``: how often a block whose
    worker died is retried (on a restarted actor) before the run stops; the shards written
    so far stay for a rerun (Ray Data's own default retries forever)."""

    address: str | None = None
    num_cpus: int | None = None
    actors: int = 2
    block_size: int = 512
    gpus_per_actor: float = 0.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        for name, low in (("actors", 1), ("block_size", 1), ("max_retries", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ReportgenError("E951", f"ray option {name} must be an integer >= {low}, got {value!r}")
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int) or self.num_cpus < 1):
            raise ReportgenError("E951", f"ray option num_cpus must be a positive integer, got {self.num_cpus!r}")
        if self.num_cpus is not None and self.address:
            raise ReportgenError("E951", "num_cpus applies to a local Ray only, not with an address",
                                 fix="size the cluster with `ray start --num-cpus N` on each node")
        if not isinstance(self.gpus_per_actor, (int, float)) or self.gpus_per_actor < 0:
            raise ReportgenError("E951", f"ray option gpus_per_actor must be >= 0, got {self.gpus_per_actor!r}")


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Ray initialised for this run: a local Ray started (and shut down) here, or the
    cluster at ``options.address`` joined (and left)."""
    ray = _ray()
    if ray.is_initialized():  # the caller's Ray (a notebook, a test): use it, leave it running
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if options.address:
        kwargs["address"] = options.address
    elif options.num_cpus is not None:
        kwargs["num_cpus"] = options.num_cpus
    # Ray's own progress and advice lines (counts and tips, never records) would drown the
    # command's output; errors still show. RAY_BACKEND_LOG_LEVEL quiets its C++ core.
    logging.getLogger("ray").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    warnings.filterwarnings("ignore", module=r"ray(\.|$)")
    try:
        ray.init(**kwargs)
    except Exception as e:  # noqa: BLE001 - any start/connect failure is one clear error
        where = f"the Ray cluster at {options.address!r}" if options.address else "a local Ray"
        raise BackendUnavailable("E952", f"could not start or join {where}: {type(e).__name__}: {e}",
                                 fix="check `ray status` on the head node, or run without --ray-address to start a local Ray") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _on_actors(ray: Any, items: list[dict[str, Any]], actor: type, args: tuple[Any, ...], options: RayOptions,
               gpus: float = 0.0) -> Any:
    """The one Ray Data plan every stage uses: ``items`` (one per block) through a pool of
    ``options.actors`` actors (``actor(*args)``, one CPU each, ``gpus`` GPUs), a block per
    call, dead actors restarted and their block retried at most ``options.max_retries`` times."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's init configures its loggers anew
    remote: dict[str, Any] = {"num_cpus": 1, "max_restarts": options.max_retries, "max_task_retries": options.max_retries}
    if gpus:
        remote["num_gpus"] = gpus
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    return ds.map_batches(actor, fn_constructor_args=args, batch_size=1,
                          compute=ray.data.ActorPoolStrategy(size=min(options.actors, len(items))), **remote)


# --- blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Lines [first_line, first_line + lines) of the input: bytes [start, end)."""

    index: int
    start: int
    end: int
    first_line: int
    lines: int


def plan_blocks(path: str | os.PathLike[str], block_size: int) -> list[Block]:
    """Cut ``path`` into blocks of ``block_size`` non-blank lines (byte offsets only)."""
    blocks: list[Block] = []
    start = pos = 0
    first = lineno = 1
    n = 0
    with Path(path).open("rb") as fh:
        for raw in fh:
            if raw.strip():
                n += 1
            pos += len(raw)
            lineno += 1
            if n == block_size:
                blocks.append(Block(len(blocks), start, pos, first, lineno - first))
                start, first, n = pos, lineno, 0
    if pos > start:
        blocks.append(Block(len(blocks), start, pos, first, lineno - first))
    return blocks


def _file_fingerprint(path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    if path is None:
        return None
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


# --- the checking job ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckJob:
    """Everything a checker actor needs (pickled to the workers).

    ``pipeline_factory``: a picklable callable returning the Pipeline (e.g.
    ``functools.partial(Pipeline, extractor="rules", self_check=True)``); it runs once per
    actor. ``settings``: what the output depends on besides the files (recorded in the
    shard plan, so changed settings never mix with old shards)."""

    reports: str
    pipeline_factory: Callable[[], Any]
    reference: str | None = None
    max_chars: int = MAX_RECORD_CHARS
    base: str = "."
    settings: Mapping[str, Any] = field(default_factory=dict)
    png_dir: str | None = None  # --region-png-dir: each actor writes the study PNGs there (records name them)
    allow_outside_root: bool = False
    page_pngs: str | None = None  # "all" | "flagged": draw each checked study's region map for the HTML page (kept beside the shard)


def check_pipeline(spec: Mapping[str, Any]) -> Any:
    """The local engine's Pipeline from the check command's settings (``spec``: extractor,
    self_check, checkers, convention, claim_splitter, region_* and llm_*), built in each Ray
    checker actor: one lexicon load, one region model load, one LLM client per actor."""
    from reportgen.checkers.pipeline import Pipeline

    region = None
    if spec.get("region_model"):
        from reportgen.checkers.region.checker import load_region_checker

        seg = spec.get("region_segmenter")
        region = load_region_checker(spec["region_model"], pretrained=spec.get("region_pretrained"), device=spec.get("region_device"),
                                     calibration=spec.get("region_calibration"), segmenter=None if seg in (None, "none") else seg)
    llm = None
    if spec.get("llm_url"):
        from reportgen.checkers.llm_checker import LLMChecker

        llm = LLMChecker.from_endpoint(spec["llm_url"], spec["llm_model"], api_key=os.environ.get(spec.get("llm_api_key_env") or "OPENAI_API_KEY"),
                                       timeout=spec["llm_timeout"], max_retries=spec["llm_retries"], structured=spec["llm_structured"],
                                       max_concurrency=spec["llm_concurrency"], batch_size=spec["llm_batch_size"])
    return Pipeline(extractor=spec["extractor"], checkers=list(spec["checkers"]), self_check=spec["self_check"], region=region,
                    convention=spec["convention"], llm=llm, splitter=spec["claim_splitter"])


class _CheckActor:
    """One Ray actor: a Pipeline and a RecordChecker, turning blocks into shard files."""

    def __init__(self, job: CheckJob, shard_dir: str):
        from reportgen.checkers.batch import INPUT_KEYS, RecordChecker, load_reference

        self.job = job
        self.shard_dir = Path(shard_dir)
        self.input_keys = INPUT_KEYS
        refs, problems = (load_reference(job.reference, job.max_chars) if job.reference else (None, None))
        self.checker = RecordChecker(job.pipeline_factory(), references=refs, reference_problems=problems, base=job.base,
                                     png_dir=job.png_dir, allow_outside_root=job.allow_outside_root)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[int]]:
        done_blocks: list[int] = []
        for i in range(len(batch["index"])):
            index = int(batch["index"][i])
            records = read_jsonl_block(
                self.job.reports, int(batch["start"][i]), int(batch["end"][i]), int(batch["first_line"][i]),
                require=self.input_keys, text_fields=("report",), max_chars=self.job.max_chars,
            )
            checked = [self.checker.check(rec) for rec in records]
            if self.job.page_pngs:  # the pictures first: a shard that exists has its pictures
                self._draw(index, checked)
            with atomic_writer(shard_path(self.shard_dir, index)) as fh:
                for c in checked:
                    fh.write(dumps(c.record) + "\n")
            done_blocks.append(index)
        return {"block": done_blocks}

    def _draw(self, index: int, checked: Sequence[Any]) -> None:
        """The HTML page's region map of each checked study (as the local engine draws it
        when no --region-png-dir is given), one PNG (or the problem) per record, beside the shard."""
        from reportgen.evals.check_html import is_flagged

        folder = png_folder(self.shard_dir, index)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for n, c in enumerate(checked):
            out = c.record
            if self.checker.png_dir is not None or out.get("summary", {}).get("region") != "checked" or c.result is None:
                continue
            if self.job.page_pngs == "flagged" and not is_flagged(out):
                continue
            try:
                png = self.checker.render_png(c.result, c.study, out["id"])
            except Exception as e:  # noqa: BLE001 - the page says why there is no picture
                msg = str(e) if isinstance(e, ReportgenError) else f"{type(e).__name__}: {e}"
                (folder / f"{n}.txt").write_text(f"E708 the region map could not be drawn: {msg}", encoding="utf-8")
                continue
            (folder / f"{n}.png").write_bytes(png)


def png_folder(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"{index:08d}.pngs"


def shard_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"{index:08d}.jsonl"


def default_shard_dir(out: str | os.PathLike[str]) -> Path:
    o = Path(out)
    return o.with_name(f".{o.name}.shards")


def _plan_key(job: CheckJob, options: RayOptions, blocks: Sequence[Block]) -> dict[str, Any]:
    edges = hashlib.sha256(json.dumps([(b.start, b.end) for b in blocks]).encode()).hexdigest()[:16]
    return {
        "version": PLAN_VERSION, "reports": _file_fingerprint(job.reports), "reference": _file_fingerprint(job.reference),
        "block_size": options.block_size, "blocks": len(blocks), "edges": edges, "max_chars": job.max_chars,
        "settings": json.loads(json.dumps(job.settings, default=str)),
    }


def _prepare_shards(shard_dir: Path, plan: dict[str, Any]) -> None:
    """Keep the shards of an earlier, interrupted run of the same job; discard others."""
    plan_file = shard_dir / "plan.json"
    if shard_dir.exists():
        try:
            same = json.loads(plan_file.read_text(encoding="utf-8")) == plan
        except (OSError, ValueError):
            same = False
        if same:
            return
        log.warning("ray engine: discarding the shards in %s (they belong to another input or settings)", shard_dir)
        shutil.rmtree(shard_dir)
    shard_dir.mkdir(parents=True)
    with atomic_writer(plan_file) as fh:
        fh.write(json.dumps(plan, indent=1) + "\n")


@dataclass
class CheckRun:
    """What a Ray check did: counts over the merged output and where it went."""

    out: str
    records: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: {k: 0 for k in VERDICT_STATUSES})
    missing_reference: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    blocks: int = 0
    blocks_resumed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_file(
    job: CheckJob,
    out: str | os.PathLike[str],
    options: RayOptions = RayOptions(),
    *,
    shard_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_record: Callable[[dict[str, Any], bytes | None, str | None], None] | None = None,
) -> CheckRun:
    """Check every line of ``job.reports`` on Ray and write ``out`` (the same file the local
    engine writes). ``progress(done_blocks, all_blocks)`` is called as blocks finish;
    ``on_record(record, png, png_problem)`` for every merged record in input order (the
    HTML page and the table are rendered from it; ``png`` when ``job.page_pngs``)."""
    started = time.perf_counter()
    if not Path(job.reports).is_file():
        raise ReportgenError("E101", f"input file {job.reports!r} does not exist", fix="check the path")
    shards = Path(shard_dir) if shard_dir is not None else default_shard_dir(out)
    blocks = plan_blocks(job.reports, options.block_size)
    _prepare_shards(shards, _plan_key(job, options, blocks))
    todo = [b for b in blocks if not shard_path(shards, b.index).exists()]
    run = CheckRun(out=str(out), blocks=len(blocks), blocks_resumed=len(blocks) - len(todo))
    if progress:
        progress(run.blocks_resumed, len(blocks))
    if todo:
        with ray_session(options) as ray:
            rows = [{"index": b.index, "start": b.start, "end": b.end, "first_line": b.first_line} for b in todo]
            if options.gpus_per_actor and not ray.cluster_resources().get("GPU"):
                raise ReportgenError("E966", f"checker actors asked for {options.gpus_per_actor} GPU(s) each but the Ray cluster has no GPU",
                                     fix="use --region-device cpu (CPU actors), or join a cluster with GPU nodes (--ray-address)")
            ds = _on_actors(ray, rows, _CheckActor, (job, str(shards)), options, options.gpus_per_actor)
            finished = run.blocks_resumed
            try:
                for _ in ds.iter_rows():
                    finished += 1
                    if progress:
                        progress(finished, len(blocks))
            except Exception as e:  # noqa: BLE001 - Ray's error says which worker; ours says what to do
                kept = sum(1 for b in blocks if shard_path(shards, b.index).exists())
                raise ReportgenError(
                    "E955", f"the ray run stopped ({type(e).__name__}) after {options.max_retries} retries of a failing block; "
                    f"{kept} of {len(blocks)} blocks are done and kept in {shards}",
                    fix="see the Ray worker logs for the cause, then rerun the same command: only the missing blocks are done",
                ) from None
    missing = [b.index for b in blocks if not shard_path(shards, b.index).exists()]
    if missing:  # Ray said done but a shard is absent: never write a partial output
        raise ReportgenError("E953", f"{len(missing)} block(s) of {job.reports!r} have no result (first: block {missing[0]})",
                             fix="rerun the same command: finished blocks are kept and only the missing ones are done")
    _merge(shards, blocks, out, run, on_record)
    shutil.rmtree(shards, ignore_errors=True)
    run.seconds = round(time.perf_counter() - started, 3)
    return run


def _merge(shards: Path, blocks: Sequence[Block], out: str | os.PathLike[str], run: CheckRun,
           on_record: Callable[[dict[str, Any], bytes | None, str | None], None] | None = None) -> None:
    """Concatenate the shards in input order into ``out`` (atomically), counting as we go."""
    seen: set[str] = set()
    with atomic_writer(out) as dst:
        for b in blocks:
            pngs = png_folder(shards, b.index)
            with shard_path(shards, b.index).open("r", encoding="utf-8") as src:
                for n, line in enumerate(src):
                    dst.write(line)
                    rec = json.loads(line)
                    if on_record is not None:
                        png_file, problem_file = pngs / f"{n}.png", pngs / f"{n}.txt"
                        on_record(rec, png_file.read_bytes() if png_file.is_file() else None,
                                  problem_file.read_text(encoding="utf-8") if problem_file.is_file() else None)
                    run.records += 1
                    rid = rec.get("id")
                    if isinstance(rid, str):
                        if rid in seen and not rid.startswith("line:"):
                            run.duplicates.append(rid)
                        seen.add(rid)
                    if rec.get("error"):
                        run.errors += 1
                    summary = rec.get("summary") or {}
                    for k in VERDICT_STATUSES:
                        run.statuses[k] += int(summary.get(k, 0) or 0)
                    if summary.get("reference") in ("missing", "invalid"):
                        run.missing_reference.append(rid)





# --- the drafting job ----------------------------------------------------------------


@dataclass(frozen=True)
class DraftJob:
    """What a drafting actor needs (pickled to the workers).

    ``backends``: one or more backend specs (``vllm:URL?model=NAME``, ...); block k is
    drafted through ``backends[k % len(backends)]``, so several ``reportgen serve``
    instances share the load. ``drafter_options``: keyword options of ``get_drafter``
    (task, max_new_tokens, concurrency, ...). ``make_record``: a picklable
    ``(DraftResult, drafter, spec) -> record`` builder, the local engine's, so the records
    have the same shape whichever engine drafted them."""

    backends: tuple[str, ...]
    drafter_options: Mapping[str, Any]
    make_record: Callable[[Any, Any, str], dict[str, Any]]

    def __post_init__(self) -> None:
        if not self.backends:
            raise ReportgenError("E951", "the ray drafting job needs at least one backend")


class _DraftActor:
    """One Ray actor: a drafter per backend spec, drafting one block of studies per call."""

    def __init__(self, job: DraftJob):
        self.job = job
        self.drafters: dict[str, Any] = {}

    def _drafter(self, spec: str) -> Any:
        if spec not in self.drafters:
            from reportgen.backends import get_drafter, parse_spec

            self.drafters[spec] = get_drafter(parse_spec(spec), **dict(self.job.drafter_options))
        return self.drafters[spec]

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        from reportgen.backends.base import iter_results
        from reportgen.types import Study

        blocks, outputs = [], []
        for i in range(len(batch["block"])):
            block = int(batch["block"][i])
            studies = [Study.from_dict(d) for d in json.loads(batch["studies"][i])]
            spec = self.job.backends[block % len(self.job.backends)]
            drafter = self._drafter(spec)
            rank = {s.id: k for k, s in enumerate(studies)}
            results = sorted(iter_results(drafter, studies), key=lambda r: rank.get(r.study_id, len(rank)))  # input order
            records = [self.job.make_record(r, drafter, spec) for r in results]
            blocks.append(block)
            outputs.append(json.dumps(records))
        return {"block": blocks, "records": outputs}


def draft_studies(
    job: DraftJob,
    studies: Sequence[Any],
    options: RayOptions = RayOptions(),
    *,
    on_block: Callable[[list[dict[str, Any]]], None],
) -> int:
    """Draft ``studies`` (reportgen.types.Study) on Ray; ``on_block(records)`` receives each
    finished block's draft records (in the block's input order) as soon as it is done, so
    the caller appends them to its output and a rerun skips them. Returns the number of
    blocks. A worker that dies is restarted and its block redone (its records were not
    handed over yet, so nothing is written twice)."""
    if not studies:
        return 0
    size = options.block_size
    rows = [{"block": k, "studies": json.dumps([s.to_dict() for s in studies[i : i + size]])}
            for k, i in enumerate(range(0, len(studies), size))]
    with ray_session(options) as ray:
        ds = _on_actors(ray, rows, _DraftActor, (job,), options)
        try:
            for row in ds.iter_rows():
                on_block(json.loads(row["records"]))
        except Exception as e:  # noqa: BLE001 - Ray's error names the worker; ours what to do
            raise ReportgenError(
                "E955", f"the ray drafting run stopped ({type(e).__name__}) after {options.max_retries} retries of a failing block; "
                "the drafts handed over so far are kept",
                fix="read the Ray worker logs for the cause, fix it, and rerun the same command: finished drafts are skipped",
            ) from None
    return len(rows)


# --- any per-record stage ------------------------------------------------------------


class _MapActor:
    """One Ray actor: ``fn = make_fn()`` built once (a pipeline, a lexicon), then applied to
    each row of a block."""

    def __init__(self, make_fn: Callable[[], Callable[[Any], Any]]):
        self.fn = make_fn()

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        blocks, outputs = [], []
        for i in range(len(batch["block"])):
            rows = json.loads(batch["rows"][i])
            blocks.append(int(batch["block"][i]))
            outputs.append(json.dumps([self.fn(row) for row in rows], ensure_ascii=False))
        return {"block": blocks, "results": outputs}


def map_rows(
    rows: Sequence[Any],
    make_fn: Callable[[], Callable[[Any], Any]],
    options: RayOptions = RayOptions(),
) -> Iterator[Any]:
    """``make_fn()(row)`` for every row (JSON values in and out), on Ray actors, yielded in
    input order (blocks are reordered as they finish). ``make_fn`` is picklable and runs
    once per actor. Used by ``reportgen run --engine ray`` for its check stage."""
    if not rows:
        return
    size = options.block_size
    items = [{"block": k, "rows": json.dumps(list(rows[i : i + size]), ensure_ascii=False)}
             for k, i in enumerate(range(0, len(rows), size))]
    with ray_session(options) as ray:
        ds = _on_actors(ray, items, _MapActor, (make_fn,), options)
        waiting: dict[int, list[Any]] = {}
        next_block = 0
        try:
            for row in ds.iter_rows():
                waiting[int(row["block"])] = json.loads(row["results"])
                while next_block in waiting:
                    yield from waiting.pop(next_block)
                    next_block += 1
        except ReportgenError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ReportgenError(
                "E955", f"the ray run stopped ({type(e).__name__}) after {options.max_retries} retries of a failing block",
                fix="read the Ray worker logs for the cause, fix it, and rerun the same command",
            ) from None

__all__ = ["Block", "CheckJob", "CheckRun", "DraftJob", "RayOptions", "check_file", "check_pipeline", "default_shard_dir", "draft_studies",
           "map_rows", "plan_blocks", "ray_session"]
