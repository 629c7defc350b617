"""Which languages the served model accepts, and what kind of engine serves it.

The lists are vLLM 0.32's own (`ISO639_1_SUPPORTED_LANGS` in model_executor/models/
whisper_utils.py and voxtral.py): a code outside them is what the engine would refuse, so the
gateway refuses it first, with a 400 naming `language`, before any audio is sent.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from voxtral_gateway.errors import InvalidRequestError

EngineFamily = Literal["whisper", "voxtral"]

_WHISPER_CODES = (
    "af ar hy az be bs bg ca zh hr cs da nl en et fi fr gl de el he hi hu is id it ja kk ko lv "
    "lt mk ms mr mi ne no fa pl pt ro ru sr sk sl es sw sv tl ta th tr uk ur vi cy"
)
WHISPER_LANGUAGES: frozenset[str] = frozenset(_WHISPER_CODES.split())
VOXTRAL_LANGUAGES: frozenset[str] = frozenset(
    {"ar", "nl", "en", "fr", "de", "hi", "it", "pt", "es"}
)  # noqa: E501


def engine_family(model_name: str, configured: EngineFamily | None) -> EngineFamily:
    """The configured family, else guessed from the served model's name (`*whisper*`)."""
    if configured is not None:
        return configured
    return "whisper" if "whisper" in model_name.lower() else "voxtral"


def supported_languages(
    family: EngineFamily, configured: Collection[str] | None = None
) -> frozenset[str]:
    """The operator's list (e.g. `["en"]` for an English-only model), else the family's."""
    if configured:
        return frozenset(code.lower() for code in configured)
    return WHISPER_LANGUAGES if family == "whisper" else VOXTRAL_LANGUAGES


def validate_language(language: str, supported: frozenset[str]) -> str:
    """`language` as the engine expects it (lower-case ISO-639-1); 400 if the model lacks it.

    A region suffix (`pt-BR`) is dropped: the engines take the bare language code.
    """
    code = language.split("-", 1)[0].lower()
    if code not in supported:
        raise InvalidRequestError(
            f"Language '{code}' is not supported by the served model; "
            f"supported: {', '.join(sorted(supported))}.",
            param="language",
            code="unsupported_language",
        )
    return code
