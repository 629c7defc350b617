"""Fan segments out to the engines and hand results back in file order.

Concurrency is bounded twice: per request (one long file cannot take every slot) and
globally (the shared semaphore sized like the connection pool). Segments are pulled from
their source only when a request slot is free, so a long file is decoded no faster than the
engines take it. Cancelling the consumer (a client that disconnected) cancels every
in-flight upstream call: the TaskGroup owns them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from voxtral_gateway.engine_calls import EngineAnswer, Task
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Segment, SegmentResult, Word
from voxtral_gateway.pipeline.token_stream import SegmentDeltas, TextDelta
from voxtral_gateway.upstream import DeltaSink, UpstreamPool, UpstreamRequest


@dataclass(frozen=True)
class TokenBudget:
    """Output tokens allowed per segment: enough for fast speech, too few for a runaway loop."""

    tokens_per_audio_second: float
    min_tokens: int
    max_tokens: int | None = None

    def for_duration(self, duration_s: float) -> int:
        tokens = max(self.min_tokens, math.ceil(duration_s * self.tokens_per_audio_second))
        return min(tokens, self.max_tokens) if self.max_tokens else tokens


WordTimer = Callable[[Segment, str, str | None], Awaitable[tuple[Word, ...]]]
"""Times a segment's text: (segment, text, the language spoken if known) -> words."""
"""Times a segment's text against its samples (pipeline/align.py, in a thread)."""


@dataclass(frozen=True)
class DecodingOptions:
    """What the client asked for that the engine needs to know."""

    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    count_tokens: bool = False
    """Have the engine report token counts (each SegmentResult then carries `usage`)."""
    task: Task = "transcribe"
    detailed: bool = False
    """The response reports per-segment language and statistics (verbose_json)."""


LanguageDetection = Callable[[np.ndarray], Awaitable[str | None]]
"""Audio -> ISO-639-1 code of the language spoken (pipeline/language.py)."""


async def transcribe_segments(
    segments: AsyncIterable[Segment] | Iterable[Segment],
    upstream: UpstreamPool,
    *,
    budget: TokenBudget,
    options: DecodingOptions,
    per_request_limit: int,
    global_slots: asyncio.Semaphore,
    time_words: WordTimer | None = None,
    detect_language: LanguageDetection | None = None,
    choose_language: LanguageDetection | None = None,
    stream_tokens: bool = False,
) -> AsyncIterator[SegmentResult | TextDelta]:
    """Yield one `SegmentResult` per segment, in index order, as soon as each is next in line.

    With `time_words`, each segment's words are timed as soon as its text arrives, while its
    samples are still at hand (they are dropped once the segment is done). With
    `choose_language`, a segment with no language given is sent in the one it picks. With
    `stream_tokens`, each result is preceded by its segment's engine deltas (`TextDelta`),
    live for the segment next in line, buffered for later ones until their turn."""
    source = aiter(segments) if isinstance(segments, AsyncIterable) else _async(segments)
    request_slots = asyncio.Semaphore(per_request_limit)
    deltas = SegmentDeltas() if stream_tokens else None

    async def _run(segment: Segment) -> SegmentResult:
        try:
            try:
                chosen = await with_chosen_language(options, segment.samples, choose_language)
                answer = await transcribe_samples(
                    segment.samples,
                    upstream,
                    budget=budget,
                    options=chosen,
                    global_slots=global_slots,
                    on_delta=partial(deltas.push, segment.index) if deltas else None,
                )
            finally:
                if deltas is not None:
                    deltas.close(segment.index)  # its text is complete: the next one's turn
            # Inside the request slot: segments waiting to be timed stay bounded in memory.
            return await segment_result(segment, answer, chosen, detect_language, time_words)
        finally:
            request_slots.release()

    # The TaskGroup cancels the siblings when one segment fails or the consumer goes away.
    try:
        async with asyncio.TaskGroup() as group:
            # The segment's place (not its samples: they must not outlive its call) and call.
            started: asyncio.Queue[tuple[TextDelta, asyncio.Task[SegmentResult]] | None]
            started = asyncio.Queue()

            async def _start_each() -> None:
                while True:
                    await request_slots.acquire()
                    segment = await anext(source, None)
                    if segment is None:
                        started.put_nowait(None)
                        return
                    place = TextDelta(segment.index, segment.start_s, segment.end_s, "")
                    started.put_nowait((place, group.create_task(_run(segment))))

            group.create_task(_start_each())
            while (item := await started.get()) is not None:
                place, task = item
                if deltas is not None:
                    async for text, language in deltas.deltas(place.index):
                        yield replace(place, text=text, language=language)
                yield await task
    except BaseExceptionGroup as group_error:
        # Report the first real failure, not a group: the error handlers map single errors.
        raise _first_leaf(group_error) from None


async def with_chosen_language(
    options: DecodingOptions, samples: np.ndarray, choose_language: LanguageDetection | None
) -> DecodingOptions:
    """`options` with the language `choose_language` picks for `samples`, unless one is given."""
    if options.language is not None or choose_language is None:
        return options
    return replace(options, language=await choose_language(samples))


async def transcribe_samples(
    samples: np.ndarray,
    upstream: UpstreamPool,
    *,
    budget: TokenBudget,
    options: DecodingOptions,
    global_slots: asyncio.Semaphore,
    on_delta: DeltaSink | None = None,
) -> EngineAnswer:
    """One engine call for `samples` (a segment, or a whole clip), inside a global slot;
    `on_delta` gets the engine's text deltas as they stream (the call streams only then)."""
    async with global_slots:
        return await upstream.answer(
            UpstreamRequest(
                samples=samples,
                max_output_tokens=budget.for_duration(len(samples) / SAMPLE_RATE_HZ),
                language=options.language,
                prompt=options.prompt,
                temperature=options.temperature,
                count_tokens=options.count_tokens,
                task=options.task,
                detailed=options.detailed,
            ),
            on_delta,
        )


async def segment_result(
    segment: Segment,
    answer: EngineAnswer,
    options: DecodingOptions,
    detect_language: LanguageDetection | None,
    time_words: WordTimer | None = None,
) -> SegmentResult:
    """The segment's record: the engine's text and statistics, its language (the client's,
    else the engine's, else the detector's, asked only when the response reports it), its
    timed words when asked for, and VAD's view of how much of it is speech."""
    language = options.language or answer.language
    if language is None and options.detailed and detect_language is not None:
        language = await detect_language(segment.samples)
    text = answer.text.strip()
    return SegmentResult(
        segment.index,
        segment.start_s,
        segment.end_s,
        text,
        answer.usage,
        words=await time_words(segment, text, language) if time_words and text else (),
        language=language,
        temperature=answer.temperature,
        avg_logprob=answer.avg_logprob,
        tokens=answer.tokens,
        phrases=tuple(
            Word(p.word, p.start_s + segment.start_s, p.end_s + segment.start_s)
            for p in answer.phrases
        ),
        no_speech_prob=None if segment.speech_prob is None else 1.0 - segment.speech_prob,
    )


async def _async(items: Iterable[Segment]) -> AsyncIterator[Segment]:
    for item in items:
        yield item


def _first_leaf(group_error: BaseExceptionGroup) -> BaseException:
    first = group_error.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
