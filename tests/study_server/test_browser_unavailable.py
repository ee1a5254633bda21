"""The participant page while the server answers 503 (its database restarting): it says it will try again,
waits, and carries on - in headless Chromium, with the 503s injected by Playwright's request routing."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from studykit import TASK1, import_study, make_plan
from test_browser import _do_trial, _state, _wait_saved, app_config, h264_set  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UNAVAILABLE = "briefly unavailable"


def _fail_first(n: int):
    """A route handler: the first ``n`` requests get 503 + Retry-After: 1, the rest go to the server."""
    seen = {"n": 0}

    def handle(route) -> None:  # noqa: ANN001 - Playwright's Route
        seen["n"] += 1
        if seen["n"] <= n:
            route.fulfill(status=503, headers={"Retry-After": "1", "Content-Type": "application/json"},
                          body=json.dumps({"error": {"code": "database_unavailable", "message": "x",
                                                     "retry_after_s": 1}}))
        else:
            route.continue_()
    return handle, seen


def test_page_says_it_will_retry_and_recovers(app, live_server, browser, h264_set, tmp_path):  # noqa: F811
    from study_server.store.extensions import db
    from study_server.store.models import Answer, Assignment

    study = import_study(app, make_plan(h264_set, TASK1, name="unavail", n_batches=1, quota=2,
                                        out=tmp_path / "unavail.json"), h264_set)
    page = browser.new_page()
    on_state, state_calls = _fail_first(2)
    page.route(re.compile(r".*/api/v1/a/[A-Za-z0-9_-]+$"), on_state)  # the page's first request: its state
    page.goto(f"{live_server}/s/{study}?lab=patient")
    page.wait_for_function(f"() => document.getElementById('saving').textContent.includes('{UNAVAILABLE}')",
                           timeout=10000)
    page.wait_for_selector("#step-consent:not([hidden])", timeout=15000)
    assert state_calls["n"] >= 3
    token = page.url.rsplit("/", 1)[1]

    on_save, save_calls = _fail_first(2)
    page.route(re.compile(r".*/api/v1/a/[A-Za-z0-9_-]+/answers$"), on_save)
    page.click("#consent-yes")
    page.click("#instructions-next")
    state = _state(page)
    for _ in state["examples"]:
        page.wait_for_selector("#step-examples:not([hidden])")
        page.click("#example-play")
        page.wait_for_function("() => !document.getElementById('example-next').disabled", timeout=15000)
        page.click("#example-next")
    page.wait_for_selector("#step-trial:not([hidden])")
    given: dict[int, dict] = {}
    _do_trial(page, state["questions"], given, {p: p for p in range(state["total"])})
    page.wait_for_function(f"() => document.getElementById('saving').textContent.includes('{UNAVAILABLE}')",
                           timeout=10000)
    _wait_saved(page)  # the outbox is empty: the third try was acknowledged
    assert save_calls["n"] == 3
    with app.app_context():
        stored = db.session.execute(select(Answer.values).join(Assignment, Assignment.id == Answer.assignment_id)
                                    .where(Assignment.token == token)).scalars().all()
    assert stored == [given[0]]
    page.close()
