"""What travels between the gateway and a vLLM engine: the request body (a 16 kHz PCM16 WAV in
one multipart form) and the answer's event stream (text deltas, then token usage)."""

from __future__ import annotations

import io
import json
import uuid
import wave
from collections.abc import Callable

import aiohttp
import numpy as np

from voxtral_gateway.engine_calls import EngineAnswer
from voxtral_gateway.errors import UpstreamError
from voxtral_gateway.pipeline.pcm16 import to_pcm16
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, TokenUsage


def encode_multipart(fields: dict[str, str], wav: bytes) -> tuple[bytes, str]:
    """The form and the WAV as one body: httpx's streamed multipart costs ~40 socket writes
    (and event-loop round trips) per segment, one bytes object costs one."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="segment.wav"\r\nContent-Type: audio/wav\r\n\r\n'.encode()
    )
    body = b"".join([*parts, wav, f"\r\n--{boundary}--\r\n".encode()])
    return body, f"multipart/form-data; boundary={boundary}"


def encode_wav(samples: np.ndarray) -> bytes:
    """16-bit PCM WAV at 16 kHz: the smallest lossless form every engine decodes without ffmpeg.

    Scaled by 32768 (libsndfile's rule, and the inverse of its int16 -> float read, so a PCM16
    upload reaches the engine bit for bit). numpy + the stdlib `wave` writer take ~0.04 ms for
    5 s where soundfile's per-sample conversion took ~0.3 ms, on the event loop.
    """
    pcm = to_pcm16(samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


async def read_stream(
    response: aiohttp.ClientResponse, on_delta: Callable[[str], None], *, want_usage: bool
) -> EngineAnswer:
    """vLLM's event stream, read as it arrives: each text delta is handed on; the whole text
    (and the usage chunk, when asked for) is returned."""
    stream = EngineStream()
    async for line in response.content:
        if (text := stream.feed(line.decode("utf-8", "replace"))) is None:
            break
        if text:
            on_delta(text)
    return stream.answer(want_usage=want_usage)


class EngineStream:
    """vLLM's SSE (`transcription.chunk` / `translation.chunk` deltas, then a usage chunk with
    `stream_include_usage`), one line at a time; shared by the whole-body and live readers."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage: TokenUsage | None = None

    def feed(self, line: str) -> str | None:
        """The line's text delta ("" for none); None at `[DONE]`."""
        if not line.startswith("data:"):
            return ""
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        try:
            chunk = json.loads(data)
            if "error" in chunk:  # a failure after vLLM's 200 travels as an event
                raise UpstreamError(f"Engine failed mid-answer: {upstream_message(data.encode())}")
            text = "".join(
                choice.get("delta", {}).get("content") or ""
                for choice in chunk.get("choices") or ()
            )
            if chunk.get("usage"):
                reported = chunk["usage"]
                self.usage = TokenUsage(
                    int(reported["prompt_tokens"]), int(reported["completion_tokens"])
                )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError("Engine answered with a malformed stream.") from exc
        self.parts.append(text)
        return text

    def answer(self, *, want_usage: bool) -> EngineAnswer:
        if want_usage and self.usage is None:
            raise UpstreamError("Engine reported no token usage.")
        return EngineAnswer("".join(self.parts), self.usage)


def parse_counted_stream(payload: bytes) -> EngineAnswer:
    """vLLM's whole SSE answer -> text and tokens. Read whole, not event by event, when nobody
    wants the deltas: a segment's answer is small and the caller wants all of it."""
    stream = EngineStream()
    for line in payload.decode("utf-8").splitlines():
        if stream.feed(line) is None:
            break
    return stream.answer(want_usage=True)


def upstream_message(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return payload[:200].decode("utf-8", "replace")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:500]
    return str(body.get("message") or body.get("detail") or body)[:500]
