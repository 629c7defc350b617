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

# Held out: more sentences per language, never used to choose voices or settings; with the
# corpus's, the detection bench (bench/language_detection.py) has five per language.
_MORE_SENTENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "de": (
        (
            "Am Wochenende besuchen wir unsere Großeltern auf dem Land.",
            "At the weekend we visit our grandparents in the countryside.",
        ),
        (
            "Der Kaffee ist heute Morgen leider viel zu kalt geworden.",
            "Unfortunately the coffee got far too cold this morning.",
        ),
        (
            "Kannst du mir bitte sagen, wo der nächste Bahnhof ist?",
            "Can you please tell me where the nearest station is?",
        ),
    ),
    "fr": (
        (
            "Ma grand-mère prépare toujours une soupe chaude en hiver.",
            "My grandmother always makes a hot soup in winter.",
        ),
        (
            "Il faut prendre le bus pour aller à la gare ce soir.",
            "We have to take the bus to go to the station this evening.",
        ),
        (
            "Nous avons visité un vieux château près de la rivière.",
            "We visited an old castle near the river.",
        ),
    ),
    "es": (
        (
            "El perro de mi vecino ladra toda la noche sin parar.",
            "My neighbour's dog barks all night without stopping.",
        ),
        (
            "Mañana vamos a comprar frutas y verduras en el mercado.",
            "Tomorrow we are going to buy fruit and vegetables at the market.",
        ),
        (
            "Mis hermanos juegan al fútbol en el parque los domingos.",
            "My brothers play football in the park on Sundays.",
        ),
    ),
    "it": (
        (
            "Mia nonna prepara sempre la pasta fatta in casa la domenica.",
            "My grandmother always makes homemade pasta on Sundays.",
        ),
        (
            "Domani mattina prendiamo l'autobus per andare al lavoro.",
            "Tomorrow morning we take the bus to go to work.",
        ),
        (
            "Il gatto dorme tutto il giorno sul divano del salotto.",
            "The cat sleeps all day on the living room sofa.",
        ),
    ),
    "pt": (
        (
            "A minha mãe faz um bolo de chocolate todos os domingos.",
            "My mother makes a chocolate cake every Sunday.",
        ),
        (
            "Amanhã vamos viajar de carro para visitar os nossos avós.",
            "Tomorrow we are travelling by car to visit our grandparents.",
        ),
        (
            "As crianças brincam na praia durante as férias de verão.",
            "The children play on the beach during the summer holidays.",
        ),
    ),
    "nl": (
        (
            "Mijn oma drinkt elke ochtend een kopje thee met melk.",
            "My grandmother drinks a cup of tea with milk every morning.",
        ),
        (
            "Morgen gaan we met de trein naar de grote stad.",
            "Tomorrow we are going to the big city by train.",
        ),
        (
            "De kinderen spelen buiten in de tuin met de hond.",
            "The children play outside in the garden with the dog.",
        ),
    ),
    "en": (
        (
            "She bought fresh bread and cheese at the market this morning.",
            "She bought fresh bread and cheese at the market this morning.",
        ),
        (
            "We will meet at the library after lunch on Friday.",
            "We will meet at the library after lunch on Friday.",
        ),
        (
            "Please close the window before you leave the house.",
            "Please close the window before you leave the house.",
        ),
    ),
}


def utterances(languages: tuple[str, ...] = LANGUAGES, per_language: int = 2) -> list[Utterance]:
    """The corpus, in a fixed order: `per_language` sentences of each language."""
    return [
        Utterance(language, voice, text, english)
        for language in languages
        for voice, pairs in [_SENTENCES[language]]
        for text, english in pairs[:per_language]
    ]


def held_out_utterances(languages: tuple[str, ...] = LANGUAGES) -> list[Utterance]:
    """Three more sentences per language, in the corpus's voices."""
    return [
        Utterance(language, _SENTENCES[language][0], text, english)
        for language in languages
        for text, english in _MORE_SENTENCES[language]
    ]


def speak(utterance: Utterance) -> np.ndarray:
    """16 kHz mono float32 speech of the utterance (deterministic for one espeak-ng version)."""
    return synthesize(utterance.text, utterance.voice, SPEED_WPM)


def write_clip(utterance: Utterance, path: Path) -> Path:
    write_wav(path, speak(utterance))
    return path
