"""`reportgen check`: check every claim of reports (JSONL) against a reference and itself.

Input records ``{"id": str, "report": str, ...}``; the optional reference file has the same
shape and is matched by ``id``. One output record per input line, built by
``reportgen.checkers.batch.RecordChecker`` (the same function Python users call; the JSONL
contract of ``reportgen.checkers.pipeline.ReportResult.to_record``); this module parses the
arguments, calls it and reports. Extra input keys are passed through. Bad
lines (malformed JSON, non-UTF-8 bytes, a missing id, an empty or oversized report) give
an error record ``{"id": <id or "line:N">, "error": "<file:line: code problem>",
"error_code": "E103", "claims": [], "summary": {...}}`` and the batch goes on (every record
with an ``error`` carries its code as ``error_code``, docs/errors.md). The output file is written
atomically: a crash leaves the previous file untouched. Report text is never logged.

Region evidence (``--region-model SPEC``): records may carry ``"images": [paths]`` and
``"views": [...]`` (or one ``"view"`` for every image) and ``"mirrored"`` (true/false for
every image, or one true/false/null per image: a PNG/JPEG displayed with the patient's
right on the image's right; null: the DICOM header decides); relative paths are read from
the reports file's folder and may not lead out of it unless ``--allow-outside-root``.
The region checker's verdicts (checker "region") join each claim's
``verdicts`` with their numbers under ``evidence_meta``; ``summary.region`` says whether
the study was checked (``checked``, ``no_images``, ``error``). A study whose images are
missing, unreadable or badly given keeps its graph verdicts: every claim gets an
``error`` verdict from the region checker (which drops out of the combination) and
``summary.region_error`` names the record and the problem (E700-E729 here, E6xx from the
region checker). ``--region-png-dir`` writes one PNG per checked study (``region_png``).

``--html OUT.html`` also writes a self-contained HTML page of the results after the JSONL
(``reportgen.evals.check_html``: summary, each claim's status and reasons per checker, the region
PNG inlined); ``--html-flagged-only`` and ``--html-max-studies`` choose the studies shown.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Mapping, TextIO

from reportgen.errors import ReportgenError
from reportgen.checkers.batch import INPUT_KEYS
from reportgen.jsonl import MAX_RECORD_CHARS, atomic_writer, check_out_file, dumps, read_jsonl
from reportgen.types import VERDICT_STATUSES

log = logging.getLogger(__name__)

STATUSES = VERDICT_STATUSES  # the order of the counts shown (the demo imports it)
HTML_MAX_STUDIES = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", required=True, metavar="R.jsonl", help='input JSONL, one {"id": str, "report": str} per line')
    p.add_argument("--reference", metavar="REF.jsonl", help="reference reports, same shape, matched by id (evaluation mode)")
    p.add_argument("--out", metavar="V.jsonl", help="output JSONL, written atomically (default: JSONL on stdout with --format json)")
    p.add_argument("--format", choices=("json", "table"), default="json", help="stdout: JSONL records (json) or a verdict table (table)")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default: rules, offline)")
    p.add_argument("--claim-splitter", choices=("rules",), default="rules",
                   help="how reports are cut into atomic claims, whatever the --extractor: rules (sentences, then "
                        "coordinated findings split with the rules lexicon; the default and, for now, the only one)")
    p.add_argument("--no-self-check", action="store_true", help="do not compare claims with the report's other sentences")
    p.add_argument("--convention", choices=("chexpert", "radfact"), default="chexpert",
                   help="a finding the reference never mentions: chexpert (default) reads it as absent, so an unmentioned "
                        "negative claim is supported; radfact reads it as not entailed, so the claim is unsupported "
                        "(basis no_evidence). Stated in every record's summary.convention")
    p.add_argument("--max-chars", type=int, default=MAX_RECORD_CHARS, help=f"longest report accepted (default {MAX_RECORD_CHARS:,} characters)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any record has an error (or, with --region-model, a region error)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary on stderr")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="check the reports in N processes (output in input order, the same records; default 1)")
    p.add_argument("--checkers", default="graph", metavar="NAMES",
                   help="comma-separated checkers: graph (default, rules), llm (a chat model, needs --llm-url/--llm-model), "
                        "cascade (graph first, the LLM only for claims the rules leave uncertain or without evidence); "
                        "e.g. graph,llm")
    m = p.add_argument_group("LLM checker (--checkers llm or cascade; needs the judge extra: pip install 'reportgen-cxr[judge]')")
    m.add_argument("--llm-url", metavar="URL", help="base URL of an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    m.add_argument("--llm-model", metavar="NAME", help="model name served there")
    m.add_argument("--llm-api-key-env", metavar="VAR", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (default OPENAI_API_KEY; vLLM needs none)")
    m.add_argument("--llm-concurrency", type=int, default=4, metavar="N", help="LLM requests in flight (default 4)")
    m.add_argument("--llm-batch-size", type=int, default=16, metavar="N", help="claims per batch of LLM calls (default 16)")
    m.add_argument("--llm-timeout", type=float, default=60.0, metavar="S", help="seconds per LLM call (default 60)")
    m.add_argument("--llm-retries", type=int, default=2, metavar="N", help="retries of a failed call before its claim gets an error verdict (default 2)")
    m.add_argument("--llm-structured", choices=("auto", "json_schema", "text"), default="auto",
                   help="structured output mode (default auto: json_schema when the model offers it)")
    g = p.add_argument_group("image-region evidence (needs the clip extra: pip install 'reportgen-cxr[clip]')")
    g.add_argument("--region-model", metavar="SPEC",
                   help="open_clip model for region evidence: local-dir:PATH, hf-hub:ORG/REPO, a built-in name (ViT-B-16) "
                        "or a model-config JSON (default: none, no region checking); records may then carry "
                        '"images": [paths] and "views": [...] or "view"')
    g.add_argument("--allow-outside-root", action="store_true",
                   help="read images outside the reports file's folder ('../', absolute paths, symlinks out)")
    g.add_argument("--region-calibration", metavar="PATH",
                   help="reportgen_region.json with the region thresholds (default: the one in a local-dir checkpoint, "
                        "else the uncalibrated defaults)")
    g.add_argument("--region-pretrained", metavar="TAG|FILE", help="open_clip pretrained tag or weights file for a built-in model name")
    g.add_argument("--region-device", default="cpu", metavar="DEVICE", help="torch device of the region model (default: cpu)")
    g.add_argument("--region-segmenter", default="none", metavar="NAME",
                   help="lung segmentation for the zones: none (the atlas, default), threshold (classical, numpy+scipy), "
                        "xrv-pspnet or xrv-pspnet:WEIGHTS.pth (torchxrayvision's PSPNet; weights never downloaded); "
                        "implausible lungs fall back to the atlas (evidence meta 'zones' says which)")
    g.add_argument("--region-png-dir", metavar="DIR",
                   help='write a PNG per study with images (image, map of each flagged claim, claimed zone outlined); '
                        'the record gets its path as "region_png"')
    h = p.add_argument_group("HTML report")
    h.add_argument("--html", metavar="OUT.html",
                   help="also write a self-contained HTML page of the results (summary, claims coloured by status, "
                        "reasons per checker, region maps inlined), atomically, after the JSONL")
    h.add_argument("--html-flagged-only", action="store_true",
                   help="the page shows only studies with a contradicted or unsupported claim (the summary counts all)")
    h.add_argument("--html-max-studies", type=int, default=None, metavar="N",
                   help=f"show at most N studies in the page (default {HTML_MAX_STUDIES}; the page says how many were left out)")
    e = p.add_argument_group("engine (scale-out: pip install 'reportgen-cxr[ray]'; docs/scale.md)")
    e.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: checker actors on Ray Data, output identical to local")
    e.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster ('auto' or ray://HOST:PORT); default: start a local Ray")
    e.add_argument("--ray-num-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: all)")
    e.add_argument("--ray-actors", type=int, default=2, metavar="N", help="checker actors, one CPU each (default 2)")
    e.add_argument("--ray-block-size", type=int, default=512, metavar="N",
                   help="input lines per block, the unit of retry and resume (default 512)")
    e.add_argument("--ray-gpus-per-actor", type=float, default=None, metavar="G",
                   help="GPUs per checker actor when the region model runs on CUDA (--region-device cuda; default 1; "
                        "0.5 puts two actors on a GPU); with --region-device cpu the actors are CPU actors")


def _count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return None


# --- region evidence ---------------------------------------------------------------


def make_region_checker(args: argparse.Namespace):
    """The RegionChecker for ``--region-model`` (None without it), with its model loaded
    now so a model that cannot load stops the command before any record is read."""
    if not args.region_model:
        extra = [f for f, v in (("--region-calibration", args.region_calibration), ("--region-png-dir", args.region_png_dir),
                                ("--region-pretrained", args.region_pretrained),
                                ("--region-segmenter", args.region_segmenter not in (None, "none"))) if v]
        if extra:
            raise ReportgenError("E700", f"{', '.join(extra)} given without --region-model", fix="add --region-model SPEC (e.g. local-dir:PATH)")
        return None
    from reportgen.checkers.region.checker import load_region_checker

    rc = load_region_checker(args.region_model, pretrained=args.region_pretrained, device=args.region_device,
                             calibration=args.region_calibration,
                             segmenter=None if args.region_segmenter in (None, "none") else args.region_segmenter)
    if args.region_png_dir:
        try:
            Path(args.region_png_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReportgenError("E702", f"--region-png-dir {args.region_png_dir}: cannot create the folder ({e.strerror or e})") from None
    return rc


# --- the HTML page -----------------------------------------------------------------


def make_html_page(args: argparse.Namespace):
    """The ``reportgen.evals.check_html.CheckPage`` for ``--html`` (None without it); checks the
    options and that the page's folder can be written before any record is checked."""
    if not args.html:
        extra = [f for f, v in (("--html-flagged-only", args.html_flagged_only),
                                ("--html-max-studies", args.html_max_studies is not None)) if v]
        if extra:
            raise ReportgenError("E709", f"{', '.join(extra)} given without --html", fix="add --html OUT.html")
        return None
    max_studies = HTML_MAX_STUDIES if args.html_max_studies is None else args.html_max_studies
    if max_studies < 1:
        raise ReportgenError("E709", f"--html-max-studies must be at least 1, got {max_studies}")
    target = Path(args.html)
    if args.out and target.resolve() == Path(args.out).resolve():
        raise ReportgenError("E709", f"--html and --out name the same file {args.out}", fix="give the page another name, e.g. OUT.html")
    check_out_file(target, "--html", code="E707")
    from reportgen.evals.check_html import CheckPage

    return CheckPage(title=f"reportgen check: {Path(args.reports).name}", flagged_only=args.html_flagged_only,
                     max_studies=max_studies)


def write_html(page: Any, path: str) -> None:
    try:
        with atomic_writer(path) as fh:
            fh.write(page.render())
    except OSError as e:
        raise ReportgenError("E707", f"--html {path}: the page could not be written ({e.strerror or e}); the JSONL output is complete",
                             fix="give a writable path to --html") from None


# --- the table ---------------------------------------------------------------------


def make_checkers(args: argparse.Namespace) -> tuple[list[str], Any]:
    """(checker names, the LLMChecker or None) from --checkers and the --llm-* flags; bad
    combinations stop the command before any record is read (E485)."""
    from reportgen.checkers.pipeline import CHECKERS, LLM_CHECKERS

    names = [n.strip() for n in (args.checkers or "graph").split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKERS and n not in LLM_CHECKERS]
    if not names or unknown:
        raise ReportgenError("E485", f"--checkers {args.checkers!r}: unknown checker(s) {', '.join(unknown) or '(none given)'}",
                             fix=f"use a comma-separated list of {', '.join((*CHECKERS, *LLM_CHECKERS))}")
    wants_llm = any(n in LLM_CHECKERS for n in names)
    if not wants_llm:
        if args.llm_url or args.llm_model:
            raise ReportgenError("E485", "--llm-url/--llm-model given but no LLM checker chosen", fix="add --checkers graph,llm or --checkers cascade")
        return names, None
    if not (args.llm_url and args.llm_model):
        raise ReportgenError("E485", f"--checkers {args.checkers}: the LLM checker needs both --llm-url and --llm-model",
                             fix="e.g. --llm-url http://127.0.0.1:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct")
    from reportgen.checkers.llm_checker import LLMChecker

    llm = LLMChecker.from_endpoint(args.llm_url, args.llm_model, api_key=os.environ.get(args.llm_api_key_env),
                                   timeout=args.llm_timeout, max_retries=args.llm_retries, structured=args.llm_structured,
                                   max_concurrency=args.llm_concurrency, batch_size=args.llm_batch_size)
    return names, llm


def table_legend() -> str:
    """The legend printed above the table: the columns, the basis words, the evidence notation."""
    from reportgen.evals.check_html import EVIDENCE_NOTATION
    from reportgen.types import VERDICT_BASES

    lines = ["legend: each row is status, basis (why), section, claim; reasons below name their evidence.",
             textwrap.fill(EVIDENCE_NOTATION, 100, initial_indent="  ", subsequent_indent="  "),
             "  basis:"]
    lines += [f"    {k:<14}{v}" for k, v in VERDICT_BASES.items()]
    return "\n".join(lines)


def render_table(record: Mapping[str, Any], width: int | None = None, marks: Mapping[int, str] | None = None, max_reasons: int = 2) -> str:
    """A human table of one output record: a row per claim (status, section, claim text)
    with its reasons indented below.

    ``marks`` maps a claim's start offset to a short tag shown before it (the demo marks
    the sentences it altered).
    """
    width = width or max(80, min(shutil.get_terminal_size((120, 20)).columns, 160))
    s = record.get("summary", {})
    counts = ", ".join(f"{s[k]} {k}" for k in STATUSES if s.get(k))
    lines = [f"== {record['id']}: {s.get('claims', 0)} claims" + (f" ({counts})" if counts else "") + " =="]
    if record.get("error"):
        lines.append(f"   error: {record['error']}")
        return "\n".join(lines)
    marks = marks or {}
    claim_w = width - 42
    for c in record["claims"]:
        mark = marks.get(c["start"], "")
        text = textwrap.shorten(c["text"], claim_w, placeholder="...")
        lines.append(f"{mark:<3}{c['status']:<13}{(c.get('basis') or '-'):<14}{c['section'][:10]:<11} {text}")
        reasons = c.get("reasons") or []
        shown = reasons[: 1 if c["status"] == "supported" else max_reasons]
        shown += [r for r in reasons[len(shown):] if r.startswith("self-conflict")][:1]  # the partner of an attributed conflict
        for r in shown:
            lines.append(textwrap.fill(r, width, initial_indent="      - ", subsequent_indent="        ", max_lines=3, placeholder=" ..."))
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return run_ray(args)
    ray_flags = [f for f, v in (("--ray-address", args.ray_address), ("--ray-num-cpus", args.ray_num_cpus),
                                ("--ray-gpus-per-actor", args.ray_gpus_per_actor)) if v]
    if ray_flags:
        raise ReportgenError("E954", f"{', '.join(ray_flags)} given without --engine ray", fix="add --engine ray")
    from tqdm import tqdm

    from reportgen.checkers.batch import MAX_LINE_WARNINGS, RecordChecker, load_reference
    from reportgen.checkers.pipeline import Pipeline, batch_gc

    err: TextIO = sys.stderr

    def warn(msg: str) -> None:
        if not args.quiet:
            from reportgen.phi import scrub

            print(f"reportgen check: {scrub(msg)}", file=err)

    if args.workers < 1:
        raise ReportgenError("E343", f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and args.region_model:
        raise ReportgenError("E341", "checking in several processes (--workers) with a region model is not supported yet",
                             fix="leave out --workers (one process) when giving --region-model")
    refs: dict[str, str] | None = None
    ref_problems: dict[str, str] = {}
    if args.reference:
        refs, ref_problems = load_reference(args.reference, args.max_chars, warn)
    region = make_region_checker(args)
    page = make_html_page(args)
    records = read_jsonl(args.reports, require=INPUT_KEYS, text_fields=("report",), max_chars=args.max_chars)
    names, llm = make_checkers(args)
    if args.workers > 1 and llm is not None:
        raise ReportgenError("E341", "checking in several processes (--workers) with an LLM checker is not supported yet",
                             fix="leave out --workers (one process) with --checkers llm or cascade")
    pipeline = Pipeline(extractor=args.extractor, checkers=names, self_check=not args.no_self_check, region=region,
                        convention=args.convention, llm=llm, splitter=args.claim_splitter)
    batch = RecordChecker(pipeline, references=refs, reference_problems=ref_problems,
                          base=Path(args.reports).resolve().parent, png_dir=args.region_png_dir, warn=warn,
                          allow_outside_root=getattr(args, "allow_outside_root", False))
    counts = batch.counts
    started = time.perf_counter()
    bar = tqdm(total=_count_lines(args.reports), file=err, unit="report", disable=args.quiet or not err.isatty(), desc="check")

    def emit(sink: TextIO | None) -> None:
        if args.format == "table":
            print(table_legend() + "\n", file=sys.stdout)
        for checked in batch.check_all(records, workers=args.workers):
            bar.update(1)
            out = checked.record
            if sink is not None:
                sink.write(dumps(out) + "\n")
            if page is not None:
                png, problem = None, None
                if batch.png_dir is None and out["summary"].get("region") == "checked" and page.wants(out):
                    png, problem = draw_for_page(batch, checked)
                    if problem:
                        batch.region_warn(f"{checked.where}: {problem}")
                page.add(out, png=png, png_problem=problem)
            if args.format == "table":
                bar.clear()
                print(render_table(out), file=sys.stdout)
                if out.get("region_png"):
                    print(f"   region map: {out['region_png']}", file=sys.stdout)
                print(file=sys.stdout)

    try:
        with batch_gc():  # the start-up objects frozen, fewer young collections (no cycles made)
            if args.out:
                with atomic_writer(args.out) as fh:
                    emit(fh)
            else:
                emit(sys.stdout if args.format == "json" else None)
    finally:
        bar.close()
    if page is not None:
        write_html(page, args.html)

    if refs is not None:
        unmatched = sorted(i for i in refs if i not in counts.seen)
        lost = [i for i in unmatched if i in counts.broken_lines]  # their report line is an error record
        absent = [i for i in unmatched if i not in counts.broken_lines]
        if counts.missing_reference:
            warn(f"E307 {counts.missing_reference} report id(s) have no usable reference and were checked for self-consistency only: "
                 f"{_ids(counts.missing_reference_ids, total=counts.missing_reference)}")
        if absent:
            warn(f"E304 {len(absent)} reference id(s) have no report: {_ids(absent)} (no line of --reports {args.reports} has them)")
        if lost:
            warn(f"E020 {len(lost)} reference id(s) have no usable report: their line in --reports is an error record: "
                 + _ids([f"{i} ({counts.broken_lines[i]})" for i in lost], sep="; "))
    if not args.quiet:
        took = time.perf_counter() - started
        totals = ", ".join(f"{counts.statuses[k]} {k}" for k in STATUSES)
        where = f"; written to {args.out}" if args.out else ""
        if page is not None:
            left = f", {page.left_out} left out" if page.left_out else ""
            where += f"; HTML page {args.html} ({len(page.shown)} studies shown{left})"
        regions = f", {counts.region_errors} with region errors" if region is not None else ""
        print(f"reportgen check: {counts.records} records ({counts.errors} with errors{regions}) in {took:.1f}s; claims: {totals}{where}", file=err)
    if counts.region_errors > MAX_LINE_WARNINGS:
        warn(f"{counts.region_errors - MAX_LINE_WARNINGS} more records with region errors (each record's summary.region_error says why)")
    log.info("checked %d records, %d errors", counts.records, counts.errors)
    return 1 if args.strict and (counts.errors or counts.missing_reference or counts.region_errors) else 0


def draw_for_page(batch: Any, checked: Any) -> tuple[bytes | None, str | None]:
    """The study's region map drawn in memory for the HTML page (no --region-png-dir):
    (PNG, None) or (None, the problem)."""
    try:
        return batch.render_png(checked.result, checked.study, checked.record["id"]), None
    except Exception as e:  # the page says why there is no picture; the verdicts are kept
        msg = str(e) if isinstance(e, ReportgenError) else f"{type(e).__name__}: {e}"
        return None, f"E708 the region map could not be drawn: {msg}"


def _ids(ids: list[str], most: int = 10, sep: str = ", ", total: int | None = None) -> str:
    """The first ``most`` ids, and how many more there are (``total``: all of them, when
    ``ids`` holds only the first few)."""
    total = len(ids) if total is None else total
    shown = sep.join(ids[:most])
    return shown + (f", ... ({total - most} more)" if total > most else "")


def run_ray(args: argparse.Namespace) -> int:
    """``--engine ray``: the same records through ``reportgen.engines.ray_engine``; the
    region model is loaded by each checker actor (GPU actors with --region-device cuda), and
    the HTML page and the table are rendered from the merged records."""
    import functools

    from reportgen.engines.ray_engine import CheckJob, RayOptions, check_file, check_pipeline

    if not args.out:
        raise ReportgenError("E954", "--engine ray writes a file: give --out V.jsonl",
                             fix="add --out V.jsonl (with --format table the table is printed as well)")
    if args.workers != 1:
        raise ReportgenError("E954", "--workers is the local engine's; with --engine ray use --ray-actors N")
    # checked here, before Ray starts: bad flags, a region model or an endpoint that cannot load stop the command
    names, _ = make_checkers(args)
    make_region_checker(argparse.Namespace(**{**vars(args), "region_device": "cpu"}))  # the driver needs no GPU
    flags = {k: getattr(args, k) for k in ("extractor", "convention", "claim_splitter", "region_model", "region_pretrained",
                                           "region_device", "region_calibration", "region_segmenter", "llm_url", "llm_model",
                                           "llm_api_key_env", "llm_concurrency", "llm_batch_size", "llm_timeout", "llm_retries",
                                           "llm_structured")}
    flags.update(checkers=names, self_check=not args.no_self_check, region_png_dir=args.region_png_dir)
    gpus = 0.0
    if args.region_model and str(args.region_device).startswith("cuda"):
        gpus = float(args.ray_gpus_per_actor if args.ray_gpus_per_actor is not None else 1.0)
        flags["region_device"] = "cuda"  # each actor sees its own GPU(s) as cuda:0
    elif args.ray_gpus_per_actor:
        raise ReportgenError("E954", "--ray-gpus-per-actor applies to region checking on GPUs",
                             fix="add --region-model SPEC --region-device cuda, or leave --ray-gpus-per-actor out")
    page = make_html_page(args)
    options = RayOptions(address=args.ray_address, num_cpus=args.ray_num_cpus, actors=args.ray_actors,
                         block_size=args.ray_block_size, gpus_per_actor=gpus)
    page_pngs = None
    if page is not None and args.region_model and not args.region_png_dir:
        page_pngs = "flagged" if args.html_flagged_only else "all"
    settings = {**flags, "page_pngs": page_pngs, "allow_outside_root": bool(getattr(args, "allow_outside_root", False))}
    job = CheckJob(str(Path(args.reports)), functools.partial(check_pipeline, flags), reference=args.reference,
                   max_chars=args.max_chars, base=str(Path(args.reports).resolve().parent), settings=settings,
                   png_dir=args.region_png_dir, allow_outside_root=bool(getattr(args, "allow_outside_root", False)),
                   page_pngs=page_pngs)
    err: TextIO = sys.stderr

    def progress(done: int, total: int) -> None:
        if not args.quiet and err.isatty():
            print(f"\rreportgen check: ray: {done}/{total} blocks", end="", file=err, flush=True)

    region_errors = [0]

    def on_record(rec: dict[str, Any], png: bytes | None, problem: str | None) -> None:
        if rec.get("summary", {}).get("region_error"):
            region_errors[0] += 1
        if page is not None:
            page.add(rec, png=png, png_problem=problem)
        if args.format == "table":
            print(render_table(rec), file=sys.stdout)
            if rec.get("region_png"):
                print(f"   region map: {rec['region_png']}", file=sys.stdout)
            print(file=sys.stdout)

    if args.format == "table":
        print(table_legend() + "\n", file=sys.stdout)
    run = check_file(job, args.out, options, progress=progress, on_record=on_record)
    if page is not None:
        write_html(page, args.html)
    if not args.quiet:
        if err.isatty():
            print(file=err)
        if run.duplicates:
            print(f"reportgen check: E306 {len(run.duplicates)} duplicate id(s); all records are checked: {_ids(run.duplicates)}", file=err)
        if run.missing_reference:
            print(f"reportgen check: E307 {len(run.missing_reference)} report id(s) have no usable reference and were checked "
                  f"for self-consistency only: {_ids(run.missing_reference)}", file=err)
        totals = ", ".join(f"{run.statuses[k]} {k}" for k in STATUSES)
        resumed = f", {run.blocks_resumed} of {run.blocks} blocks resumed" if run.blocks_resumed else ""
        regions = f", {region_errors[0]} with region errors" if args.region_model else ""
        where = f"; written to {args.out}"
        if page is not None:
            left = f", {page.left_out} left out" if page.left_out else ""
            where += f"; HTML page {args.html} ({len(page.shown)} studies shown{left})"
        print(f"reportgen check: {run.records} records ({run.errors} with errors{regions}) in {run.seconds:.1f}s on ray{resumed}; "
              f"claims: {totals}{where}", file=err)
    return 1 if args.strict and (run.errors or run.missing_reference or region_errors[0]) else 0
