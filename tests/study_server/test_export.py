"""Export: the columns of docs/contracts.md section 4, pseudonyms, value formatting, determinism."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from pathlib import Path

import pandas as pd
import pytest

from adminkit import add_assignment, batch_positions, plan_of

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def _contract_columns() -> tuple[list[str], list[str]]:
    """The documented columns, parsed from the contract (an independent route to the export's list)."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text[text.index("## 4."):]
    answers: list[str] = []
    table = section[:section.index("participants.csv`:")]
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| column"):
            cell = line.split("|")[1].strip()
            answers += [c.strip() for c in cell.split(",")]
    bullet = re.search(r"`participants\.csv`: (.*?)\.\n", section, re.S).group(1)
    participants = [c.strip() for c in bullet.replace("\n", " ").split(",")]
    return answers, participants


def _export(app, study, out):
    from study_server.export.tables import export_study
    from study_server.store.extensions import db

    with app.app_context():
        return export_study(db.session, study, out)


def _read(path):
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def test_columns_exactly_as_documented(app, task1_study, tmp_path):
    from study_server.export.tables import ANSWER_COLUMNS, PARTICIPANT_COLUMNS

    documented_answers, documented_participants = _contract_columns()
    assert len(documented_answers) == 30 and len(documented_participants) == 21
    assert list(ANSWER_COLUMNS) == documented_answers
    assert list(PARTICIPANT_COLUMNS) == documented_participants
    plan = plan_of(app, task1_study)
    add_assignment(app, task1_study, "b01", worker="w1", status="completed", verdict="valid",
                   answers={p: {"emotion": "anger", "realness": "not-sure", "aspects": ["none"]}
                            for p in batch_positions(plan, "b01")})
    _export(app, task1_study, tmp_path / "out")
    assert list(_read(tmp_path / "out" / "answers.csv").columns) == documented_answers
    assert list(_read(tmp_path / "out" / "participants.csv").columns) == documented_participants
    codebook = (tmp_path / "out" / "codebook.md").read_text()
    for column in documented_answers + documented_participants:
        assert f"| {column} |" in codebook


def test_rows_values_and_labels(app, task1_study, tmp_path, media_set):
    plan = plan_of(app, task1_study)
    positions = batch_positions(plan, "b02")
    answers = {p: {"emotion": "fear", "realness": "somewhat-unreal", "aspects": ["other", "lip-sync"]}
               for p in positions}
    answers[positions[0]] = {"emotion": "happiness", "realness": "definitely-real", "aspects": ["none"]}
    a_done = add_assignment(app, task1_study, "b02", worker="W-DONE", status="completed", verdict="rejected",
                            n_inconsistent=6, answers=answers, rt_ms=1234, played_fraction=0.5)
    a_open = add_assignment(app, task1_study, "b01", worker="W-OPEN", status="started",
                            answers={0: {"emotion": "neutral", "realness": "not-sure", "aspects": ["none"]}},
                            rt_ms=None, played_fraction=None)
    result = _export(app, task1_study, tmp_path / "out")
    df = _read(tmp_path / "out" / "answers.csv")
    n_items = len(positions) + 1
    assert result.n_answer_rows == len(df) == 3 * n_items  # three questions per item
    # batch order: b01's assignment first, then b02; within one: position, then the plan's question order
    assert list(df["batch_id"]) == ["b01"] * 3 + ["b02"] * (3 * len(positions))
    assert list(df["question"][:6]) == ["emotion", "realness", "aspects"] * 2
    done = df[df["assignment"] == str(a_done)]
    first = done[done["position"] == str(positions[0])].set_index("question")
    assert first.loc["aspects", "answer"] == "none"
    assert first.loc["realness", "score"] == "5" and first.loc["emotion", "score"] == ""
    later = done[done["position"] == str(positions[1])].set_index("question")
    assert later.loc["aspects", "answer"] == "lip-sync;other"  # option order, not the order given
    assert later.loc["realness", "score"] == "2"
    assert set(done["verdict"]) == {"rejected"} and set(done["rt_ms"]) == {"1234"}
    assert set(done["played_fraction"]) == {"0.5"}
    opened = df[df["assignment"] == str(a_open)]
    assert set(opened["verdict"]) == {"incomplete"} and set(opened["rt_ms"]) == {""}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in df["answered_at"])
    # repeats and labels, checked against the plan and the set's manifest
    manifest = {s["stimulus_id"]: s for s in json.loads((media_set / "manifest.json").read_text())["stimuli"]}
    items = {it["position"]: it for it in next(b for b in plan["batches"] if b["batch_id"] == "b02")["items"]}
    for _, row in done.iterrows():
        item = items[int(row["position"])]
        assert row["stimulus_id"] == item["stimulus_id"]
        assert row["is_repeat"] == ("1" if item["repeat_of"] is not None else "0")
        assert row["repeat_of"] == ("" if item["repeat_of"] is None else str(item["repeat_of"]))
        label = manifest[row["stimulus_id"]]
        for column in ("source", "visual_emotion", "audio_emotion", "identity", "sentence", "intensity",
                       "size_variant"):
            assert row[column] == (label[column] or "")
    people = _read(tmp_path / "out" / "participants.csv").set_index("assignment")
    assert people.loc[str(a_done), "verdict"] == "rejected"
    assert people.loc[str(a_done), "n_inconsistent"] == "6"
    assert people.loc[str(a_done), "n_answers"] == str(len(positions))
    assert people.loc[str(a_open), "verdict"] == "incomplete"
    assert people.loc[str(a_open), "n_inconsistent"] == "" and people.loc[str(a_open), "completed_at"] == ""
    assert (tmp_path / "out" / "plan.json").read_bytes() == (tmp_path / "plan1.json").read_bytes()
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["stimuli"][0]["stimulus_id"] == "stim00"


def test_none_survives_pandas_round_trip(app, task2_study, tmp_path):
    plan = plan_of(app, task2_study)
    add_assignment(app, task2_study, "b01", worker="w-none", status="completed", verdict="valid",
                   answers={p: {"primary": "sadness", "secondary": "none"} for p in batch_positions(plan, "b01")})
    _export(app, task2_study, tmp_path / "out")
    df = _read(tmp_path / "out" / "answers.csv")
    secondary = df[df["question"] == "secondary"]["answer"]
    assert len(secondary) == 6 and set(secondary) == {"none"}
    # the default reader would turn some of these into NaN; the codebook says to use keep_default_na=False
    assert "keep_default_na=False" in (tmp_path / "out" / "codebook.md").read_text()


def test_pseudonyms_stable_keyed_and_not_raw(app, task1_study, tmp_path):
    add_assignment(app, task1_study, "b01", worker="A1B2C3WORKER", platform="mturk", status="started")
    _export(app, task1_study, tmp_path / "one")
    _export(app, task1_study, tmp_path / "two")
    one = _read(tmp_path / "one" / "participants.csv")
    expected = hmac.new(b"test-secret", b"mturk:A1B2C3WORKER", hashlib.sha256).hexdigest()[:16]
    assert list(one["participant"]) == [expected]
    for name in ("answers.csv", "participants.csv", "codebook.md"):  # deterministic bytes
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    for name in ("answers.csv", "participants.csv"):
        assert "A1B2C3WORKER" not in (tmp_path / "one" / name).read_text()
        assert "tok-A1B2C3WORKER" not in (tmp_path / "one" / name).read_text()  # nor the URL token


def test_refuses_non_empty_folder_and_unknown_study(app, task1_study, tmp_path):
    from study_server.export.tables import ExportError

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        _export(app, task1_study, tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
    with pytest.raises(ExportError, match="no study named 'nope'.*tiny-task1"):
        _export(app, "nope", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    _export(app, task1_study, tmp_path / "empty")  # an empty folder is fine
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [
        "answers.csv", "codebook.md", "decisions.csv", "manifest.json", "participants.csv", "plan.json"]


def test_the_analysis_package_reads_the_export(app, task1_study, tmp_path):
    """The consumer's own reader (analysis.io.load_export) accepts the export without warnings."""
    pytest.importorskip("analysis.io")
    from analysis.io import load_export

    plan = plan_of(app, task1_study)
    positions = batch_positions(plan, "b01")
    add_assignment(app, task1_study, "b01", worker="reader-1", status="completed", verdict="valid",
                   answers={p: {"emotion": "anger", "realness": "somewhat-real", "aspects": ["lip-sync", "other"]}
                            for p in positions})
    add_assignment(app, task1_study, "b02", worker="reader-2", status="started",
                   answers={0: {"emotion": "sadness", "realness": "not-sure", "aspects": ["none"]}})
    _export(app, task1_study, tmp_path / "out")
    export = load_export(tmp_path / "out")
    assert export.warnings == []
    assert len(export.answers) == 3 * (len(positions) + 1)
    assert set(export.answers["answer"][export.answers["question"] == "aspects"]) == {"lip-sync;other", "none"}
    assert sorted(export.participants["verdict"]) == ["incomplete", "valid"]
