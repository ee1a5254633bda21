"""The six categorical emotions, in the order of the reference implementation's one-hot vector.

NOTES.md: one-hot of length 6 in the order ANG, DIS, FEA, HAP, NEU, SAD (CREMA-D codes).
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness")
EMOTION_CODES: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")

_ALIASES = {
    **{name: name for name in EMOTIONS},
    **{code.lower(): name for code, name in zip(EMOTION_CODES, EMOTIONS)},
    "angry": "anger",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
}

# CREMA-D intensity codes: unspecified, low, medium, high.
INTENSITY_CODES: tuple[str, ...] = ("XX", "LO", "MD", "HI")


def parse_emotion(value: str) -> str:
    """Return the canonical emotion name for a name, CREMA-D code or common alias.

    >>> parse_emotion("HAP")
    'happiness'
    """
    key = str(value).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(
        f"unknown emotion {value!r}: use one of {', '.join(EMOTIONS)} "
        f"(or the CREMA-D codes {', '.join(EMOTION_CODES)})"
    )


def emotion_index(value: str) -> int:
    """Index of an emotion in the one-hot order (anger=0 ... sadness=5)."""
    return EMOTIONS.index(parse_emotion(value))


def emotion_code(value: str) -> str:
    """CREMA-D code of an emotion ('happiness' -> 'HAP')."""
    return EMOTION_CODES[emotion_index(value)]
