"""Make the audio-check recordings shipped in ``study_server/participant/audio_check/`` (run once by a
developer; the server never runs it). It lives in the shell because it drives the generator's speech
synthesis and writes the server's files: the two packages meet only at those files.

    python -m emostudy.make_audio_words

Each word is spoken offline by espeak-ng (``generator.tts``) and written as 16-bit mono WAV named by its
index only (``word-3.wav``), next to ``words.json`` (the answers, read by the server, never served).
"""

from __future__ import annotations

import importlib.util
import json
import wave
from pathlib import Path

import numpy as np

WORDS = ("apple", "garden", "yellow", "window", "river", "orange", "pencil", "candle")
OUT = Path(importlib.util.find_spec("study_server").origin).parent / "participant" / "audio_check"


def main() -> None:
    from generator.tts import synthesize

    OUT.mkdir(exist_ok=True)
    for i, word in enumerate(WORDS):
        samples, rate = synthesize(word, voice="en-us", rate=140)
        pad = np.zeros(int(0.25 * rate), np.float32)
        pcm = (np.clip(np.concatenate([pad, samples, pad]), -1, 1) * 32767).astype("<i2")
        with wave.open(str(OUT / f"word-{i}.wav"), "wb") as fh:
            fh.setnchannels(1)
            fh.setsampwidth(2)
            fh.setframerate(rate)
            fh.writeframes(pcm.tobytes())
    (OUT / "words.json").write_text(json.dumps(list(WORDS), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
