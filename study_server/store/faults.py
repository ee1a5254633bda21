"""The server while its database is away: ``503`` with ``Retry-After``, one log line per incident.

A request that meets a database fault gets an answer that says what happened and that it will pass:

- *transient* faults - PostgreSQL's ``serialization_failure`` (40001) and ``deadlock_detected`` (40P01),
  SQLite's "database is locked" - roll the transaction back and run the view again, at most
  ``DATABASE_TRANSIENT_RETRIES`` times (default 3) with a short random pause; every view is safe to run
  again after a rollback (answers carry their ``answer_id``, arrivals resume, the rest is idempotent);
- *unavailable* - the connection is refused or lost, the server is starting or shutting down
  (57P01/57P02/57P03), too many connections (53300), the pool is exhausted, a statement timed out, or a
  transient fault outlived its retries: ``503`` with ``Retry-After: DATABASE_RETRY_AFTER_S`` (default 5)
  and, under ``/api/``, ``{"error": {"code": "database_unavailable" | "database_busy", "message": ...}}``.
  The participant page (``study.js``) keeps unsent answers and retries; nothing acknowledged is lost,
  because an answer is acknowledged only after its commit.

Any other error is not ours to hide: it stays a ``500`` with its traceback in the log.

Logging (per worker process): the first fault of an incident logs one line (``database unavailable: <cause>``); the requests
that follow are counted, not logged; the first request that succeeds afterwards logs one line with the
incident's length and how many requests were answered 503. The answer fast path (``fastpath``) hands a
failed save to the Flask route with a logged traceback; a filter on its logger turns those into counts of
the incident as well.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from functools import wraps
from typing import Any, Callable

from flask import Flask, current_app, jsonify, render_template, request
from sqlalchemy import exc as sa_exc

from study_server.store.extensions import db
from study_server.store.outages import TRANSIENT, classify

log = logging.getLogger(__name__)

NEW_INCIDENT_AFTER_S = 60.0
class Incidents:
    """One log line when the database goes away, one when it is back; counts in between. Thread-safe."""

    def __init__(self, logger: logging.Logger = log, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        self._lock = threading.Lock()
        self.active = False
        self.started = 0.0
        self.last = 0.0  # the latest fault
        self.count = 0  # requests answered 503 (or fast-path saves handed on) in the current incident
        self.incidents = 0  # since the process started

    def failed(self, exc: BaseException, kind: str) -> None:
        now = self._clock()
        with self._lock:
            # Still the same incident - unless no fault came for a minute (the end went unnoticed because
            # only the fast path, which has no after-request hook, served requests meanwhile).
            if self.active and now - self.last < NEW_INCIDENT_AFTER_S:
                self.count += 1
                self.last = now
                return
            self.active, self.started, self.last, self.count = True, now, now, 1
            self.incidents += 1
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        self._log.error("database %s: %s: %s; answering 503 with Retry-After until it is back",
                        "busy" if kind == TRANSIENT else "unavailable", type(exc).__name__, cause)

    def recovered(self) -> None:
        if not self.active:  # the common case: one attribute read, no lock
            return
        with self._lock:
            if not self.active:
                return
            self.active = False
            seconds, count = self._clock() - self.started, self.count
        self._log.warning("database available again after %.1f s; %d request(s) met the fault meanwhile",
                          seconds, count)


def incidents_of(app: Flask) -> Incidents:
    return app.extensions["emostudy_db_incidents"]


def _unavailable_response(kind: str):
    retry_after = str(int(current_app.config.get("DATABASE_RETRY_AFTER_S", 5)))
    code = "database_busy" if kind == TRANSIENT else "database_unavailable"
    text = ("The study's server is busy or restarting. Nothing you sent is lost: your page keeps unsent "
            "answers and sends them again by itself. Please wait a few seconds.")
    if request.path.startswith("/api/"):
        response = jsonify({"error": {"code": code, "message": text, "retry_after_s": int(retry_after)}})
    elif request.blueprint == "participant":
        response = current_app.make_response(render_template("participant/message.html", title="Please wait",
                                                              message=text + " Reload this page in a moment."))
    else:
        response = current_app.make_response((text + " Reload the page in a moment.\n",
                                              {"Content-Type": "text/plain; charset=utf-8"}))
    response.status_code = 503
    response.headers["Retry-After"] = retry_after
    return response


def _retrying(view: Callable, app: Flask) -> Callable:
    @wraps(view)
    def run(*args: Any, **kwargs: Any):
        retries = int(app.config.get("DATABASE_TRANSIENT_RETRIES", 3))
        for attempt in range(retries + 1):
            try:
                return view(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is a transient database fault
                if attempt == retries or classify(exc) != TRANSIENT:
                    raise
                session = db.session
                session.rollback()
                session.close()
                time.sleep(random.uniform(0.005, 0.02) * (2 ** attempt))  # de-synchronize the two sides
        raise AssertionError("unreachable")
    return run


class _QuietFastPath(logging.Filter):
    """The fast path logs a traceback when it hands a failed save on: a database fault is counted instead."""

    def __init__(self, incidents: Incidents) -> None:
        super().__init__()
        self.incidents = incidents

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        kind = classify(exc)
        if kind is None:
            return True
        self.incidents.failed(exc, kind)
        return False


def init_app(app: Flask) -> None:
    """Install the 503 handler, the bounded retry of transient faults, and the incident log.

    Call after every blueprint is registered (the retry wraps the registered views)."""
    incidents = app.extensions["emostudy_db_incidents"] = Incidents()
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static" and not endpoint.endswith(".static"):
            app.view_functions[endpoint] = _retrying(view, app)

    def _db_fault(exc: Exception):
        kind = classify(exc)
        if kind is None:
            raise exc  # not a database fault: Flask logs it and answers 500
        incidents_of(current_app).failed(exc, kind)

        try:
            db.session.rollback()
        except Exception as rollback_exc:  # noqa: BLE001 - the connection is gone; teardown closes the session
            log.debug("rollback after a database fault failed too: %s", rollback_exc)
        return _unavailable_response(kind)

    app.register_error_handler(sa_exc.DBAPIError, _db_fault)
    app.register_error_handler(sa_exc.TimeoutError, _db_fault)
    try:
        import psycopg  # optional: only PostgreSQL deployments install psycopg
    except ImportError:  # a SQLite-only install
        pass
    else:
        app.register_error_handler(psycopg.Error, _db_fault)

    @app.after_request
    def _recovered(response):
        if response.status_code < 500:
            incidents_of(current_app).recovered()
        return response

    fast_log = logging.getLogger("study_server.participant.fastpath")
    for f in list(fast_log.filters):
        if isinstance(f, _QuietFastPath):
            fast_log.removeFilter(f)
    fast_log.addFilter(_QuietFastPath(incidents))
