"""CUDA checks of training and drafting (marker ``gpu``; skipped without a CUDA device).

Run on a GPU machine with ``bash scripts/gpu_check.sh`` (or ``pytest -m gpu``).
"""

from __future__ import annotations

import json
import time

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def studies_of(manifest):
    from reportgen.types import Study

    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [Study.from_dict({k: v for k, v in r.items() if k != "report"}) for r in rows]


@pytest.fixture(autouse=True)
def exact_float32():
    """No TF32 shortcuts, so float32 on the GPU is comparable with float32 on the CPU."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_bf16_lora_training_on_cuda_lowers_the_loss(tiny_vlm_dir, tiny_manifest, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from reportgen.models import load_processor
    from reportgen.train import TrainConfig, Trainer, mean_loss

    out = tmp_path / "cuda_run"
    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig(
        manifest=str(tiny_manifest), model=str(tiny_vlm_dir), out=str(out), epochs=6, lr=5e-3, batch_size=2,
        grad_accum=1, val_fraction=0.34, eval_every=0, eval_examples=1, max_new_tokens=16, device="cuda", dtype="bfloat16",
    ))
    result = trainer.run()
    seconds = time.perf_counter() - t0
    assert trainer.dtype == torch.bfloat16 and next(trainer.model.parameters()).is_cuda
    proc = load_processor(str(tiny_vlm_dir))
    base = AutoModelForImageTextToText.from_pretrained(str(tiny_vlm_dir), dtype=torch.bfloat16).to("cuda")
    before = mean_loss(base, proc, trainer.train_set)
    after = mean_loss(trainer.model, proc, trainer.train_set)
    print(f"\nGPU-RESULT bf16 training: {result.steps} steps in {seconds:.1f}s, train-set loss {before:.3f} -> {after:.3f}, "
          f"val loss {result.initial_val_loss:.3f} -> {result.val_loss:.3f} ({torch.cuda.get_device_name(0)})")
    assert after < before - 0.5
    assert result.val_loss is not None
    # The adapter trained on the GPU loads on the CPU with PeftModel.
    cpu = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(str(tiny_vlm_dir)), str(out))
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in cpu.named_parameters())


def test_cuda_greedy_drafts_equal_cpu_float32(tiny_vlm_dir, tiny_adapter_dir, tiny_manifest):
    from reportgen.backends.hf import HFDrafter
    from tests.tiny_models import ADAPTER_TARGET

    studies = studies_of(tiny_manifest)
    for adapter in (str(tiny_adapter_dir), None):
        cpu = HFDrafter(str(tiny_vlm_dir), adapter=adapter, max_new_tokens=24, batch_size=6, device="cpu", dtype="float32")
        gpu = HFDrafter(str(tiny_vlm_dir), adapter=adapter, max_new_tokens=24, batch_size=6, device="cuda", dtype="float32")
        a, b = cpu.generate_many(studies), gpu.generate_many(studies)
        same = sum(x == y for x, y in zip(a, b))
        print(f"\nGPU-RESULT float32 greedy, adapter={'yes' if adapter else 'no'}: {same}/{len(a)} studies token-identical CPU vs CUDA")
        if adapter:
            assert a == b
            assert all(gpu.decode(x) == ADAPTER_TARGET for x in b)
        else:  # the untrained base model has near-ties; most drafts must still agree
            assert same >= len(a) - 1
        assert gpu.generate_many(studies) == b  # deterministic on the GPU
        assert [gpu.generate_ids(s) for s in studies] == b  # batched == unbatched


def test_bf16_drafting_with_the_adapter_on_cuda(tiny_vlm_dir, tiny_adapter_dir, tiny_manifest):
    from reportgen.backends.hf import HFDrafter
    from tests.tiny_models import ADAPTER_TARGET

    studies = studies_of(tiny_manifest) * 4
    d = HFDrafter(str(tiny_vlm_dir), adapter=str(tiny_adapter_dir), max_new_tokens=24, batch_size=8, device="cuda")
    assert d.loaded.dtype == torch.bfloat16  # the GPU default
    d.draft(studies[:2])  # warm-up
    t0 = time.perf_counter()
    drafts = d.draft(studies)
    seconds = time.perf_counter() - t0
    agree = sum(x.report == ADAPTER_TARGET for x in drafts)
    print(f"\nGPU-RESULT bf16 drafting: {len(drafts)} drafts in {seconds:.2f}s ({len(drafts) / seconds:.1f} reports/s), "
          f"{agree}/{len(drafts)} equal to the adapter's training text")
    assert agree >= len(drafts) * 0.9
