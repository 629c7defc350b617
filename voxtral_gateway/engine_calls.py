"""One segment's engine call, per engine family and task: which vLLM endpoint, what body,
and how its answer becomes an `EngineAnswer`.

    whisper  transcribe  /v1/audio/transcriptions  (verbose_json when details are wanted:
                                                    vLLM then reports the detected language,
                                                    per-token log probabilities and tokens)
    whisper  translate   /v1/audio/translations    (Whisper's own translate task)
    voxtral  transcribe  /v1/audio/transcriptions  (json: vLLM's Voxtral path has no verbose_json)
    voxtral  translate   /v1/chat/completions      (instruct mode: the audio plus an instruction)
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from voxtral_gateway.languages import EngineFamily
from voxtral_gateway.pipeline.records import TokenUsage, Word

Task = Literal["transcribe", "translate"]

# vLLM's TranscriptionRequest.temperature default: what the engine uses when none is sent.
# The gateway always sends one, so the reported temperature is the one used.
ENGINE_DEFAULT_TEMPERATURE = 0.0
TRANSLATE_INSTRUCTION = (
    "Translate this audio into English. Answer with the English translation only."
)


class MalformedAnswerError(ValueError):
    """The engine's 200 body is not the shape its endpoint promises."""


@dataclass(frozen=True)
class EngineAnswer:
    """What the engine said for one piece of audio, and what it reported about it."""

    text: str
    usage: TokenUsage | None = None
    """The engine's token counts, when they were asked for (a streamed call)."""
    language: str | None = None
    """The language the engine decoded with (given or detected); None if it does not say."""
    temperature: float | None = None
    avg_logprob: float | None = None
    tokens: tuple[int, ...] | None = None
    phrases: tuple[Word, ...] = ()
    """Whisper's timed pieces of the text (verbose_json segments), in seconds of the audio sent."""
    timed_until_s: float | None = None
    """verbose_json only: where its last closed timestamp pair ends (0.0 for none). vLLM keeps
    only the text inside closed pairs, so audio after this point may have lost its text."""


@dataclass(frozen=True)
class EngineCall:
    path: str
    form: dict[str, str] | None = None
    """Multipart fields sent with the WAV (audio endpoints)."""
    json_body: dict[str, Any] | None = None
    """JSON body with the audio inline (chat completions)."""

    @property
    def streamed(self) -> bool:
        """An SSE answer: vLLM reports token counts (and text deltas) only when streaming."""
        return self.form is not None and self.form.get("stream") == "true"

    @property
    def counts_tokens(self) -> bool:
        """The stream ends with a usage chunk."""
        return self.form is not None and self.form.get("stream_include_usage") == "true"

    @property
    def temperature(self) -> float:
        body = self.form if self.form is not None else self.json_body
        assert body is not None
        return float(body["temperature"])


def build_call(
    family: EngineFamily,
    *,
    task: Task,
    model: str,
    wav: bytes,
    max_output_tokens: int,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    detailed: bool,
    count_tokens: bool = False,
    stream: bool = False,
) -> EngineCall:
    """The request for one segment. `detailed` asks for what verbose_json reports;
    `count_tokens` for the engine's token counts and `stream` for its text deltas as they are
    made (both a streamed json answer: vLLM's verbose_json neither streams nor counts tokens,
    so they win; the language comes from `language_probe_call`). Voxtral's translation (chat
    completions) is answered whole."""
    used_temperature = ENGINE_DEFAULT_TEMPERATURE if temperature is None else temperature
    if family == "voxtral" and task == "translate":
        instruction = TRANSLATE_INSTRUCTION + (f" Context: {prompt}" if prompt else "")
        audio = {"data": base64.b64encode(wav).decode("ascii"), "format": "wav"}
        return EngineCall(
            "/v1/chat/completions",
            json_body={
                "model": model,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": audio},
                            {"type": "text", "text": instruction},
                        ],
                    }
                ],
                "max_tokens": max_output_tokens,
                "temperature": used_temperature,
            },
        )
    streamed = count_tokens or stream
    verbose = detailed and family == "whisper" and not streamed
    if verbose:
        max_output_tokens += timestamp_headroom(max_output_tokens)
    form = {
        "model": model,
        "response_format": "verbose_json" if verbose else "json",
        "max_completion_tokens": str(max_output_tokens),
        "temperature": str(used_temperature),
    }
    if language and task == "transcribe":
        form["language"] = language
    if prompt:
        form["prompt"] = prompt
    if streamed:
        form["stream"] = "true"
    if count_tokens:
        form["stream_include_usage"] = "true"
    path = "/v1/audio/translations" if task == "translate" else "/v1/audio/transcriptions"
    return EngineCall(path, form=form)


def language_probe_call(model: str) -> EngineCall:
    """A Whisper call that only learns the spoken language: vLLM detects it (one decoder step
    over the language tokens) and reports it in verbose_json; one output token keeps the rest
    of the call short."""
    form = {
        "model": model,
        "response_format": "verbose_json",
        "max_completion_tokens": "1",
        "temperature": str(ENGINE_DEFAULT_TEMPERATURE),
    }
    return EngineCall("/v1/audio/transcriptions", form=form)


def timestamp_headroom(text_tokens: int) -> int:
    """Extra tokens for Whisper's timestamps in verbose_json: a pair per timed segment. Cut
    short, vLLM drops the unfinished segment's text, so the budget must cover them."""
    return 4 + text_tokens // 4


def parse_answer(call: EngineCall, payload: bytes) -> EngineAnswer:
    """The engine's 200 body as an `EngineAnswer`; MalformedAnswerError if it is not one."""
    try:
        body = json.loads(payload)
        if call.json_body is not None:
            return EngineAnswer(
                str(body["choices"][0]["message"]["content"] or ""),
                temperature=float(call.json_body["temperature"]),
            )
        assert call.form is not None
        temperature = float(call.form["temperature"])
        if call.form["response_format"] != "verbose_json":
            return EngineAnswer(str(body["text"]), temperature=temperature)
        return _verbose_answer(body, temperature)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MalformedAnswerError(str(exc)) from exc


def _verbose_answer(body: dict[str, Any], temperature: float) -> EngineAnswer:
    """vLLM's verbose_json: one or more timed segments inside our one segment; their token
    log probabilities are averaged over all tokens (each segment's mean, weighted by its count)."""
    segments = body.get("segments") or []
    tokens = tuple(int(t) for s in segments for t in s.get("tokens") or ())
    weighted = [
        (float(s["avg_logprob"]), len(s.get("tokens") or ()))
        for s in segments
        if s.get("avg_logprob") is not None
    ]
    count = sum(n for _, n in weighted)
    avg_logprob = sum(lp * n for lp, n in weighted) / count if count else None
    if avg_logprob is not None and not math.isfinite(avg_logprob):
        avg_logprob = None
    reported = segments[0].get("temperature") if segments else None
    return EngineAnswer(
        str(body["text"]),
        language=body.get("language") or None,
        temperature=float(reported) if reported is not None else temperature,
        avg_logprob=avg_logprob,
        tokens=tokens if segments else None,
        phrases=tuple(
            Word(str(s["text"]).strip(), float(s["start"]), float(s["end"]))
            for s in segments
            if str(s.get("text") or "").strip() and "start" in s and "end" in s
        ),
        timed_until_s=_timed_until_s(segments),
    )


def _timed_until_s(segments: list[dict[str, Any]]) -> float | None:
    if not segments:
        return 0.0
    end = segments[-1].get("end")
    return float(end) if end is not None else None
