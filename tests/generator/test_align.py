"""3-point similarity alignment onto the shipped template."""

from __future__ import annotations

import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")

from generator import align  # noqa: E402
from generator.faces import detect_landmarks  # noqa: E402


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    # Built by hand from its parameters (independent of similarity_transform's SVD route).
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


@pytest.fixture(scope="module")
def hopper():
    img = dict(align.shipped_faces())["matplotlib:grace_hopper.jpg"]
    return img, detect_landmarks(img)


def test_similarity_transform_recovers_known_parameters():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    m0 = _similarity(17.0, 0.6, 12.0, -30.0)
    dst = src @ m0[:, :2].T + m0[:, 2]
    np.testing.assert_allclose(align.similarity_transform(src, dst), m0, atol=1e-9)
    np.testing.assert_allclose(align.transform_points(dst, align.invert_transform(m0)), src, atol=1e-9)
    # A mirror image is not a similarity: the best rotation-only fit must not reflect.
    mirrored = dst * np.array([-1.0, 1.0])
    assert np.linalg.det(align.similarity_transform(src, mirrored)[:, :2]) > 0
    with pytest.raises(ValueError):
        align.similarity_transform(np.zeros((3, 2)), dst[:3])


def test_alignment_points_are_the_reference_means():
    lm = np.arange(136, dtype=np.float64).reshape(68, 2)
    pts = align.alignment_points(lm)
    np.testing.assert_allclose(pts[0], (lm[39] + lm[40]) / 2)
    np.testing.assert_allclose(pts[1], (lm[42] + lm[47]) / 2)
    np.testing.assert_allclose(pts[2], lm[30:36].mean(0))


def test_template_asset_is_rebuilt_from_the_shipped_faces():
    t = align.template()
    assert t.shape == (68, 2) and t.dtype == np.float32
    np.testing.assert_allclose(align.build_template(), t, atol=0.05)
    # Left-right symmetric about x = 64 (step 2 of the construction).
    np.testing.assert_allclose(t[align.MIRROR, 0], 128 - t[:, 0], atol=0.05)
    np.testing.assert_allclose(t[align.MIRROR, 1], t[:, 1], atol=0.05)
    assert 0 < t.min() and t.max() < 128
    # The baseline-sized variant is the same face 16 px further left, the 256 one twice as large.
    np.testing.assert_allclose(align.template((96, 128)), t - [16, 0], atol=1e-4)
    np.testing.assert_allclose(align.template((256, 256)), 2 * t, atol=1e-4)


def test_a_known_similarity_applied_to_the_photo_is_recovered(hopper):
    img, lm = hopper
    m0 = _similarity(-12.0, 0.8, 60.0, 90.0)
    moved = cv2.warpAffine(img, m0, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    lm_moved = detect_landmarks(moved)
    # Aligning the moved photo must undo m0: M_moved @ m0 == M_original (up to landmark noise).
    m_orig = align.align_transform(lm)
    m_moved = align.align_transform(lm_moved)
    composed = m_moved[:, :2] @ m0[:, :2]
    np.testing.assert_allclose(composed, m_orig[:, :2], atol=0.02)
    probe = np.array([[200.0, 200.0], [300.0, 260.0]])
    np.testing.assert_allclose(align.transform_points(align.transform_points(probe, m0), m_moved),
                               align.transform_points(probe, m_orig), atol=2.5)  # px of the 128 frame


@pytest.mark.parametrize("size", [(128, 128), (96, 128), (256, 256)])
def test_landmarks_of_an_aligned_face_fall_on_the_template(hopper, size):
    img, lm = hopper
    aligned, aligned_lm, _ = align.align_face(img, lm, size)
    assert aligned.shape == (size[1], size[0], 3) and aligned.dtype == np.uint8
    t = align.template(size)
    px = size[1] / 128  # tolerances scale with the frame
    np.testing.assert_allclose(align.alignment_points(aligned_lm), align.alignment_points(t), atol=1.0 * px)
    # Re-detecting on the aligned image (independent of the transform maths) lands on the template too.
    redetected = detect_landmarks(aligned)
    assert np.abs(align.alignment_points(redetected) - align.alignment_points(t)).max() < 2.0 * px
    assert np.linalg.norm(redetected - t, axis=1).mean() < 4.0 * px


def test_clip_uses_the_first_frame_transform(hopper):
    img, lm = hopper
    clip = np.stack([img, np.roll(img, 5, axis=1)])
    out, m = align.align_clip(clip, lm)
    np.testing.assert_allclose(m, align.align_transform(lm))
    assert out.shape == (2, 128, 128, 3)
    # The second frame moved 5 px right in the photo; it stays moved (by 5 * scale) after alignment.
    assert not np.array_equal(out[0], out[1])
