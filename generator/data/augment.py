"""Photometric augmentation of training clips (paper IV-A; NOTES.md "Augmentation").

The paper used Albumentations with: brightness, contrast, gamma, hue, saturation, value, CLAHE,
Gaussian noise, channel shuffle and RGB shift, the SAME transform on every frame of a clip, the whole
set applied with probability 0.8. We implement that set ourselves with numpy + OpenCV so that the
parameters are explicit and seeded:

1. ``sample_params(rng, ...)`` draws one :class:`AugmentParams` for a clip (which transforms are on and
   their amounts). Everything random about a clip is in that object, so it can be logged or replayed.
2. ``apply_params(video, params)`` applies it to every frame, in a fixed order.

Frames are (N, H, W, 3) uint8 **BGR** (the corpus convention). Each transform has its own probability
inside the set (the defaults follow Albumentations' defaults for the named transforms); the set as a
whole is applied with ``p`` (0.8).

Gaussian noise: one noise field is drawn per clip and added to every frame, so the transform is
literally the same on every frame (what a replayed Albumentations transform does too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the transforms (Albumentations' defaults for the named transforms)."""

    p: float = 0.8  # probability that the set is applied to a clip at all (NOTES.md)
    p_each: float = 0.5  # probability of each transform inside the set
    brightness_limit: float = 0.2  # beta in [-0.2, 0.2] * 255 added
    contrast_limit: float = 0.2  # alpha in [0.8, 1.2] multiplied
    gamma_limit: tuple[float, float] = (80.0, 120.0)  # gamma in [0.8, 1.2]
    hue_shift_limit: float = 20.0  # OpenCV hue units (0..180) for uint8
    sat_shift_limit: float = 30.0
    val_shift_limit: float = 20.0
    clahe_clip_limit: tuple[float, float] = (1.0, 4.0)
    clahe_tile_grid: int = 8
    noise_var_limit: tuple[float, float] = (10.0, 50.0)  # variance in (uint8 units)^2
    rgb_shift_limit: float = 20.0


@dataclass(frozen=True)
class AugmentParams:
    """One clip's transform. ``None`` means that transform is off."""

    applied: bool
    brightness_contrast: tuple[float, float] | None = None  # (alpha, beta in [0,1] units of 255)
    gamma: float | None = None
    hsv_shift: tuple[float, float, float] | None = None  # (hue, sat, val)
    clahe_clip: float | None = None
    noise_sigma: float | None = None
    noise_seed: int | None = None
    channel_order: tuple[int, int, int] | None = None
    rgb_shift: tuple[float, float, float] | None = None  # added to (R, G, B)


def _rng(seed_or_rng: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def sample_params(seed_or_rng: int | np.random.Generator | None, config: AugmentConfig = AugmentConfig()
                  ) -> AugmentParams:
    """Draw one clip's augmentation. Deterministic for an int seed."""
    rng = _rng(seed_or_rng)
    c = config
    # Always draw every number, in a fixed order, so a seed maps to the same amounts whatever is on.
    applied = rng.random() < c.p
    on = rng.random(7) < c.p_each
    alpha = 1.0 + rng.uniform(-c.contrast_limit, c.contrast_limit)
    beta = rng.uniform(-c.brightness_limit, c.brightness_limit)
    gamma = rng.uniform(*c.gamma_limit) / 100.0
    hsv = (rng.uniform(-c.hue_shift_limit, c.hue_shift_limit), rng.uniform(-c.sat_shift_limit, c.sat_shift_limit),
           rng.uniform(-c.val_shift_limit, c.val_shift_limit))
    clip = rng.uniform(*c.clahe_clip_limit)
    sigma = float(np.sqrt(rng.uniform(*c.noise_var_limit)))
    noise_seed = int(rng.integers(0, 2**31 - 1))
    order = tuple(int(i) for i in rng.permutation(3))
    shift = tuple(float(v) for v in rng.uniform(-c.rgb_shift_limit, c.rgb_shift_limit, size=3))
    if not applied:
        return AugmentParams(applied=False)
    return AugmentParams(
        applied=True,
        brightness_contrast=(float(alpha), float(beta)) if on[0] else None,
        gamma=float(gamma) if on[1] else None,
        hsv_shift=tuple(float(v) for v in hsv) if on[2] else None,  # type: ignore[arg-type]
        clahe_clip=float(clip) if on[3] else None,
        noise_sigma=sigma if on[4] else None,
        noise_seed=noise_seed if on[4] else None,
        channel_order=order if on[5] else None,  # type: ignore[arg-type]
        rgb_shift=shift if on[6] else None,  # type: ignore[arg-type]
    )


def _lut(fn) -> np.ndarray:
    x = np.arange(256, dtype=np.float64)
    return np.clip(np.round(fn(x)), 0, 255).astype(np.uint8)


def apply_params(video: np.ndarray, params: AugmentParams, *, tile_grid: int = 8) -> np.ndarray:
    """Apply one clip's transform to every frame of ``video`` ((N, H, W, 3) or (H, W, 3) uint8 BGR)."""
    import cv2  # optional heavy dependency: imported only when used

    video = np.asarray(video)
    if video.dtype != np.uint8 or video.shape[-1] != 3 or video.ndim not in (3, 4):
        raise ValueError(f"augment: need (N,H,W,3) or (H,W,3) uint8 BGR frames, got {video.shape} {video.dtype}")
    single = video.ndim == 3
    out = video[None].copy() if single else video.copy()
    if not params.applied:
        return out[0] if single else out
    n, h, w, _ = out.shape

    if params.brightness_contrast is not None:
        alpha, beta = params.brightness_contrast
        out = cv2.LUT(out, _lut(lambda x: x * alpha + beta * 255.0))
    if params.gamma is not None:
        g = params.gamma
        out = cv2.LUT(out, _lut(lambda x: 255.0 * (x / 255.0) ** g))
    if params.hsv_shift is not None:
        dh, ds, dv = params.hsv_shift
        lut_h = ((np.arange(256) + dh) % 180).astype(np.uint8)
        lut_s = _lut(lambda x: x + ds)
        lut_v = _lut(lambda x: x + dv)
        for i in range(n):
            hsv = cv2.cvtColor(out[i], cv2.COLOR_BGR2HSV)
            hsv[..., 0] = cv2.LUT(hsv[..., 0], lut_h)
            hsv[..., 1] = cv2.LUT(hsv[..., 1], lut_s)
            hsv[..., 2] = cv2.LUT(hsv[..., 2], lut_v)
            out[i] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if params.clahe_clip is not None:
        clahe = cv2.createCLAHE(clipLimit=params.clahe_clip, tileGridSize=(tile_grid, tile_grid))
        for i in range(n):
            lab = cv2.cvtColor(out[i], cv2.COLOR_BGR2LAB)
            lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
            out[i] = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    if params.noise_sigma is not None:
        noise = np.random.default_rng(params.noise_seed).normal(0.0, params.noise_sigma, size=(h, w, 3))
        out = np.clip(out.astype(np.float32) + noise[None].astype(np.float32), 0, 255).round().astype(np.uint8)
    if params.channel_order is not None:
        out = np.ascontiguousarray(out[..., list(params.channel_order)])
    if params.rgb_shift is not None:
        r, g_, b = params.rgb_shift
        shift = np.array([b, g_, r], dtype=np.float32)  # frames are BGR
        out = np.clip(out.astype(np.float32) + shift, 0, 255).round().astype(np.uint8)
    return out[0] if single else out


def augment_clip(video: np.ndarray, seed_or_rng: int | np.random.Generator | None,
                 config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, AugmentParams]:
    """Draw a transform (p = ``config.p``) and apply it to every frame. Returns (frames, params)."""
    params = sample_params(seed_or_rng, config)
    return apply_params(video, params, tile_grid=config.clahe_tile_grid), params
