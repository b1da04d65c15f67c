"""Drafting on Ray Data's LLM API (``ray.data.llm``) for ``reportgen run --engine ray``.

Three ways to draft on Ray (``--ray-drafter``; docs/scale.md):

- ``http``: ``ray.data.llm``'s HTTP request processor (``HttpRequestProcessorConfig``)
  against existing OpenAI-compatible endpoints (``reportgen serve`` instances). One
  processor per endpoint; block *k* of studies goes to endpoint ``k mod n`` (the same
  spread as the actor path). Each row's request body is built, on the workers, by our
  ``VLLMDrafter.payload`` (image policy, prompt template, generation settings: the very
  body the single-process drafter sends), and each answer is turned into the local
  engine's draft record. The API key is read on the workers from an environment variable
  (a session factory adds the header), so it never travels through Ray.
- ``vllm-engine``: ``ray.data.llm``'s vLLM engine processor (``vLLMEngineProcessorConfig``):
  engine replicas inside Ray (``concurrency`` = replicas, tensor/pipeline parallel per
  replica, the LoRA adapter with ``enable_lora``/``max_lora_rank``/``max_loras``), for an
  ``hf:MODEL?adapter=DIR`` backend when vLLM is importable in the Ray workers' environment.
- ``actors``: Ray actors each holding our ``vllm:`` (or ``hf:``) drafter (the path of
  ``reportgen.engines.ray_engine.draft_studies``).

``auto`` (the default) takes ``vllm-engine`` for an ``hf:`` backend whose model vLLM can
load in the workers, and ``actors`` otherwise. Why ``http`` is not the default for servers
(Ray 2.60's ``HttpRequestUDF``): a request that still fails after its retries (connection
refused, timeouts, 429/502/503/504) raises an error that ends the whole dataset, and that
error's text holds the request payload (the prompt and the base64 images), which Ray Data
writes to its logs. So this module keeps every record's contract by handing the studies
the processor did not finish to the actor path (per-study retries and error records, as the
local engine), and keeps the processor opt-in where patient data must stay out of logs.
Nothing here imports ray until a function is called.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from reportgen.errors import BackendUnavailable, ReportgenError

log = logging.getLogger(__name__)

RAY_DRAFTERS = ("auto", "actors", "http", "vllm-engine")
_FIX_LLM = "pip install 'reportgen-cxr[ray]' (ray[data,llm]), or use --ray-drafter actors"


def _ray_llm():
    try:
        from ray.data import llm
    except ImportError as e:
        raise BackendUnavailable("E960", f"--ray-drafter http/vllm-engine needs ray.data.llm ({e})", fix=_FIX_LLM) from None
    return llm


# --- the HTTP request processor --------------------------------------------------------


@dataclass(frozen=True)
class HttpDraftJob:
    """What the HTTP processor path needs (pickled to the workers).

    ``backends``: ``vllm:URL?model=NAME`` specs (several endpoints share the load);
    ``drafter_options``: keyword options of ``get_drafter`` (task, max_new_tokens,
    concurrency, template, image policy ...): the payload is built by that drafter;
    ``make_record``: the local engine's ``(DraftResult, drafter, spec) -> record`` builder.
    ``concurrency``: HTTP actors per endpoint; ``qps``: the request rate each actor keeps
    to (None: as fast as the answers come); ``batch_size``: rows per processor batch;
    ``api_key_env``: the environment variable the workers read the API key from (None:
    $REPORTGEN_VLLM_API_KEY, then $VLLM_API_KEY, as the drafter does)."""

    backends: tuple[str, ...]
    drafter_options: Mapping[str, Any]
    make_record: Callable[[Any, Any, str], dict[str, Any]]
    concurrency: int = 1
    qps: int | None = None
    batch_size: int = 8
    api_key_env: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.backends:
            raise ReportgenError("E961", "the ray HTTP drafting job needs at least one backend")
        for spec in self.backends:
            if not str(spec).startswith("vllm"):
                raise ReportgenError("E961", f"--ray-drafter http drafts through OpenAI-compatible servers; {str(spec).split('?')[0]!r} is not a vllm: backend",
                                     fix="give vllm:http://HOST:PORT?model=NAME backends, or use --ray-drafter actors")
        for name, low in (("concurrency", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ReportgenError("E961", f"ray HTTP drafting: {name} must be an integer >= {low}, got {value!r}")
        if self.qps is not None and (not isinstance(self.qps, int) or self.qps < 1):
            raise ReportgenError("E961", f"ray HTTP drafting: qps must be a positive integer, got {self.qps!r}")


_DRAFTERS: dict[str, Any] = {}  # per worker process: one drafter per (spec, options)


def _drafter(spec: str, options_json: str) -> Any:
    key = spec + "\0" + options_json
    if key not in _DRAFTERS:
        from reportgen.backends import get_drafter, parse_spec

        _DRAFTERS[key] = get_drafter(parse_spec(spec), **json.loads(options_json))
    return _DRAFTERS[key]


def _preprocess(row: Mapping[str, Any], *, spec: str, options_json: str, model: str) -> dict[str, Any]:
    """A study row -> the chat-completion body our drafter sends (on a Ray worker). A study
    that cannot be prepared (an unreadable image) becomes an error row: Ray passes it by
    the request stage and we turn it into the local engine's error record."""
    from reportgen.backends.base import error_kind_of, error_text
    from reportgen.types import Study

    t0 = time.time()
    try:
        study = Study.from_dict(json.loads(row["study"]))
        payload = _drafter(spec, options_json).payload(study, model=model)
    except Exception as e:  # noqa: BLE001 - one study's bad input is its own error record
        return {"payload": None, "t0": t0, "__inference_error__": json.dumps({"error": error_text(e), "kind": error_kind_of(e)})}
    return {"payload": payload, "t0": t0, "__inference_error__": ""}


def answer_of(body: Any, model: str) -> dict[str, Any]:
    """An HTTP answer (parsed JSON, as Ray's request stage hands it over) -> the fields of
    a DraftResult: text, finish reason, tokens, or the error and its kind, with the codes
    and kinds of the single-process drafter (E900/E901 bad answer, E566 refused, E567 a
    server error)."""
    from reportgen.backends.base import BAD_RESPONSE, REQUEST, UNAVAILABLE
    from reportgen.backends.vllm import _BadResponse, completion_of, error_message_of

    if isinstance(body, dict) and (body.get("object") == "error" or "error" in body) and "choices" not in body:
        status = body.get("code") if isinstance(body.get("code"), int) else (body.get("error") or {}).get("code") if isinstance(body.get("error"), dict) else None
        status = status if isinstance(status, int) else None
        msg = error_message_of(body)
        if status is not None and (status >= 500 or status == 429):
            return {"error": f"E567 the server failed POST /v1/chat/completions: HTTP {status}: {msg}", "kind": UNAVAILABLE}
        where = f"HTTP {status}: " if status else ""
        return {"error": f"E566 the server refused POST /v1/chat/completions: {where}{msg}", "kind": REQUEST}
    try:
        data, choice, text = completion_of(body, model)
    except _BadResponse as e:
        return {"error": f"{e.code} {e}", "kind": BAD_RESPONSE}
    usage = data.get("usage") or {}
    return {"text": text.strip(), "finish_reason": choice.get("finish_reason"), "completion_tokens": usage.get("completion_tokens")}


def _postprocess(row: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    answer = answer_of(row.get("http_response"), model)
    answer["latency_s"] = round(time.time() - float(row["t0"]), 4)
    return {"sid": row["sid"], "k": row["k"], "__inference_error__": "", "answer": json.dumps(answer)}


class _ApiKeySession:
    """A picklable session factory for Ray's request stage: an ``aiohttp.ClientSession``
    whose bearer token is read from the worker's environment (never pickled), with the
    drafter's read and connect timeouts."""

    def __init__(self, api_key_env: str | None, timeout_s: float, connect_timeout_s: float):
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s

    def __call__(self) -> Any:
        import aiohttp

        names = [self.api_key_env] if self.api_key_env else ["REPORTGEN_VLLM_API_KEY", "VLLM_API_KEY"]
        key = next((os.environ[n] for n in names if os.environ.get(n)), None)
        headers = {"Authorization": f"Bearer {key}"} if key else None
        return aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(
            total=None, sock_read=self.timeout_s, sock_connect=self.connect_timeout_s))


def http_processor_config(url: str, *, concurrency: int = 1, batch_size: int = 8, qps: int | None = None, retries: int = 3,
                          backoff_s: float = 0.5, timeout_s: float = 300.0, connect_timeout_s: float = 10.0,
                          api_key_env: str | None = None) -> Any:
    """``ray.data.llm.HttpRequestProcessorConfig`` for one endpoint (``url``: the server's
    base URL, as in a ``vllm:`` spec): POST /v1/chat/completions, ``concurrency`` actors
    (an autoscaling pool of 1 to ``concurrency``; each sends its batch's requests one after
    another, so the pool size is the requests in flight to this endpoint; a quarter CPU
    each), the drafter's retries and backoff, the API
    key header from ``api_key_env`` on the workers."""
    llm = _ray_llm()
    base = url.rstrip("/")
    base = base[:-3] if base.endswith("/v1") else base
    return llm.HttpRequestProcessorConfig(
        url=f"{base}/v1/chat/completions", concurrency=concurrency, batch_size=batch_size, qps=qps, max_retries=retries,
        base_retry_wait_time_in_s=backoff_s, session_factory=_ApiKeySession(api_key_env, timeout_s, connect_timeout_s),
        http_request_stage={"concurrency": (1, concurrency), "num_cpus": 0.25},  # autoscaling: a small Ray still makes progress
    )


def _spec_url(drafter: Any) -> str:
    return str(getattr(drafter, "url"))


def draft_studies_http(job: HttpDraftJob, studies: Sequence[Any], options: Any, *,
                       on_block: Callable[[list[dict[str, Any]]], None]) -> dict[str, int]:
    """Draft ``studies`` through the HTTP request processor (see the module docstring);
    ``on_block(records)`` receives finished records in groups as they come (the caller
    appends them, so a rerun skips them). Studies the processor did not finish (an
    endpoint that cannot be reached, a request whose retries ran out, which ends Ray's
    dataset) are drafted on the actor path, which gives each its own record. Returns
    counts: ``processor`` (records from the processor) and ``fallback`` (from actors)."""
    from reportgen.backends import get_drafter, parse_spec
    from reportgen.backends.base import DraftResult
    from reportgen.engines.ray_engine import DraftJob, draft_studies, ray_session
    from reportgen.protocols import Draft

    counts = {"processor": 0, "fallback": 0}
    if not studies:
        return counts
    opts = dict(job.drafter_options)
    options_json = json.dumps(opts, sort_keys=True, default=str)
    size = options.block_size
    drafters: dict[int, Any] = {}
    models: dict[int, tuple[str, str, str | None]] = {}
    for k, spec in enumerate(job.backends):
        drafters[k] = get_drafter(parse_spec(spec), **opts)
        try:
            models[k] = drafters[k].resolve()  # asked once here: the workers send the same model name
        except Exception as e:  # noqa: BLE001 - this endpoint's share goes to the actor path
            log.warning("ray http drafting: %s is not usable (%s); its studies are drafted on the actor path",
                        str(parse_spec(spec)).split("?")[0], type(e).__name__)
    handed: set[str] = set()
    pending = [s for s in studies]
    shares: dict[int, list[dict[str, Any]]] = {k: [] for k in models}
    for i, s in enumerate(pending):
        k = (i // size) % len(job.backends)
        if k in shares:
            shares[k].append({"sid": s.id, "k": k, "study": json.dumps(s.to_dict())})
    by_id = {s.id: s for s in pending}
    if any(shares.values()):
        llm = _ray_llm()
        with ray_session(options) as ray:
            ray.data.DataContext.get_current().enable_progress_bars = False
            logging.getLogger("ray").setLevel(logging.CRITICAL)  # a failed request's error holds the payload: never shown
            datasets = []
            for k, rows in shares.items():
                if not rows:
                    continue
                d = drafters[k]
                cfg = http_processor_config(_spec_url(d), concurrency=job.concurrency, batch_size=job.batch_size, qps=job.qps,
                                            retries=d.retries, backoff_s=d.backoff_s, api_key_env=job.api_key_env,
                                            timeout_s=d._client.timeout.read or 300.0, connect_timeout_s=d._client.timeout.connect or 10.0)
                proc = llm.build_processor(
                    cfg, preprocess=functools.partial(_preprocess, spec=job.backends[k], options_json=options_json, model=models[k][0]),
                    postprocess=functools.partial(_postprocess, model=models[k][0]),
                    preprocess_map_kwargs={"num_cpus": 0.25}, postprocess_map_kwargs={"num_cpus": 0.1},
                )
                datasets.append(proc(ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // size)))))
            ds = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
            group: list[dict[str, Any]] = []
            try:
                for row in ds.iter_rows():
                    k = int(row["k"])
                    sid = str(row["sid"])
                    if sid in handed:
                        continue
                    err = row.get("__inference_error__") or ""
                    if err:  # the study could not be prepared (its own error record)
                        info = json.loads(err)
                        result = DraftResult(sid, None, info["error"], info["kind"], 0.0)
                    else:
                        a = json.loads(row["answer"])
                        if "error" in a:
                            result = DraftResult(sid, None, a["error"], a["kind"], a["latency_s"])
                        else:
                            _, base, adapter = models[k]
                            draft = Draft(sid, a["text"], base, adapter, drafters[k].prompt_version, a["latency_s"])
                            result = DraftResult(sid, draft, latency_s=a["latency_s"], completion_tokens=a.get("completion_tokens"),
                                                 finish_reason=a.get("finish_reason"))
                    group.append(job.make_record(result, drafters[k], job.backends[k]))
                    handed.add(sid)
                    if len(group) >= size:
                        on_block(group)
                        counts["processor"] += len(group)
                        group = []
            except Exception as e:  # noqa: BLE001 - Ray's error text holds a payload: only its type is named
                log.warning("ray http drafting: the processor stopped (%s) after %d records; the other %d studies are drafted "
                            "on the actor path", type(e).__name__, len(handed), len(pending) - len(handed))
            finally:
                if group:
                    on_block(group)
                    counts["processor"] += len(group)
            rest = [by_id[s.id] for s in pending if s.id not in handed]
            if rest:
                counts["fallback"] = len(rest)
                fallback = DraftJob(job.backends, opts, job.make_record)
                draft_studies(fallback, rest, options, on_block=on_block)
    else:
        counts["fallback"] = len(pending)
        draft_studies(DraftJob(job.backends, opts, job.make_record), pending, options, on_block=on_block)
    for d in drafters.values():
        d.close()
    return counts


# --- the vLLM engine processor --------------------------------------------------------


@dataclass(frozen=True)
class EngineOptions:
    """The vLLM engine replicas of ``--ray-drafter vllm-engine``: ``replicas`` engines
    (Ray Data's ``concurrency``), each over ``tensor_parallel`` x ``pipeline_parallel``
    GPUs; the LoRA adapter is served with ``enable_lora``, ``max_lora_rank`` and
    ``max_loras``; ``batch_size`` rows per engine call; ``max_model_len`` caps the context
    (None: the model's); ``accelerator_type`` pins a GPU type (e.g. "H100")."""

    replicas: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    max_lora_rank: int = 16
    max_loras: int = 1
    batch_size: int = 16
    max_model_len: int | None = None
    accelerator_type: str | None = None

    def __post_init__(self) -> None:
        for name in ("replicas", "tensor_parallel", "pipeline_parallel", "max_lora_rank", "max_loras", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ReportgenError("E962", f"vllm-engine option {name} must be an integer >= 1, got {value!r}")
        if self.max_model_len is not None and (not isinstance(self.max_model_len, int) or self.max_model_len < 1):
            raise ReportgenError("E962", f"vllm-engine option max_model_len must be a positive integer, got {self.max_model_len!r}")


def vllm_engine_config(model: str, adapter: str | None = None, engine: EngineOptions = EngineOptions()) -> Any:
    """``ray.data.llm.vLLMEngineProcessorConfig`` for an ``hf:MODEL?adapter=DIR`` backend:
    ``engine.replicas`` engine replicas (``concurrency``), tensor/pipeline parallel per
    replica, the adapter enabled with ``enable_lora``/``max_lora_rank``/``max_loras`` (rows
    name it as their ``model``: vLLM loads a local adapter folder by its path), images
    through Ray's multimodal stage, and a failed row kept as an error row
    (``should_continue_on_error``) so each study gets its own record. Building the config
    imports neither vllm nor torch."""
    llm = _ray_llm()
    kwargs: dict[str, Any] = {"tensor_parallel_size": engine.tensor_parallel, "pipeline_parallel_size": engine.pipeline_parallel}
    if adapter:
        kwargs.update(enable_lora=True, max_lora_rank=engine.max_lora_rank, max_loras=engine.max_loras)
    if engine.max_model_len:
        kwargs["max_model_len"] = engine.max_model_len
    return llm.vLLMEngineProcessorConfig(
        model_source=model, engine_kwargs=kwargs, concurrency=engine.replicas, batch_size=engine.batch_size,
        accelerator_type=engine.accelerator_type, should_continue_on_error=True,
        prepare_multimodal_stage={"enabled": True}, chat_template_stage={"enabled": True},
        tokenize_stage={"enabled": True}, detokenize_stage={"enabled": True},
    )


def vllm_in_workers(ray: Any) -> tuple[bool, str]:
    """(whether vLLM imports in a Ray worker, its version or the reason it does not)."""

    def probe() -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return False, "no module named 'vllm'"
        try:
            import vllm

            return True, str(getattr(vllm, "__version__", "?"))
        except Exception as e:  # noqa: BLE001 - a broken install is "not importable", said why
            return False, f"{type(e).__name__}: {e}"[:300]

    return ray.get(ray.remote(num_cpus=0)(probe).remote())


def require_vllm_in_workers(ray: Any) -> str:
    ok, why = vllm_in_workers(ray)
    if not ok:
        raise BackendUnavailable(
            "E963", f"--ray-drafter vllm-engine needs vLLM importable in the Ray workers' environment ({why})",
            fix="install vllm on the GPU nodes' Python (pip install vllm, or runtime_env), or serve the model with "
                "`reportgen serve` and draft with --ray-drafter http or actors (docs/scale.md)")
    return why


class _Describer:
    """What the record builder asks a drafter (model, adapter, prompt version)."""

    def __init__(self, model: str, adapter: str | None, prompt_version: str | None):
        self.model_name, self.adapter, self.prompt_version = model, adapter, prompt_version


def _engine_preprocess(row: Mapping[str, Any], *, options_json: str, lora: str | None, model: str) -> dict[str, Any]:
    from reportgen.backends.base import error_kind_of, error_text
    from reportgen.types import Study

    t0 = time.time()
    try:
        study = Study.from_dict(json.loads(row["study"]))
        body = _drafter("vllm:http://127.0.0.1:1", options_json).payload(study, model=lora or model)
    except Exception as e:  # noqa: BLE001
        return {"messages": None, "t0": t0, "__inference_error__": json.dumps({"error": error_text(e), "kind": error_kind_of(e)})}
    params = {k: body[k] for k in ("temperature", "seed") if k in body}
    params["max_tokens"] = body["max_tokens"]
    out = {"messages": body["messages"], "sampling_params": params, "t0": t0, "__inference_error__": ""}
    if lora:
        out["model"] = lora
    return out


def _engine_postprocess(row: Mapping[str, Any]) -> dict[str, Any]:
    answer = {"text": str(row.get("generated_text") or "").strip(), "latency_s": round(time.time() - float(row["t0"]), 4),
              "completion_tokens": int(row["num_generated_tokens"]) if row.get("num_generated_tokens") is not None else None}
    return {"sid": row["sid"], "__inference_error__": "", "answer": json.dumps(answer)}


def draft_studies_vllm_engine(spec: str, drafter_options: Mapping[str, Any], make_record: Callable[[Any, Any, str], dict[str, Any]],
                              studies: Sequence[Any], options: Any, engine: EngineOptions, *,
                              on_block: Callable[[list[dict[str, Any]]], None]) -> int:
    """Draft ``studies`` with vLLM engine replicas inside Ray (``hf:MODEL?adapter=DIR``);
    the messages are our drafter's (image policy, template), each row's result or error
    becomes the local engine's record. Returns the records handed over."""
    from reportgen.backends import parse_spec
    from reportgen.backends.base import BACKEND, DraftResult
    from reportgen.engines.ray_engine import ray_session
    from reportgen.protocols import Draft

    parsed = parse_spec(spec)
    if parsed.kind != "hf":
        raise ReportgenError("E964", f"--ray-drafter vllm-engine loads the model itself: give an hf:MODEL[?adapter=DIR] backend, not {parsed.kind}:",
                             fix="use --backend hf:PATH_OR_ID?adapter=DIR, or --ray-drafter http/actors for a vllm: server")
    model = parsed.target
    adapter = parsed.options.get("adapter")
    lora = str(Path(adapter).resolve()) if adapter else None
    opts = {k: v for k, v in {**dict(drafter_options), **{k: v for k, v in parsed.options.items() if k != "adapter"}}.items()
            if k in ("task", "max_new_tokens", "temperature", "seed", "template", "max_pixels", "min_pixels", "max_images")}
    options_json = json.dumps(opts, sort_keys=True, default=str)
    describe_drafter = _drafter("vllm:http://127.0.0.1:1", options_json)
    describer = _Describer(model, adapter, describe_drafter.prompt_version)
    handed = 0
    with ray_session(options) as ray:
        require_vllm_in_workers(ray)
        llm = _ray_llm()
        ray.data.DataContext.get_current().enable_progress_bars = False
        proc = llm.build_processor(
            vllm_engine_config(model, lora, engine),
            preprocess=functools.partial(_engine_preprocess, options_json=options_json, lora=lora, model=model),
            postprocess=_engine_postprocess,
        )
        rows = [{"sid": s.id, "study": json.dumps(s.to_dict())} for s in studies]
        group: list[dict[str, Any]] = []
        for row in proc(ray.data.from_items(rows)).iter_rows():
            sid = str(row["sid"])
            err = row.get("__inference_error__") or ""
            if err:
                try:
                    info = json.loads(err)
                except ValueError:  # the engine's own error text: a backend error (its text is Ray's, never the prompt)
                    info = {"error": f"E965 the vLLM engine failed on study {sid!r}: {err.splitlines()[0][:300]}", "kind": BACKEND}
                result = DraftResult(sid, None, info["error"], info["kind"], 0.0)
            else:
                a = json.loads(row["answer"])
                draft = Draft(sid, a["text"], model, adapter, describer.prompt_version, a["latency_s"])
                result = DraftResult(sid, draft, latency_s=a["latency_s"], completion_tokens=a.get("completion_tokens"))
            group.append(make_record(result, describer, str(parsed)))
            if len(group) >= options.block_size:
                on_block(group)
                handed += len(group)
                group = []
        if group:
            on_block(group)
            handed += len(group)
    return handed
