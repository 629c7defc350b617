"""A small multilingual corpus with known text: espeak-ng speaking German, French, Spanish,
Italian, Portuguese and Dutch (plus English), each sentence with its English translation.

Shared by the engine tests (a few clips) and `python -m bench.languages` (all of them).
Sentences are plain everyday words, no digits, and long enough to last at least 3 s at
`SPEED_WPM`, the length the language detector is held to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.corpus import synthesize, write_wav

SPEED_WPM = 140


@dataclass(frozen=True)
class Utterance:
    """One sentence in one language, with the English a translation should say."""

    language: str
    """ISO-639-1 code, as Whisper reports it."""
    voice: str
    """espeak-ng voice."""
    text: str
    english: str


_SENTENCES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "de": (
        "de",
        (
            (
                "Morgen fahren wir mit dem Zug in die Berge und wandern den ganzen Tag.",
                "Tomorrow we are taking the train to the mountains and hiking all day.",
            ),
            (
                "Meine Schwester arbeitet in einem großen Krankenhaus in der Stadt.",
                "My sister works in a big hospital in the city.",
            ),
        ),
    ),
    # Voice variants chosen on Whisper base's detector (voice "fr" is heard as Thai, "pt" as
    # English); espeak-ng 1.51. Dutch has no variant Whisper base reliably recognises.
    "fr": (
        "fr+f2",
        (
            (
                "Nous allons au marché tous les samedis pour acheter des légumes frais.",
                "We go to the market every Saturday to buy fresh vegetables.",
            ),
            (
                "Le petit garçon joue dans le jardin avec son chien noir.",
                "The little boy plays in the garden with his black dog.",
            ),
        ),
    ),
    "es": (
        "es",
        (
            (
                "Mi familia vive en una casa pequeña cerca de la playa.",
                "My family lives in a small house near the beach.",
            ),
            (
                "Por la mañana siempre bebo un café con leche antes de trabajar.",
                "In the morning I always drink a coffee with milk before working.",
            ),
        ),
    ),
    "it": (
        "it",
        (
            (
                "Questa sera andiamo a mangiare la pizza con i nostri amici.",
                "This evening we are going to eat pizza with our friends.",
            ),
            (
                "Il treno per Roma parte dalla stazione centrale ogni ora.",
                "The train to Rome leaves from the central station every hour.",
            ),
        ),
    ),
    "pt": (
        "pt+f4",
        (
            (
                "O meu irmão gosta muito de ler livros sobre a história do mundo.",
                "My brother really likes reading books about the history of the world.",
            ),
            (
                "Hoje o tempo está bom e vamos passear no parque da cidade.",
                "Today the weather is good and we are going for a walk in the city park.",
            ),
        ),
    ),
    "nl": (
        "nl",
        (
            (
                "Wij fietsen elke dag naar school, ook als het regent.",
                "We cycle to school every day, even when it rains.",
            ),
            (
                "De bakker op de hoek verkoopt het lekkerste brood van de stad.",
                "The baker on the corner sells the tastiest bread in the city.",
            ),
        ),
    ),
    "en": (
        "en-us",
        (
            (
                "The children walked along the river to the old wooden bridge.",
                "The children walked along the river to the old wooden bridge.",
            ),
        ),
    ),
}

LANGUAGES: tuple[str, ...] = tuple(_SENTENCES)


def utterances(languages: tuple[str, ...] = LANGUAGES, per_language: int = 2) -> list[Utterance]:
    """The corpus, in a fixed order: `per_language` sentences of each language."""
    return [
        Utterance(language, voice, text, english)
        for language in languages
        for voice, pairs in [_SENTENCES[language]]
        for text, english in pairs[:per_language]
    ]


def speak(utterance: Utterance) -> np.ndarray:
    """16 kHz mono float32 speech of the utterance (deterministic for one espeak-ng version)."""
    return synthesize(utterance.text, utterance.voice, SPEED_WPM)


def write_clip(utterance: Utterance, path: Path) -> Path:
    write_wav(path, speak(utterance))
    return path
