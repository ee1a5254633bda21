"""`prepare crema-d` on a small CREMA-D-style tree made here from a shipped face photo and synthetic audio."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from generator.data.corpus import read_clip, read_index
from generator.data.prepare import (PrepareOptions, assign_splits, prepare_crema, read_split_file,
                                    select_frames_by_time)
from generator.errors import InputError

GOOD = ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1003_TIE_SAD_LO"]
CORRUPT = "1004_DFA_NEU_XX"
N_SRC = 18  # frames at 30 fps = 0.6 s -> 15 frames at 25 fps
SHIFT_PER_FRAME = 1.0  # source pixels the face moves right per frame


def make_flv(path: Path, n: int = N_SRC, fps: int = 30, codec: str = "flv") -> None:
    """CREMA-D-like 480x360 30 fps clip: the astronaut's face, moving right and slowly zooming."""
    import av
    import cv2
    from skimage import data

    face = data.astronaut()[:210]  # above the suit: its round patch is detected as a face as large as hers
    container = av.open(str(path), "w", format="flv")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = 480, 360, "yuv420p"
    for i in range(n):
        s = 0.6 + 0.01 * np.sin(i / 3)
        m = np.array([[s, 0, 120 + SHIFT_PER_FRAME * i], [0, s, 20 + 0.3 * i]])
        img = cv2.warpAffine(face, m, (480, 360), borderMode=cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def make_tree(root: Path) -> Path:
    from generator.audio import write_wav

    (root / "VideoFlash").mkdir(parents=True)
    (root / "AudioWAV").mkdir()
    t = np.arange(int(0.6 * 44100)) / 44100
    for k, name in enumerate(GOOD):
        make_flv(root / "VideoFlash" / f"{name}.flv", codec="libx264" if k == 2 else "flv")
        write_wav(root / "AudioWAV" / f"{name}.wav", 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * t) + 0.05, 44100)
    (root / "VideoFlash" / f"{CORRUPT}.flv").write_bytes(b"this is not a video" * 20)
    write_wav(root / "AudioWAV" / f"{CORRUPT}.wav", 0.3 * np.sin(2 * np.pi * 300 * t), 44100)
    (root / "VideoFlash" / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("crema"))
    out = tmp_path_factory.mktemp("corpus")
    from rich.console import Console

    buf = io.StringIO()
    result = prepare_crema(root, out, jobs=2, console=Console(file=buf, width=200))
    return root, out, result, buf.getvalue()


def test_prepare_writes_the_expected_files(prepared):
    root, out, result, console = prepared
    assert sorted(c.clip_id for c in result.prepared) == GOOD
    index = read_index(out)
    assert [c.clip_id for c in index] == GOOD
    assert (out / "prepare_report.json").is_file()
    first = index[0]
    assert (first.actor, first.sentence, first.emotion, first.intensity, first.source) == \
        ("1001", "DFA", "anger", "XX", "crema-d")
    assert {c.emotion for c in index} == {"anger", "happiness", "sadness"}
    for info in index:
        clip = read_clip(out, info)
        assert info.n_frames == 15  # 0.6 s at 25 fps
        assert clip.video.shape == (15, 128, 128, 3) and clip.video.dtype == np.uint8
        assert clip.landmarks.shape == (15, 68, 2) and clip.landmarks.dtype == np.float32
        assert clip.audio.shape == (15 * 320,) and clip.audio.dtype == np.float32
        # 0.6 s of 8 kHz audio = 4800 samples = 15 x 320: mean-removed, peak-normalised
        assert abs(float(clip.audio.mean())) < 1e-3 and float(np.abs(clip.audio).max()) == pytest.approx(1.0)


def test_frames_are_aligned_bgr_with_the_first_frame_transform(prepared):
    from generator.align import align_clip, alignment_points, template
    from generator.data.prepare import read_video_at_fps
    from generator.faces import detect_landmarks

    root, out, _, _ = prepared
    info = read_index(out)[0]
    clip = read_clip(out, info)
    # frame 0's eyes and nose sit on the template's (similarity fit of 3 points: within ~2 px)
    err = np.abs(alignment_points(clip.landmarks[0]) - alignment_points(template((128, 128))))
    assert err.max() < 2.5
    # the whole clip uses frame 0's transform: the face keeps drifting right in the aligned frames
    # (source: 1 px/frame at 30 fps, x0.6 scale, times the alignment zoom); per-frame alignment would give ~0
    drift = alignment_points(clip.landmarks[-1])[:, 0].mean() - alignment_points(clip.landmarks[0])[:, 0].mean()
    assert drift > 3.0
    # same frames as an independent route: read, align with frame 0's landmarks, RGB -> BGR
    frames = read_video_at_fps(root / "VideoFlash" / f"{info.clip_id}.flv")
    ref, _ = align_clip(frames, detect_landmarks(frames[0]), (128, 128))
    np.testing.assert_array_equal(clip.video, ref[..., ::-1])


def test_corrupt_clip_is_reported_and_skipped(prepared):
    _, out, result, console = prepared
    assert len(result.failed) == 1
    file, why = result.failed[0]
    assert file.endswith(f"{CORRUPT}.flv") and "cannot be decoded as video" in why
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["failed"][0]["file"].endswith(f"{CORRUPT}.flv") and report["prepared"] == 3
    assert not (out / "clips" / f"{CORRUPT}.npz").exists()
    assert "1 failed" in console and f"{CORRUPT}.flv" in console


def test_resume_skips_done_clips(prepared, tmp_path):
    root, out, first, _ = prepared
    from rich.console import Console

    before = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    again = prepare_crema(root, out, jobs=1, console=Console(file=io.StringIO()))
    assert again.prepared == [] and sorted(c.clip_id for c in again.skipped) == GOOD
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == before
    assert read_index(out) == first.clips


def test_resume_with_other_options_is_refused(prepared):
    # Acceptance finding: re-running `prepare crema-d` on a 96x128 corpus with --size 128x128 skipped the done
    # clips and added 128x128 ones: one corpus with two frame sizes. A resume must keep the corpus' options.
    root, out, _, _ = prepared
    from rich.console import Console

    before = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    with pytest.raises(InputError, match=r"clips already in .* are 128x128, this run asks for --size 96x128; give a "
                                         r"new --out folder"):
        prepare_crema(root, out, jobs=1, options=PrepareOptions(size=(96, 128)), console=Console(file=io.StringIO()))
    with pytest.raises(InputError, match=r"prepare_report.json: the corpus was prepared with landmarks = 'aligned', "
                                         r"this run asks for 'transform'"):
        prepare_crema(root, out, jobs=1, options=PrepareOptions(landmarks="transform"),
                      console=Console(file=io.StringIO()))
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == before


def test_transform_landmarks_and_the_96x128_variant(prepared, tmp_path):
    root, out, _, _ = prepared
    from rich.console import Console

    opts = PrepareOptions(landmarks="transform", size=(96, 128))
    res = prepare_crema(root, tmp_path / "t", jobs=1, limit=1, options=opts, console=Console(file=io.StringIO()))
    clip = read_clip(tmp_path / "t", res.prepared[0])
    assert clip.video.shape == (15, 128, 96, 3)
    a = read_clip(out, read_index(out)[0]).landmarks
    # 96x128 is the 128x128 template at the same scale with 16 px less on each side (generator.align),
    # so its points are the 128x128 ones moved 16 px left; transformed vs detected agree within ~2 px
    b = clip.landmarks + np.array([16.0, 0.0], dtype=np.float32)
    assert np.median(np.linalg.norm(a - b, axis=-1)) < 2.0


def test_frame_selection_by_timestamps():
    # 1 s at 30 fps -> 25 frames; frame j shows source round(1.2 j), ties to the earlier (by hand)
    idx = select_frames_by_time(np.arange(30) / 30, 25.0, src_rate=30.0)
    assert idx.tolist()[:7] == [0, 1, 2, 4, 5, 6, 7]
    assert len(idx) == 25 and idx[-1] == 29  # 24/25 = 0.96 s -> 28.8 -> 29
    # FLV millisecond timestamps (0.6003 s) must not add a frame
    ms = np.round(np.arange(18) * 1000 / 30) / 1000
    assert len(select_frames_by_time(ms, 25.0, src_rate=30.0)) == 15
    # unsorted timestamps are sorted first
    assert select_frames_by_time(np.array([0.08, 0.0, 0.04]), 25.0).tolist() == [1, 2, 0]


def test_speaker_independent_split_70_15_15():
    actors = [str(1001 + i) for i in range(91)]
    split = assign_splits(actors * 3, seed=0)
    counts = {s: sum(1 for v in split.values() if v == s) for s in ("train", "val", "test")}
    assert counts == {"train": 63, "val": 14, "test": 14}  # 0.15 x 91 = 13.65 -> 14 each, train the rest
    assert assign_splits(actors, seed=0) == split  # deterministic
    assert assign_splits(actors, seed=1) != split
    assert sorted(assign_splits(["a", "b", "c"]).values()) == ["test", "train", "val"]


def test_split_file(prepared, tmp_path):
    root, _, _, _ = prepared
    from rich.console import Console

    f = tmp_path / "split.csv"
    f.write_text("actor,split\n1001,test\n1002,train\n1003,val\n1004,train\n")
    assert read_split_file(f) == ("actor", {"1001": "test", "1002": "train", "1003": "val", "1004": "train"})
    bad = tmp_path / "bad.csv"
    bad.write_text("clip_id,split\n1001_DFA_ANG_XX,training\n")
    with pytest.raises(InputError, match="line 2: split 'training'"):
        read_split_file(bad)
    partial = tmp_path / "partial.csv"
    partial.write_text("actor,split\n1001,test\n")
    with pytest.raises(InputError, match="no split for 3 actor"):
        prepare_crema(root, tmp_path / "o", split_file=partial, console=Console(file=io.StringIO()))


def test_prepare_cli(prepared, tmp_path):
    from click.testing import CliRunner
    from rich.console import Console

    from generator.data.cli import prepare_group

    root, _, _, _ = prepared
    buf = io.StringIO()
    r = CliRunner().invoke(prepare_group, ["crema-d", "--root", str(root), "--out", str(tmp_path / "c"),
                                           "--jobs", "1", "--limit", "1"], obj={"console": Console(file=buf, width=200)})
    assert r.exit_code == 0, r.output + buf.getvalue()
    assert [c.clip_id for c in read_index(tmp_path / "c")] == GOOD[:1]
    assert "prepared 1 clips" in buf.getvalue()
    r = CliRunner().invoke(prepare_group, ["crema-d", "--root", str(root), "--out", str(tmp_path / "d"),
                                           "--size", "big"], obj={"console": Console(file=buf)})
    assert r.exit_code != 0 and "WIDTHxHEIGHT" in r.output


def _crashing_worker(src, out, split, options):
    """Stands in for the real worker in a spawned process: dies hard on one clip."""
    import os

    from generator.data.corpus import ClipInfo

    if src.clip_id == "1002_IEO_HAP_HI":
        os._exit(3)  # what a segfault in a decoder looks like to the pool
    return ClipInfo(src.clip_id, src.actor, src.sentence, src.emotion, src.intensity, split, 1), ""


def test_a_crashing_worker_fails_only_its_clip(prepared):
    import multiprocessing

    from generator.data.prepare import _run_pool, discover_crema

    root, _, _, _ = prepared
    sources, _ = discover_crema(root)
    got: dict[str, str] = {}

    def record(src, info, why):
        got[src.clip_id] = "ok" if info is not None else why

    _run_pool(sources, Path("unused"), {s.clip_id: "train" for s in sources}, PrepareOptions(), 2,
              multiprocessing.get_context("spawn"), record, worker=_crashing_worker)
    assert set(got) == {s.clip_id for s in sources}
    assert got.pop("1002_IEO_HAP_HI").startswith("the worker process crashed")
    assert set(got.values()) == {"ok"}
