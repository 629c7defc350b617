"""The vLLM engines behind the gateway, reached over one pooled `aiohttp.ClientSession`.

`UpstreamPool` picks the engine with the least outstanding work for each segment, retries
transient failures (connect errors, 502/503) on another engine with jittered backoff, and maps
aiohttp's errors to gateway errors in one place (`_mapped_errors`). aiohttp, not httpx: one
200 KB segment POST costs ~0.32 ms of event-loop time against httpx's ~0.69 ms (httpcore +
anyio + h11 layers).

With `on_delta` a call streams (vLLM's transcription deltas), and each text delta is handed
on as it arrives: token streaming for `stream=true` (pipeline/token_stream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

import aiohttp
import numpy as np

from voxtral_gateway.engine_calls import (
    EngineAnswer,
    EngineCall,
    MalformedAnswerError,
    Task,
    build_call,
    language_probe_call,
    parse_answer,
)
from voxtral_gateway.engine_wire import (
    encode_multipart,
    encode_wav,
    parse_counted_stream,
    read_stream,
    upstream_message,
)
from voxtral_gateway.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from voxtral_gateway.languages import EngineFamily, engine_family
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.settings import Settings
from voxtral_gateway.verbose_text import FallbackOutcome, text_may_be_lost, with_plain_text

logger = logging.getLogger(__name__)

DeltaSink = Callable[[str, str | None], None]
"""Gets each text delta of a streamed call as it arrives, with the language the engine decodes
in (given, or learnt by the probe before the call), None when unknown."""

_RETRY_STATUSES = frozenset({502, 503})
_MAX_ATTEMPTS = 3
_BACKOFF_BASE_S = 0.05
# An engine that failed is skipped for a while, then given live traffic again (a retry on
# another engine covers the client if it is still down); the pause doubles per failure.
_COOLDOWN_BASE_S = 1.0
_COOLDOWN_MAX_S = 15.0


@dataclass(frozen=True)
class UpstreamRequest:
    """One segment's call: 16 kHz mono samples plus the OpenAI parameters we forward."""

    samples: np.ndarray
    max_output_tokens: int
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    count_tokens: bool = False
    """Ask for token counts: vLLM reports them only when streaming (`stream_include_usage`)."""
    task: Task = "transcribe"
    detailed: bool = False
    """Ask for what verbose_json reports (detected language, token log probabilities)."""


@dataclass
class Engine:
    """One vLLM server and what we know about it."""

    base_url: str
    outstanding: int = 0
    model: str | None = None
    created: int | None = None
    """Unix time the engine gave for its model when first asked (vLLM gives the time of asking)."""
    failures: int = 0
    healthy: bool = True
    retry_at: float = 0.0
    """`time.monotonic()` after which an unhealthy engine is tried again."""

    def is_eligible(self, now: float) -> bool:
        return self.healthy or now >= self.retry_at

    def mark_failed(self) -> None:
        self.failures += 1
        self.healthy = False
        cooldown_s = min(_COOLDOWN_BASE_S * 2 ** (self.failures - 1), _COOLDOWN_MAX_S)
        self.retry_at = time.monotonic() + cooldown_s

    def mark_ok(self) -> None:
        self.failures = 0
        self.healthy = True


@dataclass
class UpstreamPool:
    """All engines; hands out the least-loaded healthy one per call."""

    client: aiohttp.ClientSession
    settings: Settings
    engines: list[Engine] = field(default_factory=list)
    observe_latency: Callable[[float], None] | None = None
    """Called with each successful engine call's duration in seconds (metrics)."""
    observe_verbose_fallback: Callable[[FallbackOutcome], None] | None = None
    """Called when a verbose_json answer was asked again as json, with the outcome (metrics)."""

    @classmethod
    def from_settings(cls, client: aiohttp.ClientSession, settings: Settings) -> UpstreamPool:
        engines = [Engine(url.rstrip("/")) for url in settings.upstream_urls]
        return cls(client=client, settings=settings, engines=engines)

    def _headers(self) -> dict[str, str]:
        key = self.settings.upstream_api_key
        return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def _pick(self, exclude: set[str]) -> Engine:
        candidates = [e for e in self.engines if e.base_url not in exclude] or self.engines
        now = time.monotonic()
        healthy = [e for e in candidates if e.is_eligible(now)] or candidates
        return min(healthy, key=lambda e: e.outstanding)

    async def model_name(self, engine: Engine) -> str:
        """The model to name upstream: configured, or the first one the engine lists."""
        if self.settings.upstream_model:
            return self.settings.upstream_model
        return await self._listed_model(engine)

    async def model_created(self, engine: Engine) -> int:
        """The `created` time the engine lists for its model (what /v1/models reports)."""
        await self._listed_model(engine)
        assert engine.created is not None  # set with engine.model
        return engine.created

    async def _listed_model(self, engine: Engine) -> str:
        """The first model the engine lists, asked once."""
        if engine.model is None:
            with _mapped_errors(engine.base_url):
                async with self.client.get(
                    f"{engine.base_url}/v1/models", headers=self._headers()
                ) as response:
                    status, payload = response.status, await response.read()
            if status != 200:
                raise UpstreamError(f"Engine listed no models (HTTP {status}).")
            try:
                models = json.loads(payload).get("data") or []
            except (ValueError, AttributeError) as exc:
                raise UpstreamError("Engine answered with a malformed body.") from exc
            if not models:
                raise UpstreamError("Engine serves no model.")
            engine.model = models[0]["id"]
            created = models[0].get("created")
            engine.created = created if isinstance(created, int) else int(time.time())
        return engine.model

    async def family(self) -> EngineFamily:
        """Whisper or Voxtral: configured, or guessed from the first engine's model name."""
        if self.settings.engine_family is not None:
            return self.settings.engine_family
        return engine_family(await self.model_name(self.engines[0]), None)

    async def transcribe(self, request: UpstreamRequest) -> str:
        """Text for one segment; retries transient failures on other engines."""
        return (await self.answer(request)).text

    async def answer(
        self, request: UpstreamRequest, on_delta: DeltaSink | None = None
    ) -> EngineAnswer:
        """The engine's answer (text, token counts if asked, what verbose_json reports) for one
        segment; retries transient failures on other engines. With `on_delta`, the call streams
        and each text delta is handed on as it arrives (no retry once one has been: the client
        may already have it)."""
        wav = encode_wav(request.samples)
        tried: set[str] = set()
        last_error: GatewayError | None = None
        forwarded = False

        def forward(text: str, language: str | None) -> None:
            nonlocal forwarded
            forwarded = True
            assert on_delta is not None
            on_delta(text, language)

        for attempt in range(_MAX_ATTEMPTS):
            engine = self._pick(tried)
            tried.add(engine.base_url)
            engine.outstanding += 1
            started = time.perf_counter()
            try:
                answer = await self._transcribe_once(
                    engine, wav, request, forward if on_delta else None
                )
            except (UpstreamUnavailableError, _RetryableStatusError) as exc:
                engine.mark_failed()
                last_error = (
                    exc.as_gateway_error() if isinstance(exc, _RetryableStatusError) else exc
                )
                if forwarded:
                    raise last_error from exc
                logger.warning(
                    "engine %s failed (%s: %r); attempt %d",
                    engine.base_url,
                    exc,
                    exc.__cause__,
                    attempt,
                )
                if attempt + 1 == _MAX_ATTEMPTS:
                    break  # no sleep before giving up
                await asyncio.sleep(_BACKOFF_BASE_S * (2**attempt) * random.uniform(0.5, 1.5))  # noqa: S311
                continue
            finally:
                engine.outstanding -= 1
            engine.mark_ok()
            if self.observe_latency is not None:
                self.observe_latency(time.perf_counter() - started)
            return answer
        assert last_error is not None
        raise last_error

    async def _transcribe_once(
        self,
        engine: Engine,
        wav: bytes,
        request: UpstreamRequest,
        on_delta: DeltaSink | None = None,
    ) -> EngineAnswer:
        model = await self.model_name(engine)
        family = engine_family(model, self.settings.engine_family)
        language = request.language
        if (
            (request.count_tokens or on_delta is not None)
            and request.detailed
            and family == "whisper"
            and request.task == "transcribe"
            and not language
        ):
            # vLLM streams token counts and deltas but not the language it detected, which
            # only its verbose_json (never streamed) reports: ask for the language (one token)
            # first, then decode in it, so vLLM does not detect it a second time.
            probe = language_probe_call(model)
            language = (await self._post(engine, probe, wav)).language
        call = build_call(
            family,
            task=request.task,
            model=model,
            wav=wav,
            max_output_tokens=request.max_output_tokens,
            language=language,
            prompt=request.prompt,
            temperature=request.temperature,
            detailed=request.detailed,
            count_tokens=request.count_tokens,
            stream=on_delta is not None,
        )
        sink = partial(_with_language, on_delta, language) if on_delta else None
        answer = await self._post(engine, call, wav, sink)
        if text_may_be_lost(answer, len(request.samples) / SAMPLE_RATE_HZ):
            # vLLM's verbose_json drops text outside closed timestamp pairs (verbose_text.py).
            plain_call = replace(call, form={**(call.form or {}), "response_format": "json"})
            plain = await self._post(engine, plain_call, wav)
            answer, outcome = with_plain_text(answer, plain)
            if self.observe_verbose_fallback is not None:
                self.observe_verbose_fallback(outcome)
        return replace(answer, language=answer.language or language)

    async def _post(
        self,
        engine: Engine,
        call: EngineCall,
        wav: bytes,
        on_delta: Callable[[str], None] | None = None,
    ) -> EngineAnswer:
        if call.form is not None:
            body, content_type = encode_multipart(call.form, wav)
        else:
            body, content_type = json.dumps(call.json_body).encode(), "application/json"
        # Timeouts (segment_timeout_s total, upstream_connect_timeout_s to connect) are the
        # session's (runtime.build_http_client).
        with _mapped_errors(engine.base_url):
            async with self.client.post(
                f"{engine.base_url}{call.path}",
                data=body,
                headers={**self._headers(), "Content-Type": content_type},
            ) as response:
                status = response.status
                if status == 200 and call.streamed and on_delta is not None:
                    answer = await read_stream(response, on_delta, want_usage=call.counts_tokens)
                    return replace(answer, temperature=call.temperature)
                payload = await response.read()
        if status in _RETRY_STATUSES:
            raise _RetryableStatusError(status, upstream_message(payload))
        if 400 <= status < 500:
            # The engine refused the parameters we forwarded (e.g. an unknown language).
            message = upstream_message(payload)
            raise InvalidRequestError(f"The model rejected the request: {message}")
        if status != 200:
            raise UpstreamError(f"Engine answered HTTP {status}.")
        if call.streamed:
            counted = parse_counted_stream(payload)
            return replace(counted, temperature=call.temperature)
        try:
            return parse_answer(call, payload)
        except MalformedAnswerError as exc:
            raise UpstreamError("Engine answered with a malformed body.") from exc

    async def probe(self) -> dict[str, bool]:
        """A real one-token inference per engine: `/health` can say 200 for a stuck engine."""
        probe = UpstreamRequest(
            samples=np.zeros(SAMPLE_RATE_HZ // 2, np.float32), max_output_tokens=1
        )
        wav = encode_wav(probe.samples)

        async def _one(engine: Engine) -> bool:
            try:
                await self._transcribe_once(engine, wav, probe)
            except (GatewayError, _RetryableStatusError):
                engine.mark_failed()
                return False
            engine.mark_ok()
            return True

        results = await asyncio.gather(*(_one(e) for e in self.engines))
        return {e.base_url: ok for e, ok in zip(self.engines, results, strict=True)}


class _RetryableStatusError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status

    def as_gateway_error(self) -> GatewayError:
        if self.status == 503:
            return UpstreamUnavailableError("The speech engine is unavailable; retry later.")
        return UpstreamError("The speech engine failed to answer.")


def _with_language(on_delta: DeltaSink, language: str | None, text: str) -> None:
    on_delta(text, language)


@contextlib.contextmanager
def _mapped_errors(base_url: str) -> Iterator[None]:
    """aiohttp failures -> 503 (cannot connect) / 504 (too slow) / 502 (broken exchange)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # a TimeoutError too: caught first
        raise UpstreamUnavailableError("The speech engine cannot be reached.") from exc
    except TimeoutError as exc:  # total (segment) or read timeout
        raise UpstreamTimeoutError("The speech engine did not answer in time.") from exc
    except aiohttp.ClientConnectionError as exc:
        # A refused or reset connection, or one the engine dropped mid-answer (killed): all
        # transient, and a segment is safe to send again (transcription has no side effects).
        logger.info("engine %s unreachable: %s", base_url, exc)
        raise UpstreamUnavailableError("The speech engine cannot be reached.") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("The exchange with the speech engine failed.") from exc
