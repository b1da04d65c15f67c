"""Model loading, families and LoRA target selection."""

from __future__ import annotations

import re

import pytest

from reportgen.errors import ReportgenError
from reportgen.models import DEFAULT_MODEL, FAMILIES, family_of, lm_target_regex, load_model, pick_dtype
from tests.light_imports import heavy_modules_loaded


def test_importing_the_drafting_modules_loads_no_heavy_package():
    code = ("import reportgen.models, reportgen.prompting, reportgen.images, reportgen.train, reportgen.encoding;"
            "import reportgen.backends.hf, reportgen.commands.train")
    assert heavy_modules_loaded(code, ("torch", "transformers", "peft", "pydicom", "PIL")) == []


def test_families_cover_the_vllm_lora_families_and_the_default():
    names = " ".join(f.name for f in FAMILIES)
    for fam in ("Qwen2-VL", "Qwen2.5-VL", "Gemma 3", "Idefics3", "LLaVA-1.5", "PaliGemma"):
        assert fam in names
    assert family_of("qwen2_vl").example == DEFAULT_MODEL
    assert family_of("gemma3").name.startswith("Gemma 3") and family_of("bert") is None


LM = [
    "model.language_model.layers.0.self_attn.q_proj",  # Qwen2-VL, Gemma 3, LLaVA, PaliGemma (transformers 5)
    "model.language_model.layers.11.mlp.down_proj",
    "model.text_model.layers.3.self_attn.o_proj",  # Idefics3
    "language_model.model.layers.2.mlp.gate_proj",  # transformers 4 layout
]
VISION = [
    "model.visual.blocks.0.attn.qkv",
    "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",  # SigLIP (Gemma 3, PaliGemma)
    "model.vision_model.encoder.layers.0.self_attn.k_proj",  # Idefics3
    "model.multi_modal_projector.linear_1",
    "model.language_model.embed_tokens",
    "lm_head",
]


def test_default_target_regex_picks_text_decoder_projections_only():
    rx = re.compile(lm_target_regex())
    assert all(rx.fullmatch(n) for n in LM)
    assert not any(rx.fullmatch(n) for n in VISION)


def test_load_tiny_model_with_processor_and_family(tiny_vlm_dir):
    import torch

    lm = load_model(str(tiny_vlm_dir), device="cpu")
    assert lm.family is not None and lm.family.name == "Qwen2-VL"
    assert lm.dtype == torch.float32 and lm.device == "cpu" and not lm.model.training
    assert lm.tokenizer.chat_template and lm.adapter is None


def test_load_errors_say_what_to_do(tmp_path, tiny_vlm_dir):
    with pytest.raises(ReportgenError) as e:
        load_model(str(tmp_path / "nope"))
    assert e.value.code == "E504" and "nope" in str(e.value)
    with pytest.raises(ReportgenError) as e:
        load_model(str(tiny_vlm_dir), adapter=str(tmp_path))
    assert e.value.code == "E508"


def test_dtype_names():
    import torch

    assert pick_dtype("bf16") == torch.bfloat16 and pick_dtype("float32") == torch.float32
    assert pick_dtype(None, "cpu") == torch.float32
    with pytest.raises(ReportgenError) as e:
        pick_dtype("int3")
    assert e.value.code == "E505"


def test_asking_for_a_missing_gpu_is_a_clear_error(monkeypatch):
    import torch

    from reportgen.models import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ReportgenError) as e:
        pick_device("cuda")
    assert e.value.code == "E505" and "--device cpu" in str(e.value)
    assert pick_device(None) == "cpu" and pick_device("cpu") == "cpu"
