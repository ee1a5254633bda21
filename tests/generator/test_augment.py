"""Augmentation: seeded, the same transform on every frame, p = 0.8 of clips transformed."""

from __future__ import annotations

import numpy as np
import pytest

from generator.data.augment import AugmentConfig, AugmentParams, apply_params, augment_clip, sample_params


def _clip(n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    return np.repeat(frame[None], n, axis=0)


def test_same_seed_same_output_and_params():
    a, pa = augment_clip(_clip(), 7)
    b, pb = augment_clip(_clip(), 7)
    assert pa == pb
    np.testing.assert_array_equal(a, b)


def test_same_transform_on_every_frame():
    # identical input frames must stay identical: one transform per clip, not per frame
    for seed in range(20):
        out, params = augment_clip(_clip(), seed)
        assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
        for i in range(1, 4):
            np.testing.assert_array_equal(out[i], out[0])


def test_probability_of_the_set_is_p():
    applied = sum(sample_params(seed).applied for seed in range(2000))
    assert 0.77 < applied / 2000 < 0.83  # binomial sd ~ 0.009


def test_not_applied_is_identity():
    clip = _clip()
    out = apply_params(clip, AugmentParams(applied=False))
    np.testing.assert_array_equal(out, clip)


def test_each_transform_by_hand():
    frame = np.full((1, 8, 8, 3), 100, dtype=np.uint8)
    frame[..., 0] = 50  # B
    frame[..., 2] = 200  # R
    # brightness/contrast: x * 1.1 + 0.1 * 255 (hand: 50 -> 80.5 -> 80 (round half even), 100 -> 135.5 -> 136, 200 -> 245.5 -> 246)
    out = apply_params(frame, AugmentParams(applied=True, brightness_contrast=(1.1, 0.1)))
    assert out[0, 0, 0].tolist() == [80, 136, 246]
    # gamma 2: 255 * (x/255)^2 -> 100 -> 39.2 -> 39
    out = apply_params(frame, AugmentParams(applied=True, gamma=2.0))
    assert out[0, 0, 0, 1] == 39
    # channel shuffle (2, 1, 0): BGR -> RGB
    out = apply_params(frame, AugmentParams(applied=True, channel_order=(2, 1, 0)))
    assert out[0, 0, 0].tolist() == [200, 100, 50]
    # rgb shift (R +10, G -5, B +100) on BGR frames, clipped
    out = apply_params(frame, AugmentParams(applied=True, rgb_shift=(10.0, -5.0, 100.0)))
    assert out[0, 0, 0].tolist() == [150, 95, 210]
    # noise changes pixels but keeps the mean roughly
    big = np.full((1, 64, 64, 3), 128, dtype=np.uint8)
    out = apply_params(big, AugmentParams(applied=True, noise_sigma=5.0, noise_seed=1))
    assert out.std() == pytest.approx(5.0, rel=0.1) and abs(out.mean() - 128) < 0.5


def test_hsv_and_clahe_change_image_but_keep_shape():
    clip = _clip(2)
    out = apply_params(clip, AugmentParams(applied=True, hsv_shift=(10.0, 20.0, -10.0), clahe_clip=3.0))
    assert out.shape == clip.shape and not np.array_equal(out, clip)
    np.testing.assert_array_equal(out[0], out[1])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        apply_params(np.zeros((2, 8, 8, 3), dtype=np.float32), AugmentParams(applied=True))


def test_config_p_zero_never_applies():
    assert not any(sample_params(s, AugmentConfig(p=0.0)).applied for s in range(50))
