"""Recombined recordings: the video of one emotion re-timed to the audio of another (DTW on MFCC).

The recordings are made here: one sentence spoken by espeak-ng at two rates (and another sentence),
each rendered with the warp's mouth only, so the re-timed video can be compared with the video the
other rate's speech drives (the known answer): the frame error is measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from generator.produce import recombine as R
from generator.produce.jobs import DesignOptions, Job, ProduceError, one_hot


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    from generator.align import shipped_faces
    from generator.audio import resample
    from generator.data.tts import synthesize
    from generator.mediaio import write_mp4
    from generator.warp.renderer import WarpRenderer

    root = tmp_path_factory.mktemp("recordings")
    other = tmp_path_factory.mktemp("other")
    face = shipped_faces()[0][1]
    renderer = WarpRenderer(components=("mouth",))  # no head motion, no expression: only speech moves the face
    for folder, code, text, rate in ((root, "NEU", "It's eleven o'clock.", 140),
                                     (root, "ANG", "It's eleven o'clock.", 210),
                                     (other, "SAD", "Don't forget a jacket.", 175)):
        x, sr = synthesize(text, rate=rate)
        frames = renderer.render(face, resample(x, sr, 8000), "neutral", 0, size=128).frames
        write_mp4(folder / f"SYN01_IEO_{code}_XX.mp4", frames, 25, x, sr)
    return root, other


def _job(v: Path, a: Path) -> Job:
    return Job(face=str(v), speech=str(a), visual=one_hot("neutral"), audio_emotion="anger", identity="SYN01",
               sentence="IEO", kind=R.KIND, visual_origin=R.ORIGIN)


def test_retiming_follows_the_other_rate_better_than_the_video_as_is(recordings):
    from generator.mediaio import read_video

    root, _ = recordings
    slow, fast = root / "SYN01_IEO_NEU_XX.mp4", root / "SYN01_IEO_ANG_XX.mp4"
    decoded = {p: read_video(p)[0].astype(np.float64) for p in (slow, fast)}
    for v, a in ((slow, fast), (fast, slow)):
        frames, audio, rate, params = R.make_clip(_job(v, a))
        target, source = decoded[a], decoded[v]
        n = min(len(frames), len(target))
        assert abs(len(frames) - len(target)) <= 1  # A's duration
        retimed = np.abs(frames[:n] - target[:n]).mean()
        as_is = np.abs(source[np.minimum(np.arange(n), len(source) - 1)] - target[:n]).mean()
        linear = np.abs(source[np.minimum((np.arange(n) * len(source) / len(target)).astype(int),
                                          len(source) - 1)] - target[:n]).mean()
        assert retimed < 0.8 * as_is and retimed < linear, (retimed, as_is, linear)
        assert params["alignment_cost"] < R.MAX_ALIGNMENT_COST
        expected_rate = len(source) / len(target)  # seconds of V per second of A
        assert abs(params["path"]["rate_median"] - expected_rate) < 0.2 * expected_rate
        assert params["most_repeats_of_a_frame"] <= 3
        sync = params["lipsync"]  # check's measure: the re-timed mouth follows A's speech better than V as is
        print(v.name, "->", a.name, f"frame error {retimed:.2f} (as is {as_is:.2f}, linear {linear:.2f}),",
              f"cost {params['alignment_cost']}, lip sync r {sync['before']['corr']} -> {sync['after']['corr']}")
        assert sync["after"]["corr"] > sync["before"]["corr"] and sync["after"]["corr"] > 0.5


def test_a_poorly_aligned_pair_is_refused_with_the_number(recordings):
    root, other = recordings
    with pytest.raises(ProduceError, match=r"alignment cost \d+\.\d\d is above 2\.5"):
        R.make_clip(_job(other / "SYN01_IEO_SAD_XX.mp4", root / "SYN01_IEO_NEU_XX.mp4"))


def test_generate_recombine_makes_matched_and_mismatched_from_the_recordings(tmp_path, recordings):
    from emostudy.cli import main
    from stimuli.manifest import load_manifest

    root, _ = recordings
    jobs = R.plan_recombined(DesignOptions(design="mismatched", recordings=(str(root),)))
    assert sorted((j.visual_emotion, j.audio_emotion) for j in jobs) == [
        ("anger", "anger"), ("anger", "neutral"), ("neutral", "anger"), ("neutral", "neutral")]
    out = tmp_path / "set"
    res = CliRunner().invoke(main, ["generate", "--design", "mismatched", "--recordings", str(root), "--recombine",
                                    "--workers", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = load_manifest(out / "manifest.json")
    assert len(m) == 4 and all(s.visual_emotion_origin == "recording" for s in m)
    for s in m:
        p = s.provenance.parameters
        if s.visual_emotion == s.audio_emotion:
            assert p["recombined"] is False and s.extra["face_file"] == s.extra["speech_file"]
        else:
            assert p["recombined"] and p["alignment_cost"] < R.MAX_ALIGNMENT_COST
            assert p["video_file"] != p["audio_file"]
    row = json.loads((out / "manifest.json").read_text())["stimuli"][0]
    assert row["visual_emotion_origin"] == "recording"
    with pytest.raises(ProduceError, match="--recordings"):
        R.plan_recombined(DesignOptions(design="mismatched", faces=("x",), speech=("y",)))
