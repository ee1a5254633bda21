"""The face gate, second round: drawings, dark and flat faces, upside-down and turned faces, the face count
when forced, and the gate's console lines in `generate --dry-run` (before any rendering).

Material made here: a line drawing and a cartoon drawn with OpenCV calls, pencil sketches of the shipped
faces (a colour-dodge of their grey image), and darkened, flattened and turned versions of them."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from generator.align import shipped_faces
from generator.faces import (MAX_YAW_OFFSET, FaceRejected, _models, detect_faces, face_problems, find_face,
                             yaw_offset)
from generator.face_photo import MIN_FACE_CONTRAST, MIN_FACE_LUMA, upright_scores


@pytest.fixture(scope="module")
def photos():
    return {name.split(":")[-1].split(".")[0]: img for name, img in shipped_faces()}


def line_drawing(size: int = 400, fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """A smiley face drawn with lines (with ``fill``: a flat-coloured cartoon face)."""
    import cv2

    img = np.full((size, size, 3), 255 if fill is None else (90, 160, 220), np.uint8)
    c = size // 2
    if fill is not None:
        cv2.ellipse(img, (c, c), (int(size * .3), int(size * .4)), 0, 0, 360, fill, -1)
    cv2.ellipse(img, (c, c), (int(size * .3), int(size * .4)), 0, 0, 360, (0, 0, 0), 3)
    for dx in (-1, 1):
        eye = (c + dx * int(size * .11), int(c - size * .08))
        cv2.ellipse(img, eye, (int(size * .05), int(size * .025)), 0, 0, 360, (0, 0, 0), 3)
        cv2.circle(img, eye, int(size * .015), (0, 0, 0), -1)
        cv2.line(img, (c + dx * int(size * .05), int(c - size * .16)), (c + dx * int(size * .17), int(c - size * .17)),
                 (0, 0, 0), 4)
    cv2.line(img, (c, int(c - size * .05)), (c - int(size * .03), int(c + size * .07)), (0, 0, 0), 3)
    cv2.line(img, (c - int(size * .03), int(c + size * .07)), (c + int(size * .02), int(c + size * .07)), (0, 0, 0), 3)
    cv2.ellipse(img, (c, int(c + size * .17)), (int(size * .1), int(size * .04)), 0, 0, 180, (0, 0, 0), 3)
    return img


def pencil_sketch(img: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    blur = cv2.GaussianBlur(255 - grey, (21, 21), 0)
    sketch = cv2.divide(grey, 255 - blur, scale=256)
    return np.repeat(sketch[..., None], 3, axis=-1)


def codes(exc) -> list[str]:
    return [c for c, _ in exc.value.problems]


def test_drawings_are_refused_and_forced_renders_count_the_face(photos):
    for img in (line_drawing(), line_drawing(fill=(235, 190, 160)), pencil_sketch(photos["astronaut"]),
                pencil_sketch(photos["grace_hopper"])):
        assert detect_faces(img), "the detector must find the drawn face for this test to mean anything"
        with pytest.raises(FaceRejected, match="looks drawn, not photographed") as exc:
            find_face(img, where="drawing.png")
        assert codes(exc) == ["drawing"] and "--force" in str(exc.value)
        forced = find_face(img, force=True)
        assert forced.overridden == ("drawing",) and forced.provenance()["faces_found"] == 1
    # a black-and-white PHOTO is not a drawing (its tones are spread, not paper and strokes)
    import cv2

    grey = np.repeat(cv2.cvtColor(photos["grace_hopper"], cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)
    assert find_face(grey).overridden == ()


@pytest.mark.parametrize("brightness", [0.05, 0.12])
def test_dark_faces_are_refused_with_the_measured_value(photos, brightness):
    dark = (photos["astronaut"] * brightness).astype(np.uint8)
    with pytest.raises(FaceRejected) as exc:
        find_face(dark, where="dark.jpg")
    if brightness == 0.05:
        assert codes(exc) == ["no_face"]  # too dark to find at all: said so, not rendered
    else:
        assert codes(exc) == ["dark"]
        msg = str(exc.value)
        value = float(msg.split("mean brightness ")[1].split(" of 255")[0])
        assert value < MIN_FACE_LUMA and f"at least {MIN_FACE_LUMA:.0f}" in msg
        assert find_face(dark, force=True).provenance()["face_luma"] == pytest.approx(value, abs=0.6)


def test_low_contrast_faces_are_refused(photos):
    flat = (photos["astronaut"] * 0.15 + 100).astype(np.uint8)
    with pytest.raises(FaceRejected, match=f"at least {MIN_FACE_CONTRAST:.0f} is needed") as exc:
        find_face(flat)
    assert codes(exc) == ["low_contrast"]


def test_upside_down_the_image_says_so_even_where_landmarks_are_upright(photos):
    img = photos["grace_hopper"]
    box, lm = detect_faces(img)[0]
    up, down = upright_scores(img, box, _models()[0])
    assert up > 0 > down  # upright: found as it is, not turned
    # the same face region turned by 180 degrees, with the landmarks fitted upright (what a composite gives)
    turned = np.ascontiguousarray(img[::-1, ::-1])
    h, w = img.shape[:2]
    tbox = (w - 1 - box[2], h - 1 - box[3], w - 1 - box[0], h - 1 - box[1])
    up2, down2 = upright_scores(turned, tbox, _models()[0])
    assert down2 > up2 and down2 > 0
    with pytest.raises(FaceRejected, match="upside down") as exc:
        find_face(turned)
    assert codes(exc)[0] == "rotated"  # the rescue finds it turned: the geometry's up says so first


def test_turned_and_cut_off_faces_get_the_right_first_reason(photos):
    img = photos["grace_hopper"]
    lm = detect_faces(img)[0][1].astype(np.float64)
    assert abs(yaw_offset(lm)) < MAX_YAW_OFFSET
    three_quarter = lm.copy()  # the half of the face left of the nose foreshortened, as when the head turns
    left = three_quarter[:, 0] < lm[30, 0]
    three_quarter[left, 0] = lm[30, 0] + 0.4 * (three_quarter[left, 0] - lm[30, 0])
    found = [c for c, _ in face_problems(three_quarter, img.shape)]
    assert found[0] == "turned" and "not_a_face" not in found
    cut = np.ascontiguousarray(photos["astronaut"][:, 200:])  # the left side of the face cut off
    with pytest.raises(FaceRejected) as exc:
        find_face(cut)
    assert codes(exc)[0] == "cut_off"


def test_dry_run_prints_one_gate_line_per_photo_and_renders_nothing(tmp_path, photos):
    from PIL import Image

    from emostudy.cli import main
    from generator.audio import write_wav

    faces = tmp_path / "faces"
    faces.mkdir()
    Image.fromarray(photos["grace_hopper"]).save(faces / "hopper.png")
    Image.fromarray(line_drawing()).save(faces / "smiley.png")
    Image.fromarray((photos["astronaut"] * 0.12).astype(np.uint8)).save(faces / "dark.png")
    speech = tmp_path / "1001_IEO_ANG_XX.wav"
    write_wav(speech, (0.3 * np.sin(np.arange(8000) * 0.05)).astype(np.float32), 16000)
    out = tmp_path / "set"
    res = CliRunner().invoke(main, ["generate", "--design", "matched", "--faces", str(faces), "--speech", str(speech),
                                    "--dry-run", "--out", str(out)])
    assert res.exit_code == 0, res.output
    gate = [line for line in res.output.splitlines() if line.strip().startswith(("ok", "refused", "forced"))]
    assert len(gate) == 3
    by_face = {line.split()[1].rstrip(":"): line for line in gate}
    assert by_face["hopper.png"].strip().startswith("ok")
    assert "refused" in by_face["smiley.png"] and "looks drawn" in by_face["smiley.png"]
    assert "refused" in by_face["dark.png"] and "too dark" in by_face["dark.png"]
    assert "face gate: 1 of 3 photo(s) would render" in res.output
    assert not (out / "media").exists()
