"""The whole stimuli path on real (tiny) videos: a folder + labels CSV -> `emostudy import folder` ->
`emostudy plan --spec paper-task2` -> a plan the loader accepts against the imported manifest."""

from __future__ import annotations

import csv
import json
from collections import Counter

from click.testing import CliRunner

from emostudy.cli import main
from stimuli.emotions import EMOTIONS
from stimuli.manifest import load_manifest
from stimuli.plan import load_plan


def test_import_then_plan_task2(tmp_path, tiny_video_bytes):
    folder = tmp_path / "videos"
    folder.mkdir()
    rows = [["file", "source", "visual_emotion", "audio_emotion", "identity", "sentence", "size_variant"]]
    k = 0
    for v in EMOTIONS:
        for a in EMOTIONS:
            for copy in range(2):
                k += 1
                name = f"{v}_{a}_{copy}.mp4"  # a revealing name, as researchers' files often have
                (folder / name).write_bytes(tiny_video_bytes(100 + k))
                rows.append([name, "OURS", v, a, f"{1001 + copy}", "DFA", "128x128"])
    for e in EMOTIONS:
        for j in range(2):
            k += 1
            name = f"gt_{e}_{j}.mp4"
            (folder / name).write_bytes(tiny_video_bytes(100 + k))
            rows.append([name, "GT", e, e, f"{1050 + j}", "IEO", "128x128"])
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    runner = CliRunner()
    r = runner.invoke(main, ["import", "folder", str(folder), "--labels", str(labels), "--out", str(tmp_path / "set")],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "84 stimuli" in r.output
    outs = []
    for name in ("a.json", "b.json"):
        r = runner.invoke(main, ["plan", "--spec", "paper-task2", "--set", str(tmp_path / "set"), "--seed", "11",
                                 "--out", str(tmp_path / name)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    manifest = load_manifest(tmp_path / "set")
    plan = load_plan(tmp_path / "a.json", manifest=manifest)
    pairs = Counter((manifest[i["stimulus_id"]].visual_emotion, manifest[i["stimulus_id"]].audio_emotion)
                    for b in plan["batches"] for i in b["items"] if i["repeat_of"] is None)
    assert len(pairs) == 36 and set(pairs.values()) == {2}
    assert [len(b["items"]) for b in plan["batches"]] == [14] * 6
    assert len(plan["examples"]) == 12
    # Nothing a participant's browser gets (media paths, ids) reveals an emotion.
    text = json.dumps([s.media for s in manifest] + [s.stimulus_id for s in manifest]).lower()
    assert not any(e in text for e in EMOTIONS) and "gt_" not in text
