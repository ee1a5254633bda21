"""The manifest's check results (schema version 2) and `emostudy plan --exclude-flagged`."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from stimuli_factories import task2_rows

from emostudy.cli import main
from stimuli.errors import DesignError, ManifestError
from stimuli.manifest import build_manifest, load_manifest
from stimuli.plan import compile_plan
from stimuli.spec import load_spec


def _checked(rows, flag_ids: dict[str, list[str]]):
    return [{**r, "check": {"flagged": r["stimulus_id"] in flag_ids, "reasons": flag_ids.get(r["stimulus_id"], [])}}
            for r in rows]


def test_unchecked_manifest_keeps_version_1_bytes(tmp_path, write_set):
    root = write_set(task2_rows(), "v1")
    before = (root / "manifest.json").read_bytes()
    m = load_manifest(root)
    assert json.loads(before)["schema_version"] == 1
    assert all("check" not in r for r in json.loads(before)["stimuli"])
    assert m.to_json_bytes() == before  # plans made before schema 2 still match the set's sha256
    assert not any(s.flagged for s in m)


def test_check_field_needs_version_2_and_is_validated(tmp_path, write_set):
    rows = _checked(task2_rows(), {"t0001": ["identity: distance 0.70 to the photo (> 0.6)"]})
    root = write_set(rows, "v2")
    data = json.loads((root / "manifest.json").read_text())
    assert data["schema_version"] == 2
    m = load_manifest(root)
    assert m["t0001"].flagged and not m["t0002"].flagged
    data["schema_version"] = 1
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="needs 'schema_version' 2"):
        load_manifest(root)
    bad = [{**task2_rows()[0], "check": {"reasons": []}}]
    with pytest.raises(ManifestError, match=r"row 1 \(stimulus_id 't0001'\), field 'check'"):
        build_manifest(tmp_path, bad)
    data["schema_version"] = 4  # 3 adds norms (emostudy select)
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="reads versions 1, 2, 3"):
        load_manifest(root)


def test_plan_excludes_flagged_clips_and_says_why():
    rows = task2_rows()  # 3 clips per (visual, audio) pair; the paper's Task 2 uses 2 per pair
    pair_first = {}
    for r in rows:
        if r["source"] == "OURS":
            pair_first.setdefault((r["visual_emotion"], r["audio_emotion"]), r["stimulus_id"])
    flagged = {sid: ["lip sync: audio late by 9 frames (> 3)"] for sid in list(pair_first.values())[:5]}
    flagged[list(pair_first.values())[5]] = ["identity: distance 0.71 to the photo (> 0.6)", "rater: sees happy"]
    m = build_manifest("/nonexistent/t2", _checked(rows, flagged), name="t2")
    spec = load_spec("paper-task2")
    plan = compile_plan(spec, m, seed=3, exclude_flagged=True)
    used = {i["stimulus_id"] for b in plan["batches"] for i in b["items"]} | {e["stimulus_id"] for e in plan["examples"]}
    assert not used & set(flagged)
    assert plan["notes"][0] == ("exclude-flagged: 6 of 126 clips left out as flagged by emostudy check "
                                "(reasons: identity 1, lip sync 5, rater 1); every visual x audio emotion cell keeps "
                                "at least one clip")
    # Without the option the flagged clips can be drawn (same seed), and the plan is otherwise the same kind.
    plain = compile_plan(spec, m, seed=3)
    assert not any(n.startswith("exclude-flagged") for n in plain["notes"])
    assert Counter(len(b["items"]) for b in plan["batches"]) == Counter(len(b["items"]) for b in plain["batches"])


def test_exclude_flagged_names_the_cells_it_empties():
    rows = task2_rows()
    cell = [r["stimulus_id"] for r in rows if (r["visual_emotion"], r["audio_emotion"]) == ("fear", "anger")]
    flagged = {sid: ["rater_disagrees: the rater's top class is sad, the intended emotion fear"] for sid in cell}
    m = build_manifest("/nonexistent/t2", _checked(rows, flagged), name="t2")
    try:
        plan = compile_plan(load_spec("paper-task2"), m, seed=3, exclude_flagged=True)
        text = plan["notes"][0]
    except DesignError as exc:  # the design cannot be filled without the cell: the error says which cell
        text = str(exc)
    assert "cells (visual x audio emotion) left with no clip: fear x anger" in text


def test_exclude_flagged_needs_a_checked_set():
    m = build_manifest("/nonexistent/t2", task2_rows(), name="t2")
    with pytest.raises(DesignError, match="emostudy check"):
        compile_plan(load_spec("paper-task2"), m, seed=1, exclude_flagged=True)
    part = [{**r, "check": {"flagged": False, "reasons": []}} if i else r for i, r in enumerate(task2_rows())]
    with pytest.raises(DesignError, match="1 clip"):
        compile_plan(load_spec("paper-task2"), build_manifest("/x", part), seed=1, exclude_flagged=True)


def test_plan_command_exclude_flagged(tmp_path, write_set):
    rows = task2_rows()
    root = write_set(_checked(rows, {rows[0]["stimulus_id"]: ["face: found in 40% of frames (< 95%)"]}), "s")
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(main, ["plan", "--spec", "paper-task2", "--set", str(root), "--seed", "1", "--out",
                                  str(out), "--exclude-flagged"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "note: exclude-flagged: 1 of 126 clips left out as flagged by emostudy check (reasons: face 1)" in r.output
    assert rows[0]["stimulus_id"] not in out.read_text()
