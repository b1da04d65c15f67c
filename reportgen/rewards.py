"""Reward functions for RL fine-tuning (GRPO and friends) with TRL's ``reward_funcs`` signature.

Each function takes ``(prompts, completions, **kwargs)`` and returns one float per
completion, as ``trl.GRPOTrainer(reward_funcs=[...])`` calls it; the reference report of
each completion comes from the dataset column ``reference`` (TRL passes every extra dataset
column as a keyword argument, repeated for each generation). Completions may be strings
(standard format) or chat messages (conversational format: the last message's content).

- ``claim_reward``: the graph checker's verdicts on the completion's claims against the
  reference: supported claims / claims with a verdict, minus ``contradiction_penalty`` per
  contradicted claim (default 0.5); a completion without any claim (empty, no finding
  stated) scores ``empty_reward`` (default 0.0).
- ``chexpert_f1_reward``: per-completion F1 of the 14 CheXpert labels (uncertain counted as
  positive) of the completion against the reference; 1.0 when neither has a positive label.
- ``combined_reward``: a weighted sum of the two (``make_reward`` builds other mixes).

Everything runs on CPU without a model (the rules extractor); references are read once and
cached. Speed is measured by ``python -m evals.bench.rewards_bench`` (target >= 500
completions/s on one core). A GRPO example is in docs/metrics.md::

    from trl import GRPOConfig, GRPOTrainer
    from reportgen.rewards import claim_reward, chexpert_f1_reward

    trainer = GRPOTrainer(model=..., reward_funcs=[claim_reward, chexpert_f1_reward],
                          args=GRPOConfig(...), train_dataset=ds)  # ds columns: prompt, reference
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Sequence

from reportgen.errors import ReportgenError

__all__ = ["claim_reward", "chexpert_f1_reward", "combined_reward", "make_reward", "completion_text"]

Reward = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the last message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)) and completion:
        last = completion[-1]
        return str(last.get("content") or "") if isinstance(last, dict) else str(last)
    return ""


def _references(completions: Sequence[Any], kwargs: dict[str, Any]) -> list[str]:
    refs = kwargs.get("reference", kwargs.get("references"))
    if refs is None:
        raise ReportgenError("E864", "the reward needs the reference reports: a dataset column 'reference'",
                             fix="add a 'reference' column to the training dataset (TRL passes it to reward functions)")
    if isinstance(refs, str):
        refs = [refs] * len(completions)
    refs = list(refs)
    if len(refs) != len(completions):
        raise ReportgenError("E865", f"{len(refs)} references for {len(completions)} completions",
                             fix="give one reference per completion (TRL repeats dataset columns per generation)")
    return [r if isinstance(r, str) else "" for r in refs]


@lru_cache(maxsize=1)
def _pipeline():
    from reportgen.checkers.pipeline import Pipeline, default_reader
    from reportgen.evals.suite import CachedReader

    return Pipeline("rules", self_check=False, reader=CachedReader(default_reader("rules"), max_items=20_000))


def claim_reward(prompts: Sequence[Any], completions: Sequence[Any], *, contradiction_penalty: float = 0.5,
                 empty_reward: float = 0.0, **kwargs: Any) -> list[float]:
    """Supported-claim precision minus ``contradiction_penalty`` per contradicted claim."""
    refs = _references(completions, kwargs)
    pipe = _pipeline()
    out = []
    for k, (c, ref) in enumerate(zip(completions, refs)):
        text = completion_text(c)
        if not text.strip() or not ref.strip():
            out.append(empty_reward)
            continue
        r = pipe.check(f"completion{k}", text, ref)
        judged = [x.status for x in r.claims if x.status not in ("error", "not_checked")]
        if r.error or not judged:
            out.append(empty_reward)
            continue
        supported = sum(s == "supported" for s in judged)
        contradicted = sum(s == "contradicted" for s in judged)
        out.append(supported / len(judged) - contradiction_penalty * contradicted)
    return out


@lru_cache(maxsize=20_000)
def _labels(text: str) -> tuple[int, ...]:
    from reportgen.evals.metrics.chexpert import binarize, chexpert_labels

    read = _pipeline()._read(text)
    return tuple(int(x) for x in binarize(chexpert_labels([f for c in read.claims for f in c.findings])))


def chexpert_f1_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Per-completion CheXpert-label F1 (14 labels, uncertain as positive) against the
    reference; 1.0 when neither states a positive label, 0.0 for an empty completion."""
    refs = _references(completions, kwargs)
    out = []
    for c, ref in zip(completions, refs):
        text = completion_text(c)
        if not text.strip() or not ref.strip():
            out.append(0.0)
            continue
        h, r = _labels(text), _labels(ref)
        tp = sum(a and b for a, b in zip(h, r))
        den = sum(h) + sum(r)
        out.append(1.0 if den == 0 else 2 * tp / den)
    return out


def make_reward(weights: dict[str, float], **options: Any) -> Reward:
    """A reward that is the weighted sum of ``claim`` and ``chexpert`` rewards, with TRL's
    signature and a readable ``__name__`` (TRL logs rewards under it)."""
    parts = {"claim": claim_reward, "chexpert": chexpert_f1_reward}
    bad = [k for k in weights if k not in parts]
    if bad:
        raise ReportgenError("E866", f"unknown reward parts {bad}", fix="use 'claim' and/or 'chexpert'")

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        total = [0.0] * len(completions)
        for name, w in weights.items():
            extra = options if name == "claim" else {}
            for i, v in enumerate(parts[name](prompts, completions, **extra, **kwargs)):
                total[i] += w * v
        return total

    reward.__name__ = "reward_" + "_".join(f"{k}{w:g}" for k, w in weights.items())
    return reward


combined_reward = make_reward({"claim": 0.5, "chexpert": 0.5})
combined_reward.__name__ = "combined_reward"
