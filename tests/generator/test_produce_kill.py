"""Kill a run half-way (SIGKILL, no chance to clean up), run it again: every item is made exactly
once, nothing is corrupt, and the manifest is complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from generator.produce.batch import DesignOptions, RendererSpec, plan_items, plan_jobs, produce
from stimuli.emotions import EMOTIONS
from stimuli.manifest import load_manifest, sha256_file
from test_produce import fake_factory, make_face, make_speech

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from test_produce import slow_factory
from generator.produce.batch import DesignOptions, RendererSpec, plan_items, plan_jobs, produce
jobs = plan_jobs(DesignOptions("factorial", faces=({faces!r},), speech=({speech!r},), emotions={emotions!r}))
items = plan_items(jobs, RendererSpec("fake"), 4)
# save_every_s is large: the manifest is never saved before the kill, only the journal survives
produce(items, {out!r}, RendererSpec("fake"), workers=1, renderer_factory=slow_factory, save_every_s=1e9)
"""


def test_killed_run_resumes_without_duplicates_or_corruption(tmp_path):
    faces, speech = tmp_path / "faces", tmp_path / "speech"
    faces.mkdir()
    speech.mkdir()
    make_face(faces / "f1.png", 1)
    make_face(faces / "f2.png", 2)
    make_speech(speech / "1001_IEO_NEU_XX.wav", 0, seconds=0.4)
    emotions = EMOTIONS[:5]
    out = tmp_path / "set"
    script = SCRIPT.format(here=str(HERE), faces=str(faces), speech=str(speech), emotions=emotions, out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / "journal.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 3:
                break
            if proc.poll() is not None:
                raise AssertionError(f"the run ended before the kill: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        else:
            raise AssertionError("no progress within 120 s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group we started, nothing else
        proc.wait(30)
        proc.stderr.close()
    assert not (out / "manifest.json").exists()  # killed before any manifest save
    first = [json.loads(line) for line in journal.read_text().splitlines() if line.strip().endswith("}")]
    k = len(first)
    assert 3 <= k < 10
    stamps = {r["stimulus_id"]: (out / r["media"]).stat().st_mtime_ns for r in first}

    jobs = plan_jobs(DesignOptions("factorial", faces=(str(faces),), speech=(str(speech),), emotions=emotions))
    items = plan_items(jobs, RendererSpec("fake"), 4)
    assert len(items) == 10
    leftovers = list((out / ".tmp").iterdir())  # the killed run's temporary folder of its item in flight
    assert len(leftovers) <= 1
    summary = produce(items, out, RendererSpec("fake"), workers=1, renderer_factory=fake_factory)
    assert not list((out / ".tmp").iterdir())  # cleaned: its process is gone
    assert (summary.skipped, summary.produced, summary.failed) == (k, 10 - k, 0)  # made once each

    m = load_manifest(out)  # check_media: every sha256 matches
    assert sorted(s.stimulus_id for s in m) == sorted(it.stimulus_id for it in items)
    for sid, stamp in stamps.items():
        assert (out / m[sid].media).stat().st_mtime_ns == stamp  # not remade
    mp4s = sorted(p.name for p in (out / "media").glob("*.mp4"))
    assert mp4s == sorted(f"{it.stimulus_id}.mp4" for it in items)
    for s in m:
        assert sha256_file(out / s.media) == s.sha256
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip().endswith("}")]
    assert len(lines) == 10 and len({r["stimulus_id"] for r in lines}) == 10
