"""When a Whisper verbose_json answer may have dropped text, and which text is kept."""

from __future__ import annotations

import json

from voxtral_gateway.engine_calls import EngineAnswer, build_call, parse_answer
from voxtral_gateway.verbose_text import (
    UNTIMED_TAIL_TOLERANCE_S,
    text_may_be_lost,
    with_plain_text,
)

VERBOSE_CALL = build_call(
    "whisper",
    task="transcribe",
    model="m",
    wav=b"",
    max_output_tokens=20,
    language=None,
    prompt=None,
    temperature=0.0,
    detailed=True,
)


def _verbose(body: dict) -> EngineAnswer:
    return parse_answer(VERBOSE_CALL, json.dumps(body).encode())


def _segment(end: float, text: str) -> dict:
    return {"end": end, "text": text, "tokens": [1, 2], "avg_logprob": -0.2, "temperature": 0.0}


def test_no_closed_pair_means_no_text_and_is_asked_again() -> None:
    # What vLLM answers for a 27 s window whose timestamps never close: no text, no segments.
    answer = _verbose({"text": "", "language": None, "segments": []})
    assert answer.timed_until_s == 0.0
    assert text_may_be_lost(answer, audio_s=27.4)


def test_untimed_audio_after_the_last_pair_is_asked_again() -> None:
    # 15.5 s of dialogue, the last pair closed at 10.0 s: the last line's text was dropped.
    answer = _verbose({"text": " Yes.", "segments": [_segment(10.0, " Yes.")]})
    assert answer.timed_until_s == 10.0
    assert text_may_be_lost(answer, audio_s=15.5)


def test_timestamps_reaching_the_end_are_trusted() -> None:
    answer = _verbose({"text": " Yes.", "segments": [_segment(9.0, " Yes.")]})
    assert not text_may_be_lost(answer, audio_s=9.0 + UNTIMED_TAIL_TOLERANCE_S)


def test_json_answers_are_never_asked_again() -> None:
    assert not text_may_be_lost(EngineAnswer(""), audio_s=30.0)
    assert not text_may_be_lost(EngineAnswer("hello"), audio_s=30.0)


def test_more_words_in_json_replace_the_text_and_drop_unmeasured_numbers() -> None:
    verbose = EngineAnswer(
        " Yes.", language="en", temperature=0.0, avg_logprob=-0.2, tokens=(1, 2), timed_until_s=2.0
    )
    plain = EngineAnswer(" Yes. I will call them.", temperature=0.0)
    answer, outcome = with_plain_text(verbose, plain)
    assert outcome == "recovered"
    assert answer.text == " Yes. I will call them."
    assert answer.language == "en" and answer.temperature == 0.0
    # avg_logprob and tokens were measured on " Yes." only: not reported for the whole text.
    assert answer.avg_logprob is None and answer.tokens is None


def test_a_verbose_answer_with_as_many_words_is_kept_whole() -> None:
    verbose = EngineAnswer(
        " Yes, I will call.", avg_logprob=-0.2, tokens=(1, 2, 3), timed_until_s=2.0
    )
    answer, outcome = with_plain_text(verbose, EngineAnswer(" Yes I will."))
    assert outcome == "kept" and answer is verbose
