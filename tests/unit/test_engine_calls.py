"""What each engine family is asked for a segment, and how its answers are read."""

from __future__ import annotations

import json

import pytest

from voxtral_gateway.engine_calls import (
    MalformedAnswerError,
    build_call,
    language_probe_call,
    parse_answer,
    timestamp_headroom,
)
from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.languages import engine_family, supported_languages, validate_language
from voxtral_gateway.pipeline.records import Word

CALL = {"model": "m", "wav": b"RIFF", "max_output_tokens": 20, "prompt": None}


def test_whisper_translate_uses_the_translations_endpoint_without_a_language() -> None:
    call = build_call(
        "whisper", task="translate", language="de", temperature=None, detailed=False, **CALL
    )
    assert call.path == "/v1/audio/translations"
    assert call.form is not None and "language" not in call.form
    assert call.form["temperature"] == "0.0"  # vLLM's default, sent so it is known


def test_counted_tokens_stream_json_and_the_language_comes_from_a_one_token_probe() -> None:
    """vLLM counts tokens only when streaming, and verbose_json (the detected language) does not
    stream: a counted detailed call streams json; the language is a separate one-token call."""
    call = build_call(
        "whisper",
        task="transcribe",
        language=None,
        temperature=0.2,
        detailed=True,
        count_tokens=True,
        **CALL,
    )
    assert call.streamed and call.temperature == 0.2
    assert call.form is not None and call.form["response_format"] == "json"
    assert call.form["stream_include_usage"] == "true"
    probe = language_probe_call("m")
    assert not probe.streamed and probe.path == "/v1/audio/transcriptions"
    assert probe.form is not None and probe.form["response_format"] == "verbose_json"
    assert probe.form["max_completion_tokens"] == "1"
    answer = parse_answer(probe, json.dumps({"text": "Hallo", "language": "de"}).encode())
    assert answer.language == "de"


def test_whisper_verbose_asks_for_timestamps_room_and_reads_the_language() -> None:
    call = build_call(
        "whisper", task="transcribe", language=None, temperature=0.4, detailed=True, **CALL
    )
    assert call.form is not None and call.form["response_format"] == "verbose_json"
    assert int(call.form["max_completion_tokens"]) == 20 + timestamp_headroom(20)
    body = {
        "text": "Hallo Welt. Wie geht's?",
        "language": "de",
        "segments": [
            {"tokens": [1, 2, 3], "avg_logprob": -0.3, "temperature": 0.4},
            {"tokens": [4], "avg_logprob": -0.7, "temperature": 0.4},
        ],
    }
    answer = parse_answer(call, json.dumps(body).encode())
    assert answer.language == "de" and answer.tokens == (1, 2, 3, 4)
    assert answer.avg_logprob == pytest.approx((3 * -0.3 - 0.7) / 4)
    assert answer.temperature == 0.4


def test_whisper_verbose_answers_keep_their_timed_phrases() -> None:
    call = build_call(
        "whisper", task="transcribe", language="en", temperature=0.0, detailed=True, **CALL
    )
    body = {
        "text": " Hi there. Bye.",
        "segments": [
            {"start": 0.0, "end": 1.5, "text": " Hi there."},
            {"start": 2.0, "end": 3.0, "text": " Bye."},
        ],
    }
    answer = parse_answer(call, json.dumps(body).encode())
    assert answer.phrases == (Word("Hi there.", 0.0, 1.5), Word("Bye.", 2.0, 3.0))


def test_voxtral_translate_is_an_instruct_chat_with_the_audio_inline() -> None:
    call = build_call(
        "voxtral", task="translate", language=None, temperature=0.2, detailed=True, **CALL
    )
    assert call.path == "/v1/chat/completions" and call.json_body is not None
    parts = call.json_body["messages"][0]["content"]
    assert parts[0] == {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    assert "English" in parts[1]["text"]
    reply = {"choices": [{"message": {"content": "Good morning."}}]}
    answer = parse_answer(call, json.dumps(reply).encode())
    assert (answer.text, answer.temperature, answer.language) == ("Good morning.", 0.2, None)


def test_voxtral_transcribe_stays_json_and_reports_no_statistics() -> None:
    call = build_call(
        "voxtral", task="transcribe", language="fr", temperature=None, detailed=True, **CALL
    )
    assert call.form is not None and call.form["response_format"] == "json"
    assert call.form["language"] == "fr"
    answer = parse_answer(call, b'{"text": "bonjour"}')
    assert answer.avg_logprob is None and answer.tokens is None


def test_a_body_of_the_wrong_shape_is_malformed() -> None:
    call = build_call(
        "whisper", task="transcribe", language=None, temperature=None, detailed=False, **CALL
    )
    with pytest.raises(MalformedAnswerError):
        parse_answer(call, b'{"choices": []}')


def test_family_is_guessed_from_the_model_name_unless_configured() -> None:
    assert engine_family("openai/whisper-large-v3", None) == "whisper"
    assert engine_family("mistralai/Voxtral-Mini-3B-2507", None) == "voxtral"
    assert engine_family("my-model", "whisper") == "whisper"


def test_languages_are_checked_against_the_model_and_normalised() -> None:
    assert validate_language("pt-BR", supported_languages("voxtral")) == "pt"
    with pytest.raises(InvalidRequestError) as refused:
        validate_language("ja", supported_languages("voxtral"))
    assert refused.value.param == "language"
    assert validate_language("ja", supported_languages("whisper")) == "ja"
    with pytest.raises(InvalidRequestError):
        validate_language("de", supported_languages("whisper", ["en"]))
