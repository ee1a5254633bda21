"""Batch production: the job lists of each design, ids and shards, and runs with a fake renderer
(the file checks use PyAV directly, not the code under test's probe)."""

from __future__ import annotations

import collections
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from generator.audio import write_wav
from generator.errors import NoFaceError
from generator.produce.batch import (DesignOptions, ProduceError, RendererSpec, blend_vector, done_ids, merge_shards,
                                     parse_shard, plan_items, plan_jobs, produce, read_labels_csv)
from stimuli.emotions import EMOTION_CODES, EMOTIONS
from stimuli.manifest import load_manifest

CODES = dict(zip(EMOTIONS, EMOTION_CODES))


# ------------------------------------------------------------------------------------- test doubles

class FakeRenderer:
    """Stands in for generator.renderers' backends: the face resized, tinted by the emotion vector,
    a dark mouth bar as tall as the speech energy; refuses a uniform image as 'no face'."""

    name = "fake"
    checkpoint_sha256 = None

    def __init__(self, delay_s: float = 0.0, **options):
        self.delay_s = delay_s
        self.options = options

    def render(self, face, speech, emotion, seed, *, intensity=1.0, size=128):
        from generator.renderers import RenderResult, emotion_vector

        vec = emotion_vector(emotion, intensity)
        if float(np.asarray(face).std()) < 1.0:
            raise NoFaceError("face image: no face found (fake renderer: the image is uniform)")
        if self.delay_s:
            time.sleep(self.delay_s)
        t = math.ceil(len(speech) / 320)
        h, w = face.shape[:2]
        ys, xs = (np.arange(size) * h // size), (np.arange(size) * w // size)
        base = face[ys][:, xs].astype(np.float32)
        base[: size // 8] = np.asarray(vec[:3]) * 255  # a colour band: which emotion
        rng = np.random.default_rng(seed)
        frames = np.repeat(base[None], t, axis=0)
        energy = np.sqrt(np.mean(np.pad(speech, (0, t * 320 - len(speech))).reshape(t, 320) ** 2, axis=1))
        for i in range(t):
            open_px = int(energy[i] * size / 4)
            frames[i, size * 3 // 4: size * 3 // 4 + open_px, size // 3: 2 * size // 3] = 20
        frames += rng.normal(0, 2, frames.shape)
        return RenderResult(frames=np.clip(frames, 0, 255).astype(np.uint8), audio=speech, audio_rate=8000,
                            parameters={"vec": vec.round(4).tolist(), "options": self.options})


def fake_factory(backend, **options):
    return FakeRenderer(**options)


def slow_factory(backend, **options):
    return FakeRenderer(delay_s=0.4, **options)


# ----------------------------------------------------------------------------------------- inputs

def make_face(path: Path, seed: int, size: int = 64) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = (rng.random((size, size, 3)) * 200 + 30).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def make_speech(path: Path, seed: int, seconds: float = 0.6, rate: int = 16000) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    x = 0.4 * env * np.sin(2 * np.pi * (120 + 20 * seed) * t) + 0.01 * rng.normal(size=t.size)
    write_wav(path, x.astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    """2 faces; 6 speech files named like CREMA-D (one per emotion, actor 1001, two sentences)."""
    root = tmp_path_factory.mktemp("pools")
    faces, speech = root / "faces", root / "speech"
    faces.mkdir()
    speech.mkdir()
    make_face(faces / "alice.png", 1)
    make_face(faces / "bob.jpg", 2)
    for i, emo in enumerate(EMOTIONS):
        make_speech(speech / f"1001_{'DFA' if i % 2 else 'IEO'}_{CODES[emo]}_XX.wav", i)
    return faces, speech


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Twelve short 'recordings' (video + audio), two per emotion, CREMA-D names."""
    from generator.mediaio import write_mp4

    root = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(0)
    for i, emo in enumerate(EMOTIONS):
        for actor in ("1001", "1002"):
            frames = (rng.random((10, 64, 64, 3)) * 255).astype(np.uint8)
            audio = (0.3 * np.sin(np.arange(3200) * 0.07 * (i + 1))).astype(np.float32)
            write_mp4(root / f"{actor}_TIE_{CODES[emo]}_HI.mp4", frames, 25, audio, 8000)
    return root


# ------------------------------------------------------------------------------------- job lists

def test_mismatched_pools_cover_all_36_pairs_r_times(pools):
    faces, speech = pools
    jobs = plan_jobs(DesignOptions("mismatched", faces=(str(faces),), speech=(str(speech),), repeats=2, seed=7))
    assert len(jobs) == 72
    pairs = collections.Counter((j.visual_emotion, j.audio_emotion) for j in jobs)
    assert set(pairs) == {(v, a) for v in EMOTIONS for a in EMOTIONS}
    assert set(pairs.values()) == {2}
    for j in jobs:
        # the audio label is the speech file's own emotion code (read independently from the name)
        code = Path(j.speech).stem.split("_")[2]
        assert EMOTIONS[EMOTION_CODES.index(code)] == j.audio_emotion
        assert j.visual == tuple(1.0 if e == j.visual_emotion else 0.0 for e in EMOTIONS)
        assert j.visual_blend is None and not j.same_recording
        assert j.identity in ("alice", "bob") and j.sentence in ("DFA", "IEO")
    # both faces used evenly; the repeats are labelled
    assert collections.Counter(Path(j.face).name for j in jobs) == {"alice.png": 36, "bob.jpg": 36}
    assert collections.Counter(j.repeat for j in jobs) == {0: 36, 1: 36}
    # deterministic for a seed
    again = plan_jobs(DesignOptions("mismatched", faces=(str(faces),), speech=(str(speech),), repeats=2, seed=7))
    assert again == jobs


def test_mismatched_recordings_take_face_and_speech_from_one_video(recordings):
    jobs = plan_jobs(DesignOptions("mismatched", recordings=(str(recordings),), repeats=2, seed=3))
    assert len(jobs) == 72
    assert set(collections.Counter((j.visual_emotion, j.audio_emotion) for j in jobs).values()) == {2}
    for j in jobs:
        assert j.face == j.speech and j.same_recording
        name = Path(j.speech).stem.split("_")
        assert j.identity == name[0] and j.sentence == "TIE" and j.speech_intensity == "HI"
        assert EMOTIONS[EMOTION_CODES.index(name[2])] == j.audio_emotion
    # each audio emotion's two recordings are used in turn: 6 uses each over 2 repeats
    assert set(collections.Counter(j.speech for j in jobs).values()) == {6}


def test_matched_factorial_continuum(pools):
    faces, speech = pools
    f, s = (str(faces),), (str(speech),)
    matched = plan_jobs(DesignOptions("matched", faces=f, speech=s, repeats=3))
    assert len(matched) == 2 * 6 * 3
    assert all(j.visual_emotion == j.audio_emotion for j in matched)

    fact = plan_jobs(DesignOptions("factorial", faces=f, speech=s, emotions=("happiness", "SAD")))
    assert len(fact) == 2 * 6 * 2
    assert collections.Counter(j.visual_emotion for j in fact) == {"happiness": 12, "sadness": 12}

    cont = plan_jobs(DesignOptions("continuum", faces=f, speech=s, continuum=("neutral", "happiness"), steps=5))
    assert len(cont) == 2 * 6 * 5
    weights = sorted({j.visual[EMOTIONS.index("happiness")] for j in cont})
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0]
    for j in cont:
        assert sum(j.visual) == pytest.approx(1.0)
        assert j.visual[EMOTIONS.index("neutral")] == pytest.approx(1 - j.visual[EMOTIONS.index("happiness")])
    mid = [j for j in cont if j.visual[EMOTIONS.index("happiness")] == 0.5]
    assert mid[0].visual_blend == {"happiness": 0.5, "neutral": 0.5}
    ends = [j for j in cont if j.visual[EMOTIONS.index("happiness")] == 1.0]
    assert ends[0].visual_blend is None and ends[0].visual_emotion == "happiness"


def test_with_gt_adds_two_size_variants(recordings):
    jobs = plan_jobs(DesignOptions("matched", recordings=(str(recordings),), with_gt=True))
    gt = [j for j in jobs if j.kind == "gt"]
    assert len(gt) == 2 * 12 and len(jobs) == 12 + 24
    assert collections.Counter(j.size_variant for j in gt) == {"128x128": 12, "96x128": 12}
    assert all(j.visual_emotion == j.audio_emotion for j in gt)


def test_jobs_csv_and_labels_csv(tmp_path, pools):
    faces, speech = pools
    (tmp_path / "neutral_voice.wav").write_bytes((speech / "1001_IEO_ANG_XX.wav").read_bytes())
    labels = tmp_path / "labels.csv"
    labels.write_text("file,emotion,identity,sentence\nneutral_voice.wav,NEU,spk9,hello there\n")
    assert read_labels_csv(labels)["neutral_voice.wav"]["emotion"] == "neutral"
    jobs_csv = tmp_path / "jobs.csv"
    jobs_csv.write_text(
        "face,speech,visual_emotion,audio_emotion,intensity\n"
        f'{faces / "alice.png"},neutral_voice.wav,"happiness=0.7,neutral=0.3",,0.5\n'
        f"{faces / 'bob.jpg'},{speech / '1001_IEO_ANG_XX.wav'},sad,fear,\n")
    jobs = plan_jobs(DesignOptions("jobs", jobs_csv=str(jobs_csv), labels=str(labels)))
    assert len(jobs) == 2
    a, b = jobs
    assert a.visual_blend == {"happiness": 0.7, "neutral": 0.3} and a.visual_emotion == "happiness"
    assert a.audio_emotion == "neutral" and a.identity == "alice" and a.sentence == "hello there"
    assert a.intensity == 0.5 and a.speech == str(tmp_path / "neutral_voice.wav")
    assert b.visual_emotion == "sadness" and b.audio_emotion == "fear" and b.sentence == "IEO"

    bad = tmp_path / "bad.csv"
    bad.write_text("face,speech,visual_emotion\nx.png,y.wav,boredom\n")
    with pytest.raises(ProduceError, match=r"line 2, column 'visual_emotion'.*boredom"):
        plan_jobs(DesignOptions("jobs", jobs_csv=str(bad)))
    bad.write_text("face,visual_emotion\nx.png,sad\n")
    with pytest.raises(ProduceError, match="needs the columns"):
        plan_jobs(DesignOptions("jobs", jobs_csv=str(bad)))


def test_any_two_or_more_emotions_make_matched_mismatched_and_factorial_sets(pools):
    """Issue 27: a three-emotion face/voice set (3 x 3 pairs), not only the paper's six."""
    faces, speech = pools
    E3 = ("anger", "happiness", "sadness")
    kw = dict(faces=(str(faces),), speech=(str(speech),), emotions=("anger", "HAP", "sad"))
    mis = plan_jobs(DesignOptions("mismatched", repeats=2, seed=7, **kw))
    pairs = collections.Counter((j.visual_emotion, j.audio_emotion) for j in mis)
    assert set(pairs) == {(v, a) for v in E3 for a in E3} and set(pairs.values()) == {2}
    three = tuple(str(speech / f) for f in sorted(p.name for p in speech.iterdir())
                  if f.split("_")[2] in ("ANG", "HAP", "SAD"))
    fact = plan_jobs(DesignOptions("factorial", faces=kw["faces"], speech=three, emotions=kw["emotions"]))
    assert {(j.visual_emotion, j.audio_emotion) for j in fact} == {(v, a) for v in E3 for a in E3}
    matched = plan_jobs(DesignOptions("matched", **kw))
    assert {j.visual_emotion for j in matched} == set(E3) and all(j.visual_emotion == j.audio_emotion for j in matched)
    # The default (all six) is the paper's set, job for job.
    assert (plan_jobs(DesignOptions("mismatched", faces=kw["faces"], speech=kw["speech"], repeats=2, seed=7))
            == plan_jobs(DesignOptions("mismatched", repeats=2, seed=7, emotions=EMOTIONS, faces=kw["faces"],
                                       speech=kw["speech"])))
    with pytest.raises(ProduceError, match="two or more"):
        plan_jobs(DesignOptions("mismatched", faces=kw["faces"], speech=kw["speech"], emotions=("anger",)))
    with pytest.raises(ProduceError, match="--emotions: unknown emotion 'bored'"):
        plan_jobs(DesignOptions("matched", faces=kw["faces"], speech=kw["speech"], emotions=("anger", "bored")))
    with pytest.raises(ProduceError, match="none for disgust, fear, neutral.*--emotions anger,happiness,sadness"):
        plan_jobs(DesignOptions("mismatched", faces=kw["faces"], speech=three))


def test_design_errors_name_the_fix(tmp_path, pools):
    faces, speech = pools
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    make_speech(unlabelled / "take1.wav", 0)
    with pytest.raises(ProduceError, match="take1.wav.*--labels"):
        plan_jobs(DesignOptions("mismatched", faces=(str(faces),), speech=(str(unlabelled),)))
    with pytest.raises(ProduceError, match="each of its emotions .*; none for"):
        plan_jobs(DesignOptions("mismatched", faces=(str(faces),), speech=(str(speech / "1001_IEO_ANG_XX.wav"),)))
    with pytest.raises(ProduceError, match="no face files"):
        plan_jobs(DesignOptions("matched", faces=(str(unlabelled),), speech=(str(speech),)))
    with pytest.raises(ProduceError, match="no such file or folder"):
        plan_jobs(DesignOptions("matched", faces=(str(tmp_path / "nope"),), speech=(str(speech),)))
    with pytest.raises(ProduceError, match="--from"):
        plan_jobs(DesignOptions("continuum", faces=(str(faces),), speech=(str(speech),)))
    with pytest.raises(ProduceError, match="shard"):
        parse_shard("4/4")
    assert parse_shard("1/4") == (1, 4)
    assert blend_vector("happiness=3, neutral=1") == (0.0, 0.0, 0.0, 0.75, 0.25, 0.0)


def test_ids_are_stable_unique_and_shards_partition(pools):
    faces, speech = pools
    jobs = plan_jobs(DesignOptions("mismatched", faces=(str(faces),), speech=(str(speech),), repeats=2, seed=1))
    spec = RendererSpec("warp")
    items = plan_items(jobs, spec, 1)
    ids = [it.stimulus_id for it in items]
    assert len(set(ids)) == 72 and ids == [it.stimulus_id for it in plan_items(jobs, spec, 1)]
    assert len({it.seed for it in items}) == 72
    # the seed, the backend options and the renderer change every id
    assert not set(ids) & {it.stimulus_id for it in plan_items(jobs, spec, 2)}
    lips = plan_items(jobs, RendererSpec("warp", {"components": ("mouth", "life")}), 1)
    assert not set(ids) & {it.stimulus_id for it in lips}
    assert RendererSpec("warp", {"components": ("mouth", "life")}).source_label() == "LIPS"
    assert RendererSpec("warp", {"components": ()}).source_label() == "STILL"
    assert RendererSpec("neural").source_label() == "OURS" and spec.source_label() == "WARP"
    # ids do not depend on where the inputs are (content, not paths)
    shards = [plan_items(jobs, spec, 1, shard=(i, 3)) for i in range(3)]
    got = [it.stimulus_id for part in shards for it in part]
    assert sorted(got) == sorted(ids) and all(shards)


# ----------------------------------------------------------------------------------------- runs

def av_check(path: Path) -> dict:
    """Independent ffprobe-style check with PyAV."""
    import av

    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        out = dict(vcodec=v.codec_context.name, pix=v.codec_context.pix_fmt, fps=float(v.average_rate),
                   acodec=a.codec_context.name, arate=a.codec_context.sample_rate,
                   vdur=float(v.duration * v.time_base), adur=float(a.duration * a.time_base),
                   frames=sum(1 for _ in c.decode(video=0)))
    with open(path, "rb") as fh:
        head = fh.read(64)
    out["faststart"] = head.find(b"moov") != -1 and head.find(b"moov") < 64  # moov before mdat
    return out


def test_produce_writes_playable_media_and_a_valid_manifest(tmp_path, pools):
    faces, speech = pools
    jobs = plan_jobs(DesignOptions("matched", faces=(str(faces / "alice.png"),), speech=(str(speech),)))
    items = plan_items(jobs, RendererSpec("fake"), 5)
    out = tmp_path / "set"
    summary = produce(items, out, RendererSpec("fake"), workers=1, renderer_factory=fake_factory,
                      options={"design": "matched"})
    assert (summary.produced, summary.failed, summary.skipped) == (6, 0, 0)
    m = load_manifest(out)  # validates every row and every sha256
    assert len(m) == 6
    for s in m:
        info = av_check(out / s.media)
        assert info["vcodec"] == "h264" and info["pix"] == "yuv420p" and info["fps"] == 25.0
        assert info["acodec"] == "aac" and info["arate"] == s.audio_rate == 44100
        assert abs(info["vdur"] - info["adur"]) <= 1 / 25 and info["faststart"]
        assert info["frames"] == math.ceil(0.6 * 8000 / 320) == round(s.duration_s * 25)
        assert (s.width, s.height, s.size_variant) == (128, 128, "128x128")
        assert (out / s.poster).is_file() and s.source == "FAKE"
        assert s.visual_emotion == s.audio_emotion and s.identity == "alice"
        assert s.provenance.backend == "fake" and isinstance(s.provenance.seed, int)
        assert s.provenance.parameters["renderer"]["vec"][EMOTIONS.index(s.visual_emotion)] == 1.0
        # opaque names: nothing about the emotion in the file names
        for name in (Path(s.media).name, Path(s.poster).name):
            assert name.startswith(s.stimulus_id)
            assert not any(w in name.lower() for w in [*EMOTIONS, *(c.lower() for c in EMOTION_CODES)])
    runs = list((out / "runs").glob("run-*.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["summary"]["produced"] == 6

    # a re-run skips everything and rewrites nothing
    before = {p: p.stat().st_mtime_ns for p in (out / "media").iterdir()}
    again = produce(items, out, RendererSpec("fake"), workers=1, renderer_factory=fake_factory)
    assert (again.produced, again.skipped) == (0, 6)
    assert {p: p.stat().st_mtime_ns for p in (out / "media").iterdir()} == before
    assert done_ids(out) == {it.stimulus_id for it in items}


def test_bad_inputs_fail_their_item_only(tmp_path, pools):
    faces, speech = pools
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wav file at all" * 10)
    good = speech / "1001_IEO_ANG_XX.wav"
    jobs_csv = tmp_path / "jobs.csv"
    jobs_csv.write_text("face,speech,visual_emotion\n"
                        f"{faces / 'alice.png'},{good},anger\n"
                        f"{tmp_path / 'missing.png'},{good},anger\n"
                        f"{faces / 'alice.png'},{tmp_path / 'garbage.wav'},fear\n"
                        f"{tmp_path / 'blank.png'},{good},sadness\n"
                        f"{faces / 'bob.jpg'},{good},happiness\n")
    items = plan_items(plan_jobs(DesignOptions("jobs", jobs_csv=str(jobs_csv))), RendererSpec("fake"), 0)
    out = tmp_path / "set"
    summary = produce(items, out, RendererSpec("fake"), workers=1, renderer_factory=fake_factory)
    assert (summary.produced, summary.failed) == (2, 3)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {Path(f["face"]).name + "|" + Path(f["speech"]).name: f["reason"] for f in failures}
    assert "missing.png: face file not found" in reasons[f"missing.png|{good.name}"]
    assert "garbage.wav" in reasons["alice.png|garbage.wav"] and "cannot be decoded" in reasons["alice.png|garbage.wav"]
    assert "NoFaceError" in reasons[f"blank.png|{good.name}"] and "no face" in reasons[f"blank.png|{good.name}"]
    # Acceptance finding: the reason said "face image: no face found" without naming the photo (now: the
    # file name replaces the generic "face image" of the renderer).
    assert "blank.png: no face found" in reasons[f"blank.png|{good.name}"]  # the file, then the reason
    assert len(load_manifest(out)) == 2
    assert "3 failed" in summary.line()


@pytest.mark.slow
def test_process_pool_shards_and_merge_match_one_run(tmp_path, pools):
    faces, speech = pools
    jobs = plan_jobs(DesignOptions("factorial", faces=(str(faces),), speech=(str(speech / "1001_IEO_ANG_XX.wav"),),
                                   emotions=("anger", "happiness", "sadness")))
    spec = RendererSpec("fake")
    items = plan_items(jobs, spec, 9)
    whole = tmp_path / "whole"
    s = produce(items, whole, spec, workers=2, renderer_factory=fake_factory)  # spawn pool, 2 processes
    assert (s.produced, s.failed) == (6, 0)
    # two shards in two folders (two machines), merged into the first
    a, b = tmp_path / "a", tmp_path / "b"
    for i, folder in enumerate((a, b)):
        part = plan_items(jobs, spec, 9, shard=(i, 2))
        produce(part, folder, spec, shard=(i, 2), workers=1, renderer_factory=fake_factory)
        assert (folder / f"manifest.shard-{i}-of-2.json").is_file() and not (folder / "manifest.json").exists()
    from click.testing import CliRunner

    from emostudy.cli import main

    res = CliRunner().invoke(main, ["generate", "merge", str(a), str(b), "--name", "whole"])
    assert res.exit_code == 0, res.output
    assert (a / "manifest.json").read_bytes() == (whole / "manifest.json").read_bytes()
    assert len(load_manifest(a)) == 6
    # merging again changes nothing; a conflicting row is refused
    assert merge_shards(a, [b], name="whole").read_bytes() == (whole / "manifest.json").read_bytes()
    shard = json.loads((b / "manifest.shard-1-of-2.json").read_text())
    shard["stimuli"][0]["identity"] = "someone else"
    (b / "manifest.shard-1-of-2.json").write_text(json.dumps(shard))
    with pytest.raises(ProduceError, match="differs from the row already merged"):
        merge_shards(a, [b])


def test_merged_shards_keep_the_sets_description(tmp_path, pools):
    # Acceptance finding: `generate --shard i/N` + `generate merge` gave a manifest with an empty description
    # where the unsharded run says "emostudy generate --design ...", so the two manifests' bytes differed.
    faces, speech = pools
    jobs = plan_jobs(DesignOptions("factorial", faces=(str(faces / "alice.png"),),
                                   speech=(str(speech / "1001_IEO_ANG_XX.wav"),), emotions=("anger", "sadness")))
    spec = RendererSpec("fake")
    desc = "emostudy generate --design factorial"
    whole = tmp_path / "whole"
    produce(plan_items(jobs, spec, 3), whole, spec, workers=1, renderer_factory=fake_factory, description=desc)
    parts = tmp_path / "parts"
    for i in range(2):
        produce(plan_items(jobs, spec, 3, shard=(i, 2)), parts, spec, shard=(i, 2), workers=1,
                renderer_factory=fake_factory, description=desc, name="whole")
    merged = merge_shards(parts, name="whole")
    assert json.loads(merged.read_text())["description"] == desc
    assert merged.read_bytes() == (whole / "manifest.json").read_bytes()


def test_one_decode_gives_the_same_renderer_input_as_load_speech(pools):
    from generator.audio import load_speech, read_audio
    from generator.produce.batch import speech_for_renderer

    path = pools[1] / "1001_IEO_ANG_XX.wav"
    x, rate = read_audio(path)
    np.testing.assert_array_equal(speech_for_renderer(x, rate, str(path)), load_speech(path))


class BatchFakeRenderer(FakeRenderer):
    """A renderer with render_batch (as a GPU backend has): records the batch sizes it was given."""

    calls: list[int] = []

    def render_batch(self, inputs, *, size=128):
        BatchFakeRenderer.calls.append(len(inputs))
        return [self.render(i["face"], i["speech"], i["emotion"], i["seed"], intensity=i["intensity"], size=size)
                for i in inputs]


def batch_factory(backend, **options):
    return BatchFakeRenderer(**options)


def test_batched_rendering_makes_the_same_set_and_reports_progress(tmp_path, pools):
    import io

    from rich.console import Console

    faces, speech = pools
    jobs = plan_jobs(DesignOptions("matched", faces=(str(faces / "bob.jpg"),), speech=(str(speech),)))
    spec = RendererSpec("fake")
    items = plan_items(jobs, spec, 2)
    one = produce(items, tmp_path / "one", spec, workers=1, renderer_factory=fake_factory, name="s")
    BatchFakeRenderer.calls = []
    buf = io.StringIO()
    batched = produce(items, tmp_path / "batched", spec, workers=1, batch_size=4, renderer_factory=batch_factory,
                      name="s",
                      console=Console(file=buf, width=120, force_terminal=False))
    assert BatchFakeRenderer.calls == [4, 2]
    assert one.produced == batched.produced == 6
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (tmp_path / "batched" / "manifest.json").read_bytes()
    text = buf.getvalue()
    assert "6/6" in text and "items/s" in text and "ETA" in text and "6 produced" in text


class CrashingRenderer(FakeRenderer):
    """Kills its process (as a segfault in native code would) on a face whose pixels are all 77."""

    def render(self, face, speech, emotion, seed, **kw):
        import os

        if np.all(np.asarray(face) == 77):
            os._exit(3)
        return super().render(face, speech, emotion, seed, **kw)


def crash_factory(backend, **options):
    return CrashingRenderer(**options)


@pytest.mark.slow
def test_a_crashing_worker_fails_its_item_only(tmp_path, pools):
    from PIL import Image

    faces, speech = pools
    Image.fromarray(np.full((64, 64, 3), 77, np.uint8)).save(tmp_path / "crash.png")
    good = speech / "1001_IEO_ANG_XX.wav"
    jobs_csv = tmp_path / "jobs.csv"
    jobs_csv.write_text("face,speech,visual_emotion\n" + "".join(
        f"{f},{good},{e}\n" for f, e in [(faces / "alice.png", "anger"), (tmp_path / "crash.png", "fear"),
                                           (faces / "bob.jpg", "sadness"), (faces / "alice.png", "disgust")]))
    items = plan_items(plan_jobs(DesignOptions("jobs", jobs_csv=str(jobs_csv))), RendererSpec("fake"), 0)
    summary = produce(items, tmp_path / "set", RendererSpec("fake"), workers=2, renderer_factory=crash_factory)
    assert (summary.produced, summary.failed) == (3, 1)
    (failure,) = summary.failures
    assert Path(failure["face"]).name == "crash.png" and "died while making this item alone" in failure["reason"]
    assert len(load_manifest(tmp_path / "set")) == 3


def write_stereo_m4a(path: Path, seconds: float = 0.8, rate: int = 48000) -> Path:
    """Stereo AAC in an .m4a at 48 kHz (a phone recording's format), written with PyAV."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    stereo = np.stack([left, 0.5 * left]).astype(np.float32)
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=rate)
        s.layout = "stereo"
        for start in range(0, stereo.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start:start + 1024]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def test_speech_in_another_format_and_rate(tmp_path, pools):
    faces, _ = pools
    speech = write_stereo_m4a(tmp_path / "1001_ITS_FEA_MD.m4a")
    items = plan_items(plan_jobs(DesignOptions("matched", faces=(str(faces / "alice.png"),), speech=(str(speech),))),
                       RendererSpec("fake"), 0)
    summary = produce(items, tmp_path / "set", RendererSpec("fake"), workers=1, renderer_factory=fake_factory)
    assert summary.produced == 1
    (s,) = load_manifest(tmp_path / "set")
    info = av_check(tmp_path / "set" / s.media)
    assert info["arate"] == 44100 and info["acodec"] == "aac" and abs(info["vdur"] - info["adur"]) <= 1 / 25
    assert s.audio_emotion == s.visual_emotion == "fear" and s.sentence == "ITS"
    assert s.extra["speech_intensity"] == "MD"
    # AAC decoding keeps the encoder's priming/padding samples (up to ~2 x 1024 at 48 kHz): +1 frame at most
    assert info["frames"] in (20, 21)


def test_shards_in_one_folder_then_an_unsharded_run_makes_nothing_again(tmp_path, pools):
    faces, speech = pools
    jobs = plan_jobs(DesignOptions("matched", faces=(str(faces / "alice.png"),), speech=(str(speech),)))
    spec = RendererSpec("fake")
    out = tmp_path / "set"
    for i in range(2):
        produce(plan_items(jobs, spec, 3, shard=(i, 2)), out, spec, shard=(i, 2), workers=1,
                renderer_factory=fake_factory, name="s")
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "media").iterdir()}
    whole = produce(plan_items(jobs, spec, 3), out, spec, workers=1, renderer_factory=fake_factory, name="s")
    assert (whole.produced, whole.skipped) == (0, 6)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "media").iterdir()} == stamps
    unsharded = (out / "manifest.json").read_bytes()
    assert len(load_manifest(out)) == 6
    assert merge_shards(out, name="s").read_bytes() == unsharded


def test_ground_truth_ids_do_not_depend_on_the_renderer(recordings):
    jobs = plan_jobs(DesignOptions("matched", recordings=(str(recordings),), with_gt=True))
    warp = plan_items(jobs, RendererSpec("warp"), 1)
    lips = plan_items(jobs, RendererSpec("warp", {"components": ("mouth", "life")}, source="LIPS"), 2)
    gt = lambda items: {it.stimulus_id for it in items if it.job.kind == "gt"}  # noqa: E731
    assert len(gt(warp)) == 24 and gt(warp) == gt(lips)
    assert not {it.stimulus_id for it in warp if it.job.kind == "render"} & {it.stimulus_id for it in lips}
