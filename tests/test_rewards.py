"""reportgen.rewards: TRL's reward_funcs signature and values on hand-made cases, and one
GRPOTrainer step with a tiny text model on CPU (offline) when TRL is installed."""

from __future__ import annotations

import inspect

import pytest

from reportgen.errors import ReportgenError
from reportgen.rewards import chexpert_f1_reward, claim_reward, combined_reward, completion_text, make_reward

REF = "Mild cardiomegaly. Small right pleural effusion. No pneumothorax."
CASES = [
    (REF, 1.0, 1.0),                                              # every claim supported; same labels
    ("Mild cardiomegaly. Small left pleural effusion.", 0.0, 1.0),  # 1 supported, 1 contradicted: 1/2 - 0.5
    ("Large right pneumothorax.", -0.5, 0.0),                      # contradicted: 0/1 - 0.5
    ("", 0.0, 0.0),                                                # a failed completion
    ("Heart size normal. Lungs clear.", 0.0, 0.0),                 # 1 of 2 supported, 1 contradicted; No Finding vs findings
]


def test_signature_is_trls():
    for f in (claim_reward, chexpert_f1_reward, combined_reward, make_reward({"claim": 1.0})):
        params = list(inspect.signature(f).parameters.values())
        assert [p.name for p in params[:2]] == ["prompts", "completions"]
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def test_values_on_hand_made_cases():
    comps = [c for c, _, _ in CASES]
    prompts = ["Write the report."] * len(comps)
    assert claim_reward(prompts, comps, reference=[REF] * len(comps)) == pytest.approx([c for _, c, _ in CASES])
    assert chexpert_f1_reward(prompts, comps, reference=[REF] * len(comps)) == pytest.approx([x for _, _, x in CASES])
    assert combined_reward(prompts, comps, reference=[REF] * len(comps)) == pytest.approx([(c + x) / 2 for _, c, x in CASES])
    # Penalty and partial label agreement; conversational completions; TRL's extra kwargs ignored.
    assert claim_reward(prompts[:2], comps[1:3], reference=[REF] * 2, contradiction_penalty=1.0) == pytest.approx([-0.5, -1.0])
    conv = [[{"role": "assistant", "content": "Mild cardiomegaly."}]]
    assert chexpert_f1_reward(["p"], conv, reference=[REF], completion_ids=[[1, 2]], trainer_state=None) == pytest.approx([2 / 3])
    assert completion_text(conv[0]) == "Mild cardiomegaly." and completion_text({"content": "x"}) == "x"
    r = make_reward({"claim": 2.0, "chexpert": 1.0})
    assert r.__name__ == "reward_claim2_chexpert1" and r(["p"], [REF], reference=[REF]) == pytest.approx([3.0])


def test_reward_errors_name_the_problem():
    with pytest.raises(ReportgenError, match="E864.*reference"):
        claim_reward(["p"], ["x"])
    with pytest.raises(ReportgenError, match="E865"):
        chexpert_f1_reward(["p", "p"], ["x", "y"], reference=["a"])
    with pytest.raises(ReportgenError, match="E866"):
        make_reward({"bleu": 1.0})


@pytest.mark.slow
def test_one_grpo_step_with_a_tiny_text_model(tmp_path, monkeypatch):
    pytest.importorskip("trl")
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from tests.tiny_models import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=128, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    seen = []

    def recorded_claim_reward(prompts, completions, **kwargs):
        seen.append((list(completions), list(kwargs["reference"])))
        return claim_reward(prompts, completions, **kwargs)

    ds = Dataset.from_list([{"prompt": "FINDINGS:", "reference": REF}] * 4)
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_completion_length=8,
                      max_steps=1, report_to=[], use_cpu=True, logging_steps=1, save_strategy="no", bf16=False)
    trainer = GRPOTrainer(model=Qwen2ForCausalLM(cfg), processing_class=tok, reward_funcs=[recorded_claim_reward, chexpert_f1_reward],
                          args=args, train_dataset=ds)
    trainer.train()
    assert trainer.state.global_step == 1
    assert seen and all(ref == REF for _, refs in seen for ref in refs) and all(isinstance(x, str) for cs, _ in seen for x in cs)
    logged = trainer.state.log_history[0]
    assert "rewards/recorded_claim_reward/mean" in logged and "rewards/chexpert_f1_reward/mean" in logged
