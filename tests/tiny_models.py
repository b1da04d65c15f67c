"""Tiny vision-language models BUILT from configs (no hub, no downloads), for tests.

``build_tiny_qwen2vl(out_dir)`` saves a standard ``Qwen2VLForConditionalGeneration``
(float32 safetensors) with its processor: a byte-level BPE tokenizer trained with
``tokenizers`` on a few radiology lines plus the Qwen2-VL special tokens, the Qwen2-VL
chat template, and a ``Qwen2VLImageProcessor`` with 8-pixel patches (an image becomes at
most 64x64 pixels = 16 merged image tokens). The text model has hidden size 128, 2 layers
and 2 heads (head_dim 64, which vLLM's CPU attention needs; mrope_section sums to 32).
Everything is seeded, so two builds give identical files.

``build_tiny_adapter(model_dir, out_dir, manifest)`` trains a rank-8 LoRA adapter on the
manifest's reports with ``reportgen.train`` until the adapter's greedy draft of the first
study reproduces its report (and so differs from the base model's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SEED = 1234

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# The Qwen2-VL chat template (as shipped with Qwen/Qwen2-VL-*-Instruct).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "FINDINGS: The lungs are clear. There is no pleural effusion or pneumothorax.",
    "The heart size is normal. The mediastinal contours are within normal limits.",
    "IMPRESSION: No acute cardiopulmonary abnormality.",
    "There is a small right pleural effusion with adjacent atelectasis at the right lung base.",
    "Mild cardiomegaly. Patchy opacity in the left lower lobe, concerning for pneumonia.",
    "No focal consolidation. No pneumothorax. Degenerative changes of the thoracic spine.",
    "Indication: cough and fever. Comparison: none.",
    "You are an experienced radiologist. Write the FINDINGS section of the report for this chest X-ray study.",
    "Image 1 (frontal, PA view): Image 2 (lateral view): view not given",
]


def build_tokenizer(vocab_size: int = 400, special_tokens=SPECIAL_TOKENS, eos: str = "<|im_end|>",
                    pad: str = "<|endoftext|>", bos: str | None = None, chat_template: str | None = CHAT_TEMPLATE,
                    extra: dict | None = None):
    """A byte-level BPE tokenizer (transformers fast tokenizer) trained on CORPUS with the
    given special tokens (default: Qwen2's; ``eos``/``pad``/``bos`` among them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    named = {t for t in (eos, pad, bos) if t}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos, unk_token=None,
        additional_special_tokens=[t for t in special_tokens if t not in named], model_max_length=4096,
        padding_side="left", **(extra or {}),
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def build_tiny_qwen2vl(out_dir: str | os.PathLike[str], seed: int = SEED) -> Path:
    """Build, seed and save a tiny Qwen2-VL (model + processor) to ``out_dir``; return it."""
    import torch
    from transformers import (
        Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = len(tokenizer)
    vocab_size = ((vocab + 63) // 64) * 64
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": vocab_size, "hidden_size": 128, "intermediate_size": 256,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": False,
        },
        vision_config={
            "depth": 2, "embed_dim": 64, "num_heads": 1, "mlp_ratio": 2, "hidden_size": 128,
            "patch_size": 8, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).to(torch.float32).eval()
    # Wider than the default init so an untrained model's greedy output is not one token.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "norm" not in name:
                p.normal_(0.0, 0.08)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)

    image_processor = Qwen2VLImageProcessor(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64,
    )
    video_processor = Qwen2VLVideoProcessor(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64,
    )
    processor = Qwen2VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)  # also writes the chat template beside the tokenizer
    return out


def write_tiny_images(folder: str | os.PathLike[str], n: int, seed: int = SEED) -> list[Path]:
    """``n`` small grey PNG radiograph stand-ins (48x64, distinct patterns)."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    yy, xx = np.mgrid[0:64, 0:48]
    for i in range(n):
        base = 90 + 60 * np.sin((xx + 7 * i) / (4.0 + i)) + 40 * np.cos(yy / (5.0 + 2 * i))
        arr = np.clip(base + rng.normal(0, 12, size=base.shape), 0, 255).astype(np.uint8)
        p = folder / f"img{i:02d}.png"
        Image.fromarray(arr, mode="L").save(p)
        paths.append(p)
    return paths


TINY_REPORTS = [
    "The lungs are clear. No pleural effusion or pneumothorax.",
    "Small right pleural effusion. The heart size is normal.",
    "Mild cardiomegaly. No focal consolidation.",
    "Patchy opacity in the left lower lobe, concerning for pneumonia.",
    "No acute cardiopulmonary abnormality.",
    "Degenerative changes of the thoracic spine. The lungs are clear.",
]


def write_tiny_manifest(folder: str | os.PathLike[str], n: int = 6) -> Path:
    """A training/drafting manifest of ``n`` studies with PNG images, written to ``folder``.

    Records: ``{"id", "images", "views", "indication"?, "report"}``; image paths are
    absolute. Study 0 has two views (frontal + lateral).
    """
    folder = Path(folder)
    images = write_tiny_images(folder / "images", n + 1)
    rows = []
    for i in range(n):
        imgs = [str(images[i])] + ([str(images[n])] if i == 0 else [])
        row = {"id": f"s{i}", "images": imgs, "views": ["PA", "LATERAL"][: len(imgs)], "report": TINY_REPORTS[i % len(TINY_REPORTS)]}
        if i % 2 == 0:
            row["indication"] = "cough and fever"
        rows.append(row)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# What the tiny adapter is trained to write for every study (the base model never does).
ADAPTER_TARGET = "The lungs are clear. No pleural effusion or pneumothorax."


def build_tiny_adapter(
    model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], manifest: str | os.PathLike[str],
    *, target: str = ADAPTER_TARGET, steps: int = 40, max_rounds: int = 4,
) -> Path:
    """Train a rank-8 LoRA adapter (text-decoder modules only) with ``reportgen.train`` on
    ``manifest``'s studies, every report replaced by ``target``, until the adapter's greedy
    findings draft of the first study is ``target``. Returns the adapter folder."""
    from reportgen.backends.hf import HFDrafter
    from reportgen.train import TrainConfig, train
    from reportgen.types import Study

    out = Path(out_dir)
    rows = [json.loads(line) for line in Path(manifest).read_text(encoding="utf-8").splitlines() if line.strip()]
    fixed = out.parent / f"{out.name}_manifest.jsonl"
    fixed.write_text("".join(json.dumps({**r, "report": target}) + "\n" for r in rows), encoding="utf-8")
    first = Study.from_dict({k: v for k, v in rows[0].items() if k != "report"})
    for round_ in range(max_rounds):
        run_dir = out / f"round{round_}" if round_ else out
        cfg = TrainConfig(
            manifest=str(fixed), model=str(model_dir), out=str(run_dir), epochs=1, max_steps=steps * (round_ + 1),
            lr=1e-2, batch_size=2, grad_accum=1, rank=8, alpha=16, dropout=0.0, val_fraction=0.0,
            eval_every=0, save_every=0, keep_checkpoints=1, eval_examples=0, warmup_ratio=0.0, seed=SEED,
        )
        train(cfg)
        drafter = HFDrafter(str(model_dir), adapter=str(run_dir), max_new_tokens=32, batch_size=1)
        if drafter.draft([first])[0].report == target:
            return run_dir
    raise RuntimeError(f"the tiny adapter did not learn {target!r} in {max_rounds} rounds")
