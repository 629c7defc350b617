"""The realtime WebSocket's protocol and limits, on a real gateway over loopback.

No engine is needed: nothing here reaches transcription (the upstream URL is a closed port),
so these run in the fast loop. Transcripts are checked in test_realtime_engine.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.fixtures.gateway import free_port
from tests.realtime.conftest import pcm16_chunks, realtime_url

GA_UPDATE = {
    "type": "session.update",
    "session": {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"language": "en", "prompt": "fox"},
                "turn_detection": None,
            }
        },
    },
}


@pytest.fixture
def gateway(gateway_factory):
    def _start(**realtime: object):
        # The engine family is configured: with no engine to ask, the language check still
        # knows which languages the served model has.
        return gateway_factory(
            upstream_urls=[f"http://127.0.0.1:{free_port()}"],
            engine_family="whisper",
            realtime=realtime,
        )

    return _start


def _silence_append(seconds: float) -> dict:
    return {
        "type": "input_audio_buffer.append",
        "audio": pcm16_chunks(np.zeros(int(16000 * seconds), np.float32), int(seconds * 1000))[0],
    }


def test_session_update_answers_with_the_effective_config(gateway, raw_session):
    session = raw_session(gateway().base_url)
    session.send({**GA_UPDATE, "event_id": "evt_1"})
    updated = session.recv()
    assert updated["type"] == "session.updated"
    audio_input = updated["session"]["audio"]["input"]
    assert audio_input["turn_detection"] is None
    assert audio_input["transcription"]["language"] == "en"
    assert audio_input["format"] == {"type": "audio/pcm", "rate": 24000}


def test_beta_transcription_session_update_is_answered_in_its_dialect(gateway, raw_session):
    session = raw_session(gateway().base_url)
    session.send(
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
            },
        }
    )
    updated = session.recv()
    assert updated["type"] == "transcription_session.updated"
    assert updated["session"]["turn_detection"]["silence_duration_ms"] == 800
    assert updated["session"]["turn_detection"]["prefix_padding_ms"] == 300


@pytest.mark.parametrize(
    ("update", "param"),
    [
        (
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"language": "xx"}}},
                },
            },
            "session.audio.input.transcription.language",
        ),
        (
            {
                "type": "transcription_session.update",
                "session": {"input_audio_transcription": {"language": "xx"}},
            },
            "session.input_audio_transcription.language",
        ),
    ],
)
def test_a_language_the_model_lacks_is_refused_as_the_http_route_refuses_it(
    gateway, raw_session, update, param
):
    # The service's one check (`checked_language`), before any audio: the HTTP route's 400.
    session = raw_session(gateway().base_url)
    session.send({**update, "event_id": "evt_lang"})
    error = session.recv()
    assert error["type"] == "error"
    assert error["error"]["code"] == "unsupported_language"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("Language 'xx' is not supported")
    assert (error["error"]["param"], error["error"]["event_id"]) == (param, "evt_lang")
    # The refused update changed nothing; a region-tagged language is kept as the engine
    # expects it, as the HTTP route sends it.
    session.send({"type": "session.update", "session": {"type": "transcription"}})
    unchanged = session.recv()
    assert unchanged["session"]["audio"]["input"]["transcription"]["language"] is None
    tagged = json.loads(json.dumps(GA_UPDATE))
    tagged["session"]["audio"]["input"]["transcription"]["language"] = "en-GB"
    session.send(tagged)
    updated = session.recv()
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"]["input"]["transcription"]["language"] == "en"


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ({"type": "response.create"}, "invalid_event", None),
        ({"type": "input_audio_buffer.append"}, "invalid_event", None),
        ({"type": "input_audio_buffer.append", "audio": "@@@"}, "invalid_audio", "audio"),
        (
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()},
            "invalid_audio",
            "audio",
        ),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"format": {"type": "audio/pcmu"}}},
                },
            },
            "unsupported_audio_format",
            "session.audio.input.format",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime"}},
            None,
            "session.type",
        ),
        (
            {
                "type": "transcription_session.update",
                "session": {"turn_detection": {"type": "server_vad", "threshold": 7}},
            },
            None,
            "session.turn_detection.threshold",
        ),
    ],
)
def test_bad_events_get_an_error_event_and_the_session_stays_open(
    gateway, raw_session, event, code, param
):
    session = raw_session(gateway().base_url)
    session.send(event)
    error = session.recv()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert set(error["error"]) >= {"message", "type", "code", "param"}
    if code:
        assert error["error"]["code"] == code
    assert error["error"]["param"] == param
    # Still usable after the mistake.
    session.send(GA_UPDATE)
    assert session.recv()["type"] == "session.updated"


def test_error_names_the_client_event_id(gateway, raw_session):
    session = raw_session(gateway().base_url)
    session.send({"type": "input_audio_buffer.commit", "event_id": "evt_commit_7"})
    assert session.recv()["error"]["event_id"] == "evt_commit_7"


def test_clear_empties_the_manual_buffer(gateway, raw_session):
    session = raw_session(gateway().base_url)
    session.send(GA_UPDATE)
    session.recv()
    session.send(_silence_append(0.5))
    session.send({"type": "input_audio_buffer.clear"})
    assert session.recv()["type"] == "input_audio_buffer.cleared"
    session.send({"type": "input_audio_buffer.commit"})
    assert session.recv()["error"]["code"] == "input_audio_buffer_commit_empty"


def test_silence_under_server_vad_starts_no_speech(gateway, raw_session):
    session = raw_session(gateway().base_url)
    for _ in range(10):
        session.send(_silence_append(0.2))
    session.send(GA_UPDATE)  # acts as a marker: everything before it has been processed
    assert session.recv()["type"] == "session.updated"


def test_oversized_append_closes_that_session_only(gateway, raw_session):
    running = gateway(max_append_bytes=64 * 1024)
    bystander = raw_session(running.base_url)
    offender = raw_session(running.base_url)
    offender.send(_silence_append(3.0))  # 144 kB of PCM16 -> ~192 kB of base64
    error = offender.recv()
    assert error["type"] == "error"
    assert error["error"]["code"] == "event_too_large"
    with pytest.raises(ConnectionClosed) as closed:
        offender.recv()
    assert closed.value.rcvd.code == 1009
    bystander.send(GA_UPDATE)
    assert bystander.recv()["type"] == "session.updated"


def test_manual_buffer_over_its_cap_is_refused(gateway, raw_session):
    session = raw_session(gateway(max_buffer_s=1.0).base_url)
    session.send(GA_UPDATE)
    session.recv()
    # Exactly enough to pass the cap (1.25 s, less the resampler's few-ms delay) and no more:
    # the server closes on the last one, so a further append could meet a closed socket.
    for _ in range(5):
        session.send(_silence_append(0.25))
    error = session.recv()
    assert error["error"]["code"] == "input_audio_buffer_too_large"
    with pytest.raises(ConnectionClosed) as closed:
        session.recv()
    assert closed.value.rcvd.code == 1009


def test_idle_client_gets_an_error_and_a_clean_close(gateway, raw_session):
    session = raw_session(gateway(idle_timeout_s=0.5).base_url)
    error = session.recv(timeout_s=30)
    assert error["error"]["code"] == "idle_timeout"
    with pytest.raises(ConnectionClosed) as closed:
        session.recv()
    assert closed.value.rcvd.code == 1000


def test_a_client_waiting_for_its_transcript_is_not_idle(
    gateway_factory, fake_upstream_stall, raw_session
):
    # A hung engine (fake_upstream_stall) stands in for one too busy to answer within the idle
    # timeout: the client committed and waits; it must get its transcript, not an idle close.
    gw = gateway_factory(
        upstream_urls=[fake_upstream_stall.base_url],
        engine_family="whisper",
        realtime={"idle_timeout_s": 0.5},
    )
    session = raw_session(gw.base_url)
    session.send(GA_UPDATE)
    assert session.recv()["type"] == "session.updated"
    speech = (np.sin(np.arange(16000) * 0.05) * 0.3).astype(np.float32)
    for chunk in pcm16_chunks(speech):
        session.send({"type": "input_audio_buffer.append", "audio": chunk})
    session.send({"type": "input_audio_buffer.commit"})
    assert session.recv()["type"] == "input_audio_buffer.committed"
    deadline = time.monotonic() + 30
    while not fake_upstream_stall.calls:  # the engine has the utterance
        assert time.monotonic() < deadline, "the utterance never reached the engine"
        time.sleep(0.01)
    # Many idle timeouts pass while the engine holds the call; no event may arrive meanwhile.
    with pytest.raises(TimeoutError):
        session.recv(timeout_s=2.0)
    fake_upstream_stall.release.set()
    events = session.recv_until("conversation.item.input_audio_transcription.completed")
    assert events[-1]["transcript"] == "ok"


def test_session_length_is_capped(gateway, raw_session):
    session = raw_session(gateway(max_session_s=1.0).base_url)
    event = None
    deadline = time.monotonic() + 30
    while event is None and time.monotonic() < deadline:
        # The session may end between two appends: its error event is then already queued.
        with contextlib.suppress(ConnectionClosed):
            session.send(_silence_append(0.1))  # busy, never idle
        try:
            event = session.recv(timeout_s=0.1)
        except TimeoutError:
            continue
    assert event is not None
    assert event["error"]["code"] == "session_expired"
    with pytest.raises(ConnectionClosed):
        session.recv()


def test_connections_over_the_cap_are_refused_with_try_again_later(gateway, raw_session):
    running = gateway(max_connections=1)
    first = raw_session(running.base_url)
    with connect(realtime_url(running.base_url)) as second:
        refused = json.loads(second.recv(timeout=30))
        assert refused["error"]["code"] == "too_many_connections"
        with pytest.raises(ConnectionClosed) as closed:
            second.recv(timeout=30)
        assert closed.value.rcvd.code == 1013
    first.send(GA_UPDATE)
    assert first.recv()["type"] == "session.updated"
    first.connection.close()
    # The server gives the slot back when it sees the close: retry until it has.
    deadline = time.monotonic() + 30
    while True:
        with connect(realtime_url(running.base_url)) as third:
            if json.loads(third.recv(timeout=30))["type"] == "session.created":
                break
        assert time.monotonic() < deadline, "the closed session's slot was never given back"


def test_a_client_ahead_of_real_time_is_slowed_to_real_time(gateway, raw_session):
    session = raw_session(gateway(max_ahead_s=0.5).base_url)
    started = time.monotonic()
    for _ in range(20):  # 2 s of audio, sent at once
        session.send(_silence_append(0.1))
    session.send(GA_UPDATE)
    assert session.recv()["type"] == "session.updated"
    # Reading paused until the audio was no more than 0.5 s ahead of the clock.
    assert time.monotonic() - started >= 1.3


def test_api_key_is_required_on_the_websocket(gateway_factory, raw_session):
    running = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"], api_keys=["sk-right"]
    )
    with pytest.raises(InvalidStatus) as refused:
        connect(realtime_url(running.base_url)).close()
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(
            realtime_url(running.base_url), additional_headers={"Authorization": "Bearer sk-wrong"}
        ).close()
    raw_session(running.base_url, additional_headers={"Authorization": "Bearer sk-right"})
