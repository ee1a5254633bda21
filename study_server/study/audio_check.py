"""The audio check: the participant hears a spoken word and types it; the server compares.

The words ship as WAV files named by index only (``participant/audio_check/word-N.wav``); which word an
attempt plays is an HMAC of the server secret, the assignment token and the attempt number, so nothing the
client receives names the word. ``expected_word`` exists for tests and benchmarks that know the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from functools import lru_cache
from pathlib import Path

AUDIO_DIR = Path(__file__).parent / "words"


@lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    return tuple(json.loads((AUDIO_DIR / "words.json").read_text(encoding="utf-8")))


def word_index(secret_key: str, token: str, attempt: int) -> int:
    digest = hmac.new(secret_key.encode(), f"audio-check:{token}:{attempt}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") % len(words())


def expected_word(secret_key: str, token: str, attempt: int = 0) -> str:
    return words()[word_index(secret_key, token, attempt)]


def wav_path(index: int) -> Path:
    return AUDIO_DIR / f"word-{index}.wav"


def normalize(text: str) -> str:
    return re.sub(r"[^a-z]", "", str(text).lower())


def is_correct(secret_key: str, token: str, attempt: int, answer: str) -> bool:
    return hmac.compare_digest(normalize(answer), expected_word(secret_key, token, attempt))
