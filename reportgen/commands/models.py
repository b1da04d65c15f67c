"""`reportgen models`: the model families reportgen knows, with what is tested for each.

    reportgen models            # a table: family, model types, train / hf / vLLM LoRA, example
    reportgen models --json     # the same as JSON lines

The table comes from reportgen/data/models.json. "tested" means a test of this repository
runs it on a tiny model of the family built from its transformers config (train: one
LoRA step; hf: drafting with the in-process backend; vLLM LoRA: a real vLLM server with the
adapter). "vLLM LoRA" says whether vLLM serves LoRA adapters for the family at all.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per family instead of the table")


def rows() -> list[dict]:
    from reportgen.models import FAMILIES

    out = []
    for f in FAMILIES:
        vllm = "tested" if f.tested.get("vllm_lora") else ("yes, untested" if f.vllm_lora else "no")
        out.append({
            "family": f.name, "model_types": list(f.model_types),
            "train": "tested" if f.tested.get("train") else "untested",
            "hf": "tested" if f.tested.get("hf") else "untested",
            "vllm_lora": vllm, "example": f.example, "notes": f.notes,
        })
    return out


def run(args: argparse.Namespace) -> int:
    table = rows()
    if args.json:
        for r in table:
            print(json.dumps(r))
        return 0
    cols = ("family", "model_types", "train", "hf", "vllm_lora", "example")
    head = ("family", "model_type", "train", "hf draft", "vLLM LoRA", "example")
    cells = [[", ".join(r[c]) if isinstance(r[c], list) else str(r[c]) for c in cols] for r in table]
    width = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, width)).rstrip())
    print("  ".join("-" * w for w in width))
    for c in cells:
        print("  ".join(x.ljust(w) for x, w in zip(c, width)).rstrip())
    print("\ntested: run on a tiny model of the family in this repository's tests; "
          "untested: listed, not exercised here (expect rough edges). Notes: reportgen models --json")
    return 0
