"""train-clip: contrastive fine-tuning round trip, the CLI, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from checkers.region.checker import RegionChecker  # noqa: E402
from checkers.region.evidence import Calibration  # noqa: E402
from checkers.region.model import ClipBackend  # noqa: E402
from checkers.region.train import Pair, read_pairs, split_sentences, train_clip  # noqa: E402
from reportgen.errors import ReportgenError  # noqa: E402
from reportgen.protocols import CheckedClaim  # noqa: E402
from reportgen.types import Claim, EntityGraph, Finding  # noqa: E402
from tests.fixtures_clip import write_tiny_config  # noqa: E402


def _patterns(size: int = 32) -> list[np.ndarray]:
    g = np.indices((size, size))
    return [
        np.full((size, size), 0.1, np.float32), np.full((size, size), 0.9, np.float32),
        ((g[1] // 4) % 2).astype(np.float32), (((g[0] // 4) + (g[1] // 4)) % 2).astype(np.float32),
    ]


PAIRS = [Pair(i, t) for i, t in zip(_patterns(), ["Dark film.", "Bright film.", "Vertical stripes.", "Checkerboard pattern."])]


def test_loss_decreases_and_checkpoint_reloads_identically(tmp_path):
    cfg = write_tiny_config(tmp_path / "cfg", "rg-train-tiny")
    res = train_clip(PAIRS, str(cfg), tmp_path / "ckpt", epochs=12, lr=1e-3, batch_size=4, seed=0)
    assert res.n_pairs == 4 and len(res.losses) == 12
    assert res.losses[-1] < 0.25 * np.log(4) < res.losses[0]  # from chance (or worse) to matched
    files = {p.name for p in res.out.iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors", "reportgen_train.json"} <= files
    assert json.loads((res.out / "reportgen_train.json").read_text())["losses"] == list(res.losses)
    # reload as local-dir: same embeddings as the trained weights in memory
    b = ClipBackend(f"local-dir:{res.out}")
    x = torch.stack([b.prepare(p.image) for p in PAIRS])
    pooled, dense = b.encode_images(x)
    texts = b.encode_texts([p.text for p in PAIRS])
    sim = pooled @ texts.T
    assert (sim.argmax(dim=1) == torch.arange(4)).all()  # it learned the pairs
    import open_clip

    m = open_clip.create_model(f"local-dir:{res.out}").eval()
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(m.encode_image(x), dim=-1)
    assert torch.allclose(ref, pooled, atol=1e-6)
    # the same seed gives the same weights
    res2 = train_clip(PAIRS, str(cfg), tmp_path / "ckpt2", epochs=2, lr=1e-3, batch_size=4, seed=0)
    res3 = train_clip(PAIRS, str(cfg), tmp_path / "ckpt3", epochs=2, lr=1e-3, batch_size=4, seed=0)
    assert res2.losses == res3.losses


def test_manifest_pairs_and_bad_lines(tmp_path, shared_data):
    img = shared_data / "cxr" / "00000001_000.png"
    lines = [
        json.dumps({"image": str(img), "text": "Enlarged heart."}),
        "{broken",
        json.dumps({"image": "missing.png", "text": "x"}),
        json.dumps({"id": "s1", "images": [str(img)], "views": ["PA"], "report": "FINDINGS: Cardiomegaly. No effusion.\n\nIMPRESSION: Enlarged heart."}),
        json.dumps({"id": "s2", "images": [str(img)]}),
    ]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(lines) + "\n")
    pairs, skipped = read_pairs(m)
    assert [p.text for p in pairs][0] == "Enlarged heart."
    assert {"Cardiomegaly.", "No effusion."} <= {p.text for p in pairs[1:]}
    assert len(skipped) == 3 and skipped[0].startswith(f"{m}:2:") and "missing.png" in skipped[1]
    assert f"{m}:5" in skipped[2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n")
    with pytest.raises(ReportgenError, match="E608"):
        train_clip(bad, "ViT-B-16", tmp_path / "x")


def test_split_sentences_fallback_drops_headings():
    s = split_sentences("FINDINGS: Heart size normal. No effusion.\n\nIMPRESSION: Normal chest.")
    assert "Heart size normal." in s and "Normal chest." in s
    assert not any(t.startswith(("FINDINGS", "IMPRESSION")) for t in s)


def test_cli_train_clip(tmp_path, shared_data, capsys):
    from reportgen.cli import main

    cfg = write_tiny_config(tmp_path / "cfg", "rg-cli-tiny")
    imgs = [shared_data / "cxr" / n for n in ("00000001_000.png", "00027426_000.png")]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps({"image": str(i), "text": t}) for i, t in zip(imgs, ["Cardiomegaly.", "Normal chest."])) + "\n")
    rc = main(["train-clip", "--manifest", str(m), "--model", str(cfg), "--out", str(tmp_path / "o"),
               "--epochs", "2", "--batch-size", "2", "--format", "json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"] == 2 and out["epochs"] == 2 and out["model"].startswith("local-dir:")
    assert RegionChecker(out["model"]).backend.kind == "local-dir"
    rc = main(["train-clip", "--manifest", str(m), "--model", "local-dir:/nope", "--out", str(tmp_path / "p")])
    assert rc == 1


def _reader(text: str):
    """A stand-in for checkers.read: 'left upper opacity' / 'no opacity' sentences."""
    t = text.lower()
    if t.startswith("no "):
        f = Finding("opacity", "absent")
    else:
        side = "left" if "left" in t else "right"
        f = Finding("opacity", "present", side, ("upper lobe" if "upper" in t else "lower lobe",))
    return [CheckedClaim(Claim(text, "findings", 0, len(text)), EntityGraph(), (f,))]


def test_calibration_is_saved_with_the_checkpoint_and_used(tiny_clip_dir, tmp_path, monkeypatch):
    import shutil

    from tests.fixtures_clip import LEFT_UPPER, blob

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_clip_dir, ckpt)
    rc = RegionChecker(f"local-dir:{ckpt}")
    assert rc.calibration == Calibration()

    def maps(enc, texts):  # the evidence: always in the patient's left upper zone
        return np.stack([blob(*LEFT_UPPER, seed=i) for i, _ in enumerate(texts)])

    monkeypatch.setattr(rc, "similarity_maps", maps)
    img = np.full((32, 32), 0.5, dtype=np.float32)
    labels = (
        [{"image": img, "text": "Left upper opacity.", "label": True}] * 3
        + [{"image": img, "text": "Right upper opacity.", "label": False}] * 3
        + [{"image": img, "text": "Left lower opacity.", "label": False}] * 2
    )
    calib = __import__("checkers.region.calibrate", fromlist=["calibrate"]).calibrate(rc, labels, reader=_reader, save=True)
    assert calib.calibrated and calib.stats["positive"]["auc"] == 1.0
    assert calib.absence_threshold is None  # no negative claims labelled
    assert (ckpt / "reportgen_region.json").is_file()
    again = RegionChecker(f"local-dir:{ckpt}")
    assert again.calibration == Calibration.load(ckpt)
    assert again.calibration.cnr_threshold == pytest.approx(calib.cnr_threshold)
