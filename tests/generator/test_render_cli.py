"""`emostudy render`: files in, a browser-playable mp4 out; bad files refused with a clear message."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("cv2")
pytest.importorskip("dlib")
from PIL import Image  # noqa: E402

from emostudy.cli import main  # noqa: E402
from generator.align import shipped_faces  # noqa: E402
from generator.audio import write_wav  # noqa: E402
from generator.mediaio import read_video  # noqa: E402
from generator.produce.render_cli import parse_components, render_command  # noqa: E402


def _voice(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.6 * np.sin(2 * np.pi * 140 * t)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("render")
    hopper = dict(shipped_faces())["matplotlib:grace_hopper.jpg"]
    Image.fromarray(hopper).save(d / "face.jpg")
    Image.fromarray(hopper).convert("L").save(d / "gray.png")
    Image.fromarray(np.dstack([hopper, np.full(hopper.shape[:2], 255, np.uint8)])).save(d / "rgba.png")
    rng = np.random.default_rng(0)
    Image.fromarray((110 + rng.integers(0, 5, (200, 200, 3))).astype(np.uint8)).save(d / "wall.png")
    (d / "notes.jpg").write_text("not an image")
    write_wav(d / "speech.wav", _voice(1.0, 8000), 8000)
    write_wav(d / "short.wav", _voice(0.1, 8000), 8000)
    write_wav(d / "silent.wav", np.zeros(16000), 16000)
    # Stereo 48 kHz, 16-bit: the left channel speaks, the right is quieter.
    left, right = _voice(1.2, 48000), 0.3 * _voice(1.2, 48000)
    pcm = (np.stack([left, right], axis=1) * 32767).astype("<i2")
    with wave.open(str(d / "stereo48k.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())
    return d


def run(*args: str):
    return CliRunner().invoke(render_command, list(args), catch_exceptions=False)


def test_render_writes_a_playable_mp4(files):
    out = files / "clip.mp4"
    res = run("--backend", "warp", "--face", str(files / "face.jpg"), "--speech", str(files / "speech.wav"),
              "--emotion", "happiness=0.7,neutral=0.3", "--seed", "3", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["frames"] == 25 and summary["size"] == [128, 128]
    assert summary["parameters"]["emotion_vector"] == [0.0, 0.0, 0.0, 0.7, 0.3, 0.0]
    frames, fps = read_video(out)
    assert frames.shape == (25, 128, 128, 3) and fps == pytest.approx(25.0)
    # RGB all the way: the decoded first frame looks like the aligned photo, channel by channel.
    from generator.warp.renderer import WarpRenderer

    aligned = WarpRenderer().prepare(np.asarray(Image.open(files / "face.jpg")), 128).image.astype(float)
    same = np.abs(frames[0].astype(float) - aligned).mean()
    swapped = np.abs(frames[0][..., ::-1].astype(float) - aligned).mean()
    assert same < 15.0 and same < 0.5 * swapped  # (H.264 at crf 18 on a wrinkled face: ~9 grey levels)
    import av

    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
    # Never overwrite a user's file unless asked.
    again = run("--face", str(files / "face.jpg"), "--speech", str(files / "speech.wav"),
                "--emotion", "sadness", "--out", str(out))
    assert again.exit_code != 0 and "exists" in again.output


def test_size_256_and_the_lazy_cli_entry(files):
    out = files / "big.mp4"
    res = CliRunner().invoke(main, ["render", "--face", str(files / "face.jpg"), "--speech",
                                    str(files / "stereo48k.wav"), "--emotion", "SAD", "--size", "256",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    frames, _ = read_video(out)
    assert frames.shape == (30, 256, 256, 3)  # the stereo 48 kHz file: mixed down, 1.2 s -> 30 frames


@pytest.mark.parametrize("photo", ["gray.png", "rgba.png"])
def test_grayscale_and_rgba_photos_are_converted(files, photo):
    out = files / f"{photo}.mp4"
    res = run("--face", str(files / photo), "--speech", str(files / "speech.wav"), "--emotion", "anger",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    assert read_video(out)[0].shape == (25, 128, 128, 3)


@pytest.mark.parametrize(("face", "speech", "emotion", "message"), [
    ("wall.png", "speech.wav", "anger", "wall.png: .*no face found"),
    ("notes.jpg", "speech.wav", "anger", "notes.jpg: cannot be read as an image"),
    ("missing.jpg", "speech.wav", "anger", "missing.jpg: face image not found"),
    ("face.jpg", "short.wav", "anger", "short.wav: speech is 0.10 s long"),
    ("face.jpg", "silent.wav", "anger", "silent.wav: the recording is silent"),
    ("face.jpg", "speech.wav", "happiness=-1", "non-negative"),
    ("face.jpg", "speech.wav", "joyful", "unknown emotion 'joyful'"),
])
def test_bad_input_is_refused_with_the_file_and_the_fix(files, face, speech, emotion, message):
    out = files / "bad.mp4"
    res = run("--face", str(files / face), "--speech", str(files / speech), "--emotion", emotion,
              "--out", str(out))
    assert res.exit_code == 1
    assert res.output.startswith("Error:")
    import re

    assert re.search(message, res.output), res.output
    assert not out.exists()
    assert not list(files.glob(".bad-*"))  # no temporary left behind


def test_several_faces_policy(files):
    hopper = np.asarray(Image.open(files / "face.jpg"))
    Image.fromarray(np.concatenate([hopper, hopper[:, ::-1]], axis=1)).save(files / "two.png")
    args = ["--face", str(files / "two.png"), "--speech", str(files / "speech.wav"), "--emotion", "fear"]
    res = run(*args, "--face-policy", "single", "--out", str(files / "two.mp4"))
    assert res.exit_code == 1 and "2 faces found" in res.output and "largest" in res.output
    # Acceptance finding: the fix named the library's policy='largest', not the command's option.
    assert "--face-policy largest" in res.output and "policy='largest'" not in res.output
    # The default is the face gate's "single": refuse, naming the file and both fixes, write nothing.
    res = run(*args, "--out", str(files / "two.mp4"))
    assert res.exit_code == 1 and str(files / "two.png") in res.output and "2 faces found" in res.output
    assert "--face-policy largest" in res.output and "--force" in res.output and "face image:" not in res.output
    assert not (files / "two.mp4").exists()
    res = run(*args, "--face-policy", "largest", "--out", str(files / "two.mp4"), "--json")
    assert res.exit_code == 0, res.output
    gate = json.loads(res.output)["parameters"]["face_gate"]
    assert gate["policy"] == "largest" and gate["faces_found"] == 2 and gate["forced"] is False


def test_backend_options_are_checked(files):
    res = run("--backend", "neural", "--face", str(files / "face.jpg"), "--speech", str(files / "speech.wav"),
              "--emotion", "anger", "--out", str(files / "n.mp4"))
    assert res.exit_code == 1 and "--checkpoint" in res.output
    res = run("--backend", "warp", "--checkpoint", str(files / "face.jpg"), "--face", str(files / "face.jpg"),
              "--speech", str(files / "speech.wav"), "--emotion", "anger", "--out", str(files / "w.mp4"))
    assert res.exit_code == 1 and "no --checkpoint" in res.output
    res = run("--backend", "neural", "--checkpoint", str(files / "face.jpg"), "--components", "mouth",
              "--face", str(files / "face.jpg"), "--speech", str(files / "speech.wav"), "--emotion", "anger",
              "--out", str(files / "n.mp4"))
    assert res.exit_code == 1 and "warp only" in res.output
    assert parse_components("none") == () and parse_components("mouth, life") == ("mouth", "life")
    assert parse_components(None) is None


def test_rendered_file_gets_the_umask_mode_not_mkstemp_0600(files):
    # Acceptance finding: `emostudy render` wrote its mp4 through mkstemp, so the clip was 0600 (unreadable to
    # a study server running as another user), unlike every other file the product writes.
    import os
    import stat

    out = files / "mode.mp4"
    res = run("--face", str(files / "face.jpg"), "--speech", str(files / "speech.wav"), "--emotion", "anger",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


def test_silent_speech_error_offers_no_option_the_cli_lacks(files):
    # Acceptance finding: `emostudy render` with a silent file said "(or pass allow_silent)", an option no
    # command has.
    res = run("--face", str(files / "face.jpg"), "--speech", str(files / "silent.wav"), "--emotion", "anger",
              "--out", str(files / "silent.mp4"))
    assert res.exit_code == 1 and "the recording is silent" in res.output
    assert "allow_silent" not in res.output


def test_rest_option_reaches_the_renderer_and_is_warp_only(files):
    from skimage.data import astronaut

    Image.fromarray(astronaut()).save(files / "smile.png")
    args = ["--face", str(files / "smile.png"), "--speech", str(files / "speech.wav"), "--emotion", "neutral",
            "--face-policy", "largest", "--json"]
    res = run(*args, "--out", str(files / "rest.mp4"))
    assert res.exit_code == 0, res.output
    params = json.loads(res.output)["parameters"]
    assert params["rest"] == "neutral" and params["rest_shift_px"] > 1.0  # the smiling photo was closed
    res = run(*args, "--rest", "photo", "--out", str(files / "photo.mp4"))
    assert res.exit_code == 0, res.output
    params = json.loads(res.output)["parameters"]
    assert params["rest"] == "photo" and params["rest_shift_px"] == 0.0
    res = run("--backend", "neural", "--checkpoint", str(files / "face.jpg"), *args[:6], "--rest", "photo",
              "--out", str(files / "n.mp4"))
    assert res.exit_code == 1 and "--rest applies to --backend warp only" in res.output
