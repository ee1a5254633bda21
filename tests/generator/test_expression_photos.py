"""Expression photos (generator.produce.photos): the visual emotion comes from the person's posed photo.

The tests make their own photo set: the shipped faces' warp expressions rendered as stills (the last
frame of an expression-only render), saved under KDEF names or listed in a labels CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from generator.audio import write_wav
from generator.produce.jobs import DesignOptions, ProduceError
from generator.produce.photos import ORIGIN, collect_photos, parse_kdef, parse_rafd, plan_photo_jobs
from stimuli.emotions import EMOTION_CODES, EMOTIONS
from stimuli.manifest import load_manifest, stimulus_from_dict

CODES = dict(zip(EMOTIONS, EMOTION_CODES))
KDEF_CODES = {"anger": "AN", "disgust": "DI", "fear": "AF", "happiness": "HA", "neutral": "NE", "sadness": "SA"}


def tone(path: Path, seed: int, seconds: float = 0.5, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    x = 0.4 * env * np.sin(2 * np.pi * (120 + 20 * seed) * t)
    write_wav(path, x.astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    """The astronaut posing six emotions (warp expression only, last frame, 128 px), KDEF names."""
    from PIL import Image

    from generator.align import shipped_faces
    from generator.warp.renderer import WarpRenderer

    root = tmp_path_factory.mktemp("photos")
    face = shipped_faces()[0][1]
    renderer = WarpRenderer(components=("expression",))
    speech = np.zeros(8000 * 1, np.float32)
    speech[::50] = 0.01  # not silent; the expression-only warp ignores it
    out = {}
    for emo in EMOTIONS:
        frames = renderer.render(face, speech, emo, seed=0, size=128).frames
        path = root / f"AF01{KDEF_CODES[emo]}S.JPG"
        Image.fromarray(frames[-1]).save(path, format="JPEG", quality=95)
        out[emo] = path
    return root, out


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    for i, emo in enumerate(EMOTIONS):
        tone(root / f"1001_IEO_{CODES[emo]}_XX.wav", i)
    return root


def test_kdef_and_rafd_names():
    assert parse_kdef("AF01ANS.JPG") == ("F01", "anger", 0)
    assert parse_kdef("BM22HAS.jpg") == ("M22", "happiness", 1)
    assert parse_kdef("AF01SUS.JPG") == ("F01", None, 0)  # surprise: not one of the six
    assert parse_kdef("AF01ANHL.JPG") is None  # half left: not frontal
    assert parse_rafd("Rafd090_01_Caucasian_female_angry_frontal.jpg") == ("01", "anger", 0)
    assert parse_rafd("Rafd090_01_Caucasian_female_angry_left.jpg") is None  # gaze away
    assert parse_rafd("Rafd045_01_Caucasian_female_angry_frontal.jpg") is None  # camera at 45 degrees
    assert parse_kdef("portrait.png") is None and parse_rafd("portrait.png") is None


def test_missing_photos_are_all_listed_before_rendering(tmp_path, speech):
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("AF01HAS.JPG", "AF01NES.JPG", "AM02ANS.JPG", "AF01SUS.JPG"):
        (faces / name).write_bytes(b"not opened while planning")
    with pytest.raises(ProduceError) as err:
        plan_photo_jobs(DesignOptions(design="mismatched", faces=(str(faces),), speech=(str(speech),)))
    msg = str(err.value)
    assert "F01: anger, disgust, fear, sadness" in msg and "M02: disgust, fear, happiness, neutral, sadness" in msg
    assert "9 expression photo(s)" in msg
    # matched needs only the speech's emotions: still missing ones, all named
    with pytest.raises(ProduceError, match="F01: anger, disgust, fear, sadness"):
        plan_photo_jobs(DesignOptions(design="matched", faces=(str(faces),), speech=(str(speech),)))
    notes: list[str] = []
    only_happy = tmp_path / "one.csv"
    only_happy.write_text("file,identity,emotion\nAF01HAS.JPG,ann,happy\n")
    one = faces / "x"
    one.mkdir()
    (one / "AF01HAS.JPG").write_bytes(b"x")
    jobs = plan_photo_jobs(DesignOptions(design="factorial", faces=(str(one),), speech=(str(speech),),
                                         face_labels=str(only_happy), emotions=("happiness",)), notes=notes)
    assert len(jobs) == 6 and {j.visual_emotion for j in jobs} == {"happiness"}
    assert all(j.visual_origin == ORIGIN and j.identity == "ann" for j in jobs)


def test_labels_csv_errors_name_the_file_and_line(tmp_path, stills):
    root, _ = stills
    bad = tmp_path / "labels.csv"
    bad.write_text("file,identity,emotion\nAF01ANS.JPG,ann,grumpy\n")
    with pytest.raises(ProduceError, match=r"labels.csv: line 2, column 'emotion'"):
        collect_photos([str(root)], str(bad))
    partial = tmp_path / "partial.csv"
    partial.write_text("file,identity,emotion\nAF01ANS.JPG,ann,anger\n")
    with pytest.raises(ProduceError, match=r"5 face photo\(s\) have no identity and emotion: .*add them to"):
        collect_photos([str(root)], str(partial))
    twice = tmp_path / "twice.csv"
    twice.write_text("file,identity,emotion\nAF01ANS.JPG,ann,anger\nAF01DIS.JPG,ann,anger\n")
    sub = tmp_path / "two"
    sub.mkdir()
    for n in ("AF01ANS.JPG", "AF01DIS.JPG"):
        (sub / n).write_bytes(b"x")
    with pytest.raises(ProduceError, match="two photos of ann showing anger"):
        collect_photos([str(sub)], str(twice))


def test_kdef_session_a_is_preferred(tmp_path):
    for n in ("AF01HAS.JPG", "BF01HAS.JPG"):
        (tmp_path / n).write_bytes(b"x")
    photos, notes = collect_photos([str(tmp_path)])
    assert [Path(p.path).name for p in photos] == ["AF01HAS.JPG"]
    assert notes == ["1 photo(s) left out: a second session of the same person and emotion"]


def test_mismatched_pairs_photo_of_visual_with_speech_of_audio(stills, speech):
    root, paths = stills
    jobs = plan_photo_jobs(DesignOptions(design="mismatched", faces=(str(root),), speech=(str(speech),)))
    assert len(jobs) == 36
    pairs = {(j.visual_emotion, j.audio_emotion) for j in jobs}
    assert pairs == {(v, a) for v in EMOTIONS for a in EMOTIONS}
    for j in jobs:
        assert Path(j.face) == paths[j.visual_emotion]  # the photo OF the visual emotion
        assert f"_{CODES[j.audio_emotion]}_" in Path(j.speech).name


def test_generate_renders_photos_with_the_mouth_only(tmp_path, stills, speech):
    from emostudy.cli import main

    root, paths = stills
    out = tmp_path / "set"
    args = ["generate", "--design", "factorial", "--faces", str(root), "--expression-photos",
            "--speech", str(speech / "1001_IEO_ANG_XX.wav"), "--emotions", "happiness,sadness",
            "--workers", "1", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    manifest = load_manifest(out / "manifest.json")
    assert len(manifest) == 2
    for s in manifest:
        assert s.visual_emotion_origin == "photo" and s.source == "PHOTO" and s.audio_emotion == "anger"
        assert s.extra["face_file"] == paths[s.visual_emotion].name
        params = s.provenance.parameters["renderer"]
        assert params["components"] == ["mouth", "life"] and params["rest"] == "photo"
        # The clip's first frame shows the photo's expression: closer to its own still than the other's.
        from PIL import Image

        poster = np.asarray(Image.open(out / s.poster)).astype(float)
        own = np.asarray(Image.open(paths[s.visual_emotion]).convert("RGB").resize(poster.shape[1::-1])).astype(float)
        other_emo = "sadness" if s.visual_emotion == "happiness" else "happiness"
        other = np.asarray(Image.open(paths[other_emo]).convert("RGB").resize(poster.shape[1::-1])).astype(float)
        assert np.abs(poster - own).mean() < np.abs(poster - other).mean()
    # the row round-trips through the manifest and an unknown origin is refused with the field named
    row = json.loads((out / "manifest.json").read_text())["stimuli"][0]
    assert row["visual_emotion_origin"] == "photo"
    with pytest.raises(Exception, match="visual_emotion_origin"):
        stimulus_from_dict({**row, "visual_emotion_origin": "dream"})
    # --components with the expression is refused: the photo carries it
    res = CliRunner().invoke(main, args[:-2] + ["--components", "expression,mouth", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "leave 'expression' out" in res.output


def test_rendered_rows_have_no_origin_field(tmp_path):
    """Rows of the renderer route are written as before (no new field): old sets compare equal."""
    from stimuli.manifest import Stimulus

    s = Stimulus(stimulus_id="a", media="m.mp4", sha256="0" * 64, duration_s=1.0, fps=25.0, width=8, height=8,
                 audio_rate=None, source="WARP", visual_emotion="anger", audio_emotion="anger", identity="i",
                 sentence="s")
    assert "visual_emotion_origin" not in s.to_dict()
