"""The trial-list route (stimuli/trial_list.py, issue 27): a CSV of batches x trials validated against the set."""

from __future__ import annotations

from collections import Counter

import pytest
from stimuli_factories import fake_row

from stimuli.errors import DesignError, SpecError
from stimuli.manifest import build_manifest
from stimuli.plan import compile_plan, plan_to_bytes, validate_plan
from stimuli.spec import load_spec

SPEC = """
[study]
name = "own-list"
task = "factorial"
[participant]
title = "Talking faces"
[design]
trial_list = "trials.csv"
order = "{order}"
[examples]
per_emotion = 0
[[questions]]
id = "emotion"
type = "single"
prompt = "Which emotion?"
options = "emotions"
measures = "perceived_emotion"
[consistency]
max_inconsistent = 1
rules = [{{ question = "emotion", kind = "equal" }}]
"""


@pytest.fixture(scope="module")
def manifest():
    rows = [fake_row(f"c{n:02d}", src, v, a, identity=ident)
            for n, (src, v, a, ident) in enumerate((s, v, a, i) for s in ("OURS", "GT")
                                                   for v in ("anger", "sadness") for a in ("anger", "sadness")
                                                   for i in ("1001", "1002"))]
    return build_manifest("/nonexistent/l", rows, name="l")


def _spec(tmp_path, csv_text, order="per-batch"):
    (tmp_path / "trials.csv").write_text(csv_text)
    path = tmp_path / "own.toml"
    path.write_text(SPEC.format(order=order))
    return load_spec(path)


GOOD = """batch,trial,stimulus_id,source,visual_emotion,audio_emotion,identity,repeat_of
A,1,c00,,,,,
A,2,,OURS,anger,sadness,1001,
A,3,,OURS,sadness,,,
A,4,,,,,,1
B,1,c05,,,,,
B,2,,GT,anger,anger,,
B,3,,,,,,1
"""


def test_a_trial_list_becomes_the_plans_batches(tmp_path, manifest):
    spec = _spec(tmp_path, GOOD)
    plan = compile_plan(spec, manifest, 4)
    assert plan_to_bytes(plan) == plan_to_bytes(compile_plan(spec, manifest, 4))
    validate_plan(plan, manifest=manifest)
    a, b = plan["batches"]
    assert [i["stimulus_id"] for i in a["items"]][:2] == ["c00", "c02"]  # the one OURS anger-face sadness-voice 1001
    third = manifest[a["items"][2]["stimulus_id"]]
    assert (third.source, third.visual_emotion) == ("OURS", "sadness")
    assert a["items"][3] == {"position": 3, "stimulus_id": "c00", "repeat_of": 0}
    assert b["items"][2]["repeat_of"] == 0 and b["items"][2]["stimulus_id"] == "c05"
    gt = manifest[b["items"][1]["stimulus_id"]]
    assert (gt.source, gt.visual_emotion, gt.audio_emotion) == ("GT", "anger", "anger")
    assert plan["design"]["kind"] == "trial-list" and plan["design"]["trial_list"] == "trials.csv"
    assert "batches b01 = A, b02 = B" in plan["notes"][0]
    # The draws depend on the seed, the listed clips do not.
    drawn = {compile_plan(spec, manifest, s)["batches"][0]["items"][2]["stimulus_id"] for s in range(12)}
    assert len(drawn) > 1 and Counter(manifest[x].visual_emotion for x in drawn) == {"sadness": len(drawn)}


def test_every_problem_is_named_with_its_row_and_column(tmp_path, manifest):
    bad = """batch,trial,stimulus_id,source,visual_emotion,repeat_of
A,1,c00,,,
A,2,nope,,,
A,3,,OURS,fear,
A,5,c01,GT,,
A,5,,,,9
A,6,c00,,,
,7,c02,,,
A,7,,,,
"""
    with pytest.raises(DesignError) as exc:
        compile_plan(_spec(tmp_path, bad), manifest, 1)
    msg = str(exc.value)
    assert "8 problem(s)" in msg
    for needle in ("trials.csv row 3, column stimulus_id: 'nope' is not a stimulus of the set",
                   "row 4, column source, visual_emotion: no clip of the set (not already in batch A) has "
                   "source=OURS, visual_emotion=fear",
                   "row 5, column trial: '5', expected 4",
                   "row 5, column source: 'GT' but stimulus c01 has 'OURS'",
                   "row 6, column repeat_of: '9' must be the number (1..4) of an earlier trial of batch A",
                   "row 7, column stimulus_id: 'c00' is already an original trial of batch A",
                   "row 8, column batch: empty",
                   "row 9, column stimulus_id: empty, and no attribute column is filled"):
        assert needle in msg, needle


@pytest.mark.parametrize("csv_text, needle", [
    ("batch,colour\nA,red\n", "column 'colour' is not a trial-list column"),
    ("stimulus_id\nc00\n", "the column 'batch' is missing"),
    ("batch,trial\nA,1\n", "no column names a clip"),
    ("batch,stimulus_id\n", "no trials"),
])
def test_bad_columns_are_refused_when_the_spec_is_read(tmp_path, csv_text, needle):
    with pytest.raises(SpecError, match=needle):
        _spec(tmp_path, csv_text)


def test_per_participant_order_and_a_missing_file(tmp_path, manifest):
    plan = compile_plan(_spec(tmp_path, GOOD, order="per-participant"), manifest, 2)
    assert plan["design"]["order"] == "per-participant" and plan["design"]["min_repeat_gap"] == 2
    (tmp_path / "trials.csv").unlink()
    path = tmp_path / "own.toml"
    with pytest.raises(SpecError, match="design.trial_list.*no such file"):
        load_spec(path)
