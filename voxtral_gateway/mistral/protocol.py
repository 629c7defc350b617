"""Mistral's transcription request, as the `mistralai` SDK (3.7) sends it, and its error body.

https://docs.mistral.ai/api/#tag/audio.transcriptions
SDK models read: `AudioTranscriptionRequest(Stream)`, `TranscriptionResponse`,
`TranscriptionStreamEvents`, `UsageInfo`. The SDK posts multipart: lists as repeated plain keys
(`context_bias=a`, `context_bias=b`), booleans as `true` / `false` (`diarize=false` always),
`speaker_references` as a JSON part (`{name: reference audio}`;
here a data URL per name). Errors: docs.mistral.ai/resources/error-glossary.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from voxtral_gateway.pipeline.align import ALIGN_INSTALL_HINT, aligner_installed
from voxtral_gateway.protocol import SpeakerName

MISTRAL_PREFIX = "/mistral"
"""Mistral's routes live under this path: the `mistralai` SDK's `server_url` ends with it."""

WORD_TIMESTAMPS_AVAILABLE = aligner_installed()
"""On when the word aligner's extra (`pip install '.[align]'`) is installed: `word` then passes."""

MAX_CONTEXT_BIAS_TERMS = 100


class MistralTranscriptionRequest(BaseModel):
    """Every field of Mistral's transcription request except the uploaded file."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, max_length=256)
    """Echoed in the response; the gateway serves the engine's model whatever is named."""
    file_url: str | None = Field(None, max_length=200 * 1024 * 1024)
    """https URL fetched through the SSRF guard (or a data URL / bare base64)."""
    file_id: str | None = Field(None, max_length=256)
    """A file in Mistral's file store: the gateway has none (400)."""
    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z]{2,4})?$")
    """ISO-639-1 code of the spoken language."""
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    stream: bool = False
    """Server-sent `transcription.*` events instead of one JSON body."""
    diarize: bool = False
    """Speaker labels (`segments[].speaker_id`) from the speaker stage (pipeline/speakers.py);
    turns segments on."""
    context_bias: list[str] = Field(default_factory=list, max_length=MAX_CONTEXT_BIAS_TERMS)
    """Words to favour; Mistral's rule: no spaces or commas, `_` joins a phrase."""
    speaker_references: dict[SpeakerName, str] | None = None
    """Known speakers' reference clips (name -> data URL); only with `diarize=true`."""
    timestamp_granularities: list[Literal["segment", "word"]] = Field(default_factory=list)
    """`segment` adds timed segments; `word` gives one segment chunk per word instead (needs
    the `align` extra, else 400)."""

    @model_validator(mode="before")
    @classmethod
    def _fold_form_values(cls, data: Any) -> Any:
        """A one-item list arrives as a plain form value, a dict as a JSON string."""
        if not isinstance(data, dict):
            return data
        folded = {key.removesuffix("[]"): value for key, value in data.items()}
        for key in ("context_bias", "timestamp_granularities"):
            if isinstance(folded.get(key), str):
                folded[key] = [folded[key]]
        raw = folded.get("speaker_references")
        if isinstance(raw, str):
            # Unparseable JSON stays a string, and validation then names the parameter.
            with contextlib.suppress(ValueError):
                folded["speaker_references"] = json.loads(raw)
        return folded

    @field_validator("context_bias")
    @classmethod
    def _terms_are_single_tokens(cls, terms: list[str]) -> list[str]:
        for term in terms:
            if not term or len(term) > 100 or any(c.isspace() or c == "," for c in term):
                raise ValueError("each term is 1-100 characters without spaces or commas")
        return terms

    @field_validator("timestamp_granularities")
    @classmethod
    def _word_needs_aligner(cls, value: list[str]) -> list[str]:
        if "word" in value and not WORD_TIMESTAMPS_AVAILABLE:
            raise ValueError(ALIGN_INSTALL_HINT)
        return value

    @field_validator("speaker_references")
    @classmethod
    def _references_need_diarize(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        if value and not info.data.get("diarize"):
            raise ValueError("speaker_references needs diarize=true")
        return value

    @field_validator("file_id")
    @classmethod
    def _no_file_store(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("this server has no file store; send 'file' or 'file_url'")
        return value

    @property
    def wants_segments(self) -> bool:
        """Timed segments in the answer: asked for, or needed to carry the speakers."""
        return bool(self.timestamp_granularities) or self.diarize

    @property
    def wants_words(self) -> bool:
        return "word" in self.timestamp_granularities

    def context_prompt(self) -> str | None:
        """The terms as a Whisper-style prompt (`_` back to spaces), or None without terms."""
        if not self.context_bias:
            return None
        return "Glossary: " + ", ".join(t.replace("_", " ") for t in self.context_bias) + "."


def mistral_error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Mistral's flat error JSON: `{"object": "error", "message", "type", "param", "code"}`."""
    return {"object": "error", "message": message, "type": error_type, "param": param, "code": code}
