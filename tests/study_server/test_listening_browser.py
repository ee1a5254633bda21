"""The listening checks in headless Chromium: volume calibration, then the Huggins headphone screen, passed
(answers from the server's test helper, given with the keyboard on a desktop page) and failed on purpose
(tapped on a phone-sized page). The sounds really play to their end before the answer buttons open."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from studykit import TASK2, import_study, make_plan

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Two trials keep the test short (each sound is 4 s); the UI and the server are those of six.
SCREEN = {"enabled": True, "kind": "huggins+words", "trials": 2, "pass_at": 2, "attempts": 1}






@pytest.fixture
def screen_study(app, media_set, tmp_path) -> str:
    plan = make_plan(media_set, TASK2, name="browser-screen", audio_check=SCREEN, out=tmp_path / "plan.json")
    return import_study(app, plan, media_set)


def _through_calibration(page, base, study, lab):
    page.goto(f"{base}/s/{study}?lab={lab}")
    page.click("#consent-yes")
    page.click("#instructions-next")
    page.wait_for_selector("#step-calibration:not([hidden])")
    assert page.is_disabled("#calibration-done")  # the noise must play first
    page.click("#calibration-play")
    page.wait_for_function("() => !document.getElementById('calibration-done').disabled", timeout=15000)
    page.click("#calibration-done")
    page.wait_for_selector("#step-screen:not([hidden])")
    return page.url.rsplit("/", 1)[1]


def _play_and_wait(page):
    assert page.is_disabled("#screen-choices button")  # no answer before the sound has played
    page.click("#screen-play")
    page.wait_for_function("() => !document.querySelector('#screen-choices button').disabled", timeout=30000)


def test_the_screen_is_passed_with_the_keyboard_then_the_word_check(app, live_server, browser, screen_study):
    from study_server.study.audio_check import expected_word
    from study_server.store.extensions import db
    from study_server.participant.listening import expected_answers
    from study_server.store.models import Assignment, ListeningCheck

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    token = _through_calibration(page, live_server, screen_study, "kb-pass")
    right = expected_answers(app.config["SECRET_KEY"], token, "huggins", 0, SCREEN["trials"])
    assert "faint tone" in page.text_content("#screen-task")
    for trial, answer in enumerate(right):
        assert page.text_content("#screen-progress") == f"Sound {trial + 1} of {SCREEN['trials']}"
        _play_and_wait(page)
        page.keyboard.press(str(answer))
        if trial + 1 < len(right):
            page.wait_for_function("(t) => document.getElementById('screen-progress').textContent === t",
                                   arg=f"Sound {trial + 2} of {SCREEN['trials']}", timeout=15000)
    page.wait_for_selector("#step-audio:not([hidden])")  # huggins+words: the word comes next
    page.fill("#audio-answer", expected_word(app.config["SECRET_KEY"], token, 0))
    page.click("#audio-submit")
    page.wait_for_selector("#step-examples:not([hidden]), #step-trial:not([hidden])")
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        check = db.session.scalar(select(ListeningCheck).where(ListeningCheck.assignment_id == a.id))
        assert check.passed is True and check.n_correct == 2 and check.calibrated_at is not None
        assert a.audio_check_passed is True and a.status == "started"


def test_the_screen_is_failed_on_a_phone_and_the_participant_is_told_to_return(app, live_server, browser,
                                                                                screen_study):
    from study_server.store.extensions import db
    from study_server.participant.listening import expected_answers
    from study_server.store.models import Assignment

    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    token = _through_calibration(page, live_server, screen_study, "phone-fail")
    right = expected_answers(app.config["SECRET_KEY"], token, "huggins", 0, SCREEN["trials"])
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390  # the three buttons fit a phone
    for trial, answer in enumerate(right):
        _play_and_wait(page)
        wrong = answer % 3 + 1
        page.tap(f"#screen-choices button[data-answer='{wrong}']")
        if trial + 1 < len(right):
            page.wait_for_function("(t) => document.getElementById('screen-progress').textContent === t",
                                   arg=f"Sound {trial + 2} of {SCREEN['trials']}", timeout=15000)
    page.wait_for_selector("#step-message:not([hidden])")
    assert "headphone check did not succeed" in page.text_content("#message-text")
    assert "return" in page.text_content("#message-text")
    page.reload()  # the outcome survives a reload
    page.wait_for_selector("#step-message:not([hidden])")
    assert "headphone check did not succeed" in page.text_content("#message-text")
    with app.app_context():
        a = db.session.scalar(select(Assignment).where(Assignment.token == token))
        assert a.status == "abandoned" and a.audio_check_passed is False
