from __future__ import annotations

import csv

from click.testing import CliRunner
from stimuli_factories import task1_rows, task2_rows

from emostudy.cli import main
from stimuli.manifest import load_manifest


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_plan_command_task1_summary_and_bytes(tmp_path, write_set):
    set_dir = write_set(task1_rows(), "t1")
    out = tmp_path / "plan.json"
    r = _run(["plan", "--spec", "paper-task1", "--set", str(set_dir), "--seed", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    first = out.read_bytes()
    assert "paper-task1 (emotion-realness)" in r.output
    assert r.output.count("5 (+1)") == 18  # 6 batches x 3 sources
    assert "repeats: 18 (BL 6, GT 6, OURS 6); examples: 24" in r.output
    # Same seed again: identical bytes (and an identical existing file is fine).
    r = _run(["plan", "--spec", "paper-task1", "--set", str(set_dir), "--seed", "5", "--out", str(out)])
    assert r.exit_code == 0 and out.read_bytes() == first
    other = tmp_path / "plan2.json"
    _run(["plan", "--spec", "paper-task1", "--set", str(set_dir), "--seed", "5", "--out", str(other)])
    assert other.read_bytes() == first
    # A different plan is not written over an existing file without --force.
    r = CliRunner().invoke(main, ["plan", "--spec", "paper-task1", "--set", str(set_dir), "--seed", "6",
                                  "--out", str(out)])
    assert r.exit_code != 0 and "--force" in r.output and out.read_bytes() == first
    r = _run(["plan", "--spec", "paper-task1", "--set", str(set_dir), "--seed", "6", "--out", str(out), "--force"])
    assert r.exit_code == 0 and out.read_bytes() != first


def test_plan_command_task2(tmp_path, write_set):
    set_dir = write_set(task2_rows(), "t2")
    r = _run(["plan", "--spec", "paper-task2", "--set", str(set_dir), "--seed", "1", "--out",
              str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    assert "(visual, audio) pairs: 36 of 36 present, 2..2 videos each" in r.output
    assert r.output.count("12 (+2)") == 6


def test_plan_command_errors_before_writing(tmp_path, write_set):
    rows = [r for r in task2_rows() if not (r["visual_emotion"] == "anger" and r["audio_emotion"] == "fear")]
    set_dir = write_set(rows, "short")
    out = tmp_path / "p.json"
    r = CliRunner().invoke(main, ["plan", "--spec", "paper-task2", "--set", str(set_dir), "--seed", "1",
                                  "--out", str(out)])
    assert r.exit_code == 1 and "visual_emotion anger, audio_emotion fear: have 0, need 2" in r.output
    assert "What would fill it" in r.output and not out.exists()
    # Missing media is found before anything is written.
    media = next((set_dir / "media").iterdir())
    media.unlink()
    r = CliRunner().invoke(main, ["plan", "--spec", "paper-task1", "--set", str(set_dir), "--seed", "1",
                                  "--out", str(out)])
    assert r.exit_code == 1 and "field 'media'" in r.output and "does not exist" in r.output and not out.exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('questions = 3\n[study]\nname = "x"\ntask = "av-mismatch"\n')
    r = CliRunner().invoke(main, ["plan", "--spec", str(bad), "--set", str(set_dir), "--seed", "1", "--out", str(out)])
    assert r.exit_code == 1 and "key 'questions'" in r.output


def test_import_commands(tmp_path, tiny_video_bytes):
    folder = tmp_path / "vids"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(tiny_video_bytes(1))
    (folder / "1001_DFA_ANG_XX.mp4").write_bytes(tiny_video_bytes(2))
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([["file", "source", "visual_emotion", "audio_emotion", "identity", "sentence"],
                                  ["a.mp4", "OURS", "fear", "anger", "1001", "DFA"]])
    r = _run(["import", "folder", str(folder), "--labels", str(labels), "--out", str(tmp_path / "s1")])
    assert r.exit_code == 0, r.output
    assert "1 stimuli" in r.output and "not in the labels CSV" in r.output
    assert load_manifest(tmp_path / "s1").stimuli[0].visual_emotion == "fear"
    r = _run(["import", "crema-d", str(folder), "--out", str(tmp_path / "s2"), "--skip-bad-names", "--copy"])
    assert r.exit_code == 0, r.output
    assert "1 stimuli" in r.output and "1 copied" in r.output and "skipped" in r.output
    r = CliRunner().invoke(main, ["import", "crema-d", str(folder), "--out", str(tmp_path / "s3")])
    assert r.exit_code == 1 and "a.mp4" in r.output and "--skip-bad-names" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("file,source,visual_emotion,audio_emotion,identity,sentence\na.mp4,GT,angry,grr,1,DFA\n")
    r = CliRunner().invoke(main, ["import", "folder", str(folder), "--labels", str(bad), "--out", str(tmp_path / "s4")])
    assert r.exit_code == 1 and "row 1 (line 2), column 'audio_emotion'" in r.output
