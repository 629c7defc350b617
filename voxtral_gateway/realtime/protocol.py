"""Wire shapes of OpenAI's Realtime transcription protocol, as the `openai` SDK sends them.

Reference: https://platform.openai.com/docs/api-reference/realtime-client-events and
https://platform.openai.com/docs/guides/realtime-transcription

Both dialects are accepted: the GA `session.update` with `session.type == "transcription"`
(`audio.input.format/transcription/turn_detection`) and the beta `transcription_session.update`
(`input_audio_format`, `input_audio_transcription`, `turn_detection`). Replies use the dialect
the client spoke. Client events are validated here; server events are built here.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voxtral_gateway.errors import InvalidRequestError, error_body

INPUT_RATE_HZ = 24_000
"""OpenAI's Realtime PCM rate; we resample to 16 kHz for VAD and the engine."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class ServerVad(BaseModel):
    """`turn_detection` of type `server_vad` (OpenAI defaults)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["server_vad"] = "server_vad"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Speech probability (0-1) that starts speech."""
    prefix_padding_ms: int = Field(300, ge=0, le=5000)
    """Audio kept before detected speech (milliseconds)."""
    silence_duration_ms: int = Field(500, ge=0, le=10_000)
    """Silence (milliseconds) that ends speech."""


class Transcription(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    language: str | None = Field(None, max_length=16)
    prompt: str | None = Field(None, max_length=4000)


class SessionConfig(BaseModel):
    """The effective session: what `session.created/updated` report."""

    id: str = Field(default_factory=lambda: new_id("sess"))
    transcription: Transcription = Field(default_factory=Transcription)
    turn_detection: ServerVad | None = Field(default_factory=ServerVad)

    def updated(self, changes: dict[str, Any]) -> SessionConfig:
        """Apply a normalised update (only the keys present change; `turn_detection: None`
        turns server VAD off)."""
        data = self.model_dump()
        if "transcription" in changes:
            data["transcription"] = {**data["transcription"], **(changes["transcription"] or {})}
        if "turn_detection" in changes:
            detection = changes["turn_detection"]
            data["turn_detection"] = None if detection is None else {**detection}
        try:
            return SessionConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = "session." + ".".join(str(p) for p in first["loc"])
            raise InvalidRequestError(
                f"Invalid parameter {param!r}: {first['msg']}", param=param
            ) from None

    def as_ga(self) -> dict[str, Any]:
        detection = self.turn_detection.model_dump() if self.turn_detection else None
        return {
            "id": self.id,
            "object": "realtime.transcription_session",
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": INPUT_RATE_HZ},
                    "transcription": self.transcription.model_dump(),
                    "turn_detection": detection,
                    "noise_reduction": None,
                }
            },
        }

    def as_beta(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": self.transcription.model_dump(),
            "turn_detection": self.turn_detection.model_dump() if self.turn_detection else None,
        }


def _check_format(value: Any, param: str) -> None:
    if value is None or value == "pcm16":
        return
    if (
        isinstance(value, dict)
        and value.get("type") in (None, "audio/pcm")
        and value.get("rate", INPUT_RATE_HZ) == INPUT_RATE_HZ
    ):
        return
    raise InvalidRequestError(
        "Only 24 kHz PCM16 input audio is supported (`audio/pcm`, rate 24000, or `pcm16`).",
        param=param,
        code="unsupported_audio_format",
    )


def _check_turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type", "server_vad") != "server_vad":
        raise InvalidRequestError(
            "turn_detection must be null or of type `server_vad`.", param=param
        )
    return value


def session_changes(event: dict[str, Any]) -> dict[str, Any]:
    """A `session.update` / `transcription_session.update` as {transcription?, turn_detection?}."""
    session = event.get("session")
    if not isinstance(session, dict):
        raise InvalidRequestError("`session` must be an object.", param="session")
    changes: dict[str, Any] = {}
    if event["type"] == "session.update":
        if session.get("type", "transcription") != "transcription":
            raise InvalidRequestError(
                "This endpoint serves transcription sessions: `session.type` must be "
                "`transcription`.",
                param="session.type",
            )
        audio_input = (session.get("audio") or {}).get("input") or {}
        if not isinstance(audio_input, dict):
            raise InvalidRequestError("`audio.input` must be an object.", param="session.audio")
        _check_format(audio_input.get("format"), "session.audio.input.format")
        transcription_key, detection_key = "transcription", "turn_detection"
        source, prefix = audio_input, "session.audio.input."
    else:
        _check_format(session.get("input_audio_format"), "session.input_audio_format")
        transcription_key, detection_key = "input_audio_transcription", "turn_detection"
        source, prefix = session, "session."
    if transcription_key in source:
        transcription = source[transcription_key]
        if transcription is not None and not isinstance(transcription, dict):
            raise InvalidRequestError(
                "transcription must be an object.", param=prefix + transcription_key
            )
        changes["transcription"] = transcription or {}
    if detection_key in source:
        changes["turn_detection"] = _check_turn_detection(
            source[detection_key], prefix + detection_key
        )
    return changes


CLIENT_EVENT_TYPES = frozenset(
    {
        "session.update",
        "transcription_session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    }
)


class ClientEvent(BaseModel):
    """Any client event: a known `type`, an optional `event_id`, the rest kept as sent."""

    model_config = ConfigDict(extra="allow")

    type: str
    event_id: str | None = Field(None, max_length=128)
    audio: str | None = None

    @model_validator(mode="after")
    def _known_type(self) -> ClientEvent:
        if self.type not in CLIENT_EVENT_TYPES:
            raise ValueError(f"unsupported event type {self.type[:64]!r}")
        if self.type == "input_audio_buffer.append" and not self.audio:
            raise ValueError("input_audio_buffer.append needs `audio` (base64 PCM16)")
        return self


def server_event(event_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": event_type, "event_id": new_id("event"), **fields}


def error_event(
    message: str,
    error_type: str = "invalid_request_error",
    *,
    code: str | None = None,
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    """OpenAI's `error` event: the same `{"error": {...}}` body as the HTTP routes."""
    body = error_body(message, error_type, param=param, code=code)
    body["error"]["event_id"] = client_event_id
    return server_event("error", **body)
