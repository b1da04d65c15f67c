"""`reportgen train`: LoRA fine-tuning of a vision-language model on a study manifest.

    reportgen train --manifest train.jsonl --model Qwen/Qwen2-VL-2B-Instruct --out runs/cxr-lora
    reportgen train ... --resume          # continue an interrupted run from its newest checkpoint

Manifest lines: {"id", "images": [paths], "indication"?, "comparison"?, "views"?, "report"}
(relative image paths are relative to the manifest's folder). See docs/drafting.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reportgen.models import DEFAULT_MODEL

    p.add_argument("--manifest", required=True, help="JSONL of studies with reference reports")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"base model: hub id or folder (default {DEFAULT_MODEL})")
    p.add_argument("--out", required=True, help="output folder: the adapter, metrics, checkpoints")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (linear warmup and decay)")
    p.add_argument("--batch-size", type=int, default=1, help="studies per forward pass")
    p.add_argument("--grad-accum", type=int, default=4, help="forward passes per optimizer step")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank r (serve with vLLM --max-lora-rank >= r)")
    p.add_argument("--alpha", type=int, default=16, help="LoRA alpha (scale = alpha / rank)")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of studies held out for validation (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps in all (overrides --epochs)")
    p.add_argument("--eval-every", type=int, default=50, help="validate every N optimizer steps (and after each epoch)")
    p.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps (default: --eval-every)")
    p.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept (the newest)")
    p.add_argument("--task", default="findings", choices=("findings", "impression", "full"), help="the prompt's task")
    p.add_argument("--max-length", type=int, default=4096, help="token limit per example (targets are cut to fit)")
    p.add_argument("--target-modules", default=None, help="peft regex of the modules to adapt (default: text-decoder projections)")
    p.add_argument("--warmup-ratio", type=float, default=0.03)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--eval-examples", type=int, default=3, help="validation studies drafted into val_examples.jsonl")
    p.add_argument("--max-new-tokens", type=int, default=256, help="for the drafted validation examples")
    p.add_argument("--template", default=None, help="a prompt template JSON (default: the packaged prompts/draft.json)")
    p.add_argument("--device", default=None, help="cuda, cpu, cuda:1, ... (default: cuda when available)")
    p.add_argument("--dtype", default=None,
                   help="float32, bfloat16, float16 (default: bfloat16 on GPU, float16 with loss scaling on GPUs without bfloat16, float32 on CPU)")
    from reportgen.images import DEFAULT_MAX_IMAGES, DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=int, default=None,
                   help=f"resize larger images to this many pixels, aspect kept (default {DEFAULT_MAX_PIXELS}; 0: no limit); draft with the same value")
    p.add_argument("--min-pixels", type=int, default=None, help="enlarge smaller images to this many pixels (default 0: never)")
    p.add_argument("--max-images", type=int, default=None,
                   help=f"images per study, frontal first then lateral (default {DEFAULT_MAX_IMAGES}; 0: all); serve with the same")
    p.add_argument("--max-skipped-share", type=float, default=0.05,
                   help="fail (E581) when more than this share of the studies cannot be trained (default 0.05)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward: less memory, ~30%% slower")
    p.add_argument("--quantize", choices=("4bit",), default=None,
                   help="QLoRA: load the base model in 4-bit (bitsandbytes NF4; CUDA only, the qlora extra)")
    p.add_argument("--eval-drafts", type=int, default=0,
                   help="at each evaluation, draft this many validation studies and log CheXpert-label F1, the graph "
                        "checker's hallucination rate and BLEU-4 beside the loss in metrics.jsonl (default 0: off)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="RUN the Python code shipped with the model (its author's code; e.g. MAIRA-2, CheXagent); only for trusted models")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="read images outside the manifest's folder ('../', absolute paths, symlinks out)")


def run(args: argparse.Namespace) -> int:
    from reportgen.train import TrainConfig, train

    cfg = TrainConfig(
        manifest=args.manifest, model=args.model, out=args.out, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, grad_accum=args.grad_accum, rank=args.rank, alpha=args.alpha,
        dropout=args.dropout, val_fraction=args.val_fraction, seed=args.seed, resume=args.resume,
        max_steps=args.max_steps, eval_every=args.eval_every, save_every=args.save_every,
        keep_checkpoints=args.keep_checkpoints, task=args.task, max_length=args.max_length,
        target_modules=args.target_modules, warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
        eval_examples=args.eval_examples, max_new_tokens=args.max_new_tokens, template=args.template,
        device=args.device, dtype=args.dtype, max_pixels=args.max_pixels, min_pixels=args.min_pixels,
        max_images=args.max_images, max_skipped_share=args.max_skipped_share,
        gradient_checkpointing=args.gradient_checkpointing, eval_drafts=args.eval_drafts, quantize=args.quantize, trust_remote_code=args.trust_remote_code,
        allow_outside_root=args.allow_outside_root,
    )
    result = train(cfg)
    import os

    if os.environ.get("RANK", "0") != "0":  # data parallel: process 0 reports
        return 0
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from is not None else ""
    print(f"adapter: {result.out}{resumed}")
    print(f"steps: {result.steps}  train loss: {fmt(result.train_loss)}  val loss: {fmt(result.initial_val_loss)} -> {fmt(result.val_loss)}")
    if result.skipped:
        print(f"skipped {result.skipped} bad record(s); see {result.out}/reportgen_train.json", file=sys.stderr)
    images = f" --max-images {args.max_images}" if args.max_images is not None else ""
    print(f"serve it: reportgen serve --model {args.model} --adapter NAME={result.out}{images}")
    return 0
