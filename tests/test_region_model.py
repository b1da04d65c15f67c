"""Dense maps of open_clip towers (tiny models built from configs), model specs, caching."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from reportgen.checkers.region.checker import RegionChecker, finding_query  # noqa: E402
from reportgen.checkers.region.model import ClipBackend, dense_forward, resolve_model_spec, smooth_and_upsample  # noqa: E402
from reportgen.errors import ReportgenError  # noqa: E402
from reportgen.protocols import CheckedClaim  # noqa: E402
from reportgen.types import Claim, EntityGraph, Finding  # noqa: E402
from tests.fixtures_clip import TINY_CLIP_CONFIG  # noqa: E402


def claim(text: str, *findings: Finding, start: int = 0) -> CheckedClaim:
    return CheckedClaim(Claim(text, "findings", start, start + len(text)), EntityGraph(), tuple(findings))


def test_dense_shapes_and_pooled_matches_encode_image(tiny_clip_dir):
    b = ClipBackend(f"local-dir:{tiny_clip_dir}")
    x = b.prepare(np.random.default_rng(0).random((50, 70), dtype=np.float32))
    assert tuple(x.shape) == (3, 32, 32)
    pooled, dense = b.encode_images(x[None], normalize=False)
    assert tuple(dense.shape) == (1, 4, 4, 32) and tuple(pooled.shape) == (1, 32)
    with torch.inference_mode():
        ref = b.model.encode_image(x[None])
    assert torch.allclose(pooled, ref, atol=1e-5)
    # average pooling + a linear projection: the pooled embedding is the mean patch token
    assert torch.allclose(dense.mean(dim=(1, 2)), pooled, atol=1e-5)
    pooled_n, dense_n = b.encode_images(x[None])
    assert torch.allclose(dense_n.norm(dim=-1), torch.ones(1, 4, 4), atol=1e-5)


def _model_from_config(tmp_path, name, cfg):
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(cfg))
    open_clip.add_model_config(p)
    torch.manual_seed(0)
    return open_clip.create_model(name).eval()


def test_token_pooled_vit_dense_tokens_share_the_projection(tmp_path):
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["vision_cfg"]["pool_type"] = "tok"
    m = _model_from_config(tmp_path, "rg-tiny-tok", cfg)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        pooled, dense = dense_forward(m.visual, x, "vit")
        assert torch.allclose(pooled, m.encode_image(x), atol=1e-5)
        h = m.visual.transformer(m.visual._embeds(x))
        manual = m.visual.ln_post(h[:, 1:]) @ m.visual.proj
    assert torch.allclose(dense.reshape(2, 16, -1), manual, atol=1e-5)


def test_modified_resnet_dense_maps(tmp_path):
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 8},
           "text_cfg": TINY_CLIP_CONFIG["text_cfg"]}
    m = _model_from_config(tmp_path, "rg-tiny-rn", cfg)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        pooled, dense = dense_forward(m.visual, x, "resnet")
        assert torch.allclose(pooled, m.encode_image(x), atol=1e-5)
    assert tuple(dense.shape) == (1, 2, 2, 16)


def test_timm_vit_dense_maps(tmp_path):
    pytest.importorskip("timm")
    cfg = {"embed_dim": 16, "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
                                           "timm_pool": "", "timm_proj": "linear", "image_size": 224},
           "text_cfg": TINY_CLIP_CONFIG["text_cfg"]}
    m = _model_from_config(tmp_path, "rg-tiny-timm", cfg)
    x = torch.randn(1, 3, 224, 224)  # open_clip does not pass image_size to timm: 224 -> 14x14
    with torch.inference_mode():
        pooled, dense = dense_forward(m.visual, x, "timm")
        assert torch.allclose(pooled, m.encode_image(x), atol=1e-5)
        feats = m.visual.trunk.forward_features(x)
        manual = m.visual.head(feats[:, m.visual.trunk.num_prefix_tokens:])
    assert tuple(dense.shape) == (1, 14, 14, 16)
    assert torch.allclose(dense.reshape(1, 196, 16), manual, atol=1e-5)


@pytest.mark.parametrize("spec, code", [
    ("", "E600"), ("hf-hub:only-org", "E600"), ("local-dir:/nonexistent/folder", "E601"), ("missing.json", "E600"),
])
def test_bad_model_specs_name_the_valid_forms(spec, code):
    with pytest.raises(ReportgenError, match=code) as e:
        resolve_model_spec(spec)
    assert "local-dir:PATH" in str(e.value) or "folder" in str(e.value)


def test_nothing_is_loaded_at_construction(tmp_path):
    b = ClipBackend("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    assert b._model is None and b.kind == "hf-hub"
    rc = RegionChecker(b)
    assert rc.backend._model is None
    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(ReportgenError, match="E600"):
        resolve_model_spec(str(tmp_path))  # a bare folder: suggests local-dir:


def test_smoothing_keeps_the_peak_and_upsamples():
    sim = torch.zeros(1, 8, 8)
    sim[0, 2, 6] = 1.0
    out = smooth_and_upsample(sim, 1.0, (64, 64))
    assert out.shape == (1, 64, 64)
    r, c = np.unravel_index(out[0].argmax(), out[0].shape)
    assert abs(r - 20) <= 4 and abs(c - 52) <= 4
    assert out[0].max() < 1.0 and out[0].min() >= 0.0  # smoothed


def test_image_encoded_once_and_claims_in_one_batch(tiny_region_checker, test_data, monkeypatch):
    rc = tiny_region_checker
    calls = {"img": 0, "txt": []}
    enc_img, enc_txt = rc.backend.encode_images, rc.backend.encode_texts

    def count_img(*a, **k):
        calls["img"] += 1
        return enc_img(*a, **k)

    def count_txt(texts, **k):
        calls["txt"].append(list(texts))
        return enc_txt(texts, **k)

    monkeypatch.setattr(rc.backend, "encode_images", count_img)
    monkeypatch.setattr(rc.backend, "encode_texts", count_txt)
    img = str(test_data / "cxr" / "00000001_000.png")
    claims = [
        claim("Left upper lobe opacity.", Finding("opacity", "present", "left", ("upper lobe",))),
        claim("Right basilar opacity.", Finding("opacity", "present", "right", ("base",)), start=25),
        claim("Mild cardiomegaly.", Finding("cardiomegaly", "present", severity="mild"), start=50),
        claim("Comparison: none.", start=70),
    ]
    vs = rc.check_images([img], ["PA"], claims)
    assert [v.claim for v in vs] == [c.claim for c in claims[:3]]  # no findings: no verdict
    assert calls["img"] == 1
    assert calls["txt"] == [["opacity", "mild cardiomegaly"]]  # unique queries, one batch
    rc.check_images([img], ["PA"], claims + [claim("Small effusion.", Finding("pleural effusion", "present", severity="small"))])
    assert calls["img"] == 1  # cached by path
    assert calls["txt"][1:] == [["small pleural effusion"]]  # only the new text
    enc = rc.encode_image(img, "PA")
    maps = rc.similarity_maps(enc, ["opacity", "cardiomegaly"])
    assert maps.shape == (2, 128, 128) and np.isfinite(maps).all()


def test_text_cache_is_lru_bounded(tiny_clip_dir, monkeypatch):
    rc = RegionChecker(f"local-dir:{tiny_clip_dir}", text_cache_size=2)
    encoded: list[list[str]] = []
    encode = rc.backend.encode_texts
    monkeypatch.setattr(rc.backend, "encode_texts", lambda texts, **k: encoded.append(list(texts)) or encode(texts, **k))
    e = rc.text_embeddings(["a", "b", "c"])
    assert tuple(e.shape) == (3, 32) and list(rc._text_cache) == ["b", "c"] and encoded == [["a", "b", "c"]]
    # a hit returns the cached row itself, encodes nothing and makes "b" the most recently used
    cached_b = rc._text_cache["b"]
    hit = rc.text_embeddings(["b"])
    assert encoded == [["a", "b", "c"]] and torch.equal(hit[0], cached_b) and torch.equal(hit[0], e[1])
    assert list(rc._text_cache) == ["c", "b"]
    # "a" was evicted: it is encoded again (alone) and pushes out the least recently used "c"
    again = rc.text_embeddings(["a"])
    assert encoded[1:] == [["a"]] and list(rc._text_cache) == ["b", "a"]
    # The same text embedding, up to float32 rounding only: "a" alone and "a" in a batch of
    # three run different matmul kernels, which are not bit-identical across CPUs (seen:
    # 1.3e-7 on elements near zero). The rows are unit vectors, so an absolute 1e-6 (about
    # 8 float32 epsilons of 1.0) bounds rounding and would still catch any other text's row.
    assert torch.allclose(again[0], e[0], rtol=0, atol=1e-6)


def test_finding_query_drops_location_words():
    assert finding_query(Finding("pleural effusion", "present", "left", ("base",), severity="small")) == "small pleural effusion"
    assert finding_query(Finding("opacity", "present", "right", ("upper lobe",))) == "opacity"


def _hf_text_config(tmp_path) -> dict:
    """A tiny BERT (config + WordPiece vocab) saved locally: an HFTextEncoder text tower as
    in BiomedCLIP, without the hub."""
    transformers = pytest.importorskip("transformers")
    d = tmp_path / "tiny-bert"
    d.mkdir()
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] small right left pleural effusion opacity no base upper lobe".split()
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(d)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(d)  # open_clip loads the text tower's HF weights
    return {"hf_model_name": str(d), "hf_tokenizer_name": str(d), "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 32}


@pytest.mark.parametrize("kind", ["clip", "custom-text", "custom-text-eos", "hf-text"])
def test_trimmed_text_encoding_equals_full_context(tmp_path, kind):
    """encode_texts runs the text tower on the longest sequence of the batch, not the whole
    context: the embeddings must be those of model.encode_text on the padded tokens."""
    from reportgen.checkers.region.model import encode_text_trimmed

    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["text_cfg"]["context_length"] = 40
    if kind.startswith("custom-text"):
        cfg["custom_text"] = True
    if kind == "custom-text-eos":
        cfg["text_cfg"].update(pool_type="eos", eos_id=49407)
    if kind == "hf-text":
        cfg["text_cfg"] = _hf_text_config(tmp_path)
    name = f"rg-trim-{kind}"
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(cfg))
    b = ClipBackend(str(p), warn_random=False)
    texts = ["small right pleural effusion", "no opacity", "left upper lobe opacity at the base, small"]
    tokens = b.tokenizer(texts)
    with torch.inference_mode():
        full = b.model.encode_text(tokens)
        trimmed = encode_text_trimmed(b.model, tokens)
    assert trimmed is not None, "this text tower should be trimmable"
    used = int((tokens != (0 if kind != "hf-text" else b.model.text.config.pad_token_id)).any(0).nonzero()[-1]) + 1
    assert used < tokens.shape[1]  # the test really drops padding
    # Shorter sequences run different matmul shapes: equal up to float32 rounding only
    # (measured <= 8.4e-7 on embeddings of size <= 3.6; normalised ones <= 1.2e-7). 1e-5 is
    # 10x that and far below the change a wrongly pooled or masked position makes.
    assert torch.allclose(trimmed, full, atol=1e-5)
    assert torch.allclose(b.encode_texts(texts), b.encode_texts(texts, trim=False), atol=1e-5)


def test_text_towers_where_padding_matters_are_not_trimmed(tmp_path):
    """'last' pooling reads the final (padded) position: trimming would change it."""
    from reportgen.checkers.region.model import encode_text_trimmed

    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["custom_text"] = True
    cfg["text_cfg"]["pool_type"] = "last"
    m = _model_from_config(tmp_path, "rg-trim-last", cfg)
    tokens = open_clip.get_tokenizer("rg-trim-last")(["small effusion"])
    assert encode_text_trimmed(m, tokens) is None
    b = ClipBackend(str(tmp_path / "rg-trim-last.json"), warn_random=False)
    torch.manual_seed(0)  # the same random weights as m
    b.load()
    with torch.inference_mode():
        assert torch.allclose(b.encode_texts(["small effusion"], normalize=False), m.encode_text(tokens), atol=1e-5)


def test_a_broken_torchvision_is_named_as_the_cause_not_the_model_spec(tmp_path, monkeypatch):
    """open_clip imports torchvision; a torchvision whose compiled ops do not load (a CUDA
    build beside CPU torch) raises RuntimeError at import. The error names torchvision and
    how to fix it (E340), not "check the model spec"."""
    import sys

    from reportgen.checkers.region import model as model_mod

    site = tmp_path / "site-packages"
    (site / "torchvision").mkdir(parents=True)
    (site / "torchvision" / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    (site / "open_clip").mkdir()
    (site / "open_clip" / "__init__.py").write_text("import torchvision\n")
    monkeypatch.syspath_prepend(str(site))
    for name in ("open_clip", "torchvision"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ReportgenError) as info:
        model_mod.import_backend()
    assert info.value.code == "E340"
    assert "torchvision" in str(info.value) and "operator torchvision::nms" in str(info.value)
    assert "torchvision_cpu_shim" in info.value.fix and "model spec was not read" in str(info.value)
