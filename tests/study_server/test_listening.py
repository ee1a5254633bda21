"""Listening checks: the sounds of the headphone screens, the calibration, the screen's flow and outcomes."""

from __future__ import annotations

import io
import re
import wave

import numpy as np
import pytest
from sqlalchemy import select

from study_server.store.extensions import db
from study_server.participant.listening import expected_answers, listening_spec, trial_design
from study_server.study.listening_sounds import (ANTIPHASE_HZ, HUGGINS_CENTRE_HZ, RATE, calibration_noise, screen_trial,
                                           wav_bytes)
from study_server.store.models import Assignment, ListeningCheck, ScreenTrial
from studykit import TASK2, arrive, complete_session, import_study, make_plan, pass_screen, valid_values

ADMIN_PASSWORD = "listening-admin-pw"
HUGGINS = {"enabled": True, "kind": "huggins", "trials": 6, "pass_at": 5, "attempts": 1}


def _intervals(signal: np.ndarray) -> list[np.ndarray]:
    n, gap = RATE, RATE // 2
    return [signal[i * (n + gap): i * (n + gap) + n] for i in range(3)]


# ------------------------------------------------------------------------------------ the sounds
@pytest.mark.parametrize("target", [0, 1, 2])
def test_huggins_only_the_target_differs_between_the_ears_and_only_in_its_band(target):
    sig = screen_trial("huggins", seed=7, target=target)
    for i, part in enumerate(_intervals(sig)):
        left, right = part[:, 0], part[:, 1]
        if i != target:
            assert np.array_equal(left, right)  # diotic
            continue
        diff = np.abs(np.fft.rfft(left - right)) ** 2  # power of the interaural difference
        freqs = np.fft.rfftfreq(len(left), 1 / RATE)
        band = np.abs(freqs - HUGGINS_CENTRE_HZ) <= 0.06 * HUGGINS_CENTRE_HZ
        assert diff[band].sum() > 0.99 * diff.sum()  # the ears differ in the 600 Hz band only (+ ramp leakage)
        # Each ear alone has no pitch cue: the same power spectrum in the band as out of it (white noise).
        spec_r = np.abs(np.fft.rfft(right)) ** 2
        assert 0.5 < spec_r[band].mean() / spec_r[(freqs > 200) & (freqs < 5000)].mean() < 2.0


@pytest.mark.parametrize("target,other", [(0, 1), (2, 0), (1, 2)])
def test_antiphase_target_is_6db_softer_and_other_is_phase_inverted(target, other):
    sig = screen_trial("antiphase", seed=3, target=target, other=other)
    rms = [np.sqrt(np.mean(p[:, 0] ** 2)) for p in _intervals(sig)]
    loud = [r for i, r in enumerate(rms) if i != target]
    assert 20 * np.log10(rms[target] / loud[0]) == pytest.approx(-6.0, abs=0.05)
    parts = _intervals(sig)
    assert np.allclose(parts[other][:, 1], -parts[other][:, 0])
    third = ({0, 1, 2} - {target, other}).pop()
    assert np.allclose(parts[third][:, 1], parts[third][:, 0])
    # 200 Hz
    spectrum = np.abs(np.fft.rfft(parts[third][:, 0]))
    assert np.fft.rfftfreq(RATE, 1 / RATE)[spectrum.argmax()] == pytest.approx(ANTIPHASE_HZ, abs=1.0)


def test_every_file_of_a_kind_has_the_same_size_and_different_bytes():
    blobs = {kind: [wav_bytes(screen_trial(kind, seed=s, target=s % 3, other=(s + 1) % 3), s) for s in range(6)]
             for kind in ("huggins", "antiphase")}
    for kind, files in blobs.items():
        assert len({len(b) for b in files}) == 1, kind
        assert len(set(files)) == len(files), kind
    assert len(blobs["huggins"][0]) == len(blobs["antiphase"][0])
    with wave.open(io.BytesIO(blobs["huggins"][0])) as fh:
        assert (fh.getnchannels(), fh.getframerate(), fh.getsampwidth()) == (2, RATE, 2)
        assert fh.getnframes() == 4 * RATE  # three 1 s intervals, two 0.5 s gaps
    cal = calibration_noise(1)
    assert np.sqrt(np.mean(cal[RATE:2 * RATE, 0] ** 2)) == pytest.approx(0.1, rel=0.05)  # -20 dBFS


def test_bad_sound_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown screen kind"):
        screen_trial("bells", 0, 0)
    with pytest.raises(ValueError, match="another interval"):
        screen_trial("antiphase", 0, 1, other=1)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        screen_trial("huggins", 0, 3)


def test_answers_are_balanced_and_differ_between_participants():
    targets = [trial_design("secret", f"tok{i:03d}", "huggins", 0, t)[0] for i in range(200) for t in range(6)]
    counts = np.bincount(targets, minlength=3)
    assert counts.min() > 330  # 400 expected each
    assert expected_answers("secret", "tokA" * 5, "huggins", 0, 6) != expected_answers("secret", "tokB" * 5,
                                                                                         "huggins", 0, 6)


# --------------------------------------------------------------------------------------- the flow
@pytest.fixture
def app_config():
    from werkzeug.security import generate_password_hash

    return {"ADMIN_PASSWORD_HASH": generate_password_hash(ADMIN_PASSWORD, method="pbkdf2:sha256:1000")}


@pytest.fixture
def screen_study(app, media_set, tmp_path):
    def make(audio_check: dict, name: str = "tiny-screen") -> str:
        plan = make_plan(media_set, TASK2, name=name, audio_check=audio_check, out=tmp_path / f"{name}.json")
        return import_study(app, plan, media_set)
    return make


def _state(client, token):
    return client.get(f"/api/v1/a/{token}").get_json()


def test_a_huggins_session_passes_and_completes(client, app, screen_study):
    study = screen_study(HUGGINS)
    token = arrive(client, study, lab="hp-pass")
    state = _state(client, token)
    assert state["listening"]["kind"] == "huggins" and not state["listening"]["words"]
    assert state["audio_check"]["media_url"] is None  # no word check in this kind
    out = complete_session(client, token)
    assert out["status"] == "completed"
    with app.app_context():
        row = db.session.scalar(select(ListeningCheck))
        assert row.passed is True and row.n_correct == 6 and row.calibrated_at is not None
        assert db.session.query(ScreenTrial).count() == 6
        assert db.session.scalar(select(Assignment)).audio_check_passed is True


def test_the_state_and_replies_never_tell_which_interval_was_right(client, app, screen_study):
    study = screen_study(HUGGINS)
    token = arrive(client, study, lab="hp-probe")
    client.post(f"/api/v1/a/{token}/start")
    client.post(f"/api/v1/a/{token}/listening/calibrated", json={})
    right = expected_answers(app.config["SECRET_KEY"], token, "huggins", 0, 6)
    replies = []
    for trial in range(2):
        wrong = right[trial] % 3 + 1
        replies.append(client.post(f"/api/v1/a/{token}/listening/answer",
                                   json={"trial": trial, "answer": wrong if trial else right[trial]}).get_json())
    # A right and a wrong answer give replies that differ only in the progress counter and the next URL.
    a, b = (dict(r["listening"]["screen"]) for r in replies)
    for d in (a, b):
        d.pop("answered"), d.pop("next_trial"), d.pop("media_url")
    assert a == b and "correct" not in str(replies)


def test_failing_the_screen_ends_the_assignment_without_work_and_frees_the_place(client, app, screen_study):
    study = screen_study(HUGGINS)
    token = arrive(client, study, lab="hp-fail")
    client.post(f"/api/v1/a/{token}/start")
    reply = pass_screen(client, token, wrong=2)  # 4 of 6: below pass_at = 5
    assert reply["status"] == "abandoned" and reply["listening"]["screen"]["passed"] is False
    values = valid_values(_state(client, token)["questions"])
    r = client.post(f"/api/v1/a/{token}/answers", json={"answer_id": "after-fail-1", "position": 0,
                                                        "values": values, "rt_ms": 900, "played_fraction": 1.0})
    assert r.status_code in (403, 409)
    # A retry of the last answer gets the same outcome, not an error.
    again = client.post(f"/api/v1/a/{token}/listening/answer", json={"trial": 5, "answer": 1})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "audio_check_failed"
    with app.app_context():
        a = db.session.scalar(select(Assignment))
        assert a.status == "abandoned" and a.audio_check_passed is False
        assert db.session.scalar(select(ListeningCheck)).n_correct == 4
    # The place is free again: the quota is 2 per batch, 2 batches -> 4 others get in.
    for i in range(4):
        arrive(client, study, lab=f"next{i}")


def test_a_second_attempt_when_the_spec_allows_it(client, app, screen_study):
    study = screen_study({**HUGGINS, "attempts": 2})
    token = arrive(client, study, lab="hp-two")
    client.post(f"/api/v1/a/{token}/start")
    reply = pass_screen(client, token, wrong=6)
    screen = reply["listening"]["screen"]
    assert reply["status"] == "started" and screen["passed"] is None and screen["attempts_left"] == 1
    assert screen["answered"] == 0 and screen["media_url"].endswith(screen["media_url"].split("/")[-1])
    assert "/h1-0/" in screen["media_url"]
    right = expected_answers(app.config["SECRET_KEY"], token, "huggins", 1, 6)
    for trial, answer in enumerate(right):
        reply = client.post(f"/api/v1/a/{token}/listening/answer",
                            json={"trial": trial, "answer": answer}).get_json()
    assert reply["listening"]["screen"]["passed"] is True


def test_huggins_plus_words_needs_the_screen_before_the_word(client, app, screen_study):
    from study_server.study.audio_check import expected_word

    study = screen_study({**HUGGINS, "kind": "huggins+words"})
    token = arrive(client, study, lab="hp-words")
    client.post(f"/api/v1/a/{token}/start")
    word = expected_word(app.config["SECRET_KEY"], token, 0)
    early = client.post(f"/api/v1/a/{token}/audio-check", json={"answer": word})
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "screen_first"
    pass_screen(client, token)
    with app.app_context():
        assert db.session.scalar(select(Assignment)).audio_check_passed is None  # the word is still due
    assert client.post(f"/api/v1/a/{token}/audio-check", json={"answer": word}).get_json()["passed"] is True


def test_screen_requests_are_checked(client, app, screen_study):
    study = screen_study(HUGGINS)
    token = arrive(client, study, lab="hp-bad")
    before = client.post(f"/api/v1/a/{token}/listening/answer", json={"trial": 0, "answer": 1})
    assert before.status_code == 409 and before.get_json()["error"]["code"] == "not_started"
    client.post(f"/api/v1/a/{token}/start")
    uncal = client.post(f"/api/v1/a/{token}/listening/answer", json={"trial": 0, "answer": 1})
    assert uncal.get_json()["error"]["code"] == "not_calibrated"
    client.post(f"/api/v1/a/{token}/listening/calibrated", json={})
    for body in ({"trial": 0, "answer": 4}, {"trial": 0, "answer": "1"}, {"trial": 9, "answer": 1},
                 {"trial": True, "answer": 1}, [1, 2]):
        r = client.post(f"/api/v1/a/{token}/listening/answer", json=body)
        assert r.status_code == 400, body
    skip = client.post(f"/api/v1/a/{token}/listening/answer", json={"trial": 3, "answer": 1})
    assert skip.status_code == 409 and skip.get_json()["error"]["code"] == "out_of_order"
    # The same trial twice (a retry): stored once.
    for _ in range(2):
        assert client.post(f"/api/v1/a/{token}/listening/answer", json={"trial": 0, "answer": 2}).status_code == 200
    with app.app_context():
        assert db.session.query(ScreenTrial).count() == 1


def test_sounds_are_served_blind(client, app, screen_study):
    study = screen_study(HUGGINS)
    tokens = [arrive(client, study, lab=f"hp-media{i}") for i in range(2)]
    sizes, bodies = set(), set()
    for token in tokens:
        client.post(f"/api/v1/a/{token}/start")
        state = client.post(f"/api/v1/a/{token}/listening/calibrated", json={}).get_json()["listening"]
        url = state["screen"]["media_url"]
        r = client.get(url)
        assert r.status_code == 200 and r.mimetype == "audio/wav"
        assert "ETag" not in r.headers and "Last-Modified" not in r.headers
        assert client.get(url).data == r.data  # a reload gets the same sound
        part = client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.data == r.data[:100]
        assert part.headers["Content-Range"] == f"bytes 0-99/{len(r.data)}"
        sizes.add(len(r.data))
        bodies.add(r.data)
        cal = client.get(state["calibration_url"])
        assert cal.status_code == 200 and "ETag" not in cal.headers
        # A forged or foreign slot is refused.
        assert client.get(url.rsplit("/", 1)[0] + "/AAAA").status_code == 404
    assert len(sizes) == 1 and len(bodies) == 2
    assert client.get(url.replace(tokens[1], tokens[0])).status_code == 404  # another's signature


def test_listening_spec_defaults_for_old_plans():
    assert listening_spec({"audio_check": {"enabled": False}}) is None
    words = listening_spec({"audio_check": {"enabled": True}})
    assert words.kind == "words" and words.screen is None and words.words


def test_admin_counts_the_listening_checks(client, app, screen_study):
    from study_server.admin import stats as admin_stats
    from study_server.store.models import Study

    study = screen_study(HUGGINS)
    passed, failed = arrive(client, study, lab="adm-pass"), arrive(client, study, lab="adm-fail")
    for token, wrong in ((passed, 0), (failed, 3)):
        client.post(f"/api/v1/a/{token}/start")
        pass_screen(client, token, wrong=wrong)
    with app.app_context():
        s = db.session.scalar(select(Study).where(Study.name == study))
        counts = admin_stats.listening_counts(db.session, s.id)
        sid = s.id
    assert counts == {"screen_started": 2, "calibrated": 2, "screen_passed": 1, "screen_failed": 1,
                      "screen_undecided": 0, "audio_check_failed": 0}
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").get_data(as_text=True))
    client.post("/admin/login", data={"user": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf.group(1)})
    page = client.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert "Screen failed" in page and "<td class=\"n\">1</td>" in page


def test_export_holds_every_screen_trial(client, app, screen_study, tmp_path):
    import pandas as pd

    from study_server.export.tables import export_study

    study = screen_study(HUGGINS)
    ok, bad = arrive(client, study, lab="exp-pass"), arrive(client, study, lab="exp-fail")
    complete_session(client, ok)
    client.post(f"/api/v1/a/{bad}/start")
    pass_screen(client, bad, wrong=6)
    with app.app_context():
        export_study(db.session, study, tmp_path / "out")
    parts = pd.read_csv(tmp_path / "out" / "participants.csv", keep_default_na=False, dtype=str)
    assert sorted(parts["screen_passed"]) == ["0", "1"] and set(parts["screen_kind"]) == {"huggins"}
    assert sorted(parts["screen_n_correct"]) == ["0", "6"] and set(parts["screen_calibrated"]) == {"1"}
    trials = pd.read_csv(tmp_path / "out" / "screen_trials.csv", keep_default_na=False, dtype=str)
    assert len(trials) == 12 and trials.groupby("assignment")["correct"].apply(lambda c: (c == "1").sum()).sort_values().tolist() == [0, 6]
    assert "## screen_trials.csv" in (tmp_path / "out" / "codebook.md").read_text()

    from analysis.cleaning import listening_counts
    from analysis.report_text import exclusions_table
    counts = listening_counts(parts)
    assert counts == {"n_participants_screen_failed": 1, "n_participants_audio_check_failed": 0}
    table = exclusions_table({"n_participants_total": 2, **counts})  # the report's exclusions, in words
    row = table[table["Count"].str.contains("headphone screen")]
    assert row[["n", "%"]].values.tolist() == [["1", "50.0%"]]


def test_a_failed_screen_is_never_rejected_on_the_platforms(client, app, screen_study):
    """Who fails the screen did no trial: recruitment sync queues the submission for a person (MTurk) or asks
    for a return (Prolific: `_decide_one` turns a partial into a return request), never a rejection."""
    from study_server.recruit.service import PARTIAL, decide

    study = screen_study(HUGGINS)
    token = arrive(client, study, PROLIFIC_PID="pp-screen", STUDY_ID="s1", SESSION_ID="sess-1")
    client.post(f"/api/v1/a/{token}/start")
    assert pass_screen(client, token, wrong=6)["status"] == "abandoned"
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        for policy in ("reject", "approve-without-bonus"):
            assert decide(a, policy) == ("queue", PARTIAL)
