"""`reportgen check`: check every claim of reports (JSONL) against a reference and itself.

Input records ``{"id": str, "report": str, ...}``; the optional reference file has the same
shape and is matched by ``id``. One output record per input line (the JSONL contract of
``reportgen.checkers.pipeline.ReportResult.to_record``); extra input keys are passed through. Bad
lines (malformed JSON, non-UTF-8 bytes, a missing id, an empty or oversized report) give
an error record ``{"id": <id or "line:N">, "error": "<file:line: code problem>",
"claims": [], "summary": {...}}`` and the batch goes on. The output file is written
atomically: a crash leaves the previous file untouched. Report text is never logged.

Region evidence (``--region-model SPEC``): records may carry ``"images": [paths]`` and
``"views": [...]`` (or one ``"view"`` for every image) and ``"mirrored"`` (true/false for
every image, or one true/false/null per image: a PNG/JPEG displayed with the patient's
right on the image's right; null: the DICOM header decides); relative paths are read from
the reports file's folder and may not lead out of it unless ``--allow-outside-root``. The region checker's verdicts (checker "region") join each claim's
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
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

from reportgen.errors import ReportgenError
from reportgen.jsonl import MAX_RECORD_CHARS, Record, atomic_writer, dumps, read_jsonl

log = logging.getLogger(__name__)

CONTRACT_KEYS = ("id", "error", "claims", "summary")
INPUT_KEYS = ("id", "report")
STATUSES = ("supported", "contradicted", "unsupported", "uncertain", "error")
HTML_MAX_STUDIES = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", required=True, metavar="R.jsonl", help='input JSONL, one {"id": str, "report": str} per line')
    p.add_argument("--reference", metavar="REF.jsonl", help="reference reports, same shape, matched by id (evaluation mode)")
    p.add_argument("--out", metavar="V.jsonl", help="output JSONL, written atomically (default: JSONL on stdout with --format json)")
    p.add_argument("--format", choices=("json", "table"), default="json", help="stdout: JSONL records (json) or a verdict table (table)")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default: rules, offline)")
    p.add_argument("--no-self-check", action="store_true", help="do not compare claims with the report's other sentences")
    p.add_argument("--max-chars", type=int, default=MAX_RECORD_CHARS, help=f"longest report accepted (default {MAX_RECORD_CHARS:,} characters)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any record has an error (or, with --region-model, a region error)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary on stderr")
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


# --- reading -----------------------------------------------------------------------


MAX_LINE_WARNINGS = 10


def load_reference(path: str, max_chars: int, warn) -> tuple[dict[str, str], dict[str, str]]:
    """Reference texts by id, and the problem of each reference id whose line was bad
    (the first few bad lines are named on stderr, then a count)."""
    texts: dict[str, str] = {}
    problems: dict[str, str] = {}
    bad = 0
    for rec in read_jsonl(path, require=INPUT_KEYS, text_fields=("report",), max_chars=max_chars):
        if rec.error:
            bad += 1
            if bad <= MAX_LINE_WARNINGS:
                warn(f"reference {rec.error}")
            if rec.id:
                problems[rec.id] = rec.error
            continue
        if rec.id in texts:
            warn(f"reference {rec.where}: E305 duplicate id {rec.id!r}; the later line is used")
        texts[rec.id] = rec.data["report"]
        problems.pop(rec.id, None)
    if bad > MAX_LINE_WARNINGS:
        warn(f"reference {path}: {bad - MAX_LINE_WARNINGS} more bad lines (each affected id's record says why in summary.reference_error)")
    return texts, problems


def _count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return None


# --- records -----------------------------------------------------------------------


def passthrough(record: dict[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Copy the input's extra keys into the output record; keys that clash with the
    contract go under "input" so nothing is overwritten."""
    if not data:
        return record
    for key, value in data.items():
        if key in INPUT_KEYS:
            continue
        if key in CONTRACT_KEYS:
            record.setdefault("input", {})[key] = value
        elif key not in record:
            record[key] = value
    return record


def error_record(rec: Record, extra_summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from reportgen.checkers.pipeline import empty_summary

    out = {"id": rec.fallback_id(), "error": rec.error, "claims": [], "summary": empty_summary(**(extra_summary or {}))}
    return passthrough(out, rec.data)


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
    from reportgen.checkers.region.checker import RegionChecker

    rc = RegionChecker(args.region_model, pretrained=args.region_pretrained, device=args.region_device,
                       calibration=args.region_calibration,
                       segmenter=None if args.region_segmenter in (None, "none") else args.region_segmenter)
    if hasattr(rc.segmenter, "load"):
        rc.segmenter.load()  # missing weights (E613/E614) stop the command before any record is read
    try:
        rc.backend.load()
    except ReportgenError:
        raise
    except Exception as e:  # network, corrupt weights, ...: say which model
        raise ReportgenError("E701", f"region model {args.region_model!r} could not be loaded ({type(e).__name__}: {e})",
                             fix="check the model spec; offline, use local-dir:PATH (e.g. written by `reportgen train-clip`)") from None
    if args.region_png_dir:
        try:
            Path(args.region_png_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReportgenError("E702", f"--region-png-dir {args.region_png_dir}: cannot create the folder ({e.strerror or e})") from None
    return rc


def record_study(rec: Record, base: Path, allow_outside_root: bool = False) -> tuple[Any, str | None]:
    """(Study or None, problem or None) from a record's ``images`` and ``views``/``view``.

    No ``images`` (or an empty list): (None, None), the record is checked without images.
    Relative paths are read from ``base`` (the reports file's folder)."""
    from reportgen.types import Study

    data = rec.data or {}
    images = data.get("images", data.get("image"))
    if images is None or images == []:
        return None, None
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(i, str) and i.strip() for i in images):
        return None, f"E703 'images' must be a list of image paths, got {_short(images)}"
    if "views" in data:
        views = data["views"]
        if isinstance(views, str):
            views = [views]
        if not isinstance(views, list) or not all(v is None or isinstance(v, str) for v in views):
            return None, f"E704 'views' must be a list of view names (PA, AP, LATERAL, ...) or nulls, got {_short(views)}"
        if views and len(views) != len(images):
            return None, f"E704 {len(views)} views for {len(images)} images; give one view per image (or 'view' for all)"
    elif data.get("view") is not None:
        if not isinstance(data["view"], str):
            return None, f"E704 'view' must be a view name (PA, AP, LATERAL, ...), got {_short(data['view'])}"
        views = [data["view"]] * len(images)
    else:
        views = []
    from reportgen.paths import image_path

    resolved = []
    for n, img in enumerate(images):
        path, outside = image_path(img, base, allow_outside=allow_outside_root)
        if outside:
            return None, f"images[{n}]: {outside}"
        if not path.is_file():
            return None, f"E705 image {img!r} not found (relative paths are read from {str(base)!r})"
        resolved.append(str(path))
    mirrored = data.get("mirrored")
    if mirrored is not None:
        if isinstance(mirrored, bool):
            mirrored = [mirrored] * len(images)
        if (not isinstance(mirrored, list) or len(mirrored) != len(images)
                or not all(m is None or isinstance(m, bool) for m in mirrored)):
            return None, (f"E140 'mirrored' must be true/false (all images) or a list of one true/false/null per image "
                          f"({len(images)}), got {_short(mirrored)}")
    meta = {"mirrored": tuple(mirrored)} if mirrored is not None else {}
    return Study(rec.id, images=tuple(resolved), views=tuple(views), meta=meta), None


def _short(value: Any, most: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def png_name(id: str, used: set[str], line: int) -> str:
    """A file name for a study's PNG from its id (unsafe characters replaced; a repeated
    name gets the input line number)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", id).strip("._")[:120] or "study"
    name = f"{stem}.png"
    if name in used:
        name = f"{stem}_line{line}.png"
    used.add(name)
    return name


def write_png(path: Path, data: bytes) -> None:
    """Write atomically: a temporary file in the same folder, renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
    if target.is_dir():
        raise ReportgenError("E707", f"--html {args.html} is a folder", fix="give a file name, e.g. check.html")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportgenError("E707", f"--html {args.html}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(target.parent, os.W_OK):
        raise ReportgenError("E707", f"--html {args.html}: the folder {str(target.parent)!r} is not writable")
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
    claim_w = width - 28
    for c in record["claims"]:
        mark = marks.get(c["start"], "")
        text = textwrap.shorten(c["text"], claim_w, placeholder="...")
        lines.append(f"{mark:<3}{c['status']:<13}{c['section'][:10]:<11} {text}")
        reasons = c.get("reasons") or []
        for r in reasons[: 1 if c["status"] == "supported" else max_reasons]:
            lines.append(textwrap.fill(r, width, initial_indent="      - ", subsequent_indent="        ", max_lines=3, placeholder=" ..."))
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reportgen.checkers.pipeline import Pipeline, batch_gc

    err: TextIO = sys.stderr
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        if not args.quiet:
            from reportgen.phi import scrub

            print(f"reportgen check: {scrub(msg)}", file=err)

    refs: dict[str, str] = {}
    ref_problems: dict[str, str] = {}
    if args.reference:
        refs, ref_problems = load_reference(args.reference, args.max_chars, warn)
    region = make_region_checker(args)
    page = make_html_page(args)
    records = read_jsonl(args.reports, require=INPUT_KEYS, text_fields=("report",), max_chars=args.max_chars)
    pipeline = Pipeline(extractor=args.extractor, self_check=not args.no_self_check, region=region)
    base = Path(args.reports).resolve().parent
    png_dir = Path(args.region_png_dir) if region is not None and args.region_png_dir else None
    png_names: set[str] = set()
    n_region_errors = 0
    images_ignored = False

    totals = {k: 0 for k in STATUSES}
    n_records = n_errors = 0
    seen: set[str] = set()
    missing_ref: list[str] = []
    started = time.perf_counter()
    bar = tqdm(total=_count_lines(args.reports), file=err, unit="report", disable=args.quiet or not err.isatty(), desc="check")

    def region_warn(msg: str) -> None:
        if n_region_errors <= MAX_LINE_WARNINGS:
            warn(msg)

    def results() -> Iterable[dict[str, Any]]:
        nonlocal n_records, n_errors, n_region_errors, images_ignored
        for rec in records:
            n_records += 1
            bar.update(1)
            if rec.id is not None:
                if rec.id in seen:
                    warn(f"{rec.where}: E306 duplicate id {rec.id!r}; both records are checked")
                seen.add(rec.id)
            if rec.error:
                n_errors += 1
                yield error_record(rec)
                continue
            ref_text = None
            ref_note: dict[str, Any] = {}
            if args.reference:
                ref_text = refs.get(rec.id)
                if ref_text is None:
                    missing_ref.append(rec.id)
                    ref_note["reference"] = "invalid" if rec.id in ref_problems else "missing"
                    if rec.id in ref_problems:
                        ref_note["reference_error"] = ref_problems[rec.id]
            study, region_problem = None, None
            if region is not None:
                study, region_problem = record_study(rec, base, getattr(args, "allow_outside_root", False))
                if region_problem:
                    region_problem = f"{rec.where}: {region_problem}"
            elif not images_ignored and rec.data.get("images", rec.data.get("image")):
                images_ignored = True
                warn(f"{rec.where}: records carry images but no --region-model was given: images are not checked")
            try:
                extra = {"region_error": region_problem} if region_problem else {}
                result = pipeline.check(rec.id, rec.data["report"], ref_text, study=study, **extra)
                out = result.to_record()
                if region is not None and not out["error"]:
                    region_record(out, result, study, rec)
            except Exception as e:  # a bug on one record must not lose the batch
                log.warning("%s: record %s failed with %s", rec.where, rec.id, type(e).__name__)
                out = error_record(Record(rec.path, rec.line, rec.data, f"E399 checking failed: {type(e).__name__}: {e}"))
            if out["error"]:
                n_errors += 1
                out["error"] = f"{rec.where}: {out['error']}"
            out["summary"].update(ref_note)
            if out.get("region_png_error"):
                region_warn(f"{rec.where}: {out['region_png_error']}")
            for k in STATUSES:
                totals[k] += out["summary"].get(k, 0)
            yield passthrough(out, rec.data)

    def region_record(out: dict[str, Any], result: Any, study: Any, rec: Record) -> None:
        """summary.region / region_error (naming the record) and the study's PNG."""
        nonlocal n_region_errors
        summary = out["summary"]
        if "region_error" in summary:
            n_region_errors += 1
            if not summary["region_error"].startswith(rec.where):
                summary["region_error"] = f"{rec.where}: {summary['region_error']}"
            summary["region"] = "error"
            region_warn(f"region evidence not used: {summary['region_error']} (graph verdicts kept)")
        else:
            summary["region"] = "checked" if study is not None else "no_images"
        if png_dir is None and page is not None and summary["region"] == "checked" and page.wants(out):
            drawn[id(out)] = draw_for_page(result, study, rec)
            if drawn[id(out)][1]:
                region_warn(f"{rec.where}: {drawn[id(out)][1]}")
        if png_dir is None or summary["region"] == "no_images":
            return
        out["region_png"] = None
        if summary["region"] != "checked":
            return
        path = png_dir / png_name(rec.id, png_names, rec.line)
        verdicts = [v for c in result.claims for v in c.verdicts if v.checker == region.name]
        try:
            write_png(path, region.render_study(study.images, study.views, verdicts, title=rec.id,
                                                        mirrored=study.meta.get("mirrored")))
            out["region_png"] = str(path)
        except Exception as e:  # a failed picture must not lose the verdicts
            msg = str(e) if isinstance(e, ReportgenError) else f"{type(e).__name__}: {e}"
            out["region_png_error"] = f"E706 writing {path} failed: {msg}"

    # the page's pictures drawn in memory (no --region-png-dir): (PNG, problem) by id(record)
    drawn: dict[int, tuple[bytes | None, str | None]] = {}

    def draw_for_page(result: Any, study: Any, rec: Record) -> tuple[bytes | None, str | None]:
        verdicts = [v for c in result.claims for v in c.verdicts if v.checker == region.name]
        try:
            return region.render_study(study.images, study.views, verdicts, title=rec.id,
                                       mirrored=study.meta.get("mirrored")), None
        except Exception as e:  # the page says why there is no picture; the verdicts are kept
            msg = str(e) if isinstance(e, ReportgenError) else f"{type(e).__name__}: {e}"
            return None, f"E708 the region map could not be drawn: {msg}"

    def emit(sink: TextIO | None) -> None:
        for out in results():
            if sink is not None:
                sink.write(dumps(out) + "\n")
            if page is not None:
                png, problem = drawn.pop(id(out), (None, None))
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

    if args.reference:
        unmatched = sorted(set(refs) - seen)
        if missing_ref:
            warn(f"E307 {len(missing_ref)} report id(s) have no usable reference and were checked for self-consistency only: {_ids(missing_ref)}")
        if unmatched:
            warn(f"E304 {len(unmatched)} reference id(s) have no report: {_ids(unmatched)}")
    if not args.quiet:
        took = time.perf_counter() - started
        counts = ", ".join(f"{totals[k]} {k}" for k in STATUSES)
        where = f"; written to {args.out}" if args.out else ""
        if page is not None:
            left = f", {page.left_out} left out" if page.left_out else ""
            where += f"; HTML page {args.html} ({len(page.shown)} studies shown{left})"
        regions = f", {n_region_errors} with region errors" if region is not None else ""
        print(f"reportgen check: {n_records} records ({n_errors} with errors{regions}) in {took:.1f}s; claims: {counts}{where}", file=err)
    if n_region_errors > MAX_LINE_WARNINGS:
        warn(f"{n_region_errors - MAX_LINE_WARNINGS} more records with region errors (each record's summary.region_error says why)")
    log.info("checked %d records, %d errors", n_records, n_errors)
    return 1 if args.strict and (n_errors or missing_ref or n_region_errors) else 0


def _ids(ids: list[str], most: int = 10) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f", ... ({len(ids) - most} more)" if len(ids) > most else "")
