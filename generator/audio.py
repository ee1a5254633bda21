"""Speech in: any common audio (or video) file -> mono float32 at the renderer's rate.

The reference convention (NOTES.md): 8 kHz mono, mean removed, peak-normalised (x / max|x|).
"""

from __future__ import annotations

import os
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from generator.errors import InputError

MODEL_RATE = 8000  # Hz, paper IV-A
SAMPLES_PER_FRAME = 320  # 8000 / 25 fps
MIN_DURATION_S = 0.2


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a file: returns (samples (N,) float32 in [-1, 1], rate).

    Stereo and multi-channel audio is mixed down to mono by averaging the channels.
    """
    import av  # optional heavy dependency: imported only when used

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: speech file not found")
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise InputError(f"{p}: has no audio stream; give a speech recording (wav, mp3, flac, m4a, ...)")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate)
            chunks = []
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                fmt = frame.format
                if fmt.is_planar:
                    arr = arr.astype(np.float64)  # (channels, n)
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T.astype(np.float64)
                if fmt.name.startswith("s16"):
                    arr /= 32768.0
                elif fmt.name.startswith("s32"):
                    arr /= 2147483648.0
                elif fmt.name.startswith("u8"):
                    arr = (arr - 128.0) / 128.0
                chunks.append(arr.mean(axis=0))
    except InputError:
        raise
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise InputError(f"{p}: cannot be decoded as audio ({exc}); convert it to WAV or another common format") from None
    if not chunks:
        raise InputError(f"{p}: the audio stream is empty")
    return np.concatenate(chunks).astype(np.float32), rate


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy) from ``rate`` to ``target`` Hz."""
    if rate == target:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly  # optional heavy dependency: imported only when used

    frac = Fraction(target, rate).limit_denominator(1000)
    return resample_poly(x.astype(np.float64), frac.numerator, frac.denominator).astype(np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    """Mean removed, peak-normalised (NOTES.md). Silence stays zeros (no division by zero)."""
    x = x.astype(np.float32) - np.float32(x.mean()) if x.size else x.astype(np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    return x / peak if peak > 1e-8 else np.zeros_like(x)


def load_speech(path: str | os.PathLike, rate: int = MODEL_RATE, *, min_duration_s: float = MIN_DURATION_S,
                allow_silent: bool = False) -> np.ndarray:
    """Any speech file -> (N,) float32 at ``rate``, mono, mean-removed, peak-normalised.

    Refuses (with the file name and the fix) a recording shorter than ``min_duration_s`` and, unless
    ``allow_silent``, one that is digitally silent.
    """
    x, r = read_audio(path)
    dur = len(x) / r
    if dur < min_duration_s:
        raise InputError(f"{path}: speech is {dur:.2f} s long; at least {min_duration_s:.1f} s is needed "
                         "(one video frame is 40 ms)")
    if not allow_silent and float(np.abs(x).max()) < 1e-4:
        raise InputError(f"{path}: the recording is silent; give a speech recording with audible speech")
    return normalise(resample(x, r, rate))


def n_frames(n_samples: int, samples_per_frame: int = SAMPLES_PER_FRAME) -> int:
    """T = ceil(L / 320) (NOTES.md)."""
    return -(-int(n_samples) // samples_per_frame)


def write_wav(path: str | os.PathLike, x: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV (stdlib ``wave``)."""
    pcm = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    pcm = (pcm * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
