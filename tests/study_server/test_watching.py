"""Server-side evidence of watching (study_server.study.watching) and the one answer decision (answers.decide_answer).

The tiny test clips last 0.4 s; the set used here says 30 s in its manifest (the import checks sha256, not
the duration), so "too fast" is an answer less than 29.5 s after the first request of its clip.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from sqlalchemy import select, update

from study_server.store.extensions import db
from study_server.store.models import Answer, Assignment, MediaFetch, Verdict
from studykit import TASK1, arrive, import_study, make_plan, valid_values

DURATION_S = 30.0


@pytest.fixture(scope="module")
def long_set(tmp_path_factory, media_set):
    """The tiny set, with a manifest that gives every clip 30 s."""
    from stimuli.manifest import build_manifest, save_manifest

    root = tmp_path_factory.mktemp("long") / "long-set"
    shutil.copytree(media_set, root)
    rows = json.loads((root / "manifest.json").read_text())["stimuli"]
    for row in rows:
        row["duration_s"] = DURATION_S
    save_manifest(build_manifest(root, rows, name="long-set", check_media=True))
    return root


def _plan(set_dir, out, *, watch_flags=None, name="watch"):
    path = make_plan(set_dir, TASK1, name=name, out=out)
    if watch_flags is not None:
        plan = json.loads(path.read_text())
        plan["consistency"]["watch_flags"] = watch_flags
        path.write_text(json.dumps(plan))
    return path


def _body(state, position, answer_id):
    return {"answer_id": answer_id, "position": position, "values": valid_values(state["questions"], 0),
            "rt_ms": 900, "played_fraction": 1.0}


def _backdate(app, token, position, seconds):
    """The clip of ``position`` was first requested ``seconds`` ago (on the server's clock), and this
    process forgets that it served it (as if another worker had)."""
    from study_server.study.watching import local_fetches

    with app.app_context():
        aid = db.session.scalar(select(Assignment.id).where(Assignment.token == token))
        db.session.execute(update(MediaFetch).where(MediaFetch.assignment_id == aid, MediaFetch.position == position)
                           .values(first_requested_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds),
                                   first_byte_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)))
        db.session.commit()
    local_fetches(app).clear()


def _flags(app, token):
    with app.app_context():
        rows = db.session.execute(select(Answer.answer_id, Answer.watch_flag).join(
            Assignment, Assignment.id == Answer.assignment_id).where(Assignment.token == token)).all()
        return {answer_id.rsplit("-", 1)[-1]: flag for answer_id, flag in rows}


def _scenario(app, set_dir, tmp_path, *, tag, watch_flags=None):
    """Answer all 9 trials (same answers to repeats): trial 0 without fetching its clip, trial 1 right after
    fetching it, trials 2-8 after fetching them and waiting (backdated 300 s); then complete.
    Returns (token, flags by position, completion response)."""
    name = import_study(app, _plan(set_dir, tmp_path / f"{tag}.json", watch_flags=watch_flags, name=tag), set_dir)
    client = app.test_client()
    token = arrive(client, name, lab=f"{tag}-p")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for item in state["items"]:
        pos = item["position"]
        if pos >= 1:
            r = client.get(item["media_url"])
            assert r.status_code == 200 and len(r.data) > 0
        if pos >= 2:
            _backdate(app, token, pos, 300)  # long enough for the pace of all nine 30 s clips too
        r = client.post(f"/api/v1/a/{token}/answers", json=_body(state, pos, f"{tag}-ans-{pos}"))
        assert r.status_code == 200, r.get_json()  # flagged answers are stored and acknowledged
    done = client.post(f"/api/v1/a/{token}/complete")
    return token, _flags(app, token), done


EXPECTED = {"0": "never_fetched", "1": "too_fast", **{str(p): None for p in range(2, 9)}}


# ----------------------------------------------------------------------------------------- the decision

def _plan_and_batch(duration=10.0):
    from study_server.study.context import BatchInfo, ItemInfo
    from study_server.study.studies import parse_plan

    plan = parse_plan("x", json.dumps({"questions": [{"id": "q", "type": "single", "prompt": "?",
                                                       "options": [{"value": "a", "label": "A"}]}]}))
    return plan, BatchInfo((ItemInfo(7, 0, None, "m.mp4", "s" * 64, duration_s=duration),))


def _decide(local=None, stored=None, duration=10.0, position=0):
    from study_server.study.answers import decide_answer
    from study_server.study.watching import Evidence

    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    plan, batch = _plan_and_batch(duration)
    calls = []

    def reader(which, when):
        def read(position):
            calls.append(which)
            return None if when is None else Evidence(now - dt.timedelta(seconds=when), 1000)
        return read
    decision = decide_answer({"answer_id": "abcdefgh", "position": position, "values": {"q": "a"}}, plan, batch,
                             now=now, tolerance_s=0.5, local=reader("local", local), stored=reader("db", stored))
    return decision, calls


def test_decision_flags_and_when_it_reads_the_database():
    decision, calls = _decide(local=None, stored=None)
    assert decision.flag == "never_fetched" and calls == ["local", "db"]
    decision, calls = _decide(local=20, stored=None)  # this process served it 20 s ago: no database read
    assert decision.flag is None and calls == ["local"]
    decision, calls = _decide(local=3, stored=12)  # another worker served it earlier
    assert decision.flag is None and calls == ["local", "db"]
    decision, calls = _decide(local=3, stored=3)
    assert decision.flag == "too_fast"
    decision, _ = _decide(local=9.6, stored=9.6)  # within the 0.5 s tolerance of a 10 s clip
    assert decision.flag is None
    decision, _ = _decide(local=9.4, stored=9.4)
    assert decision.flag == "too_fast"
    decision, calls = _decide(local=None, stored=None, position=5)  # not a trial: refused later, not judged
    assert decision.item is None and decision.flag is None and calls == []


def test_malformed_answers_are_refused_by_the_decision():
    from study_server.study.answers import decide_answer
    from study_server.core.errors import ApiError

    plan, batch = _plan_and_batch()
    for answer_id in ("abcdefgh12\n", "a" * 65, "short"):  # "$" would have let the newline in
        with pytest.raises(ApiError) as err:
            decide_answer({"answer_id": answer_id, "position": 0, "values": {"q": "a"}}, plan, batch,
                          now=dt.datetime.now(dt.timezone.utc), tolerance_s=0.5, local={}.get, stored={}.get)
        assert err.value.code == "bad_answer_id" and err.value.status == 400


# ------------------------------------------------------------------------------------------- SQLite

def test_flagged_answers_are_stored_counted_and_exported(app, client, long_set, tmp_path):
    token, flags, done = _scenario(app, long_set, tmp_path, tag="wsq")
    assert flags == EXPECTED
    assert done.status_code == 200
    with app.app_context():
        verdict = db.session.scalar(select(Verdict))
        # the same answers to every repeat: 0 inconsistent by the rules, + 2 flagged answers (default: counted)
        assert verdict.n_inconsistent == 2 and verdict.details["watch_flags"] == {"0": "never_fetched",
                                                                                  "1": "too_fast"}
        fetch = db.session.scalar(select(MediaFetch).where(MediaFetch.position == 1))
        assert fetch.n_requests == 1 and fetch.bytes_served > 1000  # a whole (tiny) mp4
        study_id = db.session.scalar(select(Assignment.study_id))
        assignment_id = db.session.scalar(select(Assignment.id))
    from study_server.admin import stats as admin_stats
    with app.app_context():
        counts = admin_stats.integrity_counts(db.session, study_id)
        rows = admin_stats.assignment_rows(db.session, study_id)
    assert counts == {"flagged_answers": 2, "never_fetched": 1, "too_few_bytes": 0, "too_fast": 1, "unpaced": 0,
                      "media_failed": 0}
    assert rows[0]["n_watch_flags"] == 2 and rows[0]["id"] == assignment_id

    from study_server.export.tables import export_study
    import pandas as pd
    with app.app_context():
        export_study(db.session, "wsq", tmp_path / "out")
    answers = pd.read_csv(tmp_path / "out" / "answers.csv", keep_default_na=False, dtype=str)
    by_pos = answers.groupby("position").first()
    assert by_pos.loc["0", "watch_flag"] == "never_fetched" and by_pos.loc["0", "media_requested_at"] == ""
    assert by_pos.loc["1", "watch_flag"] == "too_fast" and int(by_pos.loc["1", "media_bytes_served"]) > 0
    assert (by_pos.loc[[str(p) for p in range(2, 9)], "watch_flag"] == "").all()
    participants = pd.read_csv(tmp_path / "out" / "participants.csv", keep_default_na=False, dtype=str)
    assert participants.loc[0, "n_watch_flags"] == "2" and participants.loc[0, "n_inconsistent"] == "2"
    # The analysis recomputes the same verdict and count from the export (flags included).
    from analysis.cleaning import clean
    from analysis.io import load_export
    counts = clean(load_export(tmp_path / "out")).counts
    assert counts["n_verdict_disagreements"] == 0 and counts["n_inconsistency_count_disagreements"] == 0


def test_bytes_served_add_up_over_range_requests(app, client, long_set, tmp_path):
    name = import_study(app, _plan(long_set, tmp_path / "r.json", name="wrange"), long_set)
    token = arrive(client, name, lab="range-p")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    url = state["items"][0]["media_url"]
    whole = client.get(url).data
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100
    client.head(url)
    with app.app_context():
        fetch = db.session.scalar(select(MediaFetch).where(MediaFetch.position == 0))
        assert (fetch.n_requests, fetch.bytes_served) == (3, len(whole) + 100)
        assert db.session.scalar(select(MediaFetch).where(MediaFetch.position == 1)) is None


def test_the_plan_may_ignore_flags_in_the_verdict(app, client, long_set, tmp_path):
    token, flags, done = _scenario(app, long_set, tmp_path, tag="wign", watch_flags="ignore")
    assert flags == EXPECTED and done.status_code == 200
    with app.app_context():
        verdict = db.session.scalar(select(Verdict))
        assert verdict.n_inconsistent == 0 and verdict.details["watch_flags_counted"] is False


# --------------------------------------------------------------------------------------- PostgreSQL

@pytest.mark.postgres
def test_fast_path_and_flask_route_decide_alike(pg_url, long_set, tmp_path, monkeypatch):
    """The same scenario through the WSGI fast path and through the Flask route alone: the same flags."""
    from study_server.store import schema as dbmod
    from study_server.app import create_app

    dbmod.upgrade(pg_url)
    results = {}
    for fast in (True, False):
        (tmp_path / str(fast)).mkdir()
        app = create_app({"TESTING": True, "DATABASE_URL": pg_url, "INSTANCE_PATH": str(tmp_path / f"i{fast}"),
                          "SECRET_KEY": "test-secret", "FAST_ANSWERS": fast})
        flask_calls = []
        view = app.view_functions["api.answers"]

        def counting(*args, _view=view, _calls=flask_calls, **kwargs):
            _calls.append(kwargs.get("token"))
            return _view(*args, **kwargs)
        monkeypatch.setitem(app.view_functions, "api.answers", counting)
        token, flags, done = _scenario(app, long_set, tmp_path / str(fast), tag=f"wpg{int(fast)}")
        assert done.status_code == 200
        with app.app_context():
            aid = db.session.scalar(select(Assignment.id).where(Assignment.token == token))
            n_bad = db.session.scalar(select(Verdict.n_inconsistent).where(Verdict.assignment_id == aid))
        results[fast] = (flags, n_bad, len(flask_calls))
        db.dispose(app)
    assert results[True][:2] == results[False][:2] == (EXPECTED, 2)
    assert results[True][2] == 0  # every save took the fast path
    assert results[False][2] == 9


# ------------------------------------------------------------------------------------- the spec option

def test_the_spec_decides_whether_flags_count():
    from stimuli.errors import SpecError
    from stimuli.spec import parse_spec, resolve_spec

    where, raw = resolve_spec("paper-task1")
    text = raw.decode()
    assert parse_spec(text, where=where).consistency.watch_flags == "inconsistent"  # the default
    ignored = text.replace("[consistency]\n", '[consistency]\nwatch_flags = "ignore"\n', 1)
    assert parse_spec(ignored, where=where).consistency.watch_flags == "ignore"
    with pytest.raises(SpecError, match=r"consistency\.watch_flags.*'sometimes'"):
        parse_spec(text.replace("[consistency]\n", '[consistency]\nwatch_flags = "sometimes"\n', 1), where=where)
