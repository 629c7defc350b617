"""Mistral's dialect end to end: the real `mistralai` SDK, only `server_url` changed, against
the gateway in front of real vLLM engines (Whisper tiny.en for checkable English, the tiny
random Voxtral for the Voxtral code path)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import openai
import pytest
from mistralai.client import Mistral, errors

from bench.accuracy import wer
from tests.fixtures.audio import AudioClip, AudioFactory
from tests.fixtures.gateway import RunningGateway
from tests.fixtures.ssrf import SERVER_HOST, AudioServer
from voxtral_gateway.settings import FetchSettings

pytestmark = pytest.mark.engine

MAX_WER = 0.15  # espeak-ng sentences through Whisper tiny.en measure ~0.0-0.05


def _words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalpha() or c == " ").split()


def mistral(gateway: RunningGateway) -> Mistral:
    return Mistral(api_key="x", server_url=f"{gateway.base_url}/mistral")


def upload(clip: AudioClip) -> dict[str, object]:
    return {"file_name": clip.path.name, "content": clip.read_bytes()}


@pytest.fixture
def sentence(audio_factory: AudioFactory) -> AudioClip:
    return audio_factory.sentence(1)  # one Whisper tiny.en hears right whole


@pytest.fixture
def whisper_prompt_gateway(gateway_factory, whisper_engine) -> RunningGateway:
    """Whisper with `context_bias` sent as its decoder prompt, and file_url allowed on the
    loopback audio server's address only (everything else still goes through the guard)."""
    return gateway_factory(
        upstream_urls=[whisper_engine.base_url],
        context_bias="prompt",
        fetch=FetchSettings(
            allow_http=True, allowed_ports=[], allowed_networks=[f"{SERVER_HOST}/32"]
        ),
    )


@pytest.fixture
def sentence_server(sentence: AudioClip) -> Iterator[AudioServer]:
    server = AudioServer(SERVER_HOST, sentence.read_bytes())
    yield server
    server.close()


def test_complete_upload_gives_mistral_response_with_engine_token_usage(
    whisper_gateway, sentence: AudioClip
) -> None:
    response = mistral(whisper_gateway).audio.transcriptions.complete(
        model="voxtral-mini-latest", file=upload(sentence), diarize=False
    )
    assert wer(sentence.text, response.text) <= MAX_WER, response.text
    assert response.model == "voxtral-mini-latest"
    assert response.language == "en"  # nobody named one: what Whisper detected
    assert response.segments is None  # no timestamp granularity asked for
    usage = response.usage
    assert usage.prompt_audio_seconds == math.ceil(sentence.duration_s)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_file_url_goes_through_the_ssrf_guard(
    whisper_prompt_gateway, sentence_server: AudioServer, sentence: AudioClip
) -> None:
    client = mistral(whisper_prompt_gateway)
    response = client.audio.transcriptions.complete(
        model="m", file_url=sentence_server.url("/chain/1"), language="en"
    )
    assert wer(sentence.text, response.text) <= MAX_WER, response.text
    assert response.language == "en"
    with pytest.raises(errors.SDKError) as refused:
        client.audio.transcriptions.complete(model="m", file_url="http://127.0.0.1:1/a.wav")
    assert refused.value.status_code == 400
    body = json.loads(refused.value.body)
    assert body["object"] == "error"
    assert (body["param"], body["code"]) == ("file_url", "url_not_allowed")


def test_segment_timestamps_on_a_60s_clip(whisper_gateway, speech_60s: AudioClip) -> None:
    response = mistral(whisper_gateway).audio.transcriptions.complete(
        model="m", file=upload(speech_60s), timestamp_granularities=["segment"]
    )
    segments = response.segments
    assert segments and all(s.type == "transcription_segment" for s in segments)
    assert all(s.start < s.end for s in segments)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:], strict=False))
    assert " ".join(s.text for s in segments) == response.text
    for sentence in speech_60s.sentences:
        # The segment whose span holds the sentence's midpoint carries that sentence.
        middle = (sentence.start_s + sentence.end_s) / 2
        segment = next(s for s in segments if s.start <= middle <= s.end)
        heard = set(_words(segment.text))
        assert sum(w in heard for w in _words(sentence.text)) >= len(_words(sentence.text)) / 2
    assert wer(speech_60s.text, response.text) <= MAX_WER


def test_word_timestamps_are_one_segment_chunk_per_word(
    whisper_gateway, speech_5s: AudioClip
) -> None:
    """The aligner's words through Mistral's own SDK: its schema's only timed list is
    `segments`, so each chunk (and each streamed `transcription.segment`) is one word."""
    client = mistral(whisper_gateway)
    response = client.audio.transcriptions.complete(
        model="m", file=upload(speech_5s), language="en", timestamp_granularities=["word"]
    )
    chunks = response.segments
    assert chunks and all(c.type == "transcription_segment" for c in chunks)
    assert " ".join(c.text for c in chunks) == response.text
    assert all(c.start < c.end for c in chunks)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))
    assert chunks[0].start >= 0 and chunks[-1].end <= speech_5s.duration_s
    assert wer(speech_5s.text, response.text) <= MAX_WER

    events = list(
        client.audio.transcriptions.stream(
            model="m", file=upload(speech_5s), language="en", timestamp_granularities=["word"]
        )
    )
    streamed = [e.data.text for e in events if e.event == "transcription.segment"]
    done = events[-1].data
    assert streamed == [c.text for c in chunks] == [s.text for s in done.segments]


def test_stream_deltas_join_to_done_text(whisper_gateway, speech_5s: AudioClip) -> None:
    events = list(
        mistral(whisper_gateway).audio.transcriptions.stream(
            model="m", file=upload(speech_5s), language="en", timestamp_granularities=["segment"]
        )
    )
    kinds = [e.event for e in events]
    assert kinds[0] == "transcription.language" and events[0].data.audio_language == "en"
    assert kinds[-1] == "transcription.done"
    assert "transcription.segment" in kinds
    done = events[-1].data
    deltas = [e.data.text for e in events if e.event == "transcription.text.delta"]
    assert deltas and "".join(deltas) == done.text
    # The engine's token deltas (service.text_stream), not one delta per segment.
    assert len(deltas) > 3 * kinds.count("transcription.segment")
    assert done.usage.completion_tokens > 0 and done.segments
    assert wer(speech_5s.text, done.text) <= MAX_WER


def test_context_bias_reaches_whisper_as_its_prompt(
    whisper_prompt_gateway, gateway_factory, whisper_engine, sentence: AudioClip
) -> None:
    terms = ["Voxtral", "gateway_service"]
    plain = mistral(whisper_prompt_gateway).audio.transcriptions.complete(
        model="m", file=upload(sentence)
    )
    biased = mistral(whisper_prompt_gateway).audio.transcriptions.complete(
        model="m", file=upload(sentence), context_bias=terms
    )
    # The engine counted the prompt's tokens: the terms reached it.
    assert biased.usage.prompt_tokens > plain.usage.prompt_tokens
    assert biased.additional_properties["context_bias"] == {
        "terms": terms,
        "applied": True,
        "applied_via": "prompt",
    }
    # A gateway configured as unable to use them still accepts them, and says so.
    unsupported = gateway_factory(engine=whisper_engine, context_bias="unsupported")
    unused = mistral(unsupported).audio.transcriptions.complete(
        model="m", file=upload(sentence), context_bias=terms
    )
    assert unused.additional_properties["context_bias"]["applied"] is False
    unbiased = mistral(unsupported).audio.transcriptions.complete(model="m", file=upload(sentence))
    assert unused.usage.prompt_tokens == unbiased.usage.prompt_tokens


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        (
            {"diarize": True, "speaker_references": {"ann": "https://a.test/a.wav"}},
            "speaker_references",
        ),
        ({"file_id": "file-123"}, "file_id"),
        ({"context_bias": ["two words"]}, "context_bias"),
        ({"speaker_references": {"ann": "https://example.com/a.wav"}}, "speaker_references"),
        ({"language": "english!"}, "language"),
    ],
)
def test_bad_input_is_a_clean_400_the_sdk_raises(
    whisper_gateway, sentence: AudioClip, arguments: dict[str, object], param: str
) -> None:
    with pytest.raises(errors.SDKError) as failure:
        mistral(whisper_gateway).audio.transcriptions.complete(
            model="m", file=upload(sentence), **arguments
        )
    assert failure.value.status_code == 400
    body = json.loads(failure.value.body)
    assert body["object"] == "error" and body["type"] == "invalid_request_error"
    assert body["param"] == param
    assert "english!" not in body["message"]  # named, never echoed


def test_no_audio_at_all_is_a_400(whisper_gateway) -> None:
    with pytest.raises(errors.SDKError) as failure:
        mistral(whisper_gateway).audio.transcriptions.complete(model="m")
    assert failure.value.status_code == 400
    assert json.loads(failure.value.body)["param"] == "file"


def test_voxtral_engine_answers_both_sdks_on_one_gateway(
    voxtral_gateway, speech_5s: AudioClip
) -> None:
    client = mistral(voxtral_gateway)
    response = client.audio.transcriptions.complete(
        model="m", file=upload(speech_5s), context_bias=["Voxtral"]
    )
    assert response.text  # random weights: gibberish, but the engine's
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.additional_properties["context_bias"]["applied"] is False
    events = list(client.audio.transcriptions.stream(model="m", file=upload(speech_5s)))
    deltas = "".join(e.data.text for e in events if e.event == "transcription.text.delta")
    assert events[-1].event == "transcription.done" and deltas == events[-1].data.text
    # The OpenAI dialect on the same server, unchanged.
    openai_client = openai.OpenAI(
        base_url=f"{voxtral_gateway.base_url}/v1", api_key="x", max_retries=0
    )
    openai_response = openai_client.audio.transcriptions.create(
        model="m", file=speech_5s.path.open("rb")
    )
    assert openai_response.text and openai_response.usage.type == "duration"
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.audio.transcriptions.create(
            model="m", file=speech_5s.path.open("rb"), extra_body={"diarize": "false"}
        )
    assert refused.value.body["param"] == "diarize"  # Mistral's fields stay under /mistral
