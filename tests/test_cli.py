"""The CLI registry: every command is listed, help is fast and torch-free."""

import subprocess
import sys

from reportgen.cli import COMMANDS
from tests.light_imports import heavy_modules_loaded


def test_help_lists_every_command_without_heavy_imports():
    code = "from reportgen.cli import build_parser; build_parser(['--help']).format_help()"
    assert heavy_modules_loaded(code, ("torch", "transformers", "open_clip", "vllm", "spacy")) == []
    help_text = subprocess.run([sys.executable, "-m", "reportgen", "--help"], capture_output=True, text=True).stdout
    for name in COMMANDS:
        assert name in help_text


def test_every_registered_command_module_exists_and_has_the_interface():
    import importlib

    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.run), name


def test_an_out_path_that_is_a_folder_fails_at_once_with_e734(tmp_path, capsys, monkeypatch):
    """`--out results/` used to fail with a traceback at the final rename, after all the work
    (45 s for `eval --inject`)."""
    import reportgen.iu
    from reportgen.cli import OUT_FILE_COMMANDS, main

    def no_work(*a, **k):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(reportgen.iu, "load_iu_reports", no_work)

    reports = tmp_path / "r.jsonl"
    reports.write_text('{"id": "a", "report": "No effusion."}\n')
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for argv in (["check", "--reports", str(reports), "--out", str(tmp_path)],
                 ["label", "--reports", str(reports), "--out", str(tmp_path)],
                 ["eval", "--inject", "--out", str(tmp_path)],
                 ["check", "--reports", str(reports), "--out", str(blocker / "v.jsonl")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "E734" in err and "Traceback" not in err, err
    assert {"check", "eval", "compare", "label", "prepare", "demo", "draft"} <= OUT_FILE_COMMANDS
    # a writable path still works, and its missing folders are created
    assert main(["check", "--reports", str(reports), "--out", str(tmp_path / "new" / "v.jsonl")]) == 0
    assert (tmp_path / "new" / "v.jsonl").read_text().count("\n") == 1


def test_an_input_path_that_is_a_folder_is_a_clear_error(tmp_path, capsys):
    """`--reports some_folder` raised IsADirectoryError with a traceback."""
    from reportgen.cli import main

    ref = tmp_path / "r.jsonl"
    ref.write_text('{"id": "a", "report": "No effusion."}\n')
    for argv, code in ((["check", "--reports", str(tmp_path)], "E101"),
                       (["label", "--reports", str(tmp_path), "--out", str(tmp_path / "l.jsonl")], "E101"),
                       (["eval", "--pred", str(tmp_path), "--ref", str(ref), "--out", str(tmp_path / "e.json")], "E101"),
                       (["extract", "--lexicon", str(tmp_path), "No effusion."], "E210")):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert code in err and "is a folder" in err and "Traceback" not in err, err


def test_integer_options_below_their_minimum_fail_at_once_with_e735(tmp_path, capsys):
    """`--max-chars 0` rejected every record one by one, `demo --n -3` and `--llm-retries -1`
    raised tracebacks (random.sample, pydantic), `eval --inject --n -1` dropped the last report."""
    from reportgen.cli import main
    from reportgen.errors import ReportgenError
    from reportgen.evals.metrics.judge import chat_model

    reports = tmp_path / "r.jsonl"
    reports.write_text('{"id": "a", "report": "No effusion."}\n')
    for argv in (["check", "--reports", str(reports), "--max-chars", "0"],
                 ["label", "--reports", str(reports), "--out", str(tmp_path / "l.jsonl"), "--max-chars", "-1"],
                 ["demo", "--n", "-3"],
                 ["eval", "--inject", "--n", "-1", "--out", str(tmp_path / "i.json")],
                 ["check", "--reports", str(reports), "--checkers", "llm", "--llm-url", "http://127.0.0.1:9/v1",
                  "--llm-model", "m", "--llm-retries", "-1"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "E735" in err and "Traceback" not in err, err
    assert not (tmp_path / "l.jsonl").exists() and not (tmp_path / "i.json").exists()
    try:
        chat_model("http://127.0.0.1:9/v1", "m", max_retries=-1)
    except ReportgenError as e:
        assert e.code == "E735"
    else:
        raise AssertionError("a negative max_retries was accepted")
