"""The sounds of the listening checks: a volume calibration noise and two headphone screens.

Made by our own code when a participant's page asks for them (nothing is fetched or shipped): each sound is
a pure function of a seed that the server derives from its secret, the assignment and the trial
(``study_server.participant.listening``), so a reload gets the same bytes, two participants never get the same bytes,
and nothing in a file's name, length or size tells the answer: every file of one kind has the same length
and the same number of bytes.

**Huggins pitch** (``huggins``; Milne, Bianco, Poole, Zhao, Oxenham, Billig & Chait, 2021, "An online
headphone screening test based on dichotic pitch", Behavior Research Methods 53, 1551-1562; the dichotic
stimulus after Cramer & Huggins, 1958): three intervals of Gaussian white noise, 1000 ms each, sampled at
44.1 kHz. In two intervals the noise is diotic (the same samples in both ears). In the target interval the
right ear gets the same noise with a 180-degree phase shift in a narrow band (600 Hz +/- 6 %): each ear
alone is plain white noise, and only the two ears together (headphones) give the faint tone. Question:
which noise has the tone in it?

**Antiphase** (``antiphase``; Woods, Siegel, Traer & McDermott, 2017, "Headphone screening to facilitate
web-based auditory experiments", Attention, Perception & Psychophysics 79, 2064-2072): three 200 Hz pure
tones of 1000 ms. One is 6 dB softer than the others (the target); one is in antiphase between the ears
(right = -left). Over headphones the softer tone is heard as the softest; over loudspeakers the antiphase
tone cancels in the air (Woods et al. measured more than 20 dB at 200 Hz) and is heard as the softest, so
loudspeaker listeners pick the wrong one. Question: which tone is the softest?

Both use six trials and pass at five correct by default (the spec's ``trials`` and ``pass_at``; Woods et
al.'s criterion, kept for the Huggins test). Our own choices, not from the papers: 500 ms of silence
between intervals, 10 ms (noise) and 100 ms (tones) raised-cosine ramps to avoid clicks, the level
(noise RMS -20 dBFS, tones peak -12 dBFS before the -6 dB target), a random starting phase per tone and a
one-LSB triangular dither, which change no loudness but make every file's bytes its own.

The calibration noise is 3 s of diotic white noise at the screens' noise level (RMS -20 dBFS): the
participant sets the volume to a comfortable level on it before the screen, as Milne et al. advise.
"""

from __future__ import annotations

import io
import wave

import numpy as np

RATE = 44_100  # Hz (Milne et al. 2021)
INTERVAL_S = 1.0  # each noise or tone (both papers)
GAP_S = 0.5  # silence between intervals (ours)
N_INTERVALS = 3
HUGGINS_CENTRE_HZ = 600.0  # Milne et al. 2021
HUGGINS_HALF_BAND = 0.06  # +/- 6 % around the centre (Milne et al. 2021)
ANTIPHASE_HZ = 200.0  # Woods et al. 2017
ANTIPHASE_SOFT_DB = -6.0  # the target tone (Woods et al. 2017)
NOISE_RMS = 10 ** (-20 / 20)  # -20 dBFS (ours)
TONE_PEAK = 10 ** (-12 / 20)  # -12 dBFS (ours)
CALIBRATION_S = 3.0
KINDS = ("huggins", "antiphase")


def _ramp(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n)
    r = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[:ramp], env[n - ramp:] = r, r[::-1]
    return env


def _layout(intervals: list[np.ndarray]) -> np.ndarray:
    """(samples, 2) float: the intervals (each (n, 2)) separated by silence."""
    gap = np.zeros((int(GAP_S * RATE), 2))
    parts: list[np.ndarray] = []
    for i, x in enumerate(intervals):
        if i:
            parts.append(gap)
        parts.append(x)
    return np.concatenate(parts)


def huggins_interval(rng: np.random.Generator, *, dichotic: bool) -> np.ndarray:
    """(n, 2): white noise; with ``dichotic`` the right ear's band around 600 Hz is phase-inverted."""
    n = int(INTERVAL_S * RATE)
    left = rng.standard_normal(n)
    left *= NOISE_RMS / np.sqrt(np.mean(left ** 2))
    right = left.copy()
    if dichotic:
        spectrum = np.fft.rfft(left)
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        band = np.abs(freqs - HUGGINS_CENTRE_HZ) <= HUGGINS_HALF_BAND * HUGGINS_CENTRE_HZ
        spectrum[band] *= -1  # 180 degrees
        right = np.fft.irfft(spectrum, n)
    env = _ramp(n, int(0.010 * RATE))
    return np.stack([left * env, right * env], axis=1)


def antiphase_interval(rng: np.random.Generator, *, soft: bool, antiphase: bool) -> np.ndarray:
    n = int(INTERVAL_S * RATE)
    phase = rng.uniform(0, 2 * np.pi)
    tone = np.sin(2 * np.pi * ANTIPHASE_HZ * np.arange(n) / RATE + phase) * _ramp(n, int(0.100 * RATE))
    tone *= TONE_PEAK * (10 ** (ANTIPHASE_SOFT_DB / 20) if soft else 1.0)
    return np.stack([tone, -tone if antiphase else tone], axis=1)


def screen_trial(kind: str, seed: int, target: int, *, other: int | None = None) -> np.ndarray:
    """(samples, 2) float in [-1, 1]: one trial of ``kind`` whose answer is interval ``target`` (0-2).

    ``other``: the antiphase tone's interval (antiphase only; must differ from ``target``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown screen kind {kind!r}; use one of {', '.join(KINDS)}")
    if not 0 <= target < N_INTERVALS:
        raise ValueError(f"target {target} must be 0, 1 or 2")
    rng = np.random.default_rng(seed)
    if kind == "huggins":
        parts = [huggins_interval(rng, dichotic=i == target) for i in range(N_INTERVALS)]
    else:
        if other is None or other == target or not 0 <= other < N_INTERVALS:
            raise ValueError("antiphase needs the antiphase tone in another interval than the soft one")
        parts = [antiphase_interval(rng, soft=i == target, antiphase=i == other) for i in range(N_INTERVALS)]
    return _layout(parts)


def calibration_noise(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(CALIBRATION_S * RATE)
    x = rng.standard_normal(n)
    x *= NOISE_RMS / np.sqrt(np.mean(x ** 2))
    x *= _ramp(n, int(0.050 * RATE))
    return np.stack([x, x], axis=1)


def wav_bytes(signal: np.ndarray, seed: int) -> bytes:
    """16-bit stereo WAV of ``signal`` ((samples, 2) float), with a one-LSB triangular dither from ``seed``."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    dither = rng.uniform(-0.5, 0.5, signal.shape) + rng.uniform(-0.5, 0.5, signal.shape)
    pcm = np.clip(np.round(signal * 32767 + dither), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as fh:
        fh.setnchannels(2)
        fh.setsampwidth(2)
        fh.setframerate(RATE)
        fh.writeframes(pcm.tobytes())
    return buf.getvalue()
