"""The `reportgen` command line: a lazy registry of subcommands.

Each subcommand lives in ``reportgen/commands/<name>.py`` with ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``reportgen check`` never imports torch and ``reportgen --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from reportgen.errors import ReportgenError

# name -> (module, one-line help). Names and flags are public contracts: extend, never rename.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("reportgen.commands.run", "the main job: draft, check every claim, metrics and an HTML report (resumable)"),
    "demo": ("reportgen.commands.demo", "check a sample of the real IU reports and print a verdict table"),
    "check": ("reportgen.commands.check", "check every claim of reports (JSONL) against evidence"),
    "extract": ("reportgen.commands.extract", "print entity graphs (RadGraph schema) for text"),
    "label": ("reportgen.commands.label", "CheXpert 14-observation labels for reports (JSONL)"),
    "eval": ("reportgen.commands.eval", "hallucination and report-generation metrics"),
    "compare": ("reportgen.commands.compare", "every metric for several systems on the same studies, with paired significance tests"),
    "train": ("reportgen.commands.train", "LoRA fine-tuning of a vision-language model"),
    "draft": ("reportgen.commands.draft", "draft reports for studies (JSONL) with a backend"),
    "serve": ("reportgen.commands.serve", "start a vLLM OpenAI-compatible server with LoRA adapters"),
    "prepare": ("reportgen.commands.prepare", "write the studies JSONL of MIMIC-CXR-JPG or a CSV dataset"),
    "models": ("reportgen.commands.models", "the model families with train / hf / vLLM-LoRA support as tested"),
    "train-clip": ("reportgen.commands.train_clip", "contrastive fine-tuning of an open_clip model"),
}


def _load(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(module)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    from reportgen import __version__

    parser = argparse.ArgumentParser(prog="reportgen", description="Draft chest X-ray reports and check every claim.")
    parser.add_argument("--version", action="version", version=f"reportgen {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--log-phi", action="store_true", default=False,
                        help="show patient data (report text, image paths, indications) in logs and messages; "
                        "by default they are replaced by '<text>' / '<path>'")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported (its arguments are needed to parse).
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
            p.add_argument("--log-phi", action="store_true", default=argparse.SUPPRESS,
                           help="show patient data in logs and messages (as `reportgen --log-phi ...`)")
    return parser


# commands whose --out names a file (``run``, ``train`` and ``train-clip`` write folders)
OUT_FILE_COMMANDS = frozenset({"check", "eval", "compare", "label", "prepare", "demo", "draft"})
# commands whose --out names a folder, checked before any work (``run`` checks its own: E803)
OUT_DIR_COMMANDS = frozenset({"train", "train-clip"})
# integer options with a lower bound, checked before any work: (command, dest) -> minimum,
# "*" for every command that has the option
INT_MINIMUMS: dict[tuple[str, str], int] = {
    ("*", "max_chars"): 1, ("*", "llm_retries"): 0, ("*", "judge_retries"): 0, ("*", "judge_concurrency"): 1,
    ("demo", "n"): 1, ("eval", "n"): 0, ("*", "seed"): 0,
    ("draft", "limit"): 1, ("draft", "max_consecutive_failures"): 0,
    ("serve", "max_loras"): 1, ("serve", "max_model_len"): 1,
}
# number options with an upper bound too, or a float with a lower one: (command, dest) ->
# (low, high), both allowed, None for no bound; checked with INT_MINIMUMS (E737)
NUMBER_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("serve", "port"): (0, 65535), ("serve", "startup_timeout"): (1, None),
}
# options that name a file, folder or model: an empty string is an error (E740), in every
# command that has them (`--out ""` wrote a run or a model into the current folder, or raised)
PATH_OPTIONS = frozenset({
    "out", "bench_out", "studies", "reports", "reference", "manifest", "model", "config", "csv", "root", "image_root",
    "template", "lexicon", "pred", "ref", "log", "calibrate", "region_model", "region_calibration", "region_png_dir",
    "repair_prompt", "python", "html", "pretrained", "radeval_python",
})


def _check_minimums(command: str, args: argparse.Namespace) -> None:
    for dest in sorted(PATH_OPTIONS):
        if isinstance(getattr(args, dest, None), str) and not getattr(args, dest).strip():
            flag = "--" + dest.replace("_", "-")
            raise ReportgenError("E740", f"{flag} is empty", fix=f"give {flag} a path, or leave the option out")
    for (cmd, dest), low in INT_MINIMUMS.items():
        value = getattr(args, dest, None) if cmd in ("*", command) else None
        if isinstance(value, int) and value < low:
            flag = "--" + dest.replace("_", "-")
            raise ReportgenError("E735", f"{flag} must be at least {low}, got {value}", fix=f"give {flag} {low} or more")
    for (cmd, dest), (low, high) in NUMBER_RANGES.items():
        value = getattr(args, dest, None) if cmd in ("*", command) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                (low is not None and value < low) or (high is not None and value > high)):
            flag = "--" + dest.replace("_", "-")
            span = f"between {low:g} and {high:g}" if low is not None and high is not None else (
                f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise ReportgenError("E737", f"{flag} must be {span}, got {value:g}", fix=f"give {flag} {span}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    from reportgen import phi

    phi.set_allowed(True if args.log_phi else None)
    phi.install()
    if not args.command:
        parser.print_help()
        return 2
    try:
        _check_minimums(args.command, args)
        if args.command in OUT_FILE_COMMANDS and getattr(args, "out", None):
            from reportgen.jsonl import check_out_file

            check_out_file(args.out)  # before the work, not at the final rename
        if args.command in OUT_DIR_COMMANDS and getattr(args, "out", None):
            from reportgen.jsonl import check_out_dir

            check_out_dir(args.out)  # before the work, not when the results are saved
        return int(_load(args.command).run(args) or 0)
    except ReportgenError as e:
        print(f"reportgen {args.command}: {phi.scrub(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"reportgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
