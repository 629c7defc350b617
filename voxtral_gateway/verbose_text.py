"""Text that vLLM's Whisper verbose_json drops, asked again as plain json.

vLLM builds verbose_json's text only from closed timestamp pairs (`_get_verbose_segments`):
text the model ends without a closing timestamp is left out of `text` and `segments`, and
nothing else in the answer (no token count, no usage) says it existed. A 27 s window of
dialogue comes back with no text at all; a 15 s one with its last 5 s missing. The only trace
is where the last closed pair ends, so when that leaves untimed audio at the end, the gateway
asks for the same window as json (no timestamps) and keeps whichever answer holds more words.
The verbose-only numbers (avg_logprob, tokens) describe the verbose text only, so they are
dropped when the json text replaces it: nothing is reported for text it was not measured on.
"""

from __future__ import annotations

from typing import Literal

from voxtral_gateway.engine_calls import EngineAnswer

# A VAD window ends 0.2 s after its speech and Whisper's timestamps are coarse; more untimed
# audio than this may have held words. Chosen, not tuned: on the bench dialogues every window
# it sent back got more words from json (bench/results/cpu-verbose-text). A lost tail shorter
# than this (a lone "Yes.") is not caught.
UNTIMED_TAIL_TOLERANCE_S = 1.0

FallbackOutcome = Literal["recovered", "kept"]
"""recovered: the json text held more words and replaced the verbose one; kept: it did not."""


def text_may_be_lost(answer: EngineAnswer, audio_s: float) -> bool:
    """A verbose_json answer that may have dropped text: no text, or untimed audio at the end."""
    if answer.timed_until_s is None:
        return False  # not a verbose_json answer: its text is whole
    if not answer.text.strip():
        return True
    return audio_s - answer.timed_until_s > UNTIMED_TAIL_TOLERANCE_S


def with_plain_text(
    verbose: EngineAnswer, plain: EngineAnswer
) -> tuple[EngineAnswer, FallbackOutcome]:
    """The verbose answer, or the json one's text when it holds more words. The language and
    temperature were the same for both calls; the verbose-only numbers are left out then."""
    if len(plain.text.split()) <= len(verbose.text.split()):
        return verbose, "kept"
    recovered = EngineAnswer(plain.text, language=verbose.language, temperature=plain.temperature)
    return recovered, "recovered"
