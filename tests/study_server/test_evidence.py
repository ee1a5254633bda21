"""Issue 29: a session is valid only with evidence (SQLite and PostgreSQL).

The attacks of the audit, in-process and bounded:

- the empty session: ``/media-failed`` for every trial, then ``/complete`` (no fetch, no answer);
- declaring only the repeats "failed" and answering the rest;
- skipping the listening checks through ``/media-failed`` and ``/complete``;
- HEAD-only watching: a HEAD on every clip, one wait, then every answer.

The tiny clips last 0.4 s in the default set; the HEAD-only and pace attacks use a set whose manifest gives
every clip 3 s (the import checks sha256, not durations) so that "too fast" and "unpaced" are measurable
without waiting long.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from sqlalchemy import func, select, update

from study_server.store.extensions import db
from study_server.store.models import ABANDONED, Answer, Assignment, MediaFailure, MediaFetch, Verdict
from study_server.study.assignment import occupancy
from studykit import TASK1, TASK2, arrive, import_study, make_plan, pass_screen, valid_values, watch


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def anyapp(request):
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


@pytest.fixture
def study1(anyapp, media_set, tmp_path):
    return import_study(anyapp, make_plan(media_set, TASK1, out=tmp_path / "p1.json", name="ev1"), media_set)


def _fail(client, token, position, failures=3):
    return client.post(f"/api/v1/a/{token}/media-failed",
                       json={"position": position, "failures": failures, "error": "MEDIA_ERR_NETWORK"})


def _answer(client, token, state, position, variant=0):
    return client.post(f"/api/v1/a/{token}/answers", json={
        "answer_id": f"{token[:10]}-{position}", "position": position,
        "values": valid_values(state["questions"], variant), "rt_ms": 900, "played_fraction": 1.0})


def _assignment(app, token):
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        verdict = db.session.scalar(select(Verdict).where(Verdict.assignment_id == a.id))
        n_failed = db.session.scalar(select(func.count()).select_from(MediaFailure)
                                     .where(MediaFailure.assignment_id == a.id))
        counts = occupancy(db.session, a.study_id)
        db.session.expunge_all()
        return a, verdict, n_failed, counts


# ------------------------------------------------------------------------------------ the empty session

def test_the_empty_session_is_never_valid(anyapp, study1):
    client = anyapp.test_client()
    token = arrive(client, study1, lab="empty-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    # A failure is accepted only for a clip whose bytes were asked for with a GET.
    for item in state["items"]:
        r = _fail(client, token, item["position"])
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "media_not_requested", r.get_json()
        assert client.head(item["media_url"]).status_code == 200
        r = _fail(client, token, item["position"])  # a HEAD is not a GET
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "media_not_requested"
    done = client.post(f"/api/v1/a/{token}/complete")
    assert done.status_code == 409 and done.get_json()["error"]["code"] == "incomplete"
    # With GETs: two failures are accepted, the third ends the session as a technical failure.
    replies = []
    for item in state["items"][:3]:
        watch(client, item)
        replies.append(_fail(client, token, item["position"]))
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert [r.get_json().get("status") for r in replies] == ["started", "started", ABANDONED]
    assert replies[2].get_json()["technical_failure"] is True
    more = _fail(client, token, 3)
    assert more.status_code == 409
    done = client.post(f"/api/v1/a/{token}/complete")
    assert done.status_code == 409, done.get_json()
    a, verdict, n_failed, counts = _assignment(anyapp, token)
    assert a.status == ABANDONED and a.completion_code is None and a.completed_at is None
    assert verdict.verdict == "technical_failure" and n_failed == 3
    assert sum(counts.values()) == 0  # the place is free and the session is counted nowhere
    # Recruitment never approves it: a person (MTurk) or a return request (Prolific) decides.
    from study_server.recruit.service import decide
    with anyapp.app_context():
        fresh = db.session.scalar(select(Assignment).where(Assignment.token == token))
        action, reason = decide(fresh)
    assert action == "queue" and "technical" in reason


def test_a_repeat_pair_never_fails_whole_and_a_failed_member_counts_inconsistent(anyapp, study1):
    client = anyapp.test_client()
    token = arrive(client, study1, lab="pairs-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    items = {i["position"]: i for i in state["items"]}
    # Task 1 repeats: 6<-0, 7<-1, 8<-2. Both members of a pair "failed": a technical failure at once.
    watch(client, items[1])
    assert _fail(client, token, 1).get_json()["status"] == "started"
    watch(client, items[7])
    r = _fail(client, token, 7)
    assert r.status_code == 200 and r.get_json()["status"] == ABANDONED and r.get_json()["technical_failure"]

    # Declaring two repeats failed and answering the rest (consistently): the pairs count inconsistent.
    token = arrive(client, study1, lab="pairs-2")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for item in state["items"]:
        watch(client, item)
        if item["position"] in (6, 7):
            assert _fail(client, token, item["position"]).get_json()["status"] == "started"
        else:
            assert _answer(client, token, state, item["position"]).status_code == 200
    done = client.post(f"/api/v1/a/{token}/complete")
    assert done.status_code == 200, done.get_json()
    _, verdict, n_failed, _ = _assignment(anyapp, token)
    assert n_failed == 2
    failed_checks = [c for c in verdict.details["checks"] if c.get("media_failed")]
    assert {(c["position"], c["repeat_of"]) for c in failed_checks} == {(6, 0), (7, 1)}
    assert all(c["inconsistent"] for c in failed_checks) and len(failed_checks) == 6  # 2 pairs x 3 rules
    assert verdict.verdict == "rejected" and verdict.n_inconsistent == 6  # Task 1's tiny plan: > 5


def test_the_listening_checks_cannot_be_skipped(anyapp, media_set, tmp_path):
    name = import_study(anyapp, make_plan(media_set, TASK2, out=tmp_path / "p2.json", name="ev2",
                                          audio_check={"enabled": True, "kind": "huggins+words", "trials": 6,
                                                       "pass_at": 5, "attempts": 1}), media_set)
    client = anyapp.test_client()
    token = arrive(client, name, lab="skip-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    assert state["listening"] is not None and not state["audio_check"]["passed"]
    for item in state["items"]:
        watch(client, item)
    for route, body in (("media-failed", {"position": 0, "failures": 3, "error": "MEDIA_ERR_NETWORK"}),
                        ("answers", {"answer_id": "skipper-0", "position": 0,
                                     "values": valid_values(state["questions"])}),
                        ("complete", {})):
        r = client.post(f"/api/v1/a/{token}/{route}", json=body)
        assert r.status_code in (403, 409), (route, r.get_json())
    # The word check needs the headphone screen first.
    r = client.post(f"/api/v1/a/{token}/audio-check", json={"answer": "anything"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "screen_first"
    with anyapp.app_context():
        aid = db.session.scalar(select(Assignment.id).where(Assignment.token == token))
        assert db.session.scalar(select(func.count()).select_from(MediaFailure)
                                 .where(MediaFailure.assignment_id == aid)) == 0
    pass_screen(client, token)  # and then the session goes on as usual
    assert client.post(f"/api/v1/a/{token}/media-failed",
                       json={"position": 0, "failures": 3, "error": "MEDIA_ERR_NETWORK"}).status_code in (200, 403)


# ---------------------------------------------------------------------------------- watching in bytes

DURATION_S = 3.0


@pytest.fixture(scope="module")
def slow_set(tmp_path_factory, media_set):
    from stimuli.manifest import build_manifest, save_manifest

    root = tmp_path_factory.mktemp("slow") / "slow-set"
    shutil.copytree(media_set, root)
    rows = json.loads((root / "manifest.json").read_text())["stimuli"]
    for row in rows:
        row["duration_s"] = DURATION_S
    save_manifest(build_manifest(root, rows, name="slow-set", check_media=True))
    return root


def _backdate_first_byte(app, token, seconds, positions=None):
    """Move the first byte of the trials' media ``seconds`` into the past (no real waiting)."""
    from study_server.study.watching import local_fetches

    with app.app_context():
        aid = db.session.scalar(select(Assignment.id).where(Assignment.token == token))
        when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
        q = update(MediaFetch).where(MediaFetch.assignment_id == aid)
        if positions is not None:
            q = q.where(MediaFetch.position.in_(positions))
        db.session.execute(q.values(first_requested_at=when, first_byte_at=when))
        db.session.commit()
    local_fetches(app).clear()  # the host's table knows a later first byte: it never clears the answer


def _answer_rows(app, token):
    with app.app_context():
        rows = db.session.execute(select(Answer.answer_id, Answer.watch_flag, Answer.watched, Answer.paced)
                                  .join(Assignment, Assignment.id == Answer.assignment_id)
                                  .where(Assignment.token == token)).all()
        return {int(r[0].rsplit("-", 1)[-1]): (r[1], r[2], r[3]) for r in rows}


def test_head_only_watching_is_never_valid(anyapp, slow_set, tmp_path):
    name = import_study(anyapp, make_plan(slow_set, TASK1, out=tmp_path / "ps.json", name="head"), slow_set)
    client = anyapp.test_client()
    token = arrive(client, name, lab="head-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for item in state["items"]:
        r = client.head(item["media_url"])
        assert r.status_code == 200
        r = client.get(item["media_url"], headers={"Range": "bytes=0-0"})  # one byte is not the clip
        assert r.status_code == 206
    # "one wait as long as the longest clip": the requests are long past (backdated), then every answer
    _backdate_first_byte(anyapp, token, 60)
    for item in state["items"]:
        assert _answer(client, token, state, item["position"]).status_code == 200
    rows = _answer_rows(anyapp, token)
    assert all(flag == "too_few_bytes" and watched is False for flag, watched, _ in rows.values()), rows
    done = client.post(f"/api/v1/a/{token}/complete")
    assert done.status_code == 200
    _, verdict, _, counts = _assignment(anyapp, token)
    assert verdict.verdict == "rejected" and sum(counts.values()) == 0


def test_answers_are_paced_and_watched_per_trial(anyapp, slow_set, tmp_path):
    name = import_study(anyapp, make_plan(slow_set, TASK1, out=tmp_path / "pp.json", name="pace"), slow_set)
    client = anyapp.test_client()
    token = arrive(client, name, lab="pace-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for item in state["items"]:
        watch(client, item)  # every byte of every clip, at once
    # 9 s ago: each clip (3 s) could have played, not all nine; each may end 0.5 s early (2.5 s per clip)
    _backdate_first_byte(anyapp, token, 9)
    for item in state["items"]:
        assert _answer(client, token, state, item["position"]).status_code == 200
    rows = _answer_rows(anyapp, token)
    # 3 answers fit in 9 s (7.5 s of clips); the 4th needs 10 s.
    assert [rows[p][2] for p in range(9)] == [True] * 3 + [False] * 6, rows
    assert all(rows[p][1] is True for p in range(9))  # each clip itself was watched
    assert [rows[p][0] for p in range(9)] == [None] * 3 + ["unpaced"] * 6
    # An honest pace: each answer after its own clip's bytes and duration.
    token = arrive(client, name, lab="pace-2")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    for k, item in enumerate(state["items"]):
        watch(client, item)
        _backdate_first_byte(anyapp, token, DURATION_S, positions=[item["position"]])
        # the first trial began (9 - k) * 3 s ago, as if every clip had played in turn
        _backdate_first_byte(anyapp, token, DURATION_S * (k + 1), positions=[state["items"][0]["position"]])
        assert _answer(client, token, state, item["position"]).status_code == 200
    rows = _answer_rows(anyapp, token)
    assert all(r == (None, True, True) for r in rows.values()), rows
    assert client.post(f"/api/v1/a/{token}/complete").get_json()["status"] == "completed"
    _, verdict, _, _ = _assignment(anyapp, token)
    assert verdict.verdict == "valid"


def test_the_export_has_watched_and_paced(app, slow_set, tmp_path):
    import pandas as pd

    from study_server.export.tables import export_study

    name = import_study(app, make_plan(slow_set, TASK1, out=tmp_path / "pe.json", name="expo"), slow_set)
    client = app.test_client()
    token = arrive(client, name, lab="expo-1")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    item = state["items"][0]
    watch(client, item)
    _backdate_first_byte(app, token, 5)
    assert _answer(client, token, state, 0).status_code == 200
    with app.app_context():
        study_id = db.session.scalar(select(Assignment.study_id).where(Assignment.token == token))
        export_study(db.session, study_id, tmp_path / "out")
    answers = pd.read_csv(tmp_path / "out" / "answers.csv", keep_default_na=False, dtype=str)
    assert set(answers["watched"]) == {"1"} and set(answers["paced"]) == {"1"}


def test_the_analysis_agrees_on_technical_failures_and_failed_pairs(app, media_set, tmp_path):
    from analysis.cleaning import clean
    from analysis.io import load_export
    from study_server.export.tables import export_study

    name = import_study(app, make_plan(media_set, TASK1, out=tmp_path / "pa.json", name="agree"), media_set)
    client = app.test_client()
    failed = arrive(client, name, lab="agree-1")  # three failures: a technical failure
    state = client.post(f"/api/v1/a/{failed}/start").get_json()
    for item in state["items"][:3]:
        watch(client, item)
        _fail(client, failed, item["position"])
    paired = arrive(client, name, lab="agree-2")  # one failed repeat member, the rest answered
    state = client.post(f"/api/v1/a/{paired}/start").get_json()
    for item in state["items"]:
        watch(client, item)
        if item["position"] == 7:
            assert _fail(client, paired, 7).status_code == 200
        else:
            assert _answer(client, paired, state, item["position"]).status_code == 200
    assert client.post(f"/api/v1/a/{paired}/complete").status_code == 200
    with app.app_context():
        study_id = db.session.scalar(select(Assignment.study_id).where(Assignment.token == failed))
        export_study(db.session, study_id, tmp_path / "out")
    cleaned = clean(load_export(tmp_path / "out"))
    assert cleaned.counts["n_verdict_disagreements"] == 0
    verdicts = sorted(cleaned.surveys["server_verdict"])
    assert verdicts == ["technical_failure", "valid"]
