"""Wire models, in the order of OpenAI's API reference.

https://platform.openai.com/docs/api-reference/audio/createTranscription
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Speaker names end up in vtt voice tags (`<v name>`) and srt prefixes: no markup, no newlines.
SpeakerName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^<>&:\x00-\x1f]+$")]
ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorInfo


class ServerVadChunking(BaseModel):
    """OpenAI's `chunking_strategy` object, mapped onto our Silero VAD parameters."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["server_vad"]
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Speech probability threshold (0–1)."""
    prefix_padding_ms: int | None = Field(None, ge=0, le=5_000)
    """Audio kept before speech starts (milliseconds); we pad both sides by it."""
    silence_duration_ms: int | None = Field(None, ge=0, le=10_000)
    """Silence that ends a speech region (milliseconds)."""

    def vad_overrides(self) -> dict[str, float | int]:
        mapping = {
            "threshold": self.threshold,
            "speech_pad_ms": self.prefix_padding_ms,
            "min_silence_ms": self.silence_duration_ms,
        }
        return {key: value for key, value in mapping.items() if value is not None}


class TranscriptionRequest(BaseModel):
    """Every parameter of a transcription request except the audio itself.

    Built from a multipart form (as the OpenAI SDK sends it, with `timestamp_granularities[]`
    and `chunking_strategy[...]` keys) or from a JSON body.
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=256)
    """Accepted for compatibility; the gateway serves the engine's model whatever is named."""
    chunking_strategy: Literal["auto"] | ServerVadChunking | None = None
    """`auto` or `server_vad` with overrides; unset means the gateway's VAD defaults."""
    include: list[Literal["logprobs"]] = Field(default_factory=list)
    """Extra response data; `logprobs` is not available from the engine (400)."""
    known_speaker_names: list[SpeakerName] = Field(default_factory=list, max_length=26)
    """Names of known speakers, one per `known_speaker_references[]` clip (turns on speakers)."""
    known_speaker_references: list[str] = Field(default_factory=list, max_length=26)
    """Data URLs of short clips of each known speaker (limits: `VOXTRAL_SPEAKERS__...`)."""
    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z]{2,4})?$")
    """ISO-639-1 (or -3) code of the spoken language."""
    prompt: str | None = Field(None, max_length=4_000)
    """Text to guide the model's style or vocabulary (forwarded to the engine)."""
    response_format: ResponseFormat = "json"
    """json, text, srt, vtt, verbose_json or diarized_json (segments with speakers)."""
    stream: bool = False
    """Send `transcript.text.delta` events as segments finish, then `transcript.text.done`."""
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    """Sampling temperature, 0–1."""
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=list)
    """`segment` and/or `word` timestamps in verbose_json (`word` needs the `align` extra)."""
    vad_filter: bool | None = None
    """Gateway extension: false sends fixed windows without running VAD; unset uses settings."""
    file_url: str | None = Field(None, max_length=200 * 1024 * 1024)
    """Gateway extension: https URL, data URL or bare base64 of the audio instead of `file`."""
    audio: str | None = Field(None, max_length=200 * 1024 * 1024)
    """Gateway extension (JSON bodies): base64 or data URL of the audio."""
    speakers: bool | None = None
    """Gateway extension: label segments by speaker in any format (verbose_json, srt, vtt,
    stream events); diarized_json and known speakers turn it on by themselves."""
    min_speakers: int | None = Field(None, ge=1, le=26)
    """Gateway extension: fewest speakers to tell apart (turns on speakers)."""
    max_speakers: int | None = Field(None, ge=1, le=26)
    """Gateway extension: most speakers to tell apart (turns on speakers)."""

    @field_validator("chunking_strategy", mode="before")
    @classmethod
    def _auto_or_object(cls, value: Any) -> Any:
        # One clear rule instead of the union's two errors (not 'auto', not an object).
        if isinstance(value, str) and value != "auto":
            raise ValueError("must be 'auto' or a server_vad object (JSON)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _fold_form_keys(cls, data: Any) -> Any:
        """Fold OpenAI's bracketed multipart keys into plain fields."""
        if not isinstance(data, dict):
            return data
        folded: dict[str, Any] = {}
        strategy: dict[str, Any] = {}
        for key, value in data.items():
            if key.endswith("[]"):
                folded[key[:-2]] = value if isinstance(value, list) else [value]
            elif key.startswith("chunking_strategy[") and key.endswith("]"):
                strategy[key[len("chunking_strategy[") : -1]] = value
            else:
                folded[key] = value
        if strategy:
            folded["chunking_strategy"] = strategy
        raw = folded.get("chunking_strategy")
        if isinstance(raw, str) and raw.strip().startswith("{"):
            # Unparseable JSON stays a string, and validation then names the parameter.
            with contextlib.suppress(ValueError):
                folded["chunking_strategy"] = json.loads(raw)
        for key in (
            "timestamp_granularities",
            "include",
            "known_speaker_names",
            "known_speaker_references",
        ):
            if isinstance(folded.get(key), str):
                folded[key] = [folded[key]]
        return folded

    @field_validator("timestamp_granularities")
    @classmethod
    def _words_in_verbose_json(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # response_format is declared first, so it is already validated here.
        # With srt/vtt, `word` asks for word-timed cues (a 400 if the aligner is missing).
        if "word" in value and info.data.get("response_format") not in (
            "verbose_json",
            "srt",
            "vtt",
        ):
            raise ValueError("'word' timestamps need response_format verbose_json, srt or vtt")
        return value

    @field_validator("include")
    @classmethod
    def _no_logprobs(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("logprobs are not available from this engine")
        return value

    @model_validator(mode="after")
    def _stream_formats(self) -> TranscriptionRequest:
        if self.stream and self.response_format not in ("json", "text", "diarized_json"):
            raise ValueError(
                "stream=true supports response_format 'json', 'text' or 'diarized_json' only"
            )
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers must not exceed max_speakers")
        if self.speakers is False and self._implies_speakers():
            raise ValueError("speakers=false contradicts diarized_json or known speakers")
        if self.file_url and self.audio:
            raise ValueError("send either 'file_url' or 'audio', not both")
        return self

    def wants_speakers(self) -> bool:
        """Whether the speaker stage runs for this request."""
        return self.speakers is True or self._implies_speakers()

    def _implies_speakers(self) -> bool:
        return bool(
            self.response_format == "diarized_json"
            or self.known_speaker_names
            or self.known_speaker_references
            or self.min_speakers
            or self.max_speakers
        )

    def vad_overrides(self) -> dict[str, float | int]:
        if isinstance(self.chunking_strategy, ServerVadChunking):
            return self.chunking_strategy.vad_overrides()
        return {}


TRANSCRIPTION_ONLY_FIELDS = frozenset({"language", "include", "timestamp_granularities"})
"""Parameters /v1/audio/translations does not take (OpenAI's createTranslation): the rest of
TranscriptionRequest is shared. https://platform.openai.com/docs/api-reference/audio/createTranslation
"""


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    """Unix time the engine gave for the model when the gateway first asked."""
    owned_by: str = "voxtral-gateway"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
