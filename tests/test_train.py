"""LoRA training: masking, loss going down, adapter round trip, resume, bad records, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reportgen.errors import ReportgenError
from reportgen.train import TrainConfig, Trainer, encode_example, mean_loss, read_manifest, train

FAST = dict(epochs=1, lr=5e-3, batch_size=2, grad_accum=1, val_fraction=0.0, eval_every=0, eval_examples=0,
            warmup_ratio=0.0, max_new_tokens=8)


def cfg(manifest, model, out, **kw) -> TrainConfig:
    return TrainConfig(manifest=str(manifest), model=str(model), out=str(out), **{**FAST, **kw})


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


# ---------------------------------------------------------------------------- config/data
@pytest.mark.parametrize("field,value", [("rank", 0), ("lr", 0.0), ("batch_size", -1), ("val_fraction", 1.0),
                                         ("dropout", 1.5), ("task", "summary"), ("max_steps", 0)])
def test_config_is_validated(field, value):
    with pytest.raises(ReportgenError) as e:
        TrainConfig(manifest="m.jsonl", model="m", out="o", **{field: value})
    assert e.value.code == "E510" and field in str(e.value)


def test_bad_records_are_named_and_skipped(tiny_manifest, tmp_path):
    rows = tiny_manifest.read_text().splitlines()
    images = json.loads(rows[0])["images"]
    extra = [
        "{not json",
        json.dumps({"id": "noreport", "images": images}),
        json.dumps({"id": "noimage", "images": ["gone.png"], "report": "x"}),
        json.dumps({"id": "s1", "images": images, "report": "duplicate id"}),
        json.dumps({"id": "empty", "images": [], "report": "x"}),
    ]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(rows[:2] + extra) + "\n")
    data = read_manifest(m, allow_outside_root=True)  # the images lie beside the tiny manifest, not under tmp_path
    assert [e.study.id for e in data.examples] == ["s0", "s1"]
    errs = {e["id"]: e["error"] for e in data.errors}
    assert set(errs) == {"line:3", "noreport", "noimage", "s1", "empty"}
    assert "m.jsonl:3" in errs["line:3"] and "E103" in errs["line:3"]
    assert "m.jsonl:5" in errs["noimage"] and "gone.png" in errs["noimage"]
    assert "duplicate" in errs["s1"]


def test_data_hash_covers_image_bytes(tiny_manifest, tmp_path):
    src = tiny_manifest.parent
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    rows = [json.loads(x) for x in (copy / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["images"] = [str(copy / "images" / Path(p).name) for p in r["images"]]
    (copy / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = read_manifest(copy / "manifest.jsonl").sha256
    img = copy / "images" / "img01.png"
    img.write_bytes(img.read_bytes() + b"\0")
    assert read_manifest(copy / "manifest.jsonl").sha256 != before


def test_prompt_is_masked_and_matches_the_drafting_prompt(tiny_vlm_dir, tiny_manifest):
    from reportgen.backends.hf import HFDrafter
    from reportgen.prompting import default_template

    drafter = HFDrafter(str(tiny_vlm_dir), device="cpu")
    proc = drafter.loaded.processor
    ex = read_manifest(tiny_manifest).examples[0]
    enc = encode_example(proc, ex, "findings", default_template(), 4096)
    ids, labels = enc["input_ids"][0], enc["labels"][0]
    prompt_ids = drafter._inputs([ex.study])["input_ids"][0]
    n = len(prompt_ids)
    assert ids[:n].tolist() == prompt_ids.tolist()  # what drafting sees, token for token
    assert (labels[:n] == -100).all()
    image_id = proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (ids == image_id).sum() > 0 and not (labels == image_id).any()
    target = proc.tokenizer.decode(labels[n:].tolist())
    assert target.startswith(ex.report) and "<|im_end|>" in target
    assert enc["pixel_values"].shape[0] > 0 and enc["attention_mask"].shape == enc["input_ids"].shape


# ------------------------------------------------------------------------------ training
def test_training_lowers_the_loss_and_the_adapter_round_trips(tiny_vlm_dir, tiny_manifest, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from reportgen.models import load_processor

    out = tmp_path / "run"
    trainer = Trainer(cfg(tiny_manifest, tiny_vlm_dir, out, epochs=4, val_fraction=0.34, eval_examples=1, grad_accum=2, batch_size=1))
    result = trainer.run()
    proc = load_processor(str(tiny_vlm_dir))
    examples = trainer.train_set
    base = AutoModelForImageTextToText.from_pretrained(str(tiny_vlm_dir)).eval()
    before = mean_loss(base, proc, examples)
    after = mean_loss(trainer.model, proc, examples)
    assert after < before - 0.5, (before, after)
    assert result.val_loss is not None and result.initial_val_loss is not None

    # PeftModel.from_pretrained on the output folder gives the trained model's logits.
    loaded = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(str(tiny_vlm_dir)), str(out)).eval()
    batch = encode_example(proc, examples[0], "findings", trainer.template, 4096)
    batch.pop("labels")
    trainer.model.eval()
    with torch.no_grad():
        a = trainer.model(**batch).logits
        b = loaded(**batch).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, base(**batch).logits, atol=1e-3)

    # Outputs: adapter files, summary with versions and data hash, metrics, drafted examples.
    summary = json.loads((out / "reportgen_train.json").read_text())
    assert summary["data"]["sha256"] == read_manifest(tiny_manifest).sha256
    assert {"torch", "transformers", "peft", "reportgen"} <= set(summary["versions"])
    assert summary["config"]["rank"] == 8 and summary["resolved"]["prompt_version"].startswith("draft-")
    assert summary["data"]["n_val"] == 2 and summary["data"]["n_train"] == 4
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["step"] == 0 and metrics[-1]["step"] == result.steps == 8
    examples_out = [json.loads(x) for x in (out / "val_examples.jsonl").read_text().splitlines()]
    assert len(examples_out) == 1 and examples_out[0]["id"] in summary["data"]["val_ids"]


def test_adapter_targets_only_the_language_model(tiny_adapter_dir):
    config = json.loads((tiny_adapter_dir / "adapter_config.json").read_text())
    assert config["r"] <= 8 and config["peft_type"] == "LORA" and not config.get("modules_to_save")
    keys = list(adapter_weights(tiny_adapter_dir))
    assert len(keys) == 2 * 7 * 2  # A and B for 7 projections in 2 layers
    assert all(".language_model.layers." in k for k in keys)
    assert not any("visual" in k or "vision" in k for k in keys)


def test_gradient_accumulation_equals_a_bigger_batch(tiny_vlm_dir, tiny_manifest, tmp_path):
    import torch

    def grads(batch_size: int, grad_accum: int) -> dict:
        t = Trainer(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / f"g{batch_size}", batch_size=batch_size,
                        grad_accum=grad_accum, dropout=0.0))
        t._setup()
        with torch.no_grad():  # B = 0 at init would leave A without gradient
            for n, p in t.model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(n)))
        window = t._epoch_batches(0)[:grad_accum]
        loss, tokens = t.accumulate(window)
        return {n: p.grad.clone() for n, p in t.model.named_parameters() if p.requires_grad}, loss, tokens

    (big, loss_a, n_a), (acc, loss_b, n_b) = grads(4, 1), grads(1, 4)
    assert n_a == n_b > 0 and loss_a == pytest.approx(loss_b, rel=1e-5)
    assert big.keys() == acc.keys()
    for k in big:
        # One padded batch of 4 and four batches of 1 sum the same terms through different
        # matmul shapes, so they agree up to float32 rounding, which scales with the size of
        # the tensor's terms, not of each element: elements near zero differ by up to 4e-8
        # here (largest gradient 0.14). An absolute 1e-5 of the tensor's largest entry bounds
        # that on any CPU and still fails on a wrong scaling (a factor of 2 or 4).
        scale = float(big[k].abs().max())
        assert torch.allclose(big[k], acc[k], rtol=1e-4, atol=1e-5 * scale), k
    assert all(g.abs().sum() > 0 for g in big.values())


def test_resume_after_interruption_continues_exactly(tiny_vlm_dir, tiny_manifest, tmp_path):
    import torch

    kw = dict(epochs=2, batch_size=1, grad_accum=2, dropout=0.1, save_every=1, val_fraction=0.2, eval_every=2)
    full = train(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / "full", **kw))

    def stop_at_3(step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tiny_manifest, tiny_vlm_dir, out, **kw), on_step=stop_at_3)
    assert (out / "checkpoints" / "step-3").is_dir() and not (out / "adapter_model.safetensors").exists()
    with pytest.raises(ReportgenError) as e:  # never silently start over
        train(cfg(tiny_manifest, tiny_vlm_dir, out, **kw))
    assert e.value.code == "E518"
    with pytest.raises(ReportgenError) as e:  # a changed setting cannot resume
        train(cfg(tiny_manifest, tiny_vlm_dir, out, **{**kw, "lr": 1e-3}, resume=True))
    assert e.value.code == "E517" and "lr" in str(e.value)
    resumed = train(cfg(tiny_manifest, tiny_vlm_dir, out, **kw, resume=True))
    assert resumed.resumed_from == 3 and resumed.steps == full.steps == 6
    a, b = adapter_weights(Path(full.out)), adapter_weights(out)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(x)["step"] for x in (Path(full.out) / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((out / "reportgen_train.json").read_text())["result"]["resumed_from_step"] == 3


def test_unreadable_images_are_skipped_and_training_goes_on(tiny_vlm_dir, tiny_manifest, tmp_path):
    rows = [json.loads(x) for x in tiny_manifest.read_text().splitlines()]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    rows.append({"id": "junk", "images": [str(junk)], "report": "x"})
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    # 2 of 8 records skipped (25%): above the default 5% share, training refuses (bug 1) ...
    with pytest.raises(ReportgenError) as e:
        train(cfg(m, tiny_vlm_dir, tmp_path / "refused", max_steps=4, allow_outside_root=True))
    assert e.value.code == "E581" and "2 of 8" in str(e.value)
    assert "1 E103 malformed JSON" in str(e.value) and "1 E501 image unreadable" in str(e.value)
    assert not (tmp_path / "refused" / "adapter_model.safetensors").exists()
    # ... and goes on when that share is accepted.
    result = train(cfg(m, tiny_vlm_dir, tmp_path / "run", max_steps=4, max_skipped_share=0.3, allow_outside_root=True))  # images beside the tiny manifest
    assert result.steps == 4 and result.skipped == 2
    data = json.loads((tmp_path / "run" / "reportgen_train.json").read_text())["data"]
    skipped = data["skipped"]
    assert {s["id"] for s in skipped} == {"junk", "line:8"}
    assert any("junk.png" in s["error"] and "E501" in s["error"] for s in skipped)
    assert data["skipped_by_reason"] == {"E103 malformed JSON": 1, "E501 image unreadable": 1}
    stats = data["tokens_per_study"]  # token counts per study, from the pre-flight encoding
    assert 0 < stats["prompt_tokens"]["min"] <= stats["prompt_tokens"]["max"] and stats["target_tokens"]["min"] > 0
    assert stats["images"]["max"] == 2


def test_training_where_every_study_is_too_long_fails_with_counts_per_reason(tiny_vlm_dir, tiny_manifest, tmp_path):
    # Bug 1: every example over max_length used to 'succeed' with an untrained adapter.
    with pytest.raises(ReportgenError) as e:
        train(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / "run", max_steps=2, max_length=40, max_skipped_share=1.0))
    msg = str(e.value)
    assert e.value.code == "E581" and "6 of 6" in msg and "none left to train" in msg and "6 E514 too long" in msg
    assert "--max-pixels" in msg
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_a_template_that_ends_the_answer_without_a_stop_token_gets_the_eos(tiny_vlm_dir, tiny_manifest):
    # Bug 2: llava-1.5's template writes 'ASSISTANT: report ' with no </s>; the adapter
    # never learned to stop. Here the tiny Qwen2-VL's template loses its <|im_end|> after
    # the answer; training appends the tokenizer's EOS (one of the family's stop tokens).
    from reportgen.encoding import stop_token_ids
    from reportgen.models import family_of, load_processor
    from reportgen.prompting import default_template
    from tests.tiny_models import CHAT_TEMPLATE

    proc = load_processor(str(tiny_vlm_dir))
    old_end = "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    proc.chat_template = CHAT_TEMPLATE.replace("{% endfor %}<|im_end|>\n{% endif %}{% endfor %}",
                                               "{% endfor %}{% if message['role'] != 'assistant' %}<|im_end|>\n{% endif %}{% endif %}{% endfor %}")
    assert proc.chat_template != CHAT_TEMPLATE and old_end in proc.chat_template
    ex = read_manifest(tiny_manifest).examples[1]
    stops = stop_token_ids(proc, family_of("qwen2_vl"))
    im_end = proc.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in stops
    plain = encode_example(proc, ex, "findings", default_template(), 4096)
    fixed = encode_example(proc, ex, "findings", default_template(), 4096, stop_ids=stops)
    target = lambda enc: enc["labels"][0][enc["labels"][0] != -100].tolist()  # noqa: E731
    assert im_end not in target(plain)
    assert target(fixed) == target(plain) + [proc.tokenizer.eos_token_id] and target(fixed)[-1] == im_end
    assert fixed["attention_mask"].shape == fixed["input_ids"].shape


def test_resume_refuses_a_changed_prompt_template(tiny_vlm_dir, tiny_manifest, tmp_path):
    # Bug 5: the template's content hash is recorded with its version; an edited template
    # (same version string) cannot continue a run.
    from reportgen.prompting import load_template

    src = json.loads((Path(__file__).resolve().parents[1] / "prompts" / "draft.json").read_text())
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**src, "system": src["system"] + " Be brief."}))
    assert load_template(edited).version == src["version"] and load_template(edited).sha256 != load_template().sha256

    def stop(step: int) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "run"
    kw = dict(max_steps=2, save_every=1, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tiny_manifest, tiny_vlm_dir, out, **kw), on_step=stop)
    with pytest.raises(ReportgenError) as e:
        train(cfg(tiny_manifest, tiny_vlm_dir, out, **kw, resume=True, template=str(edited)))
    assert e.value.code == "E517" and "prompt template changed" in str(e.value)
    result = train(cfg(tiny_manifest, tiny_vlm_dir, out, **kw, resume=True))
    summary = json.loads((out / "reportgen_train.json").read_text())["resolved"]
    assert result.steps == 2 and summary["prompt_sha256"] == load_template().sha256


def test_float16_training_uses_a_gradient_scaler(tiny_vlm_dir, tiny_manifest, tmp_path):
    # Bug 8: float16 (GPUs without bfloat16) trained without loss scaling.
    t = Trainer(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / "run", max_steps=1, dtype="float16", device="cpu"))
    result = t.run()
    assert t.scaler is not None and t.scaler.get_scale() > 1
    assert {p.dtype for p in t.model.parameters() if p.requires_grad} == {__import__("torch").float32}
    assert result.steps == 1 and result.train_loss == result.train_loss  # not NaN
    resolved = json.loads((tmp_path / "run" / "reportgen_train.json").read_text())["resolved"]
    assert resolved["grad_scaler"] is True and resolved["dtype"] == "float16"
    assert Trainer(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / "x", dtype="float32")).cfg.dtype == "float32"


def test_validation_split_is_by_patient_and_honours_an_official_split():
    from reportgen.train import Example, split_examples
    from reportgen.types import Study

    exs = [Example(Study(f"s{i}", ("a.png",), meta={"subject_id": f"p{i // 3}"}), "r", f"m:{i}") for i in range(30)]
    for seed in range(5):
        train_set, val = split_examples(exs, 0.2, seed)
        tp = {e.study.meta["subject_id"] for e in train_set}
        vp = {e.study.meta["subject_id"] for e in val}
        assert not tp & vp and len(vp) == 2 and len(val) == 6 and len(train_set) + len(val) == 30
    official = [Example(Study(f"s{i}", ("a.png",), meta={"subject_id": f"p{i}", "split": sp}), "r", f"m:{i}")
                for i, sp in enumerate(["train", "train", "validate", "test", "train"])]
    train_set, val = split_examples(official, 0.5, 0)
    assert [e.study.id for e in train_set] == ["s0", "s1", "s4"] and [e.study.id for e in val] == ["s2"]


def test_cli_trains_and_reports_errors(tiny_vlm_dir, tiny_manifest, tmp_path, capsys):
    from reportgen.cli import main

    out = tmp_path / "cli"
    code = main(["train", "--manifest", str(tiny_manifest), "--model", str(tiny_vlm_dir), "--out", str(out),
                 "--max-steps", "2", "--eval-every", "1", "--val-fraction", "0.2", "--eval-examples", "1",
                 "--max-new-tokens", "4", "--rank", "4", "--alpha", "8"])
    printed = capsys.readouterr()
    assert code == 0 and f"adapter: {out}" in printed.out and "steps: 2" in printed.out
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert main(["train", "--manifest", str(tiny_manifest), "--model", str(tiny_vlm_dir), "--out", str(tmp_path / "x"),
                 "--rank", "0"]) == 1
    assert "E510" in capsys.readouterr().err


def test_quality_metrics_during_training_and_gradient_checkpointing(tiny_vlm_dir, tiny_manifest, tmp_path):
    out = tmp_path / "run"
    t = Trainer(cfg(tiny_manifest, tiny_vlm_dir, out, max_steps=1, eval_every=1, eval_drafts=2, val_fraction=0.34,
                    max_new_tokens=6, batch_size=2, gradient_checkpointing=True))
    result = t.run()
    assert result.steps == 1
    base = t.model.get_base_model()
    assert getattr(base, "is_gradient_checkpointing", False)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    for r in rows[1:]:  # TensorBoard/W&B-style flat scalars per step, quality beside the loss
        assert r["val_drafted"] == 2 and r["val_loss"] is not None
        for k in ("val_chexpert_micro_f1_14", "val_chexpert_micro_f1_5", "val_hallucination_rate", "val_bleu4"):
            assert k in r and (r[k] is None or 0.0 <= r[k] <= 1.0), (k, r[k])


def test_qlora_without_cuda_says_what_to_do(tiny_vlm_dir, tiny_manifest, tmp_path):
    with pytest.raises(ReportgenError) as e:
        train(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / "q", quantize="4bit", device="cpu", max_steps=1))
    assert e.value.code == "E587" and "CUDA" in str(e.value) and "drop --quantize" in str(e.value)
    with pytest.raises(ReportgenError) as e:
        TrainConfig(manifest="m", model="m", out="o", quantize="8bit")
    assert e.value.code == "E510"


@pytest.mark.slow
def test_two_process_data_parallel_equals_one_process(tiny_vlm_dir, tiny_manifest, tmp_path):
    # Multi-GPU data parallel runs through accelerate (DDP); here 2 CPU processes (gloo)
    # started by torchrun, as `accelerate launch --multi_gpu` starts them on GPUs.
    import os
    import subprocess
    import sys

    import torch

    kw = dict(max_steps=2, batch_size=1, dropout=0.0, lr=1e-2, device="cpu")
    one = train(cfg(tiny_manifest, tiny_vlm_dir, tmp_path / "one", grad_accum=2, **kw))
    args = ["train", "--manifest", str(tiny_manifest), "--model", str(tiny_vlm_dir), "--out", str(tmp_path / "two"),
            "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--val-fraction", "0", "--eval-examples", "0",
            "--dropout", "0", "--warmup-ratio", "0", "--lr", "0.01", "--eval-every", "0", "--device", "cpu", "--epochs", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    from reportgen.serve import free_port

    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
                        "-m", "reportgen.cli", *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("adapter:") == 1  # process 0 reports, writes the adapter and the summary
    summary = json.loads((tmp_path / "two" / "reportgen_train.json").read_text())
    assert summary["resolved"]["processes"] == 2 and summary["result"]["steps"] == one.steps == 2
    a, b = adapter_weights(Path(one.out)), adapter_weights(tmp_path / "two")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert any(a[k].abs().max() > 0 for k in a if "lora_B" in k)  # it did train
