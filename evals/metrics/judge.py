"""The optional LLM entailment judge (RadFact-style), through langchain.

Any OpenAI-compatible chat endpoint works, a vLLM server included::

    judge = LLMJudge.from_endpoint("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct")
    judged = judge.judge(["Mild cardiomegaly."], ["Heart size is mildly enlarged.", ...])

The prompt is a data file (``prompts/entailment.yaml``: system text, user template and
few-shot examples), sampling is greedy (temperature 0), and the answer is validated
against a pydantic model (:class:`EntailmentDecision`): with ``structured="json_schema"``
through the model's structured output (``with_structured_output(..., method="json_schema")``,
which vLLM serves with guided decoding), with ``structured="text"`` by parsing the JSON in
the reply; ``"auto"`` (default) uses structured output when the model offers it. A call that
fails (connection, timeout, a reply that does not validate) gives ``Judged(None, error=...)``:
counted as an error and left out of every fraction, never scored "not entailed".

langchain is imported only when a judge is built from an endpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field, ValidationError

from reportgen.evals.metrics.radfact import Judged
from reportgen.errors import BackendUnavailable, ReportgenError

PROMPT = "entailment.yaml"


class EntailmentDecision(BaseModel):
    """What the judge must answer for one hypothesis sentence."""

    status: Literal["entailment", "not_entailment"]
    evidence: list[int] = Field(default_factory=list, max_length=32, description="1-based numbers of the deciding premise sentences")
    reason: str = Field("", max_length=400, description="one short sentence")


@dataclass(frozen=True)
class EntailmentPrompt:
    version: str
    system: str
    user: str
    examples: tuple[dict[str, Any], ...]

    @classmethod
    def load(cls, name: str = PROMPT) -> "EntailmentPrompt":
        import yaml

        from reportgen import prompts

        data = yaml.safe_load(prompts.load(name))
        try:
            return cls(str(data["version"]), data["system"], data["user"], tuple(data.get("examples") or ()))
        except (KeyError, TypeError) as exc:
            raise ReportgenError("E440", f"prompt {name!r} lacks {exc}", fix="give version, system and user keys") from None

    def messages(self, hypothesis: str, premises: Sequence[str]) -> list[tuple[str, str]]:
        out = [("system", self.system)]
        for ex in self.examples:
            out.append(("human", self._user(ex["hypothesis"], ex["premises"])))
            out.append(("ai", ex["output"]))
        out.append(("human", self._user(hypothesis, premises)))
        return out

    def _user(self, hypothesis: str, premises: Sequence[str]) -> str:
        numbered = "\n".join(f"{i + 1}. {p}" for i, p in enumerate(premises)) or "(none)"
        return self.user.replace("{premises}", numbered).replace("{hypothesis}", hypothesis)


_JSON = re.compile(r"\{.*\}", re.S)
_NO_STRUCTURED = re.compile(r"response_format|json_schema|guided|structured output|not supported|unsupported", re.I)


def _no_structured_output(exc: BaseException) -> bool:
    """An error that says the server cannot do structured output (not a dead endpoint)."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if status in (400, 422, 501):
        return True
    return bool(_NO_STRUCTURED.search(str(exc))) and not isinstance(exc, (ConnectionError, TimeoutError))


def parse_reply(reply: Any, schema: type[BaseModel]) -> Any:
    """A structured answer, an AIMessage or a string with one JSON object -> a ``schema``
    instance (ValueError / ValidationError when it is none). Shared with the LLM checker
    (``reportgen.checkers.llm_checker``)."""
    if isinstance(reply, schema):
        return reply
    if isinstance(reply, dict):
        return schema.model_validate(reply)
    text = getattr(reply, "content", reply)
    if not isinstance(text, str):
        raise ValueError(f"unexpected reply type {type(reply).__name__}")
    m = _JSON.search(text)
    if not m:
        raise ValueError("no JSON object in the reply")
    return schema.model_validate(json.loads(m.group()))


def parse_decision(reply: Any) -> EntailmentDecision:
    """A structured answer, an AIMessage or a string with one JSON object -> the decision."""
    return parse_reply(reply, EntailmentDecision)


def structured_runnable(llm: Any, schema: type[BaseModel], structured: str) -> tuple[Any, bool]:
    """(runnable, whether it gives structured output): ``llm.with_structured_output(schema,
    method="json_schema")`` for ``auto``/``json_schema`` when the model offers it, else ``llm``
    (replies parsed with ``parse_reply``)."""
    if structured not in ("auto", "json_schema", "text"):
        raise ReportgenError("E441", f"unknown structured mode {structured!r}", fix="use auto, json_schema or text")
    if structured in ("auto", "json_schema"):
        try:
            return llm.with_structured_output(schema, method="json_schema"), True
        except (AttributeError, NotImplementedError):
            if structured == "json_schema":
                raise ReportgenError("E442", "this chat model offers no structured output", fix="use structured='text'") from None
    return llm, False


def chat_model(base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0, max_retries: int = 2,
               max_tokens: int = 512) -> Any:
    """langchain's ChatOpenAI on an OpenAI-compatible server (vLLM: ``http://host:8000/v1``),
    temperature 0; E443 without the judge extra."""
    for name, value, low in (("max_retries", max_retries, 0), ("max_tokens", max_tokens, 1)):
        if value < low:
            raise ReportgenError("E735", f"{name} must be at least {low}, got {value}", fix=f"give {name}={low} or more")
    if timeout <= 0:
        raise ReportgenError("E735", f"timeout must be above 0 seconds, got {timeout}", fix="give timeout=60.0")
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise BackendUnavailable("E443", "the LLM judge needs langchain-openai", fix="pip install 'reportgen-cxr[judge]'") from None
    return ChatOpenAI(base_url=base_url, model=model, temperature=0, api_key=api_key or "EMPTY",
                      timeout=timeout, max_retries=max_retries, max_tokens=max_tokens)


class LLMJudge:
    """Judges hypothesis sentences against premise sentences with a chat model."""

    name = "llm"

    def __init__(self, llm: Any, *, prompt: str = PROMPT, structured: str = "auto", max_concurrency: int = 4):
        self.prompt = EntailmentPrompt.load(prompt)
        self.max_concurrency = max_concurrency
        self.llm = llm
        self.mode = structured
        self.fallback: str | None = None  # why "auto" fell back to plain text, when it did
        self.runnable, self.structured = structured_runnable(llm, EntailmentDecision, structured)

    @classmethod
    def from_endpoint(cls, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                      max_retries: int = 2, max_tokens: int = 512, **kwargs: Any) -> "LLMJudge":
        """A judge on an OpenAI-compatible server (vLLM: ``http://host:8000/v1``), temperature 0.

        The schema bounds the answer (at most 32 evidence numbers, a reason of at most 400
        characters), so guided decoding always ends well inside ``max_tokens``."""
        llm = chat_model(base_url, model, api_key=api_key, timeout=timeout, max_retries=max_retries, max_tokens=max_tokens)
        return cls(llm, **kwargs)

    def judge(self, hypotheses: Sequence[str], premises: Sequence[str]) -> list[Judged]:
        """One Judged per hypothesis; evidence indices are 0-based premise indices."""
        return self.judge_many([(hypotheses, premises)])[0]

    def judge_many(self, pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[list[Judged]]:
        """Judge several (hypotheses, premises) pairs in one batch of calls."""
        inputs, where = [], []
        for k, (hyps, prem) in enumerate(pairs):
            for h in hyps:
                inputs.append(self.prompt.messages(h, prem))
                where.append((k, len(prem)))
        replies = self._batch(inputs)
        out: list[list[Judged]] = [[] for _ in pairs]
        for (k, n_prem), reply in zip(where, replies):
            out[k].append(self._to_judged(reply, n_prem))
        return out

    def _batch(self, inputs: list) -> list:
        """Replies (or exceptions) for ``inputs``. In ``auto`` mode, when the server refuses
        structured output (an HTTP 400/422/501 answer, or a message about response_format /
        json_schema / guided decoding), the judge falls back to plain-text parsing for those
        inputs and every later call (``fallback`` says why)."""
        if not inputs:
            return []
        replies = self.runnable.batch(inputs, config={"max_concurrency": self.max_concurrency}, return_exceptions=True)
        if not (self.structured and self.mode == "auto"):
            return replies
        refused = [i for i, r in enumerate(replies) if isinstance(r, BaseException) and _no_structured_output(r)]
        if not refused:
            return replies
        first = replies[refused[0]]
        self.fallback = f"structured output refused ({type(first).__name__}: {str(first).splitlines()[0][:200]}); plain-text parsing used"
        self.runnable, self.structured = self.llm, False
        again = self.runnable.batch([inputs[i] for i in refused], config={"max_concurrency": self.max_concurrency}, return_exceptions=True)
        for i, r in zip(refused, again):
            replies[i] = r
        return replies

    @staticmethod
    def _to_judged(reply: Any, n_premises: int) -> Judged:
        if isinstance(reply, BaseException):
            return Judged(None, error=f"E444 judge call failed: {type(reply).__name__}: {reply}")
        try:
            d = parse_decision(reply)
        except (ValueError, ValidationError, json.JSONDecodeError) as exc:
            return Judged(None, error=f"E445 judge reply did not validate: {str(exc).splitlines()[0]}")
        ev = tuple(dict.fromkeys(i - 1 for i in d.evidence if 1 <= i <= n_premises))
        return Judged(d.status == "entailment", ev)
