"""The ``vllm`` backend: a vLLM (or any OpenAI-compatible) server reached over HTTP.

The prompt is the same rendered chat (reportgen.prompting.render_messages) that the
in-process ``hf`` backend uses; image parts become base64 PNG data URLs. ``model`` selects
what the server serves: a LoRA adapter by its name (``--lora-modules NAME=PATH``), or by
default the base model. Requests run concurrently with a bound; connection errors,
timeouts and HTTP 5xx/429 are retried with exponential backoff (a ``Retry-After`` header
is honoured, up to ``max_retry_after_s``); an answer that is not a chat completion
(malformed or cut-off JSON, no choices) or that names another model than the one asked
for is retried the same way and, when it stays bad, is an error of kind ``bad_response``
(E900/E901); any other 4xx is an error at once, with the server's status and message.
The API key (``api_key``, else $REPORTGEN_VLLM_API_KEY, else $VLLM_API_KEY) is sent as a
bearer token and never appears in names, records or messages.

    drafter = VLLMDrafter("http://127.0.0.1:8000", model="cxr-lora")
    for result in drafter.draft_iter(studies):   # completion order, one per study
        ...
"""

from __future__ import annotations

import base64
import io
import os
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import httpx

from reportgen.backends.base import BAD_RESPONSE, INPUT, REQUEST, UNAVAILABLE, DraftResult, failed
from reportgen.errors import BackendUnavailable, ReportgenError
from reportgen.protocols import Draft
from reportgen.types import Study

TASKS = ("findings", "impression", "full")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class VLLMError(ReportgenError):
    """A request to the server failed; ``error_kind`` says whether a retry may help."""

    def __init__(self, code: str, message: str, fix: str | None = None, *, error_kind: str, status: int | None = None):
        super().__init__(code, message, fix=fix)
        self.error_kind = error_kind
        self.status = status


class ServerUnavailable(VLLMError, BackendUnavailable):
    def __init__(self, code: str, message: str, fix: str | None = None, status: int | None = None):
        super().__init__(code, message, fix, error_kind=UNAVAILABLE, status=status)


class _BadResponse(Exception):
    """An answer that is not what was asked for (retried like a 5xx)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def retry_after_s(resp: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        import datetime as _dt

        return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _server_message(resp: httpx.Response) -> str:
    """The server's error message (vLLM: {"error": {"message": ...}} or {"message": ...})."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    return error_message_of(body)


def error_message_of(body: Any) -> str:
    """The error message in a parsed error answer (vLLM: {"error": {"message": ...}},
    {"message": ...} or {"detail": ...}); also used by the Ray HTTP processor path."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if body.get("message"):
            return str(body["message"])[:500]
        if body.get("detail"):
            return str(body["detail"])[:500]
    return str(body)[:500]


def image_data_url(image: Any) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL (lossless, 8-bit L or RGB)."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _default_render(study: Study, task: str, template: Any = None) -> list[dict[str, Any]]:
    from reportgen.prompting import render_messages

    return render_messages(study, task, template)


def _default_load_image(path: str) -> Any:
    from reportgen.images import load_image

    return load_image(path)


def _template(path: str | None) -> tuple[Any, str, str | None]:
    """(template or None, its version, its content hash): the prompt template file, else
    the default one."""
    try:
        from reportgen.prompting import PROMPT_SHA256, PROMPT_VERSION, load_template
    except ImportError:
        return None, "unknown", None
    if path is None:
        return None, str(PROMPT_VERSION), PROMPT_SHA256
    tmpl = load_template(path)
    return tmpl, str(tmpl.version), tmpl.sha256


def _policy(max_pixels: int | None, min_pixels: int | None, max_images: int | None):
    from reportgen.images import DEFAULT_MAX_IMAGES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, ImagePolicy

    return ImagePolicy.of(DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                          DEFAULT_MIN_PIXELS if min_pixels is None else min_pixels,
                          DEFAULT_MAX_IMAGES if max_images is None else max_images)


class VLLMDrafter:
    """Drafts reports through a vLLM OpenAI-compatible server (see the module docstring).

    ``concurrency`` bounds the requests in flight; ``timeout_s`` is the read timeout of one
    request (a long report on a busy CPU server takes a while); ``retries`` is the number of
    extra tries after a connection error, timeout, 5xx, 429 or bad answer, waiting
    ``backoff_s * 2**n`` (at most ``max_backoff_s``) between them, or as long as the server's
    ``Retry-After`` says (at most ``max_retry_after_s``). ``api_key`` defaults to
    $REPORTGEN_VLLM_API_KEY, then $VLLM_API_KEY.
    ``template``: a prompt template file (reportgen.prompting), as for the hf backend.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        model: str | None = None,
        *,
        task: str = "findings",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        concurrency: int = 4,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        max_retry_after_s: float = 60.0,
        api_key: str | None = None,
        return_token_ids: bool = False,
        template: str | None = None,
        max_pixels: int | None = None,
        min_pixels: int | None = None,
        max_images: int | None = None,
        render: Callable[[Study, str], list[dict[str, Any]]] | None = None,
        load_image: Callable[[str], Any] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        if task not in TASKS:
            raise ReportgenError("E563", f"unknown task {task!r}", fix=f"use one of {', '.join(TASKS)}")
        for name, value, low in (("concurrency", concurrency, 1), ("max_new_tokens", max_new_tokens, 1), ("retries", retries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ReportgenError("E563", f"{name} must be an integer >= {low}, got {value!r}")
        url = url.rstrip("/")
        if url.endswith("/v1"):
            url = url[:-3]
        self.url = url
        self.requested_model = model
        self.task = task
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.seed = seed
        self.concurrency = concurrency
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.return_token_ids = bool(return_token_ids)
        self._render = render or _default_render
        self._load_image = load_image or _default_load_image
        self.template, self.prompt_version, self.prompt_sha256 = _template(template)
        # The same image policy as training and the hf backend: images are selected
        # (frontal first) and resized BEFORE the base64 PNG, never sent at full resolution.
        self.policy = _policy(max_pixels, min_pixels, max_images)
        self.generation_config: dict[str, Any] = {"max_tokens": self.max_new_tokens, "temperature": self.temperature}
        if self.seed is not None:
            self.generation_config["seed"] = self.seed
        key = api_key or os.environ.get("REPORTGEN_VLLM_API_KEY") or os.environ.get("VLLM_API_KEY")
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"} if key else {}, transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._never = threading.Event()  # a stop event that is never set
        self._resolved: tuple[str, str, str | None] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"vllm:{self.url}" + (f"?model={self.requested_model}" if self.requested_model else "")

    # -- HTTP with retries --------------------------------------------------------------
    def _request(self, method: str, path: str, json: Mapping[str, Any] | None = None,
                 stop: threading.Event | None = None, check: Callable[[httpx.Response], Any] | None = None) -> Any:
        """The response (or ``check(response)`` when given; it raises _BadResponse for an
        answer to retry), after retries; VLLMError / ServerUnavailable when it stays bad."""
        last = ""
        status: int | None = None
        bad: _BadResponse | None = None
        wait_s: float | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                if wait_s is not None:
                    delay = max(delay, min(wait_s, self.max_retry_after_s))
                if (stop or self._never).wait(delay):
                    break
            wait_s = None
            try:
                resp = self._client.request(method, path, json=json)
            except httpx.TransportError as e:  # refused, reset, dropped, cut off, timed out
                last, status, bad = f"{type(e).__name__}: {e}".rstrip(": "), None, None
                continue
            if resp.status_code in RETRY_STATUS:
                last, status, bad = f"HTTP {resp.status_code}: {_server_message(resp)}", resp.status_code, None
                wait_s = retry_after_s(resp)
                continue
            if resp.status_code >= 400:
                raise VLLMError(
                    "E566", f"the server refused {method} {path}: HTTP {resp.status_code}: {_server_message(resp)}",
                    fix=_fix_for(resp.status_code), error_kind=REQUEST, status=resp.status_code,
                )
            if check is None:
                return resp
            try:
                return check(resp)
            except _BadResponse as e:
                last, status, bad = str(e), resp.status_code, e
                continue
        if bad is not None and (stop is None or not stop.is_set()):
            raise VLLMError(
                bad.code, f"{self.url}{path}: {bad} (after {self.retries + 1} tries)",
                fix="the server (or a proxy in front of it) answers something else than the model asked "
                "for; check what serves this URL; a rerun of `reportgen draft` retries these studies",
                error_kind=BAD_RESPONSE, status=status,
            )
        code = "E567" if status is not None else "E565"
        raise ServerUnavailable(
            code, f"{self.url}{path} failed after {self.retries + 1} tries ({last or 'stopped'})",
            fix="check that the server is up (`reportgen serve ...`, then GET /health); a rerun of "
            "`reportgen draft` resumes and retries these studies",
            status=status,
        )

    def served_models(self) -> list[dict[str, Any]]:
        """The server's /v1/models entries (id, parent: the base model of a LoRA, root)."""
        resp = self._request("GET", "/v1/models")
        try:
            data = resp.json()["data"]
            return [d for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)]
        except (ValueError, KeyError, TypeError) as e:
            raise VLLMError("E568", f"{self.url}/v1/models is not an OpenAI model list ({e})", error_kind=REQUEST) from e

    def resolve(self) -> tuple[str, str, str | None]:
        """(model to request, base model, adapter name or None), asked once from the server."""
        with self._lock:
            if self._resolved is None:
                self._resolved = self._resolve()
            return self._resolved

    def _resolve(self) -> tuple[str, str, str | None]:
        models = self.served_models()
        ids = [m["id"] for m in models]
        if not models:
            raise VLLMError("E569", f"{self.url} serves no model", error_kind=REQUEST)
        if self.requested_model is None:
            base = next((m for m in models if not m.get("parent")), models[0])
            return base["id"], base["id"], None
        entry = next((m for m in models if m["id"] == self.requested_model), None)
        if entry is None:
            raise VLLMError(
                "E569", f"{self.url} does not serve {self.requested_model!r}; it serves {', '.join(map(repr, ids))}",
                fix="pick one of those names (vllm:URL?model=NAME), or restart the server with "
                "`reportgen serve --adapter NAME=PATH`",
                error_kind=REQUEST,
            )
        parent = entry.get("parent")
        return entry["id"], (parent or entry["id"]), (entry["id"] if parent else None)

    # -- one study ----------------------------------------------------------------------
    def messages(self, study: Study) -> list[dict[str, Any]]:
        """The rendered chat with image parts as data URLs (OpenAI content parts)."""
        from reportgen.prompting import select_images

        out: list[dict[str, Any]] = []
        study = select_images(study, self.policy)
        rendered = self._render(study, self.task, self.template) if self.template is not None else self._render(study, self.task)
        for msg in rendered:
            content = msg.get("content")
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part.get("type") == "image":
                        src = part.get("image")
                        try:
                            img = self._load_image(src) if isinstance(src, (str, os.PathLike)) else src
                        except ReportgenError:
                            raise
                        except Exception as e:  # noqa: BLE001 - an unreadable image is an input error
                            raise VLLMError("E564", f"study {study.id!r}: cannot read image {src!r} ({e})", error_kind=INPUT) from e
                        parts.append({"type": "image_url", "image_url": {"url": image_data_url(self.policy.fit(img))}})
                    else:
                        parts.append(dict(part))
                content = parts
            out.append({**msg, "content": content})
        return out

    def payload(self, study: Study, model: str | None = None) -> dict[str, Any]:
        """The chat-completion request body for ``study``: its messages (image policy,
        prompt template) and the generation settings. ``model``: the served name to ask for
        (default: resolved from the server once). The Ray engine's HTTP processor sends
        exactly this body."""
        if model is None:
            model, _, _ = self.resolve()
        body: dict[str, Any] = {
            "model": model,
            "messages": self.messages(study),
            "temperature": self.temperature,
            "max_tokens": self.max_new_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.return_token_ids:
            body["logprobs"] = True
            body["return_tokens_as_token_ids"] = True  # vLLM: tokens as "token_id:N"
        return body

    def draft_one(self, study: Study, stop: threading.Event | None = None) -> DraftResult:
        """Draft one study; failures come back as an error DraftResult, never raised."""
        t0 = time.perf_counter()
        try:
            model, base, adapter = self.resolve()
            body = self.payload(study)
            data, choice, text = self._request("POST", "/v1/chat/completions", json=body, stop=stop,
                                               check=lambda r: _completion(r, body["model"]))
            latency = time.perf_counter() - t0
            usage = data.get("usage") or {}
            token_ids = None
            if self.return_token_ids:
                content = (choice.get("logprobs") or {}).get("content") or []
                token_ids = tuple(int(str(t["token"]).rsplit(":", 1)[-1]) for t in content)
            draft = Draft(study.id, text.strip(), base, adapter, self.prompt_version, round(latency, 4))
            return DraftResult(
                study.id, draft, latency_s=latency, completion_tokens=usage.get("completion_tokens"),
                finish_reason=choice.get("finish_reason"), token_ids=token_ids,
            )
        except Exception as exc:  # noqa: BLE001 - one study's failure must not stop the batch
            return failed(study.id, exc, time.perf_counter() - t0)

    # -- batches ------------------------------------------------------------------------
    def draft_iter(self, studies: Iterable[Study]) -> Iterator[DraftResult]:
        """One DraftResult per study in completion order, at most ``concurrency`` in flight.

        Requests run in daemon threads. Closing the iterator early (the caller stops on an
        unreachable server, or Ctrl-C) starts no further request, cuts the retries of the
        ones in flight short and does not wait for them: their results are dropped (those
        studies are not done), and a hung request cannot hold up the exit.
        """
        stop = threading.Event()
        results: queue.SimpleQueue[DraftResult] = queue.SimpleQueue()

        def work(study: Study) -> None:
            results.put(self.draft_one(study, stop))

        inflight = 0
        try:
            for study in studies:
                while inflight >= self.concurrency:
                    yield results.get()
                    inflight -= 1
                threading.Thread(target=work, args=(study,), name=f"vllm-draft-{study.id}", daemon=True).start()
                inflight += 1
            while inflight:
                yield results.get()
                inflight -= 1
        finally:
            stop.set()

    def draft(self, studies: Sequence[Study]) -> list[Draft]:
        """Drafter protocol: drafts in input order; raises the first study's error."""
        by_id: dict[str, DraftResult] = {r.study_id: r for r in self.draft_iter(studies)}
        out = []
        for study in studies:
            r = by_id[study.id]
            if r.draft is None:
                raise VLLMError("E579", f"study {study.id!r}: {r.error}", error_kind=r.error_kind or "backend")
            out.append(r.draft)
        return out

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "VLLMDrafter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _completion(resp: httpx.Response, model: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(body, first choice, its text) of a chat completion for ``model``; _BadResponse otherwise."""
    try:
        data = resp.json()
    except ValueError as e:
        raise _BadResponse("E900", f"the answer is not a chat completion ({type(e).__name__}, {len(resp.content)} bytes)") from e
    return completion_of(data, model, len(resp.content))


def completion_of(data: Any, model: str, size: int | None = None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(body, first choice, its text) of a parsed chat completion for ``model``;
    _BadResponse (E900: not a completion, E901: another model answered) otherwise."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (KeyError, IndexError, TypeError) as e:
        what = f"{size} bytes" if size is not None else "parsed JSON"
        raise _BadResponse("E900", f"the answer is not a chat completion ({type(e).__name__}, {what})") from e
    answered = data.get("model")
    if answered is not None and answered != model:
        raise _BadResponse("E901", f"asked model {model!r}, the answer is from {str(answered)[:100]!r}")
    return data, choice, text


def _fix_for(status: int) -> str:
    if status == 401 or status == 403:
        return "give the server's API key in $REPORTGEN_VLLM_API_KEY (or $VLLM_API_KEY)"
    if status == 404:
        return "check the URL and the model name (GET /v1/models lists what the server serves)"
    return "the request is not retried; check the message (too long a prompt: lower --max-new-tokens or raise the server's --max-model-len)"


__all__ = ["ServerUnavailable", "VLLMDrafter", "VLLMError", "image_data_url"]
