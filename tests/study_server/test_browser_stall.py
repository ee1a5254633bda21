"""Issue 29, in headless Chromium: a clip whose response never arrives (no reset, no error). After Play,
10 s without media progress show the load-error message with "Try again"; the retry loads and plays it.

The stall is made by Playwright: the first request of trial 1's clip reaches the server (route.fetch) and
its response is never given to the page.
"""

from __future__ import annotations

import re
import time

import pytest

from studykit import TASK2, import_study, make_plan
from test_browser import app_config, h264_set  # noqa: F401  (fixtures)
from test_browser_media import _answer_trial

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_stalled_clip_offers_try_again(app, live_server, browser, h264_set, tmp_path):
    plan = make_plan(h264_set, TASK2, n_batches=1, quota=2, out=tmp_path / "plan.json", audio_check=False)
    name = import_study(app, plan, h264_set)
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    seen = {"t1": 0}
    held = []

    def stall(route):
        seen["t1"] += 1
        if seen["t1"] == 1:
            route.fetch()  # the server serves it; the page never gets the response
            held.append(route)
        else:
            route.continue_()
    page.route(re.compile(r"/m/[^/]+/t1/"), stall)

    page.goto(f"{live_server}/s/{name}?lab=stall-1")
    page.click("#consent-yes")
    page.click("#instructions-next")
    state = page.evaluate("(api) => fetch(api).then(r => r.json())",
                          f"/api/v1/a/{page.url.rsplit('/', 1)[1]}")
    for _ in state["examples"]:
        page.wait_for_selector("#step-examples:not([hidden])")
        page.click("#example-play")
        page.wait_for_function("() => !document.getElementById('example-next').disabled", timeout=15000)
        page.click("#example-next")
    page.wait_for_selector("#step-trial:not([hidden])")
    _answer_trial(page, state["questions"])  # trial 0 plays normally
    page.wait_for_function("() => document.getElementById('trial-progress-text').textContent === 'Video 2 of 6'",
                           timeout=15000)
    page.click("#trial-play")
    pressed = time.monotonic()
    page.wait_for_selector("#trial-media-error:not([hidden])", timeout=20000)
    waited = time.monotonic() - pressed
    assert 9.0 <= waited <= 16.0, waited  # the watchdog's 10 s, not the browser's minutes
    assert "could not be loaded" in page.text_content("#trial-media-error-text")
    assert page.is_visible("#trial-retry") and page.is_hidden("#trial-skip")  # "Go on" after three
    assert page.is_disabled("#trial-next")
    page.click("#trial-retry")
    _answer_trial(page, state["questions"])  # the retry loads and plays it
    page.wait_for_function("() => document.getElementById('trial-progress-text').textContent === 'Video 3 of 6'",
                           timeout=15000)
    assert seen["t1"] >= 2 and errors == []
    context.close()
