"""How many decoded tokens the likelihood language detector should score, chosen on the
13-clip corpus only (the held-out sentences and espeak's default voices stay the check,
in bench/language_detection.py).

    python -m bench.language_likelihood_tokens --out bench/results/NAME

For k = 1..12 tokens: right clips among the corpus's seven languages by the joint
log-probability per token (`pipeline/language_scoring.most_likely`, token weight 1/k) and by
the decoded tokens alone. Writes likelihood-tokens.md; no engine needed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.multilingual import LANGUAGES, speak, utterances
from voxtral_gateway.pipeline.language import load_language_detector
from voxtral_gateway.pipeline.language_scoring import most_likely
from voxtral_gateway.settings import Settings

TOKENS = range(1, 13)


def run(model: str) -> list[tuple[int, int, int]]:
    """(k, right by joint score, right by decode alone) on the corpus."""
    detector = load_language_detector(model, Settings().align.cache_dir.expanduser(), LANGUAGES)
    assert detector is not None
    clips = [(u.language, speak(u)) for u in utterances(LANGUAGES, 2)]
    table = []
    for tokens in TOKENS:
        joint = decode_only = 0
        for language, samples in clips:
            probabilities, likelihoods = detector.likelihoods(samples, LANGUAGES, tokens)
            joint += most_likely(probabilities, likelihoods, tokens) == language
            decode_only += max(likelihoods, key=likelihoods.__getitem__) == language
        table.append((tokens, joint, decode_only))
        print(table[-1], flush=True)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.language_likelihood_tokens", description=__doc__
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="base", help="detector: `base` or a CTranslate2 folder")
    args = parser.parse_args(argv)
    table = run(args.model)
    command = "python -m bench.language_likelihood_tokens " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    lines = [
        f"# Decoded tokens for the likelihood detector (Whisper {args.model}, corpus only)",
        "",
        f"Command: `{command}`",
        "",
        "| tokens | joint (token weight 1/k) | decode only |",
        "|---|---|---|",
        *(f"| {k} | {joint}/13 | {alone}/13 |" for k, joint, alone in table),
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "likelihood-tokens.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
