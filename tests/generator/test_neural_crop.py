"""The neural backend on the authors' crop: which template each checkpoint gets, and what provenance says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("dlib")

from generator import align  # noqa: E402
from generator.faces import authors_landmarks, find_face  # noqa: E402
from generator.neural.checkpoint import save_checkpoint  # noqa: E402
from generator.neural.model import Generator, GeneratorConfig  # noqa: E402
from generator.neural.renderer import AUTHORS_LAYOUT, RELEASED_SHA256, NeuralRenderer  # noqa: E402


@pytest.fixture(scope="module")
def hopper():
    return dict(align.shipped_faces())["matplotlib:grace_hopper.jpg"]


@pytest.fixture(scope="module")
def bare_file(tmp_path_factory):
    # A state dict in the authors' layout (keys module.*, paper config), random weights.
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bare") / "generator.pt"
    torch.save({"module." + k: v for k, v in Generator(GeneratorConfig()).state_dict().items()}, path)
    return path


def test_a_bare_state_dict_is_aligned_on_the_authors_crop_and_not_called_their_release(bare_file, hopper):
    r = NeuralRenderer(bare_file, threads=1)
    assert r.template == "authors"
    lm = find_face(hopper).landmarks
    # The authors' landmark settings (grey image, detector upsampled once), pinned: the landmarks this code
    # found on Grace Hopper with them when they were introduced (tests/generator/data, issue 34).
    pinned = np.load(Path(__file__).parent / "data" / "authors_landmarks_grace_hopper.npy")
    assert np.abs(authors_landmarks(hopper, find_face(hopper).box) - pinned).max() < 0.01
    expected, _, _ = align.align_authors(hopper, pinned, size=(128, 128))
    assert np.array_equal(r.align(hopper), expected)
    assert r.last_gate["landmarks"] == "authors' settings (grey, upsampled once)"
    ours_lm, _, _ = align.align_authors(hopper, lm, size=(128, 128))  # our landmark settings: another crop
    assert np.abs(expected.astype(int) - ours_lm.astype(int)).mean() > 1.0
    assert np.linalg.norm(pinned - lm, axis=1).mean() > 0.5
    desc = r.weights_description()
    assert RELEASED_SHA256 is None  # NOTES.md gives no checksum of generator.pt
    assert desc == {"weights": AUTHORS_LAYOUT, "authors_release": False}
    speech = (0.3 * np.sin(np.arange(2 * 320) / 8000 * 2 * np.pi * 150)).astype(np.float32)
    p = r.render(hopper, speech, "happiness", 1).parameters
    assert p["weights"] == "a state dict in the authors' layout" and p["authors_release"] is False
    assert "authors_weights" not in p and p["template"] == "authors" and p["face_gate"]["forced"] is False
    # Our template only when asked for.
    ours = NeuralRenderer(bare_file, threads=1, template="ours")
    aligned_ours, _, _ = align.align_face(hopper, lm, size=(128, 128))
    assert ours.template == "ours" and np.array_equal(ours.align(hopper), aligned_ours)


def test_our_checkpoints_keep_our_template(tmp_path, hopper):
    tiny = Generator(GeneratorConfig.tiny())
    path = save_checkpoint(tmp_path / "g.pt", {"model_config": tiny.cfg.to_dict(), "generator": tiny.state_dict()})
    r = NeuralRenderer(path)
    assert r.template == "ours"
    assert r.weights_description() == {"weights": "an emostudy checkpoint", "authors_release": False}
    assert NeuralRenderer(path, template="authors").template == "authors"
    with pytest.raises(Exception, match="unknown alignment template"):
        NeuralRenderer(path, template="mine")
