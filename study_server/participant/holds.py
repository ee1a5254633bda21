"""Places are held for real participants: arrival holds and arrival rate limits.

Anyone with a study's link can arrive, and an arrival takes a place. Two settings keep scripted arrivals
from filling a study:

- ``ARRIVAL_HOLD_S`` (default 180): an arrival that has not started (given consent) this long after it was
  given its place loses it at the next arrival's sweep (``assignment.expire_stale`` / ``_ALLOCATE_PG``).
  A real participant who was slower and comes back is revived when there is room. 0 turns holds off.
- ``ARRIVAL_RATE_PER_IP`` (default ``"30/300"``) and ``ARRIVAL_RATE_PER_STUDY`` (default ``"300/60"``):
  sliding-window limits on arrivals (``POST /api/v1/studies/<study>/arrive`` and ``GET /s/<study>``) per
  client address and per study; over a limit the arrival gets ``429 arrival_rate_limited`` with
  ``Retry-After``. ``""`` disables one; ``RATE_LIMIT_ENABLED=0`` disables both (as the testing config does).

With both, one address holds at most (IP limit count) places, and only for the hold time: a flood from
one address cannot keep a real participant out for longer than ``ARRIVAL_HOLD_S`` (tests/study_server/
test_holds.py). Limits count per worker process, like ``security``'s limiter. The admin sees the holds on
``/admin/holds`` and can release one (``assignment.release_hold``).
"""

from __future__ import annotations

import math

from flask import Flask, current_app, jsonify, render_template, request

from study_server.study.assignment import hold_seconds
from study_server.web.security import Limit, RateLimiter

ARRIVAL_ENDPOINTS = frozenset({"api.arrive", "participant.arrive"})
_LIMITER_KEY = "emostudy_arrival_limiter"


def _limits(config) -> list[tuple[str, Limit]]:  # noqa: ANN001
    out = []
    for scope, name in (("ip", "ARRIVAL_RATE_PER_IP"), ("study", "ARRIVAL_RATE_PER_STUDY")):
        text = config.get(name) or ""
        if text:
            out.append((scope, Limit.parse(text, name)))
    return out


def limiter_of(app: Flask) -> RateLimiter:
    return app.extensions[_LIMITER_KEY]


def _check_arrival():
    if request.endpoint not in ARRIVAL_ENDPOINTS:
        return None
    config = current_app.config
    if not config.get("RATE_LIMIT_ENABLED", True):
        return None
    study = str((request.view_args or {}).get("study", ""))
    keys = {"ip": request.remote_addr or "?", "study": study}
    limiter = limiter_of(current_app)
    for scope, limit in _limits(config):
        wait = limiter.hit((f"arrive-{scope}", keys[scope]), limit)
        if wait:
            seconds = math.ceil(wait)
            message = (f"Too many arrivals {'from this address' if scope == 'ip' else 'at this study'} just now "
                       f"(at most {limit.count} per {limit.seconds:g} s). Please try again in {seconds} s.")
            if request.path.startswith("/api/"):
                response = jsonify({"error": {"code": "arrival_rate_limited", "message": message}})
            else:
                response = current_app.make_response(render_template(
                    "participant/message.html", title="Please wait", message=message))
            response.status_code = 429
            response.headers["Retry-After"] = str(seconds)
            return response
    return None


def init_app(app: Flask) -> None:
    """Check the settings at start-up and install the arrival limiter."""
    _limits(app.config)  # a malformed limit fails here, not on the first arrival
    hold_seconds(app.config)
    app.extensions[_LIMITER_KEY] = RateLimiter()
    app.before_request(_check_arrival)
