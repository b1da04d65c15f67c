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
    data = read_manifest(m)
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
    result = train(cfg(m, tiny_vlm_dir, tmp_path / "run", max_steps=4))
    assert result.steps == 4 and result.skipped == 2
    skipped = json.loads((tmp_path / "run" / "reportgen_train.json").read_text())["data"]["skipped"]
    assert {s["id"] for s in skipped} == {"junk", "line:8"}
    assert any("junk.png" in s["error"] and "E501" in s["error"] for s in skipped)


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
