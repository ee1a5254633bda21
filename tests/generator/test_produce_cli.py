"""`emostudy generate` end to end with the real warp renderer, the demo assets (shipped faces,
espeak-ng speech), and ground-truth size variants of recorded videos."""

from __future__ import annotations

import collections
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emostudy.cli import main
from generator.produce.demo_assets import SENTENCES, make_face_pool, make_speech_pool, speech_name
from stimuli.emotions import EMOTIONS
from stimuli.manifest import load_manifest


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    faces = make_face_pool(root / "faces")
    speech = make_speech_pool(root / "speech", ["IEO", "TSI"], EMOTIONS)
    return root, faces, speech


def test_demo_assets(demo_inputs):
    root, faces, speech = demo_inputs
    assert [p.name for p in faces] == ["astronaut.png", "grace_hopper.png"]
    from PIL import Image

    assert Image.open(faces[0]).size == (512, 512)
    assert len(speech) == 12 and speech[0].name == "SYN01_IEO_ANG_XX.wav"
    assert speech_name("TSI", "sadness") == "SYN01_TSI_SAD_XX.wav"
    assert len(SENTENCES) == 12 and SENTENCES["DFA"] == "Don't forget a jacket"
    with wave.open(str(speech[0])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        assert 0.5 < w.getnframes() / 22050 < 3
    labels = (root / "speech" / "labels.csv").read_text().splitlines()
    assert labels[0].startswith("file,emotion,identity,sentence,intensity,synthetic")
    assert len(labels) == 13 and all(",1," in line for line in labels[1:])
    # the same call makes the same bytes (the demo voice has no pitch flutter)
    before = {p: p.read_bytes() for p in speech}
    make_speech_pool(root / "speech", ["IEO", "TSI"], EMOTIONS)
    assert all(p.read_bytes() == b for p, b in before.items())
    with pytest.raises(ValueError, match="unknown CREMA-D sentence"):
        make_speech_pool(root / "x", ["XYZ"], ["anger"])


def test_dry_run_lists_the_36_pairs(demo_inputs, tmp_path):
    root, _, _ = demo_inputs
    res = CliRunner().invoke(main, ["generate", "--design", "mismatched", "--faces", str(root / "faces"),
                                    "--speech", str(root / "speech"), "--backend", "warp", "--repeats", "2",
                                    "--seed", "3", "--out", str(tmp_path / "set"), "--dry-run"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert len(rows) == 72 and all(r["status"] == "todo" for r in rows)
    assert set(collections.Counter((r["visual"], r["audio"]) for r in rows).values()) == {2}
    assert not (tmp_path / "set").exists()


def test_generate_with_warp_and_a_failing_item(demo_inputs, tmp_path):
    root, faces, speech = demo_inputs
    sp = tmp_path / "speech"
    sp.mkdir()
    for p in speech[:2]:
        (sp / p.name).write_bytes(p.read_bytes())
    (sp / "SYN01_DFA_NEU_XX.wav").write_bytes(b"not audio")
    out = tmp_path / "set"
    args = ["generate", "--design", "matched", "--faces", str(faces[0]), "--speech", str(sp), "--backend", "warp",
            "--seed", "5", "--workers", "1", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "1 of 3 items failed" in res.output and "2 produced" in res.output
    m = load_manifest(out)
    assert len(m) == 2
    for s in m:
        assert s.source == "WARP" and s.provenance.backend == "warp" and s.visual_emotion == s.audio_emotion
        assert s.identity == "astronaut" and s.extra["synthetic_speech"] is True
        assert s.provenance.parameters["renderer"]["components"] == ["expression", "mouth", "life"]
    reason = json.loads((out / "failures.jsonl").read_text())["reason"]
    assert "SYN01_DFA_NEU_XX.wav" in reason and "cannot be decoded" in reason
    # The astronaut smiles with her teeth apart: the clips start from her face at rest, and the run says so.
    said = " ".join(res.output.split())
    assert "1 photo(s) were not at rest" in said and "astronaut.png (" in said and "--rest photo" in said
    assert all(s.provenance.parameters["renderer"]["rest_shift_px"] > 1.0 for s in m)
    # a second run: the two are skipped, the bad one fails again, nothing else happens
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "2 already done" in res.output


def test_recordings_with_ground_truth_variants(tmp_path):
    from generator.align import shipped_faces
    from generator.mediaio import write_mp4
    from PIL import Image

    rec = tmp_path / "rec"
    rec.mkdir()
    img = np.asarray(Image.fromarray(shipped_faces()[0][1]).resize((384, 384)))  # eyes 33 px apart (the gate needs 28)
    frames = np.stack([np.roll(img, i // 3, axis=1) for i in range(15)])  # slight head motion
    t = np.arange(int(0.6 * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    write_mp4(rec / "1001_IEO_SAD_LO.mp4", frames, 25, audio, 16000)
    out = tmp_path / "set"
    res = CliRunner().invoke(main, ["generate", "--design", "matched", "--recordings", str(rec), "--with-gt",
                                    "--workers", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = load_manifest(out)
    by = {(s.source, s.size_variant): s for s in m}
    assert set(by) == {("WARP", "128x128"), ("GT", "128x128"), ("GT", "96x128")}
    gt128, gt96 = by[("GT", "128x128")], by[("GT", "96x128")]
    assert (gt96.width, gt96.height) == (96, 128) and gt96.intensity == "LO"
    assert gt128.visual_emotion == gt128.audio_emotion == "sadness" and gt128.provenance.backend == "recording"
    assert gt128.identity == "1001" and gt128.sentence == "IEO"
    # same template, same scale: the 96-wide variant is the 128 variant without 16 px on each side
    from generator.mediaio import read_video

    a = read_video(out / gt128.media)[0][0].astype(np.float64)
    b = read_video(out / gt96.media)[0][0].astype(np.float64)
    mse = np.mean((a[:, 16:112] - b) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 28


def test_a_bad_backend_is_one_clear_error_before_any_work(demo_inputs, tmp_path):
    root, faces, speech = demo_inputs
    res = CliRunner().invoke(main, ["generate", "--design", "matched", "--faces", str(faces[0]), "--speech",
                                    str(speech[0]), "--backend", "nosuch", "--workers", "2",
                                    "--out", str(tmp_path / "set")])
    assert res.exit_code == 1
    assert "unknown renderer backend 'nosuch'" in res.output and "Traceback" not in res.output
    assert not list((tmp_path / "set" / "media").glob("*")) if (tmp_path / "set" / "media").exists() else True


@pytest.mark.parametrize(("extra", "message"), [
    (["--backend", "neural"], "--backend neural needs --checkpoint PATH"),
    (["--backend", "nosuch", "--dry-run"], "unknown renderer backend 'nosuch'"),
])
def test_backend_problems_stop_before_anything_is_written(demo_inputs, tmp_path, extra, message):
    # Acceptance finding: `generate --backend neural` without --checkpoint crashed with a TypeError traceback
    # after creating the set folder; an unknown backend left an empty manifest.json behind (and --dry-run
    # accepted it).
    root, faces, speech = demo_inputs
    out = tmp_path / "set"
    res = CliRunner().invoke(main, ["generate", "--design", "matched", "--faces", str(faces[0]), "--speech",
                                    str(speech[0]), "--out", str(out), *extra])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_a_neutral_photo_or_rest_photo_gives_no_rest_note(demo_inputs, tmp_path):
    root, faces, speech = demo_inputs
    sp = tmp_path / "speech"
    sp.mkdir()
    (sp / speech[0].name).write_bytes(speech[0].read_bytes())
    for face, extra in ((faces[1], []), (faces[0], ["--rest", "photo"])):
        out = tmp_path / f"set-{face.stem}-{len(extra)}"
        res = CliRunner().invoke(main, ["generate", "--design", "matched", "--faces", str(face), "--speech", str(sp),
                                        "--backend", "warp", "--workers", "1", *extra, "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "not at rest" not in " ".join(res.output.split())
        params = next(iter(load_manifest(out))).provenance.parameters["renderer"]
        assert params["rest_shift_px"] == 0.0 and params["rest"] == ("photo" if extra else "neutral")
