"""Every model family reportgen claims: a tiny model built from the family's transformers
config trains one LoRA step and drafts with the hf backend; `reportgen models` prints
exactly what these tests (and the vLLM integration test) back."""

from __future__ import annotations

import json

import pytest

from tests.tiny_families import BUILDERS

# Qwen2-VL is covered by tests/test_train.py, test_hf_backend.py and the vLLM integration test.
COVERED_ELSEWHERE = {"Qwen2-VL"}


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory):
    from tests.tiny_models import write_tiny_manifest

    return write_tiny_manifest(tmp_path_factory.mktemp("fam_data"), n=2)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_family_trains_one_step_and_drafts(name, two_studies, tmp_path):
    import torch
    from safetensors.torch import load_file

    from reportgen.backends.hf import HFDrafter
    from reportgen.encoding import stop_token_ids
    from reportgen.models import family_of, load_processor
    from reportgen.prompting import default_template
    from reportgen.train import TrainConfig, encode_example, read_manifest, train

    model_dir = BUILDERS[name](tmp_path / "model")
    out = tmp_path / "lora"
    result = train(TrainConfig(manifest=str(two_studies), model=str(model_dir), out=str(out), max_steps=1, epochs=1,
                               batch_size=1, grad_accum=1, val_fraction=0.0, eval_every=0, eval_examples=0, max_images=1,
                               lr=1e-2, warmup_ratio=0.0))
    assert result.steps == 1 and result.train_loss is not None and result.train_loss == result.train_loss
    summary = json.loads((out / "reportgen_train.json").read_text())
    assert summary["resolved"]["family"] == name
    keys = list(load_file(str(out / "adapter_model.safetensors")))
    assert keys and not any("vision" in k or "visual" in k or "projector" in k for k in keys)
    assert all(".language_model." in k or ".text_model." in k for k in keys)

    fam = family_of(summary["resolved"]["model_type"])
    proc = load_processor(str(model_dir))
    stops = stop_token_ids(proc, fam)
    ex = read_manifest(two_studies).examples[1]
    enc = encode_example(proc, ex, "findings", default_template(), 4096, None, fam, stops)
    target = enc["labels"][0][enc["labels"][0] != -100].tolist()
    assert any(t in stops for t in target)  # every family's target ends in a stop token
    # llava templates end the answer with a space, PaliGemma has no template: both get the EOS appended
    assert summary["data"]["tokens_per_study"]["eos_added"] is (name.startswith("LLaVA") or name == "PaliGemma")
    n_prompt = int((enc["labels"][0] == -100).sum())
    if name == "PaliGemma":  # the report is the suffix: token_type_ids 1 over it, 0 over the prefix
        tt = enc["token_type_ids"][0]
        assert (tt[n_prompt:] == 1).all() and (tt[:n_prompt] == 0).all()
    if name == "Llama-3.2-Vision":  # report tokens see the image through the cross-attention mask
        cam = enc["cross_attention_mask"]
        assert cam.shape[1] == enc["input_ids"].shape[1] and torch.equal(cam[0, -1], cam[0, n_prompt - 1]) and cam[0, -1].sum() > 0

    drafter = HFDrafter(str(model_dir), adapter=str(out), max_new_tokens=3, max_images=1, device="cpu")
    draft = drafter.draft([ex.study])[0]
    assert isinstance(draft.report, str) and draft.adapter == str(out)
    assert drafter.loaded.family is not None and drafter.loaded.family.name == name


def test_the_family_table_claims_only_what_is_tested(capsys):
    from reportgen.cli import main
    from reportgen.models import FAMILIES

    for fam in FAMILIES:
        backed = fam.name in BUILDERS or fam.name in COVERED_ELSEWHERE
        assert fam.tested["train"] is backed and fam.tested["hf"] is backed, fam.name
        assert not fam.tested["vllm_lora"] or fam.name == "Qwen2-VL"  # the only family a vLLM test serves
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["Qwen2-VL"].split()[2:5] == ["tested", "tested", "tested"]
    assert lines["Llama-3.2-Vision"].split()[2:5] == ["tested", "tested", "no"]
    assert main(["models", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["family"] for r in rows} == {f.name for f in FAMILIES}
