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
