"""The face gate (generator.faces.find_face): every refusal, on photos made from the shipped faces,
and --force / --face-policy through the renderers, `emostudy render` and `emostudy generate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")
from PIL import Image  # noqa: E402

from generator.align import shipped_faces  # noqa: E402
from generator.audio import write_wav  # noqa: E402
from generator.errors import InputError, NoFaceError  # noqa: E402
from generator.faces import (MAX_ROLL_DEG, MIN_EYE_DISTANCE_PX, FaceRejected, detect_faces,  # noqa: E402
                             eye_distance_px, face_problems, find_face, roll_degrees)


@pytest.fixture(scope="module")
def photos():
    faces = dict(shipped_faces())
    return {"astronaut": faces["skimage:astronaut"], "hopper": faces["matplotlib:grace_hopper.jpg"]}


def _codes(exc: pytest.ExceptionInfo) -> list[str]:
    return [code for code, _ in exc.value.problems]


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_the_shipped_portraits_pass(photos, name):
    face = find_face(photos[name], where=f"{name}.png")
    assert face.faces_found == 1 and face.overridden == ()
    assert face.provenance()["forced"] is False and face.provenance()["eye_distance_px"] > 40
    assert abs(roll_degrees(face.landmarks)) < 5


def test_a_small_face_is_refused_with_the_limit_and_the_fix(photos):
    # Hopper downscaled 4x on a 640x480 canvas: her eyes end up ~21 px apart.
    small = cv2.resize(photos["hopper"], (128, 150), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 120, np.uint8)
    canvas[100:250, 200:328] = small
    with pytest.raises(FaceRejected, match=r"tiny\.jpg: the face is too small: its eyes are 2\d px apart") as exc:
        find_face(canvas, where="tiny.jpg")
    assert _codes(exc) == ["small"] and "larger or closer photo" in str(exc.value) and "--force" in str(exc.value)
    lm = find_face(canvas, force=True).landmarks
    assert eye_distance_px(lm) < MIN_EYE_DISTANCE_PX
    big = cv2.resize(photos["hopper"], (205, 240), interpolation=cv2.INTER_AREA)  # eyes ~36 px apart
    assert find_face(big).overridden == ()
    assert face_problems(find_face(big).landmarks, big.shape) == []


def test_a_face_too_small_to_detect_is_refused_as_no_face(photos):
    small = cv2.resize(photos["astronaut"], (96, 96), interpolation=cv2.INTER_AREA)  # eyes ~8 px apart
    canvas = np.full((480, 640, 3), 120, np.uint8)
    canvas[:96, :96] = small
    with pytest.raises(FaceRejected, match="no face found.*at least 28 px apart") as exc:
        find_face(canvas, where="far.jpg")
    assert _codes(exc) == ["no_face"]
    with pytest.raises(FaceRejected):  # nothing to render: --force cannot help
        find_face(canvas, force=True)


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
@pytest.mark.parametrize("turns, words", [(1, "rotated by"), (2, "upside down"), (3, "rotated by")])
def test_a_photo_turned_by_90_or_180_degrees_is_refused(photos, name, turns, words):
    img = np.ascontiguousarray(np.rot90(photos[name], turns))
    with pytest.raises(FaceRejected, match=f"turned.png: the face is {words}") as exc:
        find_face(img, where="turned.png")
    assert _codes(exc) == ["rotated"] and "rotate the photo so the face is upright" in str(exc.value)
    # The landmarks found in the turned-back photo come back in this photo's pixels: forced, the
    # alignment turns the face upright (the roll is about turns x 90 degrees).
    forced = find_face(img, force=True)
    assert forced.overridden == ("rotated",)
    expected = {1: -90.0, 2: 180.0, 3: 90.0}[turns]
    assert abs((roll_degrees(forced.landmarks) - expected + 180) % 360 - 180) < 12


def test_a_face_rolled_beyond_the_limit_is_refused(photos):
    tilted = _rotate(photos["hopper"], 40)
    with pytest.raises(FaceRejected, match=f"more than {MAX_ROLL_DEG:g} degrees") as exc:
        find_face(tilted, where="tilted.jpg")
    assert _codes(exc) == ["rotated"]
    assert find_face(_rotate(photos["hopper"], 12)).overridden == ()  # a slight tilt passes


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
@pytest.mark.parametrize("cut", ["nose", "mouth"])
def test_a_face_cut_off_by_the_border_is_refused(photos, name, cut):
    img = photos[name]
    lm = detect_faces(img)[0][1]
    y = int(lm[33, 1] + 3) if cut == "nose" else int(lm[57, 1] + 2)
    cropped = np.ascontiguousarray(img[:y])
    with pytest.raises(FaceRejected, match=r"cut\.jpg: the face is cut off by the image border \(.*jaw") as exc:
        find_face(cropped, where="cut.jpg")
    assert _codes(exc) == ["cut_off"] and "shows the whole face" in str(exc.value)


def test_two_faces_are_refused_unless_the_largest_is_asked_for(photos):
    pair = np.ascontiguousarray(np.hstack([photos["hopper"], photos["hopper"][:, ::-1]]))
    with pytest.raises(FaceRejected, match=r"pair\.jpg: 2 faces found.*--face-policy largest") as exc:
        find_face(pair, where="pair.jpg")
    assert _codes(exc) == ["several_faces"]
    face = find_face(pair, policy="largest")
    assert face.faces_found == 2 and face.overridden == () and face.policy == "largest"
    # A smaller second face: the largest is the one used.
    small = cv2.resize(photos["astronaut"], (400, 400), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 1000, 3), 90, np.uint8)
    canvas[:, :512] = photos["hopper"]
    canvas[100:500, 560:960] = small
    chosen = find_face(canvas, policy="largest").landmarks
    assert chosen[:, 0].max() < 512
    with pytest.raises(InputError, match="unknown face policy 'first'"):
        find_face(pair, policy="first")


def test_the_astronaut_suit_patch_is_not_counted_as_a_second_face(photos):
    # dlib also fires on the round patch of her suit; its landmarks are not a usable face.
    pair = np.ascontiguousarray(np.hstack([photos["astronaut"], photos["astronaut"]]))
    detections = detect_faces(pair)
    assert len(detections) > 2
    assert find_face(pair, policy="largest").faces_found == 2


def test_a_photo_without_a_face_is_refused():
    from skimage import data

    with pytest.raises(FaceRejected, match=r"coffee\.png: no face found") as exc:
        find_face(data.coffee(), where="coffee.png")
    assert _codes(exc) == ["no_face"]


def test_landmarks_that_do_not_form_a_face_are_refused(photos):
    lm = find_face(photos["hopper"]).landmarks.astype(np.float64)
    assert face_problems(lm, photos["hopper"].shape) == []
    rng = np.random.default_rng(0)
    scrambled = lm[rng.permutation(68)]  # the same points, in the wrong places
    assert "not_a_face" in [c for c, _ in face_problems(scrambled, photos["hopper"].shape)]
    squashed = lm.copy()
    squashed[:, 1] = squashed[:, 1].mean() + 0.15 * (squashed[:, 1] - squashed[:, 1].mean())  # a flat band
    assert "not_a_face" in [c for c, _ in face_problems(squashed, photos["hopper"].shape)]
    swapped = lm.copy()
    swapped[36:42], swapped[48:54] = lm[48:54], lm[36:42]  # an eye where the mouth is
    assert "not_a_face" in [c for c, _ in face_problems(swapped, photos["hopper"].shape)]


def test_force_renders_and_records_the_override_in_the_warp_parameters(photos):
    from generator.warp.renderer import WarpRenderer

    upside_down = np.ascontiguousarray(photos["hopper"][::-1, ::-1])
    speech = (0.3 * np.sin(np.arange(3 * 320) / 8000 * 2 * np.pi * 150)).astype(np.float32)
    with pytest.raises(NoFaceError, match="upside down"):
        WarpRenderer().render(upside_down, speech, "neutral", 0)
    result = WarpRenderer(force=True).render(upside_down, speech, "neutral", 0)
    gate = result.parameters["face_gate"]
    assert gate["forced"] is True and gate["overridden"] == ["rotated"] and gate["policy"] == "single"
    # Forced, the face is still aligned upright: the top of the frame is forehead/hair, not mouth.
    upright = WarpRenderer().render(photos["hopper"], speech, "neutral", 0).frames[0].astype(float)
    assert np.abs(result.frames[0].astype(float) - upright).mean() < 25


def test_the_neural_backend_uses_the_gate(photos, tmp_path):
    torch = pytest.importorskip("torch")
    from generator.neural.checkpoint import save_checkpoint
    from generator.neural.model import Generator, GeneratorConfig
    from generator.neural.renderer import NeuralRenderer

    torch.manual_seed(0)
    tiny = Generator(GeneratorConfig.tiny()) if hasattr(GeneratorConfig, "tiny") else None
    if tiny is None:
        pytest.skip("no tiny generator config")
    path = save_checkpoint(tmp_path / "g.pt", {"model_config": tiny.cfg.to_dict(), "generator": tiny.state_dict()})
    r = NeuralRenderer(path)
    pair = np.ascontiguousarray(np.hstack([photos["hopper"], photos["hopper"]]))
    with pytest.raises(FaceRejected, match="2 faces found"):
        r.align(pair)
    with pytest.raises(FaceRejected, match="upside down"):
        r.align(np.ascontiguousarray(photos["hopper"][::-1, ::-1]))
    assert r.align(photos["hopper"]).shape[:2] == (tiny.cfg.image_size,) * 2
    assert NeuralRenderer(path, policy="largest").align(pair).shape[2] == 3
    assert r.last_gate["policy"] == "single"


def _voice(seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.6 * np.sin(2 * np.pi * 140 * t)


def test_generate_refuses_and_force_records_the_override_in_the_manifest(photos, tmp_path):
    from emostudy.cli import main
    from stimuli.manifest import load_manifest

    Image.fromarray(np.ascontiguousarray(np.rot90(photos["hopper"]))).save(tmp_path / "turned.png")
    write_wav(tmp_path / "s.wav", _voice(0.4), 8000)
    (tmp_path / "jobs.csv").write_text("face,speech,visual_emotion\nturned.png,s.wav,happiness\n")
    base = ["generate", "--design", "jobs", "--jobs", str(tmp_path / "jobs.csv"), "--workers", "1"]
    res = CliRunner().invoke(main, base + ["--out", str(tmp_path / "refused")])
    assert res.exit_code == 1, res.output
    failures = (tmp_path / "refused").rglob("*fail*")
    text = res.output + "".join(p.read_text() for p in failures if p.is_file())
    assert "turned.png" in text and "rotated by" in text and "--force" in text
    res = CliRunner().invoke(main, base + ["--force", "--out", str(tmp_path / "forced")])
    assert res.exit_code == 0, res.output
    (stim,) = load_manifest(tmp_path / "forced")
    gate = stim.provenance.parameters["renderer"]["face_gate"]
    assert gate["forced"] is True and gate["overridden"] == ["rotated"]
    assert stim.provenance.parameters["options"]["force"] is True
    json.dumps(stim.provenance.parameters)  # plain data
