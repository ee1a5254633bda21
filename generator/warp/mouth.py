"""Speech -> mouth movement, one value per 25 fps video frame.

Features, on an 80 ms Hann window centred on each frame (frame t covers samples [320 t, 320 (t+1))
at 8 kHz, NOTES.md):

- **opening** in [0, 1] from the amplitude envelope: the RMS amplitude relative to the loud end (the
  90th percentile of the level over speech frames), raised to the power 0.7 (compressive, like
  loudness: a sound 10 dB down opens the mouth 45 %, 20 dB down 20 %), and mapped to 0 at a floor
  25 dB below the loud end (never below -55 dBFS). Vowels open the mouth, weaker consonants part of
  the way, stop closures, /m/, /b/, /p/ and pauses (digital silence included) leave it closed. The
  mouth's aperture follows the amplitude envelope of speech (Chandrasekaran et al. 2009, "The natural
  statistics of audiovisual speech", PLoS Comput Biol 5(7)); a map linear in dB (the earlier one)
  held the mouth two-thirds open through consonants 10 dB down, so the mouth was wide open most of
  the time and its opening followed the envelope less closely.
- **spreading / rounding** in [0, 1] from the spectrum: the balance of energy between 1.0-3.5 kHz and
  0.15-1.0 kHz. Front vowels (/i/, /e/) put energy high (a high second formant) and are made with
  spread lips; back rounded vowels (/u/, /o/) put it low (a low F2) and round the lips. The balance is
  standardised over the utterance's speech frames and squashed with tanh; positive -> spreading,
  negative -> rounding, both scaled by the opening (closed lips do not spread or round much).

Tracks are smoothed with a Gaussian over time (sigma 0.8 frame for the opening: lips move at up to
~10 Hz; 1.5 frames for the shape), and the smoothed opening is zeroed again wherever the unsmoothed
one is 0 for 3 frames or more, so smoothing never leaks an open mouth into a pause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.audio import MODEL_RATE, SAMPLES_PER_FRAME, n_frames
from generator.warp.expression import eye_distance

WINDOW = 640  # samples, 80 ms at 8 kHz
FLOOR_DB = -55.0  # dBFS: below this the mouth is always closed
SPEECH_RANGE_DB = 40.0  # frames within 40 dB of the loud end count as speech (for the statistics)
OPEN_RANGE_DB = 25.0  # the opening goes from 0 to 1 over the top 25 dB of the speech frames
OPEN_EXPONENT = 0.7  # opening ~ (amplitude / loud end) ** 0.7 (module docstring)


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth controls (T,) each; ``level_db`` is the raw RMS level for diagnostics."""

    opening: np.ndarray
    spreading: np.ndarray
    rounding: np.ndarray
    level_db: np.ndarray


def _frames(speech: np.ndarray, n: int, rate: int) -> np.ndarray:
    hop = SAMPLES_PER_FRAME * rate // MODEL_RATE
    win = WINDOW * rate // MODEL_RATE
    x = np.asarray(speech, dtype=np.float64)
    pad = win // 2
    xp = np.pad(x, (pad, pad + n * hop))
    centres = np.arange(n) * hop + hop // 2 + pad  # the centre of frame t, in xp
    idx = centres[:, None] - win // 2 + np.arange(win)[None, :]
    return xp[idx] * np.hanning(win)[None, :]  # (T, win)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    from scipy.ndimage import gaussian_filter1d  # optional heavy dependency: imported only when used

    return gaussian_filter1d(x, sigma, mode="nearest")


def speech_features(speech: np.ndarray, rate: int = MODEL_RATE, n: int | None = None) -> MouthTrack:
    """Mouth controls for each of the ``n`` (default ceil(L / 320)) frames (module docstring)."""
    x = np.asarray(speech, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"speech must be mono (N,), got shape {x.shape}")
    if n is None:
        n = n_frames(len(x) * MODEL_RATE // rate)
    if n == 0:
        empty = np.zeros(0)
        return MouthTrack(empty, empty, empty, empty)
    frames = _frames(x, n, rate)
    win_energy = float((np.hanning(frames.shape[1]) ** 2).sum())
    rms = np.sqrt((frames ** 2).sum(1) / win_energy)
    level = 20.0 * np.log10(np.maximum(rms, 1e-9))
    loud = float(np.percentile(level, 95))
    active = level > max(FLOOR_DB, loud - SPEECH_RANGE_DB)  # frames with speech in them
    top = float(np.percentile(level[active], 90)) if active.any() else FLOOR_DB
    floor = max(FLOOR_DB, top - OPEN_RANGE_DB)
    amp = 10.0 ** (OPEN_EXPONENT * (np.minimum(level, top) - top) / 20.0)
    amp_floor = 10.0 ** (OPEN_EXPONENT * (floor - top) / 20.0) if top > floor else 1.0
    raw_open = np.clip((amp - amp_floor) / max(1.0 - amp_floor, 1e-6), 0.0, 1.0) * (level > floor)

    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / rate)
    low = spec[:, (freqs >= 150) & (freqs < 1000)].sum(1)
    high = spec[:, (freqs >= 1000) & (freqs < 3500)].sum(1)
    balance = np.log10((high + 1e-12) / (low + 1e-12))
    if active.sum() >= 2:
        mu, sd = balance[active].mean(), balance[active].std()
        z = (balance - mu) / max(sd, 1e-3)
    else:
        z = np.zeros(n)
    shape = np.tanh(0.8 * z) * active

    opening = np.clip(_smooth(raw_open, 0.8), 0.0, 1.0)
    # Keep pauses closed: zero the smoothed track inside runs of >= 3 silent frames.
    silent = raw_open <= 0.0
    run = np.convolve(silent.astype(int), np.ones(3, int), mode="same") >= 3
    closed = silent & (run | np.roll(run, 1) | np.roll(run, -1))
    opening[closed] = 0.0
    shape_s = _smooth(shape, 1.5)
    spreading = np.clip(shape_s, 0.0, 1.0) * opening
    rounding = np.clip(-shape_s, 0.0, 1.0) * opening
    return MouthTrack(opening, spreading, rounding, level)


# Displacements of the mouth controls at 1.0, in eye distances (image-left half; mirrored like AUs).
# Jaw opening: lower lip, chin and lower jaw go down (less towards the ears), the upper lip up a little,
# the corners in and down a little; a loud open vowel parts the inner lips by ~0.22 eye distances
# (~8 px in the 128 template), typical of conversational speech rather than a shout.
OPEN: dict[int, tuple[float, float]] = {
    66: (0.0, 0.19), 67: (0.0, 0.18), 65: (0.0, 0.18),
    57: (0.0, 0.18), 58: (0.0, 0.17), 56: (0.0, 0.17), 59: (0.0, 0.12), 55: (0.0, 0.12),
    62: (0.0, -0.035), 61: (0.0, -0.03), 63: (0.0, -0.03), 51: (0.0, -0.02), 50: (0.0, -0.015),
    52: (0.0, -0.015),
    48: (0.02, 0.05), 54: (-0.02, 0.05), 60: (0.02, 0.05), 64: (-0.02, 0.05),
    8: (0.0, 0.14), 7: (0.0, 0.13), 9: (0.0, 0.13), 6: (0.0, 0.10), 10: (0.0, 0.10),
    5: (0.0, 0.05), 11: (0.0, 0.05), 4: (0.0, 0.02), 12: (0.0, 0.02),
}
# Spreading: corners out, lips flatter.
SPREAD: dict[int, tuple[float, float]] = {
    48: (-0.08, -0.01), 54: (0.08, -0.01), 60: (-0.07, -0.01), 64: (0.07, -0.01),
    49: (-0.03, 0.0), 53: (0.03, 0.0), 59: (-0.03, 0.0), 55: (0.03, 0.0),
    61: (-0.02, 0.0), 63: (0.02, 0.0), 67: (-0.02, 0.0), 65: (0.02, 0.0),
}
# Rounding: corners in, the lips pushed into a rounder opening.
ROUND: dict[int, tuple[float, float]] = {
    48: (0.10, 0.0), 54: (-0.10, 0.0), 60: (0.09, 0.0), 64: (-0.09, 0.0),
    49: (0.05, -0.01), 53: (-0.05, -0.01), 59: (0.05, 0.01), 55: (-0.05, 0.01),
    61: (0.03, -0.01), 63: (-0.03, -0.01), 67: (0.03, 0.01), 65: (-0.03, 0.01),
    50: (0.015, -0.01), 52: (-0.015, -0.01), 58: (0.015, 0.01), 56: (-0.015, 0.01),
}


def _table(entries: dict[int, tuple[float, float]]) -> np.ndarray:
    t = np.zeros((68, 2))
    for i, d in entries.items():
        t[i] = d
    return t


OPEN_TABLE, SPREAD_TABLE, ROUND_TABLE = _table(OPEN), _table(SPREAD), _table(ROUND)


# The part of OPEN that the jaw makes (lower lip, chin, jaw line): an expression that already drops the jaw
# or parts the lips (fear: AU25/26) and speech share it (``mouth_displacement``).
JAW_POINTS = [i for i, (_, dy) in OPEN.items() if dy > 0 and i not in (48, 54, 60, 64)]
HELD_SHARE = 0.5  # speech's jaw movement is reduced by this share of the jaw drop the expression holds
UPPER_LIP = [49, 50, 51, 52, 53, 61, 62, 63]
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


def mouth_displacement(track: MouthTrack, lm68: np.ndarray, held: np.ndarray | None = None) -> np.ndarray:
    """(T, 68, 2) pixel displacements of the mouth controls on a face with landmarks ``lm68``.

    ``held`` (T, 68, 2), optional: the displacement the face already has from its expression; speech and
    the expression share the lips and the jaw:

    - where the expression holds the jaw down and the lips parted (fear's AU25/26), speech opens the jaw
      from that parted rest, adding ``1 - HELD_SHARE * held / OPEN`` of its movement (at the lower inner
      lip, point 66), not all of it: a loud vowel in fear is a little more open than in neutral speech,
      not a shout, and the mouth still opens linearly with the speech opening;
    - where the expression presses the lips together (anger's AU23/24), opening the jaw parts them: the
      pressing part of the lips' vertical displacement fades out as the speech opening goes to 1;
    - a raised upper lip (disgust's AU10) does not share the jaw and adds."""
    unit = eye_distance(lm68)
    n = len(track.opening)
    o = track.opening[:, None, None]
    d = o * np.broadcast_to(OPEN_TABLE, (n, 68, 2))
    if held is not None and n:
        h = np.asarray(held, dtype=np.float64) / unit  # eye distances
        drop = np.clip(h[:, 66, 1], 0.0, None)
        share = np.clip(1.0 - HELD_SHARE * drop / OPEN_TABLE[66, 1], 0.0, 1.0)
        d = d.copy()
        d[:, JAW_POINTS, :] *= share[:, None, None]
        d[:, UPPER_LIP, 1] -= o[:, :, 0] * np.clip(h[:, UPPER_LIP, 1], 0.0, None)  # upper lip pressed down
        d[:, LOWER_LIP, 1] -= o[:, :, 0] * np.clip(h[:, LOWER_LIP, 1], None, 0.0)  # lower lip pushed up
    d = d + track.spreading[:, None, None] * SPREAD_TABLE + track.rounding[:, None, None] * ROUND_TABLE
    return d * unit
