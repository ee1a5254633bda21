"""The audio check: the participant hears a spoken word and types it; the server compares.

The words ship as WAV files named by index only (``participant/audio_check/word-N.wav``); which word an
attempt plays is an HMAC of the server secret, the assignment token and the attempt number, so nothing the
client receives names the word. ``expected_word`` exists for tests and benchmarks that know the secret.

The bytes served differ per participant and attempt (issue 29: the 8 shipped files were recognised by their
sha256): ``word_wav`` mixes the word with low-level white noise (RMS ``NOISE_DBFS``, -60 dBFS, far under
the speech) drawn from an HMAC of the secret, the token and the attempt. All words have the same length.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import wave
from functools import lru_cache
from pathlib import Path

import numpy as np

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


NOISE_DBFS = -60.0


@lru_cache(maxsize=16)
def _word_samples(index: int) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(wav_path(index)), "rb") as w:
        return (w.getnchannels(), w.getsampwidth(), w.getframerate()), w.readframes(w.getnframes())


def word_wav(secret_key: str, token: str, attempt: int) -> bytes:
    """The WAV of the attempt's word for this participant: the word plus their own low-level noise."""
    (channels, width, rate), frames = _word_samples(word_index(secret_key, token, attempt))
    if width != 2:
        raise ValueError(f"{wav_path(word_index(secret_key, token, attempt))}: 16-bit PCM expected")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    seed = hmac.new(secret_key.encode(), f"audio-noise:{token}:{attempt}".encode(), hashlib.sha256).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:8], "big"))
    noise = rng.standard_normal(samples.shape) * (32767.0 * 10 ** (NOISE_DBFS / 20))
    mixed = np.clip(np.rint(samples + noise), -32768, 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(mixed.tobytes())
    return out.getvalue()


def normalize(text: str) -> str:
    return re.sub(r"[^a-z]", "", str(text).lower())


def is_correct(secret_key: str, token: str, attempt: int, answer: str) -> bool:
    return hmac.compare_digest(normalize(answer), expected_word(secret_key, token, attempt))
