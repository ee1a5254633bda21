"""`emostudy check`: the measures on warp renders of the shipped faces, and a whole (tiny) set.

Clips are 2 s, 128x128, rendered once per module (tests/generator/check_helpers.py).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")
sys.path.insert(0, str(Path(__file__).parent))

from check_helpers import FPS, syllables, render_mp4  # noqa: E402
from generator.check.clip import ClipChecker, ClipJob, MeasureSettings  # noqa: E402

SECONDS = 2.0
EMOS = ("neutral", "happiness", "sadness", "anger", "fear", "disgust")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from generator.produce.demo_assets import make_face_pool

    paths = make_face_pool(tmp_path_factory.mktemp("faces"))
    return {p.stem: p for p in paths}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, photos):
    from generator.faces import load_image

    d = tmp_path_factory.mktemp("clips")
    audio = syllables(SECONDS)
    hopper, astronaut = load_image(photos["grace_hopper"]), load_image(photos["astronaut"])
    out = {emo: render_mp4(d / f"hopper-{emo}.mp4", hopper, audio, emo) for emo in EMOS}
    out["astronaut"] = render_mp4(d / "astronaut.mp4", astronaut, audio, "neutral")
    out["delayed"] = render_mp4(d / "hopper-delayed.mp4", hopper, audio, "neutral", audio_delay_frames=10)
    return out


@pytest.fixture(scope="module")
def checker():
    import torch

    torch.set_num_threads(1)
    return ClipChecker(MeasureSettings(identity_frames=2))


def job(path: Path, photo: Path | None, emotion: str = "neutral") -> ClipJob:
    return ClipJob(stimulus_id=path.stem, media=path, sha256="", reference="photo" if photo else "first_frame",
                   reference_image=photo, lipsync_expected=True, intended=emotion, sheet=path.with_suffix(".png"))


@pytest.fixture(scope="module")
def measured(clips, photos, checker):
    return {k: checker.check(job(p, photos["astronaut" if k == "astronaut" else "grace_hopper"],
                                 k if k in EMOS else "neutral"))[0] for k, p in clips.items()}


def test_faces_found_and_landmarks_plausible(measured):
    for name, rec in measured.items():
        assert rec["n_frames"] == SECONDS * FPS
        assert rec["face_fraction"] == 1.0, name
        assert rec["landmark_plausible_fraction"] >= 0.95, name


def test_identity_same_person_below_and_other_photo_above_threshold(clips, photos, checker, measured):
    # dlib's same-person threshold is 0.6: the clip against its own source photo ...
    assert measured["astronaut"]["identity_check"]["distance_max"] < 0.6
    assert measured["neutral"]["identity_check"]["distance_max"] < 0.6
    # ... and against the other shipped photo.
    other = checker.check(job(clips["astronaut"], photos["grace_hopper"]))[0]
    assert other["identity_check"]["distance_mean"] > 0.6
    assert other["identity_check"]["reference"] == "photo"


def test_lip_sync_finds_a_10_frame_audio_delay(measured):
    synced, delayed = measured["neutral"]["lipsync"], measured["delayed"]["lipsync"]
    assert abs(synced["lag_frames"]) <= 1 and synced["corr"] > 0.5
    assert delayed["lag_frames"] == 10 and delayed["corr"] > 0.5  # audio later than the mouth: positive lag
    assert delayed["corr_at_zero"] < delayed["corr"] - 0.2


def test_expression_measures_move_the_expected_way(measured):
    # Each emotion against the neutral render of the same face, speech and seed (eye distances), following
    # the FACS prototypes the warp renderer uses (generator/warp/expression.py).
    d = {e: {k: measured[e]["expression"][k] - measured["neutral"]["expression"][k]
             for k in measured[e]["expression"]} for e in EMOS if e != "neutral"}
    assert all(abs(v) < 0.06 for v in measured["neutral"]["expression"].values())  # at rest, give or take life
    assert d["happiness"]["lip_corner_height"] > 0.03 and d["happiness"]["mouth_width"] > 0.1  # AU12 smile
    assert d["sadness"]["lip_corner_height"] < -0.03  # AU15 lip-corner depressor
    assert d["sadness"]["brow_distance"] < -0.03  # AU4 draws the brows together
    assert d["anger"]["brow_raise"] < -0.05 and d["anger"]["brow_distance"] < -0.05  # AU4 brow lowerer
    assert d["fear"]["mouth_width"] > 0.05  # AU20 lip stretcher
    assert d["fear"]["brow_raise"] > d["anger"]["brow_raise"] + 0.05  # AU1 + 2 raise what AU4 lowers
    assert d["disgust"]["brow_raise"] < -0.03  # AU9 pulls the inner brows down


def test_rater_reports_a_distribution(measured):
    for rec in measured.values():
        probs = rec["rater"]["probs"]
        assert abs(sum(probs.values()) - 1) < 1e-4 and rec["rater"]["top"] == max(probs, key=probs.get)
    assert measured["happiness"]["rater"]["top"] == "happy"  # the warp smile is clear enough for FER-2013


# ------------------------------------------------------------------ a whole set

def _row(root: Path, sid: str, src: Path, emotion: str, face_sha: str | None) -> dict:
    from stimuli.manifest import sha256_file
    from stimuli.media import probe

    dst = root / "media" / f"{sid}.mp4"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    info = probe(dst)
    return {"stimulus_id": sid, "media": f"media/{sid}.mp4", "sha256": sha256_file(dst),
            "duration_s": info.duration_s, "fps": info.fps, "width": info.width, "height": info.height,
            "audio_rate": info.audio_rate, "source": "WARP", "visual_emotion": emotion, "audio_emotion": "neutral",
            "identity": "grace_hopper", "sentence": "SYN",
            "provenance": {"backend": "warp", "parameters": {"face_sha256": face_sha,
                                                             "renderer": {"components": ["expression", "mouth"]}}}}


def test_check_set_reports_a_corrupt_clip_resumes_and_records_in_the_manifest(tmp_path, clips, photos):
    from rich.console import Console

    from generator.check.run import Thresholds, check_set
    from stimuli.manifest import build_manifest, load_manifest, save_manifest, sha256_file

    root = tmp_path / "set"
    face_sha = sha256_file(photos["grace_hopper"])
    rows = [_row(root, "c-happy", clips["happiness"], "happiness", face_sha),
            _row(root, "c-delayed", clips["delayed"], "neutral", face_sha),
            _row(root, "c-broken", clips["neutral"], "neutral", face_sha)]
    broken = root / "media" / "c-broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # a truncated, garbled file
    rows[2]["sha256"] = sha256_file(broken)
    save_manifest(build_manifest(root, rows, name="tiny"))

    console = Console(record=True, width=200)
    rep = check_set(root, jobs=1, faces=[photos["grace_hopper"].parent], console=console,
                    settings=MeasureSettings(identity_frames=1), thresholds=Thresholds(min_rater_prob=0.0))
    text = console.export_text()
    assert "c-broken.mp4" in text and "error" in text  # named, and the run went on
    assert len(rep.errors) == 1 and rep.measured == 3
    by = {r["stimulus_id"]: r for r in rep.records}
    assert by["c-broken"]["reasons"][0].startswith("unreadable:") and "c-broken.mp4" in by["c-broken"]["reasons"][0]
    assert not by["c-happy"]["flagged"], by["c-happy"]["reasons"]
    assert by["c-happy"]["identity_check"]["reference"] == "photo"
    assert by["c-delayed"]["flagged"] and by["c-delayed"]["reasons"] == ["lip sync: audio late by 10 frames (> 3)"]
    qc = json.loads((root / "qc" / "qc.json").read_text())
    assert {m["file"] for m in qc["models"]} >= {"emotion_model.hdf5", "dlib_face_recognition_resnet_model_v1.dat"}
    assert all(len(m["sha256"]) == 64 for m in qc["models"]) and qc["thresholds"]["max_sync_lag"] == 3
    assert (root / "qc" / "sheets" / "c-happy.png").stat().st_size > 5000
    html = (root / "qc" / "qc.html").read_text()
    assert "c-delayed" in html and "audio late by 10 frames" in html and "confusion" in html
    # each clip plays in the page (its media relative to qc.html), the flagged table names both emotions,
    # and the summary counts clips per flag
    assert html.count("<video") == 2 and "src='../media/c-happy.mp4'" in html
    assert "<th class=l>audio emotion</th>" in html and "Clips per flag" in html
    assert "<tr><td class=l>lip sync</td><td>1</td>" in html
    from PIL import Image

    assert Image.open(root / "qc" / "sheets" / "c-happy.png").width >= 8 * 128  # frames >= 128 px wide

    m = load_manifest(root, check_media=True)
    assert [s.flagged for s in m] == [False, True, True]
    assert m["c-delayed"].check["lipsync_lag_frames"] == 10
    assert json.loads((root / "manifest.json").read_text())["schema_version"] == 2

    # Resume: nothing changed -> nothing measured (the broken clip is tried again); new thresholds re-flag.
    rep2 = check_set(root, jobs=1, faces=[photos["grace_hopper"].parent], console=Console(file=None, quiet=True),
                     settings=MeasureSettings(identity_frames=1), thresholds=Thresholds(max_sync_lag=12, min_rater_prob=0.0))
    assert rep2.reused == 2 and rep2.measured == 1
    assert not {r["stimulus_id"]: r for r in rep2.records}["c-delayed"]["flagged"]


def test_check_command_names_a_missing_manifest(tmp_path):
    from click.testing import CliRunner

    from emostudy.cli import main

    r = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert r.exit_code != 0 and "no manifest here" in r.output and str(tmp_path) in r.output


def test_what_each_clip_is_expected_to_show():
    from generator.check.run import expression_expected, lipsync_expected
    from stimuli.manifest import stimulus_from_dict

    def stim(components, audio_rate=44100, backend="warp", visual="anger"):
        params = {} if components is None else {"renderer": {"components": components}}
        return stimulus_from_dict({
            "stimulus_id": "x", "media": "media/x.mp4", "sha256": "0" * 64, "duration_s": 1.0, "fps": 25.0,
            "width": 128, "height": 128, "audio_rate": audio_rate, "source": "S", "visual_emotion": visual,
            "audio_emotion": "anger", "identity": "i", "sentence": "s",
            "provenance": {"backend": backend, "parameters": params}})

    full, lips, still = stim(["expression", "mouth", "life"]), stim(["mouth", "life"]), stim([])
    recording, silent = stim(None, backend="recording"), stim(["expression", "mouth"], audio_rate=None)
    assert [lipsync_expected(s) for s in (full, lips, still, recording, silent)] == [True, True, False, True, False]
    assert [expression_expected(s) for s in (full, lips, still, recording)] == [True, False, False, True]
    assert not expression_expected(stim(["expression"], visual=None))


def test_lip_sync_sign_and_short_overlap():
    from generator.check.measures import lip_sync

    rng = np.random.default_rng(0)
    e = np.convolve(np.abs(rng.normal(size=80)), np.ones(3) / 3, "same")
    assert lip_sync(e[:-6], e[6:])["lag_frames"] == -6  # the envelope runs ahead: audio early
    assert lip_sync(e[6:], e[:-6])["lag_frames"] == 6
    # A chance match between the last 8 frames of the mouth and the first 8 of the audio does not beat a
    # real, weaker, match at lag 0 on a short clip.
    mouth = e[:26].copy()
    env = 0.6 * mouth + 0.4 * e[40:66]
    env[:8] = mouth[-8:]
    assert lip_sync(mouth, env, max_lag=18)["lag_frames"] == 0


def test_generate_with_check_checks_the_new_set(tmp_path, photos):
    from click.testing import CliRunner

    from emostudy.cli import main
    from generator.audio import write_wav
    from check_helpers import RATE

    write_wav(tmp_path / "speech.wav", syllables(1.2, seed=3), RATE)
    (tmp_path / "jobs.csv").write_text(f"face,speech,visual_emotion,audio_emotion\n{photos['grace_hopper']},"
                                       f"speech.wav,happiness,neutral\n")
    out = tmp_path / "set"
    r = CliRunner().invoke(main, ["generate", "--design", "jobs", "--jobs", str(tmp_path / "jobs.csv"),
                                  "--faces", str(photos["grace_hopper"]), "--workers", "1", "--out", str(out),
                                  "--check"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "1 clips checked (1 measured, 0 reused" in r.output
    qc = json.loads((out / "qc" / "qc.json").read_text())
    assert qc["records"][0]["identity_check"]["reference"] == "photo"  # found by the manifest's face sha256
    assert "check" in json.loads((out / "manifest.json").read_text())["stimuli"][0]


def test_the_rater_reads_each_crop_and_its_mirror(checker):
    rng = np.random.default_rng(5)
    crops = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    both = checker.rate(crops)
    own = checker.rater.predict(crops)
    mirrored = checker.rater.predict(np.ascontiguousarray(crops[:, :, ::-1]))
    np.testing.assert_allclose(both, 0.5 * (own + mirrored), rtol=1e-6)
    assert not np.allclose(own, mirrored, atol=1e-3)  # random crops are not symmetric: the mirror counts
    np.testing.assert_allclose(both.sum(1), 1.0, rtol=1e-5)
    single = ClipChecker.__new__(ClipChecker)
    single.settings, single.rater = MeasureSettings(rater_mirror=False), checker.rater
    np.testing.assert_allclose(single.rate(crops), own, rtol=1e-6)
    assert MeasureSettings().key() != MeasureSettings(rater_mirror=False).key()  # records are re-measured
