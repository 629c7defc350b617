"""Form quirks of the OpenAI SDK folded into the request model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.ingest import validate_fields
from voxtral_gateway.protocol import ServerVadChunking, TranscriptionRequest


def test_bracketed_form_keys_fold_into_fields() -> None:
    request = TranscriptionRequest.model_validate(
        {
            "model": "voxtral",
            "timestamp_granularities[]": "segment",
            "chunking_strategy[type]": "server_vad",
            "chunking_strategy[threshold]": "0.7",
            "chunking_strategy[silence_duration_ms]": "800",
            "chunking_strategy[prefix_padding_ms]": "100",
        }
    )
    assert request.timestamp_granularities == ["segment"]
    assert isinstance(request.chunking_strategy, ServerVadChunking)
    assert request.vad_overrides() == {
        "threshold": 0.7,
        "min_silence_ms": 800,
        "speech_pad_ms": 100,
    }


def test_chunking_strategy_as_json_string_and_auto() -> None:
    request = TranscriptionRequest.model_validate(
        {"chunking_strategy": '{"type": "server_vad", "threshold": 0.3}'}
    )
    assert request.vad_overrides() == {"threshold": 0.3}
    assert TranscriptionRequest.model_validate({"chunking_strategy": "auto"}).vad_overrides() == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp_granularities[]": ["word"]},
        {"response_format": "docx"},
        {"temperature": "1.5"},
        {"stream": "true", "response_format": "srt"},
        {"chunking_strategy": {"type": "server_vad", "threshold": 2}},
        {"include[]": ["logprobs"]},
        {"language": "english; DROP TABLE"},
        {"unknown_field": "x"},
        {"file_url": "https://a.example/x.wav", "audio": "AAAA"},
    ],
)
def test_invalid_parameters_are_rejected(fields: dict) -> None:
    with pytest.raises(ValidationError):
        TranscriptionRequest.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        (
            {"stream": "true", "response_format": "srt"},
            None,
            "Invalid request: stream=true supports response_format 'json', 'text' or "
            "'diarized_json' only.",
        ),
        ({"temperature": "2"}, "temperature", "Invalid parameter 'temperature': "),
        (
            {"chunking_strategy": "bogus"},
            "chunking_strategy",
            "Invalid parameter 'chunking_strategy': must be 'auto' or a server_vad object",
        ),
        (
            {"chunking_strategy": '{"type": "server_vad", "threshold": 2}'},
            "chunking_strategy.threshold",
            "Invalid parameter 'chunking_strategy.threshold': Input should be less than or equal",
        ),
    ],
)
def test_the_400_names_the_parameter_or_says_the_rule_spans_several(
    fields: dict, param: str | None, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_fields(fields)
    assert caught.value.param == param
    assert caught.value.message.startswith(message)
    assert "None" not in caught.value.message


def test_fastapis_own_validation_400_reads_like_the_form_routes() -> None:
    """A route FastAPI validates itself (a typed JSON body) answers in the same words as the
    form routes: parameter named without FastAPI's `body` prefix, the value never echoed."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from voxtral_gateway.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/typed")
    async def typed(request: TranscriptionRequest) -> dict:
        return {"ok": True}

    with TestClient(app) as client:
        answer = client.post("/typed", json={"temperature": "secret-value-9"})
        cross = client.post("/typed", json={"stream": True, "response_format": "srt"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "temperature"
    assert error["message"].startswith("Invalid parameter 'temperature': ")
    assert "secret-value-9" not in error["message"]
    assert cross.json()["error"]["param"] is None
    assert cross.json()["error"]["message"].startswith("Invalid request: stream=true supports")
    assert not cross.json()["error"]["message"].endswith("..")
