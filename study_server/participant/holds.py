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

import dataclasses
import hashlib
import hmac
import math
import secrets
import threading
import time

from flask import Flask, current_app, g, jsonify, render_template, request

from study_server.study.addresses import address_net, in_lab, lab_networks
from study_server.study.assignment import hold_seconds
from study_server.study.platforms import LINK, MTURK_PREVIEW_ID, Arrival
from study_server.web.bodies import peek_json
from study_server.web.security import Limit, RateLimiter

ARRIVAL_ENDPOINTS = frozenset({"api.arrive", "participant.arrive"})
_LIMITER_KEY = "emostudy_arrival_limiter"
_SEEN_KEY = "emostudy_arrivals_seen"
ARRIVAL_COOKIE = "emostudy_arrival"


def _limits(config) -> list[tuple[str, Limit]]:  # noqa: ANN001
    out = []
    for scope, name in (("ip", "ARRIVAL_RATE_PER_IP"), ("study", "ARRIVAL_RATE_PER_STUDY")):
        text = config.get(name) or ""
        if text:
            out.append((scope, Limit.parse(text, name)))
    return out


def limiter_of(app: Flask) -> RateLimiter:
    return app.extensions[_LIMITER_KEY]


def _arrival_query() -> dict:
    if request.method == "GET":
        return request.args.to_dict()
    body = peek_json()  # read once per request; the route reads the same parsed body
    query = body.get("query") if isinstance(body, dict) else None
    return query if isinstance(query, dict) else {}


def _who(query: dict) -> str | None:
    """The arriving person as the platform names them (``None``: a preview, which is not an arrival).

    A plain link names nobody: the browser's arrival cookie does (``ARRIVAL_COOKIE``), when it has one."""
    if query.get("assignmentId") == MTURK_PREVIEW_ID:
        return None
    for key in ("workerId", "PROLIFIC_PID", "lab"):
        if isinstance(query.get(key), str) and query[key]:
            return f"{key}:{query[key][:100]}"
    return f"cookie:{request.cookies[ARRIVAL_COOKIE][:64]}" if request.cookies.get(ARRIVAL_COOKIE) else ""


def _check_arrival():
    """Arrival limits count people (issue 29): previews do not count, a re-open by the same person (their
    platform id, lab token, or the browser's arrival cookie) within the window is the same arrival, and the
    per-address limit is per study and per address group (IPv6: a /64); ``LAB_NETWORKS`` get
    ``LAB_ARRIVAL_RATE_PER_IP``."""
    if request.endpoint not in ARRIVAL_ENDPOINTS:
        return None
    config = current_app.config
    if not config.get("RATE_LIMIT_ENABLED", True):
        return None
    who = _who(_arrival_query())
    if who is None:
        return None  # an MTurk preview shows the ad and stores nothing
    study = str((request.view_args or {}).get("study", ""))
    limiter = limiter_of(current_app)
    seen = current_app.extensions[_SEEN_KEY]
    if who and seen.known((study, who)):
        return None
    keys = {"ip": f"{address_net(request.remote_addr)} {study}", "study": study}
    lab = in_lab(config, request.remote_addr)
    for scope, limit in _limits(config):
        if scope == "ip" and lab:
            limit = Limit.parse(str(config.get("LAB_ARRIVAL_RATE_PER_IP") or "600/300"), "LAB_ARRIVAL_RATE_PER_IP")
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
    if who:
        seen.note((study, who), max(limit.seconds for _, limit in _limits(config)) if _limits(config) else 300)
    return None


class _Seen:
    """Who arrived at which study lately (per process, bounded): a re-open within the window is not counted."""

    MAX = 100_000

    def __init__(self, clock=time.monotonic) -> None:  # noqa: ANN001
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def known(self, key: tuple[str, str]) -> bool:
        until = self._until.get(key)
        return until is not None and until > self._clock()

    def note(self, key: tuple[str, str], seconds: float) -> None:
        with self._lock:
            if len(self._until) >= self.MAX:
                now = self._clock()
                self._until = {k: u for k, u in self._until.items() if u > now} if len(self._until) < 2 * self.MAX \
                    else {}
            self._until[key] = self._clock() + seconds


def browser_id() -> str:
    """The browser's arrival cookie (a random id), made on its first arrival."""
    found = request.cookies.get(ARRIVAL_COOKIE)
    if found and 16 <= len(found) <= 64:
        return found
    if "arrival_cookie" not in g:
        g.arrival_cookie = secrets.token_urlsafe(16)
    return g.arrival_cookie


def same_browser(arrival: Arrival) -> Arrival:
    """A plain link names nobody: its participant is the browser (re-opening the link resumes the same
    assignment instead of taking a second place). Platform and lab arrivals are named by their ids."""
    if arrival.platform != LINK or arrival.preview:
        return arrival
    secret = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(secret, f"arrival-cookie:{browser_id()}".encode(), hashlib.sha256).hexdigest()[:24]
    return dataclasses.replace(arrival, worker_id=f"link-{digest}")


def _arrival_cookie(response):  # noqa: ANN001, ANN202
    """Set the arrival cookie made by ``browser_id`` on this request."""
    made = g.get("arrival_cookie")
    if made and response.status_code < 400:
        secure = bool(current_app.config.get("COOKIE_SECURE", True))
        response.set_cookie(ARRIVAL_COOKIE, made, max_age=86400, httponly=True,
                            samesite="None" if secure else "Lax", secure=secure)
    return response


def init_app(app: Flask) -> None:
    """Check the settings at start-up and install the arrival limiter."""
    _limits(app.config)  # a malformed limit fails here, not on the first arrival
    hold_seconds(app.config)
    lab_networks(app.config)  # a malformed LAB_NETWORKS fails here too
    app.extensions[_LIMITER_KEY] = RateLimiter()
    app.extensions[_SEEN_KEY] = _Seen()
    app.before_request(_check_arrival)
    app.after_request(_arrival_cookie)
