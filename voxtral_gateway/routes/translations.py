"""POST /v1/audio/translations: OpenAI's translation endpoint, English text out.

A thin door onto the same TranscriptionService as routes/transcriptions.py (the same
ingestion, limits, VAD fan-out, streaming and request lifecycle): the task option asks the
engine to translate (Whisper's translate task, or Voxtral's instruct mode; engine_calls.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from voxtral_gateway.deps import AudioChargeDep, RuntimeDep, SettingsDep
from voxtral_gateway.protocol import TRANSCRIPTION_ONLY_FIELDS
from voxtral_gateway.routes.transcriptions import (
    ERROR_RESPONSES,
    handle_audio_request,
    request_body_schema,
)

router = APIRouter()


@router.post(
    "/v1/audio/translations",
    responses=ERROR_RESPONSES,
    openapi_extra=request_body_schema(exclude=TRANSCRIPTION_ONLY_FIELDS),
    response_model=None,
)
async def create_translation(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, audio_charge: AudioChargeDep
) -> Response:
    return await handle_audio_request(request, runtime, settings, audio_charge, task="translate")
