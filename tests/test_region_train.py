"""train-clip: contrastive fine-tuning round trip, the CLI, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from reportgen.checkers.region.checker import RegionChecker  # noqa: E402
from reportgen.checkers.region.evidence import Calibration  # noqa: E402
from reportgen.checkers.region.model import ClipBackend  # noqa: E402
from reportgen.checkers.region.train import Pair, read_pairs, split_sentences, train_clip  # noqa: E402
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


def test_manifest_pairs_and_bad_lines(tmp_path, test_data):
    img = test_data / "cxr" / "00000001_000.png"
    lines = [
        json.dumps({"image": str(img), "text": "Enlarged heart."}),
        "{broken",
        json.dumps({"image": "missing.png", "text": "x"}),
        json.dumps({"id": "s1", "images": [str(img)], "views": ["PA"], "report": "FINDINGS: Cardiomegaly. No effusion.\n\nIMPRESSION: Enlarged heart."}),
        json.dumps({"id": "s2", "images": [str(img)]}),
    ]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(lines) + "\n")
    pairs, skipped = read_pairs(m, allow_outside_root=True)  # images in tests/data, beside nothing
    assert [p.text for p in pairs][0] == "Enlarged heart."
    assert {"Cardiomegaly.", "No effusion."} <= {p.text for p in pairs[1:]}
    # the missing image is named by its place in the record, not its path (patient data stays out of messages)
    assert len(skipped) == 3 and skipped[0].startswith(f"{m}:2:") and f"{m}:3: image 0" in skipped[1] and "not found" in skipped[1]
    assert f"{m}:5" in skipped[2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n")
    with pytest.raises(ReportgenError, match="E608"):
        train_clip(bad, "ViT-B-16", tmp_path / "x")


def test_split_sentences_are_the_claims_without_headings():
    s = split_sentences("FINDINGS: Heart size normal. No effusion.\n\nIMPRESSION: Normal chest.")
    assert "Heart size normal." in s and "Normal chest." in s
    assert not any(t.startswith(("FINDINGS", "IMPRESSION")) for t in s)


def test_cli_train_clip(tmp_path, test_data, capsys):
    from reportgen.cli import main

    cfg = write_tiny_config(tmp_path / "cfg", "rg-cli-tiny")
    imgs = [test_data / "cxr" / n for n in ("00000001_000.png", "00027426_000.png")]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps({"image": str(i), "text": t}) for i, t in zip(imgs, ["Cardiomegaly.", "Normal chest."])) + "\n")
    rc = main(["train-clip", "--manifest", str(m), "--model", str(cfg), "--out", str(tmp_path / "o"), "--allow-outside-root",
               "--epochs", "2", "--batch-size", "2", "--format", "json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"] == 2 and out["epochs"] == 2 and out["model"].startswith("local-dir:")
    assert RegionChecker(out["model"]).backend.kind == "local-dir"
    rc = main(["train-clip", "--manifest", str(m), "--model", "local-dir:/nope", "--out", str(tmp_path / "p")])
    assert rc == 1


def _reader(text: str):
    """A stand-in for reportgen.checkers.read: 'left upper opacity' / 'no opacity' sentences."""
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
    calib = __import__("reportgen.checkers.region.calibrate", fromlist=["calibrate"]).calibrate(rc, labels, reader=_reader, save=True)
    assert calib.calibrated and calib.stats["positive"]["auc"] == 1.0
    assert calib.absence_threshold is None  # no negative claims labelled
    assert (ckpt / "reportgen_region.json").is_file()
    again = RegionChecker(f"local-dir:{ckpt}")
    assert again.calibration == Calibration.load(ckpt)
    assert again.calibration.cnr_threshold == pytest.approx(calib.cnr_threshold)


# ---- the training options the semi-synthetic evaluation needs (see docs/region.md) -------


def test_token_loss_scores_the_best_patch_and_reduces_to_clip_loss():
    from reportgen.checkers.region.train import clip_loss, loss_floor, token_clip_loss

    txt = torch.eye(3)[:2]  # two texts: e0, e1
    scale = torch.tensor(np.log(10.0))
    # image 0 holds e0 in ONE of its nine patches, image 1 holds e1 in one; the rest is e2
    dense = torch.zeros(2, 3, 3, 3)
    dense[..., 2] = 1.0
    dense[0, 1, 0] = torch.tensor([1.0, 0, 0])
    dense[1, 2, 1] = torch.tensor([0, 1.0, 0])
    texts = ["a", "b"]
    assert float(token_clip_loss(dense, txt, scale, texts)) < 1e-3  # max over patches finds them
    pooled = torch.nn.functional.normalize(dense.mean(dim=(1, 2)), dim=-1)
    assert float(clip_loss(pooled, txt, scale, texts)) > 0.1  # the mean dilutes them
    assert float(token_clip_loss(dense.flip(0), txt, scale, texts)) > 5  # wrong pairing is punished
    # one patch per image: the token loss IS the CLIP loss
    one = torch.nn.functional.normalize(torch.randn(4, 1, 1, 8), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    tx = ["x", "y", "x", "z"]
    # the same sums through different tensor shapes: equal up to float32 rounding of a loss of
    # about 1 (rtol 1e-5 is ~80 float32 epsilons; atol covers a loss that happens to be ~0)
    assert torch.allclose(token_clip_loss(one, t, scale, tx), clip_loss(one[:, 0, 0], t, scale, tx), rtol=1e-5, atol=1e-6)
    assert loss_floor(["x", "y", "x", "z"]) == pytest.approx(np.log(2) / 2)
    assert loss_floor(["x", "y"]) == 0.0


def test_no_weight_decay_on_temperature_biases_and_norms(tmp_path):
    from reportgen.checkers.region.train import param_groups

    cfg = write_tiny_config(tmp_path / "cfg", "rg-train-groups")
    net = ClipBackend(str(cfg), warn_random=False).model
    decay, no_decay = param_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    assert id(net.logit_scale) in ids
    names = {n for n, p in net.named_parameters() if id(p) in ids}
    assert all(p.ndim < 2 or "logit_scale" in n for n, p in net.named_parameters() if n in names)
    assert all(p.ndim >= 2 for p in decay["params"]) and len(decay["params"]) + len(ids) == len(list(net.parameters()))


def test_grouped_batches_and_lr_schedule():
    from reportgen.checkers.region.train import _batches, lr_lambda

    groups = {"a": [0, 1, 2, 3, 4], "b": [5, 6, 7, 8, 9, 10]}
    batches = _batches(11, 4, groups, np.random.default_rng(0))
    assert sorted(int(i) for b in batches for i in b) == list(range(11))
    assert all(set(map(int, b)) <= set(groups["a"]) or set(map(int, b)) <= set(groups["b"]) for b in batches)
    assert [len(b) for b in _batches(10, 4, None, np.random.default_rng(0))] == [4, 4, 2]
    f = lr_lambda(10, "cosine", 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    assert lr_lambda(0, "constant", 100)(50) == 1.0
    with pytest.raises(ReportgenError, match="E608"):
        train_clip(PAIRS, "ViT-B-16", "/nonexistent", dense_weight=2.0)


def _background(seed: int, n: int = 64) -> np.ndarray:
    r = np.random.default_rng(seed)
    x = np.kron(r.normal(size=(n // 8, n // 8)), np.ones((8, 8))) + 0.5 * r.normal(size=(n, n))
    return (0.2 + 0.4 * (x - x.min()) / (x.max() - x.min())).astype(np.float32)


def _spot(img: np.ndarray, side: str, rng) -> np.ndarray:
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n]
    r, c = rng.uniform(0.2, 0.8) * n, rng.uniform(0.1, 0.4) * n if side == "left" else rng.uniform(0.6, 0.9) * n
    return np.clip(img + 0.5 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * (0.06 * n) ** 2)), 0, 1).astype(np.float32)


def test_token_loss_and_grouped_batches_train_a_small_cnn_whose_maps_point(tmp_path):
    """A tiny open_clip ModifiedResNet trained from random weights with the options the
    semi-synthetic evaluation uses (token-level loss, one background per batch, warm-up and
    cosine decay): the loss leaves chance, and the map of the bare finding phrase peaks on
    the half of NEW backgrounds that holds the spot."""
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 32},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / "rg-train-tiny-rn.json"
    path.write_text(json.dumps(cfg))
    seen: list[str] = []

    def augment(px, pair, rng):
        seen.append(pair.text)
        k = rng.integers(3)
        if k == 2:
            return px, "No spot."
        side = ("left", "right")[k]
        return _spot(px, side, rng), (f"{side.capitalize()} spot." if rng.random() < 0.5 else "spot")

    bgs = [_background(s) for s in range(3)]
    pairs = [Pair(bgs[i % 3], str(i % 3)) for i in range(48)]
    res = train_clip(pairs, str(path), tmp_path / "ck", epochs=20, lr=2e-3, batch_size=16, seed=0, augment=augment,
                     dense_weight=0.5, group_by=lambda p: p.text, warmup=10, schedule="cosine")
    assert all(len(set(seen[i:i + 16])) == 1 for i in range(0, len(seen), 16))  # one background per batch
    steps = res.extra["step_losses"]
    assert len(steps) == 60 and np.mean(steps[-6:]) < np.log(16) - 0.4 < np.mean(steps[:6]) - 0.2
    saved = json.loads((res.out / "reportgen_train.json").read_text())
    assert saved["dense_weight"] == 0.5 and saved["grouped"] and saved["schedule"] == "cosine" and saved["steps"] == 60
    rc = RegionChecker(f"local-dir:{res.out}")
    rng = np.random.default_rng(9)
    hits = []
    for seed in range(10, 16):
        for side in ("left", "right"):
            for _ in range(2):
                m = rc.similarity_maps(rc.encode_image(_spot(_background(seed), side, rng), "PA"), ["spot"])[0]
                hits.append((np.unravel_index(np.argmax(m), m.shape)[1] < m.shape[1] / 2) == (side == "left"))
    assert np.mean(hits) >= 0.9


def test_cli_train_clip_training_options(tmp_path, test_data, capsys):
    """--dense-loss/--group-by/--warmup/--schedule/--weight-decay reach train_clip and are recorded."""
    from reportgen.cli import main

    cfg = write_tiny_config(tmp_path / "cfg", "rg-cli-opts")
    imgs = [test_data / "cxr" / n for n in ("00000001_000.png", "00027426_000.png")]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps({"id": f"s{k}", "image": str(i), "report": "Right upper opacity. Left base effusion."})
                           for k, i in enumerate(imgs)) + "\n")
    rc = main(["train-clip", "--manifest", str(m), "--model", str(cfg), "--out", str(tmp_path / "o"), "--allow-outside-root", "--epochs", "3",
               "--batch-size", "4", "--dense-loss", "0.5", "--group-by", "study", "--warmup", "2", "--schedule", "cosine",
               "--weight-decay", "0.05", "--format", "json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["options"] == {"dense_weight": 0.5, "group_by": "study", "warmup": 2, "schedule": "cosine", "weight_decay": 0.05}
    # grouped by study: 2 studies x 2 sentences -> 2 batches of 2 per epoch, 3 epochs
    assert out["pairs"] == 4 and out["steps"] == 6
    saved = json.loads((tmp_path / "o" / "reportgen_train.json").read_text())
    assert saved["group_by"] == "study" and saved["dense_weight"] == 0.5 and saved["schedule"] == "cosine"
    # one sentence per image: grouping by image leaves nothing to contrast -> a clear error, exit 1
    m1 = tmp_path / "m1.jsonl"
    m1.write_text("\n".join(json.dumps({"image": str(i), "text": t}) for i, t in zip(imgs, ["Cardiomegaly.", "Normal chest."])) + "\n")
    rc = main(["train-clip", "--manifest", str(m1), "--model", str(cfg), "--out", str(tmp_path / "p"), "--group-by", "image", "--allow-outside-root"])
    assert rc == 1
    assert "each of the 2 groups holds one pair" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-clip", "--manifest", str(m1), "--model", str(cfg), "--out", str(tmp_path / "q"), "--schedule", "linear"])
