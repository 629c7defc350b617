"""POST /v1/audio/translations: OpenAI's translation endpoint, English text out.

A thin door onto the same TranscriptionService as routes/transcriptions.py (the same
ingestion, limits, VAD fan-out, streaming and request lifecycle): the task option asks the
engine to translate (Whisper's translate task, or Voxtral's instruct mode; engine_calls.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from voxtral_gateway.deps import AudioChargeDep, RuntimeDep, SettingsDep
from voxtral_gateway.protocol import TRANSCRIPTION_ONLY_FIELDS, TranscriptionRequest
from voxtral_gateway.routes.schema import ERROR_RESPONSES, body_schema
from voxtral_gateway.routes.transcriptions import handle_audio_request

router = APIRouter()


@router.post(
    "/v1/audio/translations",
    responses=ERROR_RESPONSES,
    openapi_extra=body_schema(TranscriptionRequest, exclude=TRANSCRIPTION_ONLY_FIELDS),
    response_model=None,
)
async def create_translation(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, audio_charge: AudioChargeDep
) -> Response:
    return await handle_audio_request(request, runtime, settings, audio_charge, task="translate")
