"""The ``hf`` backend: in-process transformers generation, batched, greedy by default.

    drafter = HFDrafter("Qwen/Qwen2-VL-2B-Instruct", adapter="runs/cxr-lora", batch_size=4)
    drafts = drafter.draft(studies)

Prompts are :func:`reportgen.prompting.render_messages` (the same messages the ``vllm``
backend sends), rendered with the model's chat template; images are loaded with
:func:`reportgen.images.load_image`. Batches are left-padded so every prompt ends where
generation starts; greedy decoding makes the result deterministic and the same whether a
study is drafted alone or in a batch (checked by tests/test_hf_backend.py in float32).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator, Sequence

from reportgen.errors import ReportgenError
from reportgen.protocols import Draft
from reportgen.types import Study

log = logging.getLogger(__name__)


class HFDrafter:
    """A Drafter running a Hugging Face VLM (optionally with a LoRA adapter) in process.

    ``model``: hub id or folder; ``adapter``: a LoRA adapter folder; ``task``: "findings",
    "impression" or "full"; ``max_new_tokens``; ``batch_size`` studies per generate call;
    ``device`` ("cuda", "cpu", ...; default cuda when available) and ``dtype`` ("float32",
    "bfloat16", ...; default bfloat16 on GPU, float32 on CPU); ``temperature`` 0 is greedy
    (anything else samples, seeded by ``seed``); ``template`` a prompt template file.
    ``loaded`` reuses an already loaded :class:`reportgen.models.LoadedModel`.
    """

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        *,
        task: str = "findings",
        max_new_tokens: int = 256,
        batch_size: int = 4,
        device: str | None = None,
        dtype: Any = None,
        temperature: float = 0.0,
        seed: int = 0,
        template: str | None = None,
        loaded: Any = None,
        max_pixels: int | None = None,
        min_pixels: int | None = None,
        max_images: int | None = None,
        repetition_penalty: float = 1.0,
        trust_remote_code: bool = False,
    ):
        from reportgen.images import DEFAULT_MAX_IMAGES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, ImagePolicy
        from reportgen.prompting import TASKS, default_template, load_template

        if task not in TASKS:
            raise ReportgenError("E521", f"unknown drafting task {task!r}", fix=f"use one of {', '.join(TASKS)}")
        if int(max_new_tokens) < 1 or int(batch_size) < 1:
            raise ReportgenError("E530", "max_new_tokens and batch_size must be positive integers", fix="e.g. max_new_tokens=256, batch_size=4")
        if float(temperature) < 0:
            raise ReportgenError("E530", f"temperature must be >= 0, got {temperature}", fix="use 0 for greedy decoding")
        self.task = task
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.template = load_template(template) if template else default_template()
        self.prompt_version = self.template.version
        self.prompt_sha256 = self.template.sha256
        self.policy = ImagePolicy.of(DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                                     DEFAULT_MIN_PIXELS if min_pixels is None else min_pixels,
                                     DEFAULT_MAX_IMAGES if max_images is None else max_images)
        self.repetition_penalty = float(repetition_penalty)
        if loaded is None:
            from reportgen.models import load_model

            loaded = load_model(str(model), adapter, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self.loaded = loaded
        self.model_name = str(model)
        self.adapter = str(adapter) if adapter else loaded.adapter
        self.name = f"hf:{self.model_name}" + (f"+{self.adapter}" if self.adapter else "")
        from reportgen.encoding import stop_token_ids

        tok = loaded.tokenizer
        # The family's stop tokens (models.json), the tokenizer's EOS, generation_config's.
        self.eos_ids = frozenset(stop_token_ids(loaded.processor, loaded.family, loaded.model))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos_ids, default=0)
        # Everything generate() is called with, so nothing comes silently from the model's
        # generation_config.json: recorded in every draft record ("generation").
        self.generation_config: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens, "num_beams": 1, "eos_token_id": sorted(self.eos_ids) or None,
            "pad_token_id": self.pad_id, "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": 0, "length_penalty": 1.0,
        }
        if self.temperature > 0:
            self.generation_config.update(do_sample=True, temperature=self.temperature, top_p=1.0, top_k=0, seed=self.seed)
        else:
            self.generation_config.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        # Cumulative counts for benchmarks: reports, prompt and completion tokens, seconds.
        self.stats = {"reports": 0, "prompt_tokens": 0, "completion_tokens": 0, "generate_s": 0.0}

    # -- generation -----------------------------------------------------------------
    def _inputs(self, studies: Sequence[Study]) -> dict:
        from reportgen.encoding import encode, load_images, prompt_text
        from reportgen.prompting import render_messages

        proc = self.loaded.processor
        family = self.loaded.family
        msgs = [render_messages(s, self.task, self.template, self.policy) for s in studies]
        texts = [prompt_text(proc, m, family) for m in msgs]
        images = [load_images(m, self.policy) for m in msgs]
        inputs = encode(proc, texts, images, padding_side="left")
        dev, dtype = self.loaded.device, self.loaded.dtype
        out = {}
        for k, v in inputs.items():
            if hasattr(v, "to"):
                v = v.to(dev)
                if v.is_floating_point():
                    v = v.to(dtype)
            out[k] = v
        return out

    def generate_ids(self, study: Study) -> list[int]:
        """The generated token ids of one study (prompt excluded; ends with the eos token
        when generation stopped there; special tokens kept)."""
        return self.generate_many([study])[0]

    def generate_many(self, studies: Sequence[Study]) -> list[list[int]]:
        """Generated token ids for each study, in one batched generate call."""
        import torch

        if not studies:
            return []
        inputs = self._inputs(studies)
        kwargs = {k: v for k, v in self.generation_config.items() if k != "seed"}
        if self.temperature > 0:
            torch.manual_seed(self.seed)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.loaded.model.generate(**inputs, **kwargs)
        self.stats["generate_s"] += time.perf_counter() - t0
        prompt_len = inputs["input_ids"].shape[1]
        rows = []
        for i, row in enumerate(out[:, prompt_len:].tolist()):
            ids = []
            for t in row:
                ids.append(int(t))
                if t in self.eos_ids:
                    break
            rows.append(ids)
            self.stats["prompt_tokens"] += int(inputs["attention_mask"][i].sum()) if "attention_mask" in inputs else prompt_len
            self.stats["completion_tokens"] += len(ids)
        self.stats["reports"] += len(rows)
        return rows

    def decode(self, ids: Sequence[int]) -> str:
        return self.loaded.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    # -- the Drafter protocol --------------------------------------------------------
    def draft(self, studies: Sequence[Study]) -> list[Draft]:
        """Drafts for ``studies`` in batches of ``batch_size``; raises on a bad study
        (``draft_iter`` isolates failures instead)."""
        drafts: list[Draft] = []
        studies = list(studies)
        for i in range(0, len(studies), self.batch_size):
            chunk = studies[i : i + self.batch_size]
            t0 = time.perf_counter()
            ids = self.generate_many(chunk)
            per = (time.perf_counter() - t0) / len(chunk)
            drafts.extend(self._draft(s, row, per) for s, row in zip(chunk, ids))
        return drafts

    def _draft(self, study: Study, ids: Sequence[int], latency: float) -> Draft:
        return Draft(id=study.id, report=self.decode(ids), model=self.model_name, adapter=self.adapter,
                     prompt_version=self.prompt_version, latency_s=latency)

    def draft_iter(self, studies: Iterable[Study]) -> Iterator[Any]:
        """One ``reportgen.backends.base.DraftResult`` per study, batch by batch; a failing
        batch is redone study by study so only the bad study fails."""
        from reportgen.backends.base import DraftResult, failed

        studies = list(studies)

        def run(chunk: Sequence[Study]) -> Iterator[DraftResult]:
            t0 = time.perf_counter()
            try:
                rows = self.generate_many(chunk)
            except Exception as exc:  # noqa: BLE001 - isolated below
                if len(chunk) > 1:
                    for s in chunk:
                        yield from run([s])
                    return
                log.warning("study %s failed: %s", chunk[0].id, exc)
                yield failed(chunk[0].id, exc, time.perf_counter() - t0)
                return
            per = (time.perf_counter() - t0) / len(chunk)
            for s, row in zip(chunk, rows):
                finish = "stop" if row and row[-1] in self.eos_ids else "length"
                yield DraftResult(s.id, self._draft(s, row, per), latency_s=per, completion_tokens=len(row),
                                  finish_reason=finish, token_ids=tuple(row))

        for i in range(0, len(studies), self.batch_size):
            yield from run(studies[i : i + self.batch_size])
