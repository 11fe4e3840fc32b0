"""A backend that streams completions from an OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from models.errors import ModelLoadError
from models.protocol import Progress, RowSpec, RowStart, RowUpdate, Work
from models.types import EngineConfig, GenerationParams

log = logging.getLogger(__name__)

POLL_S = 0.05  # an iteration with running rows returns after this long even when none has news
MAX_RETRY_AFTER_S = 30.0  # a longer Retry-After is not waited for: the row fails
DEFAULT_RETRY_AFTER_S = 1.0  # a 429/503 without Retry-After is retried after this long
FINISH_REASONS = {"stop": "eos", "length": "length"}
PROMPT_TOO_LONG_PARAMS = {"input_tokens", "input_text"}  # vLLM's names for a prompt over the context


class RowFailed(Exception):
    """One row's request failed; the message is fit to show a member."""


@dataclass
class _Row:
    """One (request, variant) stream: what it produced since the engine last looked."""

    spec: RowSpec
    task: asyncio.Task[None] | None = None
    text: list[str] = field(default_factory=list)  # not yet reported
    tokens: int = 0
    prompt_tokens: int | None = None  # known from the first chunk (or the final usage)
    started: bool = False  # the server sent the first chunk
    finish_reason: str | None = None  # "eos" | "length" | "error" once the stream ended
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def has_news(self) -> bool:
        return bool(self.text) or self.finished


class RemoteBackend:
    """Generates on a remote server through streaming ``/v1/completions``, one request per row.

    The engine calls every method from its one model thread; this backend keeps a private
    asyncio loop for that thread and runs it only inside those calls, so the streams progress
    while ``iterate`` waits for news (at most ``POLL_S``). Dropping a row closes its connection,
    which makes vLLM abort the request.
    """

    def __init__(self, config: EngineConfig, progress: Callable[[str], None] = lambda message: None) -> None:
        if not config.inference_url:
            raise ModelLoadError("RemoteBackend needs INFERENCE_URL")
        self._base = config.inference_url.rstrip("/")
        self._api_key = config.inference_api_key
        self._timeout_s = config.inference_timeout_s
        self._overflow = config.prompt_overflow
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None
        self._rows: dict[int, _Row] = {}
        self._news = asyncio.Event()
        self.device = f"remote: {urlsplit(self._base).netloc or self._base}"
        self.dtype = "server"
        progress(f"asking {self.device} which models it serves")
        try:
            models = self._loop.run_until_complete(self._list_models())
        except BaseException:
            self.close()
            raise
        self.model_name, self.max_context = _pick_model(models, config.inference_model, self._base)
        log.info("remote model %s at %s (context %d tokens)", self.model_name, self._base, self.max_context)

    # -- the Backend protocol ------------------------------------------------------------------

    def iterate(self, work: Work) -> Progress:
        """Close removed rows, open added ones (waiting for their first chunk), else wait briefly for news."""
        return self._loop.run_until_complete(self._iterate(work))

    def active(self) -> int:
        return len(self._rows)

    def reset(self) -> None:
        """Close every stream and the connection pool (reopened at the next row)."""
        self._loop.run_until_complete(self._reset())

    def warmup(self) -> None:
        """One short completion, so a broken endpoint shows at start-up and not at the first member."""
        try:
            self._loop.run_until_complete(self._warmup())
        except RowFailed as exc:
            raise ModelLoadError(f"the inference server failed a test completion: {exc}") from exc

    def close(self) -> None:
        """Reset and close the private loop; the backend is unusable afterwards."""
        if not self._loop.is_closed():
            self.reset()
            self._loop.close()

    # -- inside the private loop ---------------------------------------------------------------

    async def _iterate(self, work: Work) -> Progress:
        dropped = [row.task for row_id in work.remove
                   if (row := self._rows.pop(row_id, None)) is not None and row.task is not None]
        for task in dropped:
            task.cancel()
        await asyncio.gather(*dropped, return_exceptions=True)  # their connections are closed now, not later
        if work.add:
            return await self._admit(work.add)
        if not self._rows:
            return Progress()
        if not any(row.has_news() for row in self._rows.values()):
            self._news.clear()
            try:
                await asyncio.wait_for(self._news.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
        return Progress(updates=self._collect(), stepped=True)

    async def _admit(self, specs: tuple[RowSpec, ...]) -> Progress:
        session = self._open_session()
        new = [_Row(spec) for spec in specs]
        for row in new:
            self._rows[row.spec.row_id] = row
            row.task = asyncio.create_task(self._run(session, row))
        while not all(row.started or row.finished for row in new):
            self._news.clear()
            await self._news.wait()
        starts = []
        for row in new:
            if row.started:
                tokens = row.prompt_tokens or 0
                truncated = self._truncates() and tokens >= self._room(row.spec)
                if truncated:
                    log.info("row %d: the server kept the prompt's last %d tokens (context %d, max_new_tokens %d)",
                             row.spec.row_id, tokens, self.max_context, row.spec.params.max_new_tokens)
                starts.append(RowStart(row.spec.row_id, tokens, truncated=truncated))
            else:  # refused before the first token: the engine fails the request with this reason
                del self._rows[row.spec.row_id]
                starts.append(RowStart(row.spec.row_id, 0, truncated=False, error=row.error))
        return Progress(starts=tuple(starts), updates=self._collect())

    def _collect(self) -> tuple[RowUpdate, ...]:
        updates = []
        for row_id, row in list(self._rows.items()):
            if not row.has_news():
                continue
            text, row.text = "".join(row.text), []
            updates.append(RowUpdate(row_id, text, row.tokens, row.finished, row.finish_reason, row.error))
            if row.finished:
                del self._rows[row_id]
        return tuple(updates)

    async def _run(self, session: aiohttp.ClientSession, row: _Row) -> None:
        try:
            await self._stream(session, row)
        except RowFailed as exc:
            row.error, row.finish_reason = str(exc), "error"
        except asyncio.TimeoutError:
            row.error, row.finish_reason = f"the inference server did not answer for {self._timeout_s:g} s", "error"
        except aiohttp.ClientConnectorError:
            row.error, row.finish_reason = "the inference server cannot be reached", "error"
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            row.error, row.finish_reason = "the inference server closed the stream mid-way", "error"
        except aiohttp.ClientError as exc:
            row.error, row.finish_reason = f"the inference server connection failed ({type(exc).__name__})", "error"
        except (ValueError, TypeError, KeyError, AttributeError):  # a chunk that is not the JSON we expect
            log.warning("row %d: unreadable answer from the inference server", row.spec.row_id, exc_info=True)
            row.error, row.finish_reason = "the inference server sent an answer that cannot be read", "error"
        except Exception:  # noqa: BLE001 - a row must end, or admission would wait for it forever
            log.exception("row %d: streaming from the inference server failed", row.spec.row_id)
            row.error, row.finish_reason = "streaming from the inference server failed", "error"
        finally:
            self._news.set()

    async def _stream(self, session: aiohttp.ClientSession, row: _Row) -> None:
        if self.max_context and self._room(row.spec) < 1:
            raise RowFailed(f"max_new_tokens={row.spec.params.max_new_tokens} leaves no room for a prompt "
                            f"in this model's context of {self.max_context} tokens")
        body = self._body(row.spec)
        for attempt in (1, 2):
            async with session.post(f"{self._base}/completions", json=body, headers=self._headers()) as resp:
                if resp.status in (429, 503) and attempt == 1:
                    delay = _retry_after(resp.headers.get("Retry-After"))
                    if delay is None:
                        raise RowFailed(await _http_reason(resp))
                    log.info("inference server busy (HTTP %d); retrying row %d in %.1f s",
                             resp.status, row.spec.row_id, delay)
                    await asyncio.sleep(delay)
                    continue
                if resp.status != 200:
                    raise RowFailed(await _http_reason(resp, self.max_context))
                try:
                    await self._read_events(resp, row)
                finally:
                    if not row.finished:
                        resp.close()  # drop the connection: the server aborts the request
                return

    async def _read_events(self, resp: aiohttp.ClientResponse, row: _Row) -> None:
        async for raw in resp.content:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            self._apply_chunk(row, json.loads(data))
        if not row.finished:
            raise RowFailed("the inference server closed the stream before the end")

    def _apply_chunk(self, row: _Row, chunk: dict[str, Any]) -> None:
        if "error" in chunk:
            raise RowFailed(f"the inference server failed: {_error_message(chunk)}")
        usage = chunk.get("usage") or {}
        if usage.get("prompt_tokens") is not None:
            row.prompt_tokens = int(usage["prompt_tokens"])
        counted = usage.get("completion_tokens")
        for choice in chunk.get("choices") or []:
            if choice.get("text"):
                row.text.append(choice["text"])
            if counted is None:
                row.tokens += 1
            if choice.get("finish_reason"):
                row.finish_reason = FINISH_REASONS.get(choice["finish_reason"], "eos")
        if counted is not None:
            row.tokens = int(counted)
        row.started = True
        self._news.set()

    def _truncates(self) -> bool:
        """Whether the server is asked to keep a long prompt's end (it listed its context length)."""
        return bool(self.max_context) and self._overflow == "truncate"

    def _room(self, spec: RowSpec) -> int:
        """Prompt tokens that fit in the context beside the row's new tokens."""
        return self.max_context - spec.params.max_new_tokens

    def _body(self, spec: RowSpec) -> dict[str, Any]:
        params = spec.params
        seed = params.seed if params.seed is not None else 0
        truncate = {"truncate_prompt_tokens": self._room(spec), "truncation_side": "left"} if self._truncates() else {}
        return {
            "model": self.model_name,
            "prompt": spec.prompt,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,
            "repetition_penalty": params.repetition_penalty,
            "seed": (seed + spec.variant) % 2**63,  # one request per variant: each its own seed
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            **truncate,  # keeps the prompt's last tokens, as the in-process model does (vLLM)
        }

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout_s, sock_read=self._timeout_s)
            self._session = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=0), raise_for_status=False
            )
        return self._session

    async def _reset(self) -> None:
        tasks = [row.task for row in self._rows.values() if row.task is not None]
        self._rows.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _list_models(self) -> list[dict[str, Any]]:
        try:
            return await _fetch_models(self._open_session(), self._base, self._headers(), self._timeout_s)
        finally:
            await self._reset()

    async def _warmup(self) -> None:
        row = _Row(RowSpec(-1, "Hello", GenerationParams(max_new_tokens=1, temperature=0.0, seed=0), 0))
        began = time.monotonic()
        try:
            await self._run(self._open_session(), row)
        finally:
            await self._reset()
        if row.error:
            raise RowFailed(row.error)
        log.info("remote warm-up completion took %.2f s", time.monotonic() - began)


@dataclass(frozen=True)
class EndpointHealth:
    """What a probe of INFERENCE_URL found, for /status, /healthz and metrics."""

    up: bool
    detail: str  # "serves NAME, context N tokens", or why it is not usable (never the API key)


async def probe_endpoint(config: EngineConfig) -> EndpointHealth:
    """List the server's models (from any event loop): reachable, serving the model, its context length."""
    base = (config.inference_url or "").rstrip("/")
    headers = {"Authorization": f"Bearer {config.inference_api_key}"} if config.inference_api_key else {}
    timeout = aiohttp.ClientTimeout(total=config.inference_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            models = await _fetch_models(session, base, headers, config.inference_timeout_s)
        name, context = _pick_model(models, config.inference_model, base)
    except ModelLoadError as exc:
        return EndpointHealth(False, str(exc))
    return EndpointHealth(True, f"serves {name}" + (f", context {context} tokens" if context else ""))


async def _fetch_models(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], timeout_s: float
) -> list[dict[str, Any]]:
    """``GET /models``'s entries, or a ModelLoadError saying what is wrong with the endpoint."""
    try:
        async with session.get(f"{base}/models", headers=headers) as resp:
            if resp.status != 200:
                raise ModelLoadError(f"the inference server at {base} refused to list its models: "
                                     f"{await _http_reason(resp)}")
            payload = await resp.json(content_type=None)
    except asyncio.TimeoutError as exc:
        raise ModelLoadError(f"the inference server at {base} did not answer within "
                             f"{timeout_s:g} s (INFERENCE_TIMEOUT_S)") from exc
    except aiohttp.ClientError as exc:
        raise ModelLoadError(f"cannot reach the inference server at {base}: {type(exc).__name__}; "
                             "is it running, and is INFERENCE_URL right (it ends in /v1)?") from exc
    except ValueError as exc:
        raise ModelLoadError(f"{base}/models did not answer JSON; is INFERENCE_URL an "
                             "OpenAI-compatible API (it ends in /v1)?") from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _pick_model(models: list[dict[str, Any]], wanted: str | None, base: str) -> tuple[str, int]:
    """The served model to use and its context length (0 when the server does not say)."""
    names = [str(m.get("id")) for m in models]
    if wanted:
        if wanted not in names and names:
            raise ModelLoadError(f"the inference server at {base} does not serve INFERENCE_MODEL={wanted!r}; "
                                 f"it serves: {', '.join(names)}")
        chosen = next((m for m in models if m.get("id") == wanted), {"id": wanted})
    elif len(models) == 1:
        chosen = models[0]
    elif not models:
        raise ModelLoadError(f"the inference server at {base} lists no models; set INFERENCE_MODEL")
    else:
        raise ModelLoadError(f"the inference server at {base} serves several models ({', '.join(names)}); "
                             "set INFERENCE_MODEL to one of them")
    length = chosen.get("max_model_len")
    return str(chosen["id"]), int(length) if isinstance(length, int) else 0


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait before the one retry, or None when the server asks for too long."""
    if value is None:
        return DEFAULT_RETRY_AFTER_S
    try:
        delay = float(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S  # an HTTP date: not worth parsing for a one-off wait
    return max(0.0, delay) if delay <= MAX_RETRY_AFTER_S else None


def _error_message(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    if isinstance(payload, dict) and payload.get("message"):
        return str(payload["message"])
    return "no reason given"


async def _http_reason(resp: aiohttp.ClientResponse, context: int = 0) -> str:
    """A member-facing reason for a refused request, naming the refused parameter where the server does."""
    try:
        payload = json.loads(await resp.text())
    except (ValueError, aiohttp.ClientError, asyncio.TimeoutError):
        payload = None
    message = _error_message(payload)[:300]
    status = resp.status
    if status == 401 or status == 403:
        return "the inference server refused the API key (INFERENCE_API_KEY)"
    if status == 404:
        return f"the inference server does not serve this model ({message})"
    if status == 400 or status == 422:
        error = payload.get("error") if isinstance(payload, dict) else None
        param = error.get("param") if isinstance(error, dict) else None
        if param in PROMPT_TOO_LONG_PARAMS:
            limit = f"this model's context of {context} tokens" if context else "the server's context length"
            return f"the prompt is too long for {limit} (the inference server said: {message})"
        which = f" parameter {param}" if param else ""
        return f"the inference server refused the request{which}: {message}"
    if status == 429:
        return "the inference server is busy (too many requests); try again later"
    if status == 503:
        return "the inference server is unavailable; try again later"
    return f"the inference server answered HTTP {status}: {message}"
