"""Seeded signs of life: slow head motion and blinks. Same seed, same motion; frame 0 is at rest.

Head motion is a small similarity per frame (roll angle, translation, scale) about the nose: Gaussian
noise low-pass filtered (sigma 0.5 s, so it drifts over a second or two like a resting head), with
standard deviations of 1.2 degrees roll, 0.8 % / 0.6 % of the frame in x / y and 0.6 % in scale,
plus a small nod down with loud speech. Each track is shifted so frame 0 is the photo's pose, as in
the paper's clips ("the faces start from the same spatial location but can wander off", IV-A).

Blinks: spontaneous blink rates are ~17/min at rest and ~26/min in conversation (Bentivoglio et al.
1997, "Analysis of blink rate patterns in normal subjects", Movement Disorders 12(6)); we draw
intervals from a gamma distribution with mean 3.0 s (20/min) and a 0.75 s minimum, the first blink
0.6-2.5 s in. A blink lasts 6 frames (240 ms; full blinks last ~100-400 ms): it closes in 2 frames
and opens in 3, as the lid's closing is faster than its opening.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLINK_PROFILE = np.array([0.55, 1.0, 1.0, 0.6, 0.3, 0.1])
MEAN_INTERVAL_S = 3.0
MIN_INTERVAL_S = 0.75
HEAD_SIGMA_S = 0.5
ROLL_DEG, TX, TY, SCALE = 1.2, 0.008, 0.006, 0.006
NOD = 0.004  # y shift (fraction of the frame) at full mouth opening, smoothed


@dataclass(frozen=True)
class LifeTrack:
    """Per-frame blink closure (T,) in [0, 1] and head pose (T, 4): roll degrees, tx, ty (pixels),
    log scale."""

    blink: np.ndarray
    head: np.ndarray


def blink_track(n: int, rng: np.random.Generator, fps: int = 25) -> np.ndarray:
    """(n,) eyelid closure: 0 open, 1 closed."""
    closure = np.zeros(n)
    t = rng.uniform(0.6, 2.5)
    while True:
        start = int(round(t * fps))
        if start >= n:
            break
        seg = BLINK_PROFILE[: n - start]
        closure[start:start + len(seg)] = np.maximum(closure[start:start + len(seg)], seg)
        t += MIN_INTERVAL_S + rng.gamma(2.5, (MEAN_INTERVAL_S - MIN_INTERVAL_S) / 2.5)
    return closure


def head_track(n: int, rng: np.random.Generator, size: int, opening: np.ndarray | None = None,
               fps: int = 25) -> np.ndarray:
    """(n, 4) roll (degrees), tx, ty (pixels), log scale; frame 0 is (0, 0, 0, 0)."""
    from scipy.ndimage import gaussian_filter1d  # optional heavy dependency: imported only when used

    sigma = HEAD_SIGMA_S * fps
    pad = int(3 * sigma)
    raw = rng.standard_normal((n + 2 * pad, 4))
    smooth = gaussian_filter1d(raw, sigma, axis=0)[pad:pad + n]
    # Unit variance for the filtered noise: white noise through a Gaussian of sigma s has
    # variance 1 / (2 sqrt(pi) s).
    smooth *= np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
    head = smooth * np.array([ROLL_DEG, TX * size, TY * size, SCALE])
    if opening is not None and len(opening):
        head[:, 2] += NOD * size * gaussian_filter1d(np.asarray(opening, dtype=np.float64), 3.0)
    return head - head[:1]


def life_track(n: int, seed: int, size: int, opening: np.ndarray | None = None, fps: int = 25) -> LifeTrack:
    """Blinks and head motion for ``n`` frames from ``seed`` (independent streams, so turning one
    off does not change the other)."""
    blink_rng, head_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
    return LifeTrack(blink=blink_track(n, blink_rng, fps), head=head_track(n, head_rng, size, opening, fps))


def head_matrix(pose: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """2x3 similarity for one pose (roll degrees, tx, ty, log scale) about ``centre``."""
    a = np.deg2rad(pose[0])
    s = float(np.exp(pose[3]))
    r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, dtype=np.float64)
    return np.hstack([r, (c - r @ c + pose[1:3])[:, None]])


def blink_displacement(lm68: np.ndarray, closure: float) -> np.ndarray:
    """(68, 2): upper lids (37, 38 / 43, 44) down onto the lower lids (41, 40 / 47, 46), the lower lids
    up a little."""
    lm = np.asarray(lm68, dtype=np.float64)
    d = np.zeros((68, 2))
    if closure <= 0:
        return d
    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    span = lm[lower] - lm[upper]
    d[upper] = 0.9 * closure * span
    d[lower] = -0.1 * closure * span
    return d
