"""One image policy (--max-pixels / --min-pixels / --max-images, frontal first) applied the
same way in `train`, the hf backend, the vllm backend (before base64) and `serve`."""

from __future__ import annotations

import base64
import io
import json

import pytest

from reportgen.errors import ReportgenError
from reportgen.images import DEFAULT_POLICY, ImagePolicy
from reportgen.types import Study


@pytest.fixture(scope="module")
def big_study(tmp_path_factory):
    """A study of three 'full-size' films: lateral, PA, decubitus (in that file order)."""
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("big")
    paths = []
    for i, (w, h) in enumerate([(640, 520), (700, 600), (300, 280)]):
        arr = (np.add.outer(np.arange(h), np.arange(w) * (i + 1)) % 251).astype(np.uint8)
        p = d / f"film{i}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return Study("big", images=tuple(paths), views=("LATERAL", "PA", "DECUBITUS"), indication="cough")


def test_sizes_and_view_selection():
    p = ImagePolicy(max_pixels=512 * 512, min_pixels=0, max_images=2)
    w, h = p.size_for(3056, 2544)  # a real radiograph: ~9,900 Qwen2-VL tokens at the processor's default
    assert w * h <= 512 * 512 and abs(w / h - 3056 / 2544) < 0.01
    assert p.size_for(400, 300) == (400, 300)
    up = ImagePolicy(max_pixels=None, min_pixels=100 * 100)
    w, h = up.size_for(20, 10)
    assert w * h >= 100 * 100 and abs(w / h - 2) < 0.05
    views = ["LATERAL", "AP", None, "PA", "LL", "OBLIQUE"]
    assert ImagePolicy(max_images=None).order(views) == [1, 0, 2, 3, 4, 5]  # frontal, lateral, unknown, more
    assert ImagePolicy(max_images=2).order(views) == [1, 0]
    assert ImagePolicy(max_images=1).order(["LATERAL", "PA"]) == [1]
    assert DEFAULT_POLICY.max_images == 2 and DEFAULT_POLICY.max_pixels == 512 * 512
    for bad in (dict(max_images=0), dict(max_pixels=-1), dict(min_pixels=10, max_pixels=5), dict(max_images=1.5)):
        with pytest.raises(ReportgenError) as e:
            ImagePolicy(**bad)
        assert e.value.code == "E580"


def test_prompt_lists_the_selected_images_frontal_first(big_study):
    from reportgen.prompting import image_paths, render_messages

    msgs = render_messages(big_study, "findings", policy=ImagePolicy(max_images=2))
    assert image_paths(msgs) == [big_study.images[1], big_study.images[0]]
    text = json.dumps(msgs)
    assert "Image 1 (frontal, PA view)" in text and "Image 2 (lateral view)" in text and "(2 image(s))" in text
    assert "decubitus" not in text


def _capture_encode(monkeypatch):
    """Record the images every prompt is encoded with (train and the hf backend both go
    through reportgen.encoding.encode)."""
    import reportgen.encoding as enc

    seen: list[list[tuple[int, int]]] = []
    real = enc.encode

    def spy(processor, texts, images, **kw):
        seen.extend([[im.size for im in imgs] for imgs in images])
        return real(processor, texts, images, **kw)

    monkeypatch.setattr(enc, "encode", spy)
    return seen


POLICY = dict(max_pixels=48 * 40, min_pixels=0, max_images=1)


def test_train_applies_the_policy(tiny_vlm_dir, big_study, tmp_path, monkeypatch):
    from reportgen.train import TrainConfig, Trainer

    row = {"id": "big", "images": list(big_study.images), "views": list(big_study.views), "report": "Clear lungs."}
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "big2"}) + "\n")
    seen = _capture_encode(monkeypatch)
    t = Trainer(TrainConfig(manifest=str(m), model=str(tiny_vlm_dir), out=str(tmp_path / "o"), max_steps=1, epochs=1,
                            batch_size=1, grad_accum=1, val_fraction=0.0, eval_examples=0, allow_outside_root=True, **POLICY))
    t.run()
    assert seen and all(len(s) == 1 and s[0][0] * s[0][1] <= 48 * 40 for s in seen)
    assert seen[0][0] == ImagePolicy(**POLICY).size_for(700, 600)  # the PA film, not the lateral listed first
    summary = json.loads((tmp_path / "o" / "reportgen_train.json").read_text())
    assert summary["resolved"]["image_policy"] == POLICY
    assert summary["data"]["tokens_per_study"]["images"]["max"] == 1


def test_hf_backend_applies_the_policy(tiny_vlm_dir, big_study, monkeypatch):
    from reportgen.backends.hf import HFDrafter

    seen = _capture_encode(monkeypatch)
    drafter = HFDrafter(str(tiny_vlm_dir), device="cpu", max_new_tokens=2, **POLICY)
    drafter.draft([big_study])
    assert seen == [[ImagePolicy(**POLICY).size_for(700, 600)]]
    seen.clear()
    HFDrafter(str(tiny_vlm_dir), device="cpu", max_new_tokens=2, loaded=drafter.loaded).draft([big_study])
    assert [len(s) for s in seen] == [2] and all(w * h <= 512 * 512 for w, h in seen[0])  # the defaults


def _data_url_sizes(messages):
    from PIL import Image

    out = []
    for m in messages:
        for part in m["content"] if isinstance(m["content"], list) else []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                assert url.startswith("data:image/png;base64,")
                out.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size)
    return out


def test_vllm_backend_resizes_before_base64_and_keeps_the_frontal(big_study):
    from reportgen.backends.vllm import VLLMDrafter

    # Bug 7: a study with 3+ images was sent whole and refused by `reportgen serve` (2 per prompt).
    default = VLLMDrafter("http://127.0.0.1:9")
    sizes = _data_url_sizes(default.messages(big_study))
    assert sizes == [DEFAULT_POLICY.size_for(700, 600), DEFAULT_POLICY.size_for(640, 520)]  # PA, then lateral
    assert all(w * h <= 512 * 512 for w, h in sizes) and sizes[0] != (700, 600)  # never full resolution
    small = VLLMDrafter("http://127.0.0.1:9", **POLICY)
    assert _data_url_sizes(small.messages(big_study)) == [ImagePolicy(**POLICY).size_for(700, 600)]
    assert small.policy.to_dict() == POLICY


def test_serve_limit_comes_from_the_same_setting(tmp_path):
    from reportgen.serve import ServeConfig, VLLMServer, build_command

    def limit(cfg):
        cmd = build_command(VLLMServer(cfg).cfg, ["vllm", "serve"])
        return json.loads(cmd[cmd.index("--limit-mm-per-prompt") + 1])

    assert limit(ServeConfig(model="m")) == {"image": 2, "video": 0}
    assert limit(ServeConfig(model="m", max_images=3)) == {"image": 3, "video": 0}
    assert limit(ServeConfig(model="m", limit_mm_per_prompt='{"image": 4}')) == {"image": 4}
    with pytest.raises(ReportgenError) as e:
        VLLMServer(ServeConfig(model="m", max_images=3, limit_mm_per_prompt='{"image": 2}'))
    assert e.value.code == "E583"
    cmd = build_command(ServeConfig(model="m", trust_remote_code=True), ["vllm", "serve"])
    assert "--trust-remote-code" in cmd
