"""3-point similarity alignment onto the shipped template."""

from __future__ import annotations

import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")

from generator import align, faces  # noqa: E402
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
    np.testing.assert_allclose(faces.build_template(), t, atol=0.05)
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


# -- the authors' template (NOTES.md, "Data preparation as coded") -------------------------------------

def _landmarks_with_points(pts: np.ndarray, seed: int = 0) -> np.ndarray:
    """68 landmarks whose three alignment points (means of 39-40, 42-47, 30-35) are exactly ``pts``."""
    rng = np.random.default_rng(seed)
    lm = rng.uniform(0, 400, (68, 2))
    for idx, p in zip((align.LEFT_EYE, align.RIGHT_EYE, align.NOSE), pts):
        lm[list(idx)] += p - lm[list(idx)].mean(0)
    return lm


@pytest.mark.parametrize("angle, scale", [(0.0, 1.0), (12.0, 3.1), (-20.0, 0.45)])
def test_authors_alignment_lands_the_three_points_on_the_reference_template(angle, scale):
    ref = np.array([[51.20, 41.10], [76.61, 40.90], [63.91, 64.27]])  # NOTES.md, typed in again here
    m = _similarity(angle, scale, 140.0, 95.0)
    lm = _landmarks_with_points(ref @ m[:, :2].T + m[:, 2])  # a photo with the template's shape
    M = align.align_transform(lm, template_name="authors")
    landed = align.alignment_points(align.transform_points(lm, M))
    assert np.abs(landed - ref).max() < 1.0  # the bound; in fact exact up to rounding:
    np.testing.assert_allclose(landed, ref, atol=1e-6)
    # 256x256 is the same crop doubled; our template stays a separate, explicit choice.
    np.testing.assert_allclose(align.template_points("authors", (256, 256)), 2 * ref, atol=1e-9)
    assert np.abs(align.template_points("ours") - ref).max() > 4
    with pytest.raises(ValueError, match="unknown template"):
        align.template_points("theirs")


def test_authors_crop_is_the_reference_recipe(hopper):
    from scipy.ndimage import map_coordinates

    img, lm = hopper
    crop, lm_crop, M = align.align_authors(img, lm, antialias=False)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    # Independent route: the template -> photo fit (Umeyama in that direction) as the inverse map, bilinear
    # sampling of the [0, 1] photo with a black border, x255, truncated.
    inv = align.similarity_transform(align.template_points("authors"), align.alignment_points(lm))
    ys, xs = np.mgrid[0:128, 0:128].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    expect = np.stack([map_coordinates(img[..., c] / 255.0, [sy, sx], order=1, mode="constant", cval=0.0)
                       for c in range(3)], axis=-1)
    expect = (expect * 255.0).astype(np.uint8)
    inside = (sx > 1) & (sy > 1) & (sx < img.shape[1] - 2) & (sy < img.shape[0] - 2)
    diff = np.abs(crop.astype(int) - expect)[inside]
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float rounding at a truncation boundary only
    # Truncation, not rounding: never above the rounded value, and lower for some pixels.
    rounded = np.clip(np.round(np.stack([map_coordinates(img[..., c] / 255.0, [sy, sx], order=1) for c in range(3)],
                                        -1) * 255.0), 0, 255)
    assert (crop <= rounded + 1e-9).all() and (crop < rounded).mean() > 0.2
    # The framing the weights were trained on (NOTES.md): eye line near row 41, mouth near 80, chin near 106.
    assert abs(lm_crop[36:48, 1].mean() - 41) < 3 and abs(lm_crop[48:68, 1].mean() - 80) < 6
    assert abs(lm_crop[8, 1] - 106) < 10
    # The shipped photo's own points land within 1.6 px (a least-squares fit of a real face's three points;
    # the reference's fit leaves the same residual).
    assert np.abs(align.alignment_points(lm_crop) - align.AUTHORS_POINTS_128).max() < 1.6
    # Our template puts the same face ~7 % larger and ~6 px lower.
    ours = align.transform_points(lm.astype(np.float64), align.align_transform(lm))
    ratio = np.linalg.norm(ours[36:42].mean(0) - ours[42:48].mean(0)) / np.linalg.norm(
        lm_crop[36:42].mean(0) - lm_crop[42:48].mean(0))
    assert 1.04 < ratio < 1.12 and ours[36:48, 1].mean() - lm_crop[36:48, 1].mean() > 4


def test_authors_crop_antialiases_only_large_reductions(hopper):
    img, lm = hopper
    # Hopper is reduced ~2.7x: the default blurs first (less aliasing), the exact recipe does not.
    a, _, _ = align.align_authors(img, lm)
    b, _, _ = align.align_authors(img, lm, antialias=False)
    lap = lambda x: np.abs(cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F)).mean()
    assert lap(a) < 0.8 * lap(b)
    # A photo reduced by less than 2x is the exact recipe either way.
    small = cv2.resize(img, (img.shape[1] // 3, img.shape[0] // 3), interpolation=cv2.INTER_AREA)
    lm_small = (lm + 0.5) / 3 - 0.5
    c, _, _ = align.align_authors(small, lm_small)
    d, _, _ = align.align_authors(small, lm_small, antialias=False)
    assert np.array_equal(c, d)


def test_similarity_closed_form_equals_umeyama_svd():
    # generator.align.similarity_transform solves the 2-D fit in closed form; Umeyama's SVD is the reference.
    def umeyama(src, dst):
        mu_s, mu_d = src.mean(0), dst.mean(0)
        s0, d0 = src - mu_s, dst - mu_d
        u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
        d = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
        m = np.empty((2, 3))
        m[:, :2] = (sig * d).sum() / ((s0 ** 2).sum() / len(src)) * (u @ np.diag(d) @ vt)
        m[:, 2] = mu_d - m[:, :2] @ mu_s
        return m

    rng = np.random.default_rng(3)
    for i in range(300):
        n = int(rng.integers(2, 70))
        src = rng.normal(size=(n, 2)) * 30
        dst = rng.normal(size=(n, 2)) * 30 if i % 3 == 0 else src @ rng.normal(size=(2, 2)).T + rng.normal(size=2)
        np.testing.assert_allclose(align.similarity_transform(src, dst), umeyama(src, dst), atol=1e-9)
