"""CREMA-D file names: ``ActorID_SentenceCode_EmotionCode_IntensityCode`` (e.g. ``1001_DFA_ANG_XX``).

Shared by the importer (``stimuli.imports``) and the generator's data preparation. CREMA-D: 91 actors
(1001-1091), 12 sentences, 6 emotions, intensity XX (unspecified), LO, MD, HI.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePath

from stimuli.emotions import EMOTION_CODES, EMOTIONS, INTENSITY_CODES
from stimuli.errors import ImportSourceError

# The 12 sentences of CREMA-D, by code.
CREMA_SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}

_NAME_RE = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{2})$")


@dataclass(frozen=True)
class CremaName:
    """The parts of a CREMA-D clip name. ``emotion`` is the canonical name ('anger', ...)."""

    actor: str  # "1001"
    sentence: str  # code, "DFA"
    emotion: str  # canonical emotion name
    intensity: str  # XX, LO, MD or HI

    @property
    def sentence_text(self) -> str:
        return CREMA_SENTENCES[self.sentence]

    @property
    def emotion_code(self) -> str:
        return EMOTION_CODES[EMOTIONS.index(self.emotion)]

    @property
    def stem(self) -> str:
        """The canonical clip name, ``1001_DFA_ANG_XX``."""
        return f"{self.actor}_{self.sentence}_{self.emotion_code}_{self.intensity}"

    def __str__(self) -> str:
        return self.stem


def parse_crema_name(name: str | os.PathLike) -> CremaName:
    """Parse a CREMA-D clip name; a path or a name with an extension is accepted.

    >>> parse_crema_name("VideoFlash/1001_DFA_ANG_XX.flv")
    CremaName(actor='1001', sentence='DFA', emotion='anger', intensity='XX')

    Raises ``ImportSourceError`` naming the part that is wrong.
    """
    raw = str(name)
    stem = PurePath(raw).name
    if "." in stem:
        stem = stem.split(".", 1)[0]
    m = _NAME_RE.match(stem)
    if not m:
        raise ImportSourceError(
            f"{raw!r} is not a CREMA-D clip name: expected ActorID_Sentence_Emotion_Intensity "
            "such as 1001_DFA_ANG_XX (4 digits, 3 letters, 3 letters, 2 letters)")
    actor, sentence, emotion, intensity = m.groups()
    sentence, emotion, intensity = sentence.upper(), emotion.upper(), intensity.upper()
    if sentence not in CREMA_SENTENCES:
        raise ImportSourceError(f"{raw!r}: unknown CREMA-D sentence code {sentence!r}; "
                                f"known codes: {', '.join(sorted(CREMA_SENTENCES))}")
    if emotion not in EMOTION_CODES:
        raise ImportSourceError(f"{raw!r}: unknown CREMA-D emotion code {emotion!r}; "
                                f"known codes: {', '.join(EMOTION_CODES)}")
    if intensity not in INTENSITY_CODES:
        raise ImportSourceError(f"{raw!r}: unknown CREMA-D intensity code {intensity!r}; "
                                f"known codes: {', '.join(INTENSITY_CODES)}")
    return CremaName(actor=actor, sentence=sentence, emotion=EMOTIONS[EMOTION_CODES.index(emotion)],
                     intensity=intensity)
