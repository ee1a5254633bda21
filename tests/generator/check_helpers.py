"""Small clips for the check tests: warp renders of the shipped faces with a syllabic test signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 8000
FPS = 25


def syllables(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: voiced bursts of random length and loudness separated by random pauses, so
    that the envelope's autocorrelation has one clear peak (a periodic envelope would make lags ambiguous)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    env = np.zeros(n)
    pos = int(0.1 * RATE)
    while pos < n:
        length = int(rng.uniform(0.08, 0.3) * RATE)
        seg = np.sin(np.linspace(0, np.pi, length)) * rng.uniform(0.4, 1.0)
        env[pos:pos + length] = seg[: max(0, min(length, n - pos))]
        pos += length + int(rng.uniform(0.05, 0.25) * RATE)
    t = np.arange(n) / RATE
    voice = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 6))
    x = env * voice
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def render_mp4(path: Path, face: np.ndarray, audio: np.ndarray, emotion: str, *, audio_delay_frames: int = 0,
               seed: int = 1) -> Path:
    """A 128x128 warp clip of ``face`` speaking ``audio``; the file's audio track can be delayed."""
    from generator.mediaio import write_mp4
    from generator.warp.renderer import WarpRenderer

    frames = WarpRenderer().render(face, audio, emotion, seed).frames
    track = audio
    if audio_delay_frames:
        shift = audio_delay_frames * RATE // FPS
        track = np.concatenate([np.zeros(shift, np.float32), audio])[: len(audio)]
    write_mp4(path, frames, FPS, track, RATE)
    return path
