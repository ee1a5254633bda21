"""Make the audio-check recordings shipped in ``study_server/study/words/`` (run once by a
developer; the server never runs it). It lives in the shell because it drives the generator's speech
synthesis and writes the server's files: the two packages meet only at those files.

    python -m emostudy.make_audio_words

Each word is spoken offline by espeak-ng (``generator.data.tts``) and written as 16-bit mono WAV named by its
index only (``word-3.wav``), next to ``words.json`` (the answers, read by the server, never served).

Every file has the same length, hence the same size (``equal_length``): the longest word plus
``MARGIN_S`` of silence on each side, each word centred. A file's ``Content-Length`` or duration then
tells nothing about which word it holds; only listening does.
"""

from __future__ import annotations

import importlib.util
import json
import wave
from pathlib import Path

import numpy as np

WORDS = ("apple", "garden", "yellow", "window", "river", "orange", "pencil", "candle")
OUT = Path(importlib.util.find_spec("study_server").origin).parent / "participant" / "audio_check"
MARGIN_S = 0.25


def equal_length(clips: list[np.ndarray], rate: int, margin_s: float = MARGIN_S) -> list[np.ndarray]:
    """``clips`` centred in silence to one length: the longest clip + ``margin_s`` on each side."""
    n = max(len(c) for c in clips) + 2 * int(round(margin_s * rate))
    out = []
    for c in clips:
        before = (n - len(c)) // 2
        out.append(np.concatenate([np.zeros(before, np.float32), c.astype(np.float32),
                                   np.zeros(n - len(c) - before, np.float32)]))
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(pcm.tobytes())


def main() -> None:
    from generator.data.tts import synthesize

    OUT.mkdir(exist_ok=True)
    spoken = [synthesize(word, voice="en-us", rate=140) for word in WORDS]
    rates = {rate for _, rate in spoken}
    assert len(rates) == 1, rates  # espeak-ng speaks at one rate
    rate = rates.pop()
    for i, samples in enumerate(equal_length([s for s, _ in spoken], rate)):
        write_wav(OUT / f"word-{i}.wav", samples, rate)
    (OUT / "words.json").write_text(json.dumps(list(WORDS), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
