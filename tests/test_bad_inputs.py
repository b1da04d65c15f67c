"""Bad inputs to run, draft, train, train-clip, prepare, serve and demo: each is a coded
error that names the option or record, before any work, never a traceback (the sweep of
the commands the first sweep in test_cli.py did not cover)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from reportgen.cli import main
from reportgen.errors import ReportgenError


def _fails(argv: list[str], code: str, capsys, *needles: str) -> str:
    assert main(argv) == 1, argv
    err = capsys.readouterr().err
    assert code in err and "Traceback" not in err, (argv, err)
    for n in needles:
        assert n in err, (argv, n, err)
    return err


@pytest.fixture()
def files(tmp_path):
    d = tmp_path / "folder"
    d.mkdir()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    reports = tmp_path / "r.jsonl"
    reports.write_text('{"id": "a", "report": "No effusion."}\n')
    return {"dir": str(d), "empty": str(empty), "file": str(a_file), "reports": str(reports), "tmp": tmp_path}


def test_an_output_folder_that_is_a_file_fails_before_the_work(files, capsys, monkeypatch):
    """`train --out FILE` and `train-clip --out FILE` raised FileExistsError tracebacks,
    train-clip only after the whole training."""
    import reportgen.train

    def no_work(*a, **k):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr(reportgen.train, "train", no_work)
    f = files["file"]
    _fails(["train", "--manifest", files["reports"], "--model", "m", "--out", f], "E736", capsys, "is a file, not a folder")
    _fails(["train", "--manifest", files["reports"], "--model", "m", "--out", f + "/sub"], "E736", capsys, "cannot be made")
    _fails(["train-clip", "--manifest", files["reports"], "--model", "ViT-B-16", "--out", f], "E736", capsys)
    from reportgen.jsonl import check_out_dir

    check_out_dir(files["tmp"] / "new" / "deeper")  # a folder that can be made passes, and is not made
    assert not (files["tmp"] / "new").exists()


def test_train_clip_api_checks_out_labels_and_settings_before_training(files, test_data, tiny_clip_dir):
    from reportgen.checkers.region.train import train_clip

    m = files["tmp"] / "pairs.jsonl"
    imgs = [test_data / "cxr" / n for n in ("00000001_000.png", "00027426_000.png")]
    m.write_text("".join(json.dumps({"image": str(i), "text": t}) + "\n" for i, t in zip(imgs, ["Cardiomegaly.", "Normal chest."])))
    model = f"local-dir:{tiny_clip_dir}"
    kw = dict(epochs=1, batch_size=2, allow_outside_root=True)
    cases = ((dict(out=files["file"]), "E736"),
             (dict(calibrate_labels=files["tmp"] / "missing.jsonl"), "E101"),  # was found missing after the training
             (dict(weight_decay=-1.0), "E608"),  # was accepted
             (dict(pretrained=str(files["tmp"] / "w.pt")), "E608"),  # was ignored without a word
             (dict(device="bogus"), "E505"))  # was E600 'open_clip could not load'
    for extra, code in cases:
        args = {"out": files["tmp"] / "o", **kw, **extra}
        with pytest.raises(ReportgenError) as e:
            train_clip(m, model, **args)
        assert e.value.code == code, (extra, e.value)
    assert not (files["tmp"] / "o").exists()


def test_train_settings_that_raised_tracebacks(tiny_vlm_dir, tiny_manifest, files):
    from reportgen.models import pick_device
    from reportgen.train import TrainConfig, Trainer

    with pytest.raises(ReportgenError) as e:
        pick_device("bogus")  # was a RuntimeError from torch
    assert e.value.code == "E505"
    with pytest.raises(ReportgenError) as e:
        TrainConfig(manifest=str(tiny_manifest), model=str(tiny_vlm_dir), out=str(files["tmp"] / "o"), target_modules="(")
    assert e.value.code == "E510" and "regular expression" in str(e.value)  # was re.error after loading the model
    cfg = TrainConfig(manifest=str(tiny_manifest), model=str(tiny_vlm_dir), out=str(files["tmp"] / "o"),
                      target_modules="nomatch", max_steps=1, val_fraction=0.0, eval_examples=0)
    with pytest.raises(ReportgenError) as e:
        Trainer(cfg).run()  # was peft's NoMatchingPeftModuleError
    assert e.value.code == "E515"
    cfg = TrainConfig(manifest=str(tiny_manifest), model=str(tiny_vlm_dir), out=files["file"])
    with pytest.raises(ReportgenError) as e:
        Trainer(cfg).run()  # the Python API checks --out too
    assert e.value.code == "E736"


def test_input_paths_that_are_folders_or_empty(files, capsys):
    """A folder was reported as 'does not exist'; an empty studies / reports file ran to an
    empty success (draft: 'nothing to do', run: an empty report)."""
    d, empty, rep = files["dir"], files["empty"], files["reports"]
    out = str(files["tmp"] / "o")
    _fails(["draft", "--studies", d, "--backend", "hf:x/y", "--out", out + ".jsonl"], "E101", capsys, "is a folder")
    _fails(["draft", "--studies", empty, "--backend", "hf:x/y", "--out", out + ".jsonl"], "E739", capsys, "holds no study")
    _fails(["train", "--manifest", d, "--model", "m", "--out", out], "E511", capsys, "is a folder")
    from reportgen.prompting import load_template

    with pytest.raises(ReportgenError, match="E520: prompt template .* is a folder"):
        load_template(d)
    _fails(["run", "--reports", d, "--out", out, "-q"], "E802", capsys, "is a folder")
    _fails(["run", "--studies", d, "--backend", "hf:x/y", "--out", out, "-q"], "E802", capsys, "is a folder")
    _fails(["run", "--reports", empty, "--out", out, "-q"], "E739", capsys, "--reports")
    _fails(["run", "--reports", rep, "--reference", empty, "--out", out, "-q"], "E739", capsys, "--reference")
    _fails(["run", "--studies", empty, "--backend", "hf:x/y", "--out", out, "-q"], "E739", capsys, "--studies")
    assert not Path(out).exists()


def test_an_image_path_that_names_a_folder_says_so(files, capsys):
    """A folder named as an image was 'not found' (draft E576, train E513)."""
    from reportgen.train import read_manifest

    tmp = files["tmp"]
    studies = tmp / "s.jsonl"
    studies.write_text('{"id": "a", "images": ["folder"], "report": "No effusion."}\n')
    out = tmp / "d.jsonl"
    assert main(["draft", "--studies", str(studies), "--backend", "hf:x/y", "--out", str(out), "--no-progress"]) == 1
    rec = json.loads(out.read_text())
    assert rec["error_code"] == "E576" and "'folder' is a folder, not an image file" in rec["error"]
    assert "E513 image 'folder' is a folder, not an image file" in read_manifest(studies).errors[0]["error"]


def test_integer_options_with_bounds(files, capsys, tmp_path):
    """--limit -1 drafted nothing and said '6 studies already in'; --seed -1 raised numpy's
    ValueError after the check stage; serve passed --port 70000 / -1 to a socket (OverflowError)
    and --max-loras 0, --max-model-len 0, --startup-timeout -1 to vLLM."""
    s = files["reports"]
    for argv, code in ((["draft", "--studies", s, "--backend", "hf:x/y", "--out", str(tmp_path / "d.jsonl"), "--limit", "-1"], "E735"),
                       (["draft", "--studies", s, "--backend", "hf:x/y", "--out", str(tmp_path / "d.jsonl"), "--limit", "0"], "E735"),
                       (["draft", "--studies", s, "--backend", "hf:x/y", "--out", str(tmp_path / "d.jsonl"),
                         "--max-consecutive-failures", "-1"], "E735"),
                       (["run", "--reports", s, "--out", str(tmp_path / "o"), "-q", "--seed", "-1"], "E735"),
                       (["serve", "--model", "m/x", "--port", "70000"], "E737"),
                       (["serve", "--model", "m/x", "--port", "-1"], "E737"),
                       (["serve", "--model", "m/x", "--startup-timeout", "-1"], "E737"),
                       (["serve", "--model", "m/x", "--max-loras", "0"], "E735"),
                       (["serve", "--model", "m/x", "--max-model-len", "0"], "E735")):
        _fails(argv, code, capsys)
    assert not (tmp_path / "d.jsonl").exists() and not (tmp_path / "o").exists()
    cfg = tmp_path / "run.toml"
    cfg.write_text("seed = -1\n")
    _fails(["run", "--config", str(cfg), "--reports", s, "--out", str(tmp_path / "o"), "-q"], "E801", capsys, "seed")


def test_draft_limit_says_what_it_left(tiny_vlm_dir, tiny_manifest, tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    argv = ["draft", "--studies", str(tiny_manifest), "--backend", f"hf:{tiny_vlm_dir}", "--out", str(out), "--no-progress",
            "--max-new-tokens", "2", "--limit", "2"]
    assert main(argv) == 0
    assert "2 drafted, 0 errors, 0 already done, 4 left for a later run (--limit)" in capsys.readouterr().err
    assert main(argv) == 0
    assert "2 drafted, 0 errors, 2 already done, 2 left for a later run (--limit)" in capsys.readouterr().err


def test_serve_log_port_and_model_checked_before_vllm_starts(tmp_path, capsys):
    """--log FOLDER raised IsADirectoryError when the server started; a local --model that is
    not there went to vLLM."""
    from reportgen.serve import ServeConfig, VLLMServer

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 0\n")  # 'imports vllm'; exits at once if started
    fake.chmod(0o755)
    base = ["serve", "--python", str(fake), "--port", "0"]
    _fails([*base, "--model", "m/x", "--log", str(tmp_path)], "E734", capsys, "--log", "is a folder")
    _fails([*base, "--model", str(tmp_path / "nomodel"), "--print-command"], "E504", capsys, "does not exist")
    with pytest.raises(ReportgenError) as e:
        VLLMServer(ServeConfig(model="m/x", port=70000), launcher=[str(fake)])
    assert e.value.code == "E737"
    (tmp_path / "ad").mkdir()
    (tmp_path / "ad" / "adapter_config.json").write_text("[1]")  # was AttributeError: 'list' object has no attribute 'get'
    _fails([*base, "--model", "m/x", "--adapter", f"a={tmp_path / 'ad'}", "--print-command"], "E554", capsys, "JSON object")


def _chexpert_csv(path: Path, *, bom: bool = False) -> None:
    from PIL import Image

    Image.new("L", (16, 16), 100).save(path.parent / "a.jpg")
    cols = ["path_to_image", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order", "report",
            "section_findings", "section_impression", "section_clinical_history", "section_comparison", "split"]
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerow(["a.jpg", "Frontal", "PA", "pat1", "1", "", "Clear lungs.", "Normal.", "", "", "train"])


def test_prepare_bad_tables_and_folders(files, capsys):
    """A non-UTF-8 CSV raised UnicodeDecodeError; a CSV saved with a BOM (Excel) lost its
    first column; a folder or file given for a folder was 'does not exist'."""
    tmp = files["tmp"]
    out = str(tmp / "s.jsonl")
    binary = tmp / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage\n")
    _fails(["prepare", "csv", "--csv", str(binary), "--out", out], "E738", capsys, "not UTF-8")
    _fails(["prepare", "csv", "--csv", files["dir"], "--out", out], "E110", capsys, "is a folder")
    good = tmp / "t" / "df.csv"
    good.parent.mkdir()
    _chexpert_csv(good, bom=True)
    _fails(["prepare", "csv", "--csv", str(good), "--image-root", str(tmp / "nope"), "--out", out], "E110", capsys, "--image-root")
    _fails(["prepare", "mimic-cxr", "--root", files["file"], "--out", out], "E110", capsys, "is a file")
    _fails(["prepare", "mimic-cxr", "--root", files["dir"], "--reports", str(tmp / "nope"), "--out", out], "E110", capsys, "--reports")
    mimic = tmp / "mimic"
    (mimic / "files").mkdir(parents=True)
    for name, data in (("mimic-cxr-2.0.0-split.csv", b"\xff\xfe\x00garbage\n"), ("mimic-cxr-2.0.0-split.csv.gz", b"not gzip")):
        for old in mimic.glob("*.csv*"):
            old.unlink()
        (mimic / name).write_bytes(data)  # were UnicodeDecodeError / BadGzipFile tracebacks
        _fails(["prepare", "mimic-cxr", "--root", str(mimic), "--out", out], "E738", capsys, "cannot be read as UTF-8 CSV")
    assert not Path(out).exists()
    assert main(["prepare", "csv", "--csv", str(good), "--out", out]) == 0
    assert [json.loads(x)["id"] for x in Path(out).read_text().splitlines()] == ["pat1_1"]


def test_demo_n_above_the_sample_is_an_error(capsys):
    """--n 100000 put every IU report in part A and left part B empty, silently."""
    _fails(["demo", "--n", "100000"], "E737", capsys, "each part takes at most")


def test_run_repair_prompt_and_region_device_checked_before_the_work(files, capsys, tiny_clip_dir):
    """A malformed --repair-prompt was read only when a flagged draft was redrafted (a run with
    none 'succeeded'; a missing one failed after the drafting); --region-device bogus was E600
    'open_clip could not load'."""
    from reportgen.checkers.region.model import ClipBackend

    bad = files["tmp"] / "bad.json"
    bad.write_text("{nope")
    out = files["tmp"] / "o"
    base = ["run", "--studies", files["reports"], "--backend", "hf:x/y", "--out", str(out), "-q", "--repair"]
    _fails([*base, "--repair-prompt", str(bad)], "E520", capsys, "malformed JSON")
    _fails([*base, "--repair-prompt", files["dir"]], "E813", capsys, "is a folder")
    assert not (out / "drafts.jsonl").exists()
    with pytest.raises(ReportgenError) as e:
        ClipBackend(f"local-dir:{tiny_clip_dir}", device="bogus").load()
    assert e.value.code == "E505"


def test_an_empty_path_option_is_an_error(files, capsys, monkeypatch):
    """`--out ""` wrote a run (run) or a model (train-clip) into the current folder, or raised
    ValueError / IsADirectoryError (draft, prepare, label)."""
    monkeypatch.chdir(files["tmp"])
    rep = files["reports"]
    for argv in (["run", "--reports", rep, "--out", "", "-q"],
                 ["draft", "--studies", rep, "--backend", "hf:x/y", "--out", ""],
                 ["train-clip", "--manifest", rep, "--model", "ViT-B-16", "--out", ""],
                 ["prepare", "csv", "--csv", rep, "--out", ""],
                 ["label", "--reports", rep, "--out", ""],
                 ["serve", "--model", " ", "--print-command"]):
        _fails(argv, "E740", capsys, "is empty")
    assert sorted(p.name for p in files["tmp"].iterdir()) == ["a_file", "empty.jsonl", "folder", "r.jsonl"]


def test_backend_specs_and_serve_options_that_passed_unchecked(files, capsys):
    """'vllm:http://[::1' raised httpx's InvalidURL; port 99999 was retried as 'unreachable';
    '?adapter=' drafted with the base model without a word; run ignored --region-calibration
    without --region-model; serve passed --dtype bogus to vLLM."""
    from reportgen.backends import parse_spec

    for spec in ("vllm:http://[::1", "vllm:http://127.0.0.1:99999", "vllm:http://:80", "hf:x/y?adapter=",
                 "vllm:http://127.0.0.1:8000?model="):
        with pytest.raises(ReportgenError) as e:
            parse_spec(spec)
        assert e.value.code == "E560", spec
    assert parse_spec("vllm:http://[::1]:8000?model=a").target == "http://[::1]:8000"
    from reportgen.backends import get_drafter

    for spec in ("hf:x/y?max_new_tokens=abc", "vllm:http://127.0.0.1:9?concurrency=many", "hf:x/y?batch_size=true"):
        with pytest.raises(ReportgenError) as e:
            get_drafter(spec)  # '?max_new_tokens=abc' was int()'s ValueError
        assert e.value.code == "E562" and "is not a number" in str(e.value), spec
    _fails(["run", "--reports", files["reports"], "--out", str(files["tmp"] / "o"), "-q", "--region-calibration",
            files["file"]], "E700", capsys, "--region-calibration given without --region-model")
    _fails(["serve", "--model", "m/x", "--dtype", "bogus", "--print-command"], "E505", capsys, "not a vLLM dtype")


def test_a_view_that_is_not_a_name_is_a_record_error(files, test_data):
    """'view': 7 raised AttributeError in the prompt (train: the whole run stopped after the model
    was loaded; draft: an error record without a code); 'views': "PA" was two views, P and A."""
    from reportgen.train import read_manifest
    from reportgen.types import Study

    assert Study.from_dict({"id": "a", "images": ["x.png"], "views": "PA"}).views == ("PA",)
    with pytest.raises(ReportgenError) as e:
        Study.from_dict({"id": "a", "images": ["x.png"], "view": 7})
    assert e.value.code == "E741"
    img = test_data / "cxr" / "00000001_000.png"
    m = files["tmp"] / "m.jsonl"
    m.write_text("".join(json.dumps({"id": i, "images": [str(img)], "report": "No effusion.", **v}) + "\n"
                         for i, v in (("a", {"view": 7}), ("b", {"views": [["PA"]]}), ("c", {"views": "PA"}))))
    data = read_manifest(m, allow_outside_root=True)
    assert [e["id"] for e in data.errors] == ["a", "b"] and all("E741: study" in e["error"] for e in data.errors)
    assert [x.study.views for x in data.examples] == [("PA",)]
    out = files["tmp"] / "d.jsonl"
    m.write_text(json.dumps({"id": "a", "images": [str(img)], "view": 7}) + "\n")
    assert main(["draft", "--studies", str(m), "--backend", "hf:x/y", "--out", str(out), "--allow-outside-root"]) == 1
    assert json.loads(out.read_text())["error_code"] == "E741"


def test_a_user_lexicon_with_an_unknown_or_mistyped_section(files, capsys):
    """A misspelt section ('observation') was merged and never read, so the user's terms did
    nothing without a word; a section of the wrong type raised AttributeError."""
    lex = files["tmp"] / "lex.json"
    for data, needle in (({"version": "1", "observation": {"pleural effusion": ["pleural collection"]}}, "unknown section 'observation'"),
                         ({"version": "1", "observations": 5}, "section 'observations' must be a JSON object")):
        lex.write_text(json.dumps(data))
        _fails(["extract", "--lexicon", str(lex), "No pleural collection."], "E211", capsys, needle)
    lex.write_text(json.dumps({"version": 2, "comment": "mine", "observations": {"pleural effusion": ["pleural collection"]}}))
    assert main(["extract", "--lexicon", str(lex), "No pleural collection."]) == 0
    assert "absent    pleural effusion" in capsys.readouterr().out
