"""The LLM checker (``llm``) and the rules-then-LLM ``cascade`` (issue 11 section 4).

Both return the graph checker's verdict contract: one :class:`~reportgen.types.Verdict` per
claim with a status, reasons, a ``basis`` (``reportgen.types.VERDICT_BASES``) and the
evidence sentences that decided it.

- ``LLMChecker``: each claim is judged by a chat model behind any OpenAI-compatible
  endpoint (a vLLM server, ``reportgen serve`` with an instruction model, ...) through
  langchain (the ``judge`` extra), against numbered evidence sentences: the reference
  report's claims when a reference is given, else the report's other sentences (never
  the claim's own sentence). The prompt is the versioned data file
  ``prompts/claim_check.yaml``; sampling is greedy; the answer is validated by a pydantic
  model (structured output where the model offers it, else the JSON in the reply). A call
  that fails, or an answer that does not validate or names evidence that does not exist,
  is an ``error`` verdict (E480-E482) with its reason: never a silent "unsupported".
  ``batch_size`` claims go to the endpoint per ``batch`` call with at most
  ``max_concurrency`` requests in flight.
- ``CascadeChecker``: the graph checker first; only the claims it leaves ``uncertain`` or
  without evidence (basis ``no_evidence``) go to the LLM, whose verdict then decides (the
  rules' verdict stays as a secondary reason). Claims the rules decide cost no call.

langchain is imported only when a checker is built from an endpoint.

    from reportgen.checkers.llm_checker import LLMChecker
    from reportgen.checkers.pipeline import Pipeline
    llm = LLMChecker.from_endpoint("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct")
    Pipeline(checkers=["graph", llm])                       # both; the worst status wins
    Pipeline(checkers=["cascade"], llm=llm)                 # rules first, the LLM for the rest
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field

from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim
from reportgen.types import VERDICT_STATUSES, VERDICT_BASES, EvidenceItem, Verdict, default_basis

PROMPT = "claim_check.yaml"
STATUSES = tuple(s for s in VERDICT_STATUSES if s != "error")  # what an LLM may answer (reportgen.types)
# The LLM's basis must fit its status (anything else is replaced by the status's default).
BASES_FOR = {
    "supported": ("matched",),
    "contradicted": ("conflicting",),
    "unsupported": ("no_evidence",),
    "uncertain": ("hedged", "weak_evidence", "hypothetical", "no_evidence"),
}
SCORES = {"supported": 1.0, "contradicted": 0.0, "unsupported": 0.0, "uncertain": 0.5}
# What the cascade sends to the LLM: claims the rules leave uncertain or without evidence.
ESCALATE_STATUS = ("uncertain",)
ESCALATE_BASIS = ("no_evidence",)


class ClaimDecision(BaseModel):
    """What the LLM must answer for one claim."""

    status: Literal["supported", "contradicted", "unsupported", "uncertain"]
    basis: str = Field("", max_length=20, description="matched, conflicting, no_evidence, hedged, weak_evidence or hypothetical")
    evidence: list[int] = Field(default_factory=list, max_length=32, description="1-based numbers of the deciding evidence sentences")
    reason: str = Field("", max_length=400, description="one short sentence")


def _premises(cc: CheckedClaim, evidence: Sequence[EvidenceItem]) -> tuple[str, tuple[EvidenceItem, ...]]:
    """(source, items) a claim is judged against: the reference's claims when given, else
    the report's own other sentences (not the claim's sentence); texts deduplicated."""
    ref = [e for e in evidence if e.source == "reference"]
    if ref:
        items, source = ref, "reference"
    else:
        c = cc.claim
        s0 = c.sentence_start if c.sentence_start is not None else c.start
        s1 = c.sentence_end if c.sentence_end is not None else c.end
        items = [e for e in evidence if e.source == "self"
                 and not (e.meta.get("sentence_start", e.start) < s1 and s0 < e.meta.get("sentence_end", e.end))]
        source = "self"
    seen: dict[str, EvidenceItem] = {}
    for e in items:
        seen.setdefault(e.text, e)
    return source, tuple(seen.values())


class LLMChecker:
    """Judges claims with a chat model (see the module doc). ``llm``: a langchain chat model
    or runnable; ``structured``: ``auto`` | ``json_schema`` | ``text``."""

    name = "llm"

    def __init__(self, llm: Any, *, prompt: str = PROMPT, structured: str = "auto", max_concurrency: int = 4,
                 batch_size: int = 16, model: str | None = None):
        from reportgen.evals.metrics.judge import EntailmentPrompt, structured_runnable

        if max_concurrency < 1 or batch_size < 1:
            raise ReportgenError("E483", f"max_concurrency ({max_concurrency}) and batch_size ({batch_size}) must be at least 1",
                                 fix="give positive numbers (--llm-concurrency, --llm-batch-size)")
        self.prompt = EntailmentPrompt.load(prompt)  # version, system, user template, few-shot examples
        self.max_concurrency = max_concurrency
        self.batch_size = batch_size
        self.model = model
        self.runnable, self.structured = structured_runnable(llm, ClaimDecision, structured)

    @classmethod
    def from_endpoint(cls, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                      max_retries: int = 2, max_tokens: int = 512, **kwargs: Any) -> "LLMChecker":
        """A checker on an OpenAI-compatible server (vLLM: ``http://host:8000/v1``), temperature 0."""
        from reportgen.evals.metrics.judge import chat_model

        llm = chat_model(base_url, model, api_key=api_key, timeout=timeout, max_retries=max_retries, max_tokens=max_tokens)
        return cls(llm, model=model, **kwargs)

    @property
    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "prompt": f"{PROMPT} {self.prompt.version}", "structured": self.structured,
                "max_concurrency": self.max_concurrency, "batch_size": self.batch_size}

    def check(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(claims)
        todo: list[tuple[int, tuple[EvidenceItem, ...]]] = []
        inputs: list[Any] = []
        for k, cc in enumerate(claims):
            source, items = _premises(cc, evidence)
            if not items:
                out[k] = Verdict(cc.claim, "uncertain", (f"not checked: no {source} evidence was given to the LLM",),
                                 (), self.name, None, "no_source")
                continue
            todo.append((k, items))
            inputs.append(self.prompt.messages(cc.claim.text, [e.text for e in items]))
        for a in range(0, len(inputs), self.batch_size):
            chunk = inputs[a: a + self.batch_size]
            try:
                replies = self.runnable.batch(chunk, config={"max_concurrency": self.max_concurrency}, return_exceptions=True)
            except Exception as e:  # the whole batch failed (e.g. a bad client setting)
                replies = [e] * len(chunk)
            for (k, items), reply in zip(todo[a: a + self.batch_size], replies):
                out[k] = self.to_verdict(claims[k], items, reply)
        return [v for v in out if v is not None]

    def to_verdict(self, cc: CheckedClaim, items: Sequence[EvidenceItem], reply: Any) -> Verdict:
        """One reply -> the claim's verdict; a failed or malformed reply -> an error verdict."""
        from pydantic import ValidationError

        from reportgen.evals.metrics.judge import parse_reply

        claim = cc.claim
        if isinstance(reply, BaseException):
            if isinstance(reply, (ValueError, ValidationError)) or type(reply).__name__ == "LengthFinishReasonError":
                # structured output that did not parse or validate (raised inside the runnable)
                return Verdict(claim, "error", (f"E481 malformed LLM answer: {type(reply).__name__}: {_first_line(reply)}",), (), self.name, None, "error")
            return Verdict(claim, "error", (f"E480 LLM call failed: {type(reply).__name__}: {_first_line(reply)}",), (), self.name, None, "error")
        try:
            d = parse_reply(reply, ClaimDecision)
        except (ValueError, ValidationError) as e:
            return Verdict(claim, "error", (f"E481 malformed LLM answer: {_first_line(e)}",), (), self.name, None, "error")
        bad = [i for i in d.evidence if not 1 <= i <= len(items)]
        if bad:
            return Verdict(claim, "error", (f"E482 the LLM named evidence sentence(s) {bad} of {len(items)}",), (), self.name, None, "error")
        chosen = tuple(items[i - 1] for i in dict.fromkeys(d.evidence))
        basis = d.basis if d.basis in BASES_FOR[d.status] and d.basis in VERDICT_BASES else default_basis(d.status, SCORES[d.status])
        named = "; ".join(e.describe() for e in chosen) or "no evidence sentence"
        reason = f"{d.status}: {d.reason.strip() or 'no reason given'} ({named})"
        return Verdict(claim, d.status, (reason,), chosen, self.name, SCORES[d.status], basis)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


class CascadeChecker:
    """The graph checker first; the LLM only for the claims it leaves uncertain or without
    evidence (see the module doc). Its verdicts carry checker name ``cascade``."""

    name = "cascade"

    def __init__(self, llm: LLMChecker, rules: Any = None, *, convention: str | None = None):
        from reportgen.checkers.graph_checker import GraphChecker

        self.llm = llm
        self.rules = rules if rules is not None else GraphChecker(convention=convention)
        self.escalated = 0  # claims sent to the LLM so far

    @staticmethod
    def escalates(v: Verdict) -> bool:
        return v.status in ESCALATE_STATUS or v.basis in ESCALATE_BASIS

    def check(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict]:
        from dataclasses import replace

        first = self.rules.check(claims, evidence)
        todo = [k for k, v in enumerate(first) if self.escalates(v)]
        self.escalated += len(todo)
        by_claim = {id(v.claim): v for v in self.llm.check([claims[k] for k in todo], evidence)} if todo else {}
        escalated = set(todo)
        out = []
        for k, v in enumerate(first):
            lv = by_claim.get(id(claims[k].claim)) if k in escalated else None
            if lv is None:  # decided by the rules
                out.append(replace(v, checker=self.name))
                continue
            rules = f"rules (secondary): {v.status} ({v.basis})" + (f": {v.reasons[0]}" if v.reasons else "")
            out.append(replace(lv, checker=self.name, reasons=lv.reasons + (rules,)))
        return out


__all__ = ["LLMChecker", "CascadeChecker", "ClaimDecision", "PROMPT"]
