"""The answer save without the framework: a WSGI layer in front of Flask for the hottest request.

A session of the paper's study is 21 requests, 18 of them answer saves. Under Flask each save paid for the
request/response objects, routing, context locals, the ORM session and SQLAlchemy's statement execution:
more than half of its CPU time (2.27 -> 0.89 ms per save in-process, docs/benchmarks.md). This layer takes ``POST /api/v1/a/<token>/answers`` on PostgreSQL
when everything is ordinary and stores the answer with one statement on the pooled connection's driver.

It only ever handles the common case, and hands everything else to the Flask route, which is the
reference behaviour (``study_server.participant.api.answers``):

- it handles a token only when this process already knows the assignment's fixed facts (the per-process
  cache of ``study_server.study.context``, filled when the assignment is started or first saves through Flask);
- the body must be a JSON object within the limits of ``study_server.web.bodies`` that ``decide_answer`` (the
  decision every save path calls: what is stored, flagged or refused) accepts; any refusal (bad value,
  unknown question, too large or too deep) goes to Flask, which gives the documented 4xx;
- the answer's watching flag (``study_server.study.watching``) comes from the same ``decide_answer``, with the
  same reader of this host's record of media requests as the Flask route (``watching.recorded_reader``:
  this process's, then the table every worker of this server shares, ``study_server.study.fetch_table``), and the
  ``media_fetches`` row (one read on the same connection) only when that record does not clear the answer;
- the INSERT stores the row only while the assignment is started (and past its sound check); when it
  stores nothing - a retry, a second answer to the item, a finished or expired assignment - Flask decides.

An answer acknowledged here was committed (autocommit: the single INSERT is its own transaction) before
the reply is written. The reply has the same body and the same security headers as Flask's, and the
rate limiter counts the request once (the Flask route is told that this request was already counted).
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any, Callable, Iterable

from study_server.core.errors import ApiError
from study_server.store.models import STARTED, utcnow
from study_server.study.answers import TOUCH_EVERY, decide_answer
from study_server.study.context import cache_of
from study_server.study.progress import PROGRESS_SQL
from study_server.study.watching import (
    ANSWERED_SQL,
    EVIDENCE_SQL,
    FIRST_BYTE_SQL,
    Evidence,
    Pace,
    recorded_reader,
    tolerance_s,
)
from study_server.web.bodies import decode_json, limits
from study_server.web.security import RATE_LIMIT_COUNTED, check_rate_limits, response_headers

log = logging.getLogger(__name__)

_PATH = re.compile(r"/api/v1/a/([A-Za-z0-9_-]{16,64})/answers")  # fullmatch

# The statement of answers.try_save_pg, written for the driver: stored only while the assignment is
# started and past its sound check (when the plan has one); a conflict (retry, second answer) stores nothing.
_SAVE_SQL = (
    'INSERT INTO answers (answer_id, assignment_id, item_id, "values", rt_ms, played_fraction, created_at, '
    "watch_flag, watched, paced) SELECT %(answer_id)s, a.id, %(item_id)s, %(values)s, %(rt_ms)s, %(played)s, "
    "%(now)s, %(flag)s, %(watched)s, %(paced)s "
    "FROM assignments a "
    "WHERE a.id = %(aid)s AND a.status = %(started)s AND (%(audio_free)s OR a.audio_check_passed IS TRUE) "
    "ON CONFLICT DO NOTHING RETURNING id")
_TOUCH_SQL = "UPDATE assignments SET last_seen_at = %(now)s WHERE id = %(aid)s AND last_seen_at < %(before)s"


class _PassOn(Exception):
    """Not the common case: let the Flask route handle the request."""


class FastAnswers:
    """WSGI middleware: ``app.wsgi_app = FastAnswers(app.wsgi_app, app)`` (``create_app`` installs it)."""

    def __init__(self, wsgi_app: Callable, app: Any) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.max_body = int(app.config.get("MAX_CONTENT_LENGTH") or (1 << 20))
        self.json_bytes, self.json_depth = limits(app.config)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None:
                try:
                    return self._save(match.group(1), environ, start_response)
                except _PassOn:
                    pass
                except Exception:  # never fail a save here: the Flask route retries it and reports errors
                    log.exception("answer fast path failed; handing the request to the Flask route")
        return self.wsgi_app(environ, start_response)

    # -------------------------------------------------------------------------------------- the save

    def _save(self, token: str, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        app = self.app
        state = app.extensions.get("emostudy_db")
        if state is None or state.engine.dialect.name != "postgresql":
            raise _PassOn
        known = cache_of(app).known(token)
        if known is None:
            raise _PassOn
        aid, plan, batch, seen, mark_seen = known
        mimetype = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
            raise _PassOn  # Flask's rule for a JSON body (request.is_json)
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            raise _PassOn from None
        if not 0 < length <= min(self.max_body, self.json_bytes):
            raise _PassOn
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(raw)  # whatever happens next, Flask can read the body again
        limited = self._rate_limit(environ, token)
        if limited is not None:
            return limited(start_response)
        try:
            body = decode_json(raw, max_bytes=self.json_bytes, max_depth=self.json_depth)
        except ApiError:
            raise _PassOn from None
        now = utcnow()
        pooled = state.engine.raw_connection()
        try:
            conn = pooled.driver_connection
            conn.autocommit = True  # one statement, its own transaction: no BEGIN/COMMIT round trips
            try:
                stored = self._decide_and_insert(conn, token, aid, plan, batch, body, now,
                                                 touch=seen is None or now - seen > TOUCH_EVERY)
            finally:
                conn.autocommit = False
        except BaseException:
            pooled.invalidate()  # a connection in an unknown state never goes back to the pool
            raise
        else:
            pooled.close()  # back to the pool
        if stored is None:
            raise _PassOn
        if seen is None or now - seen > TOUCH_EVERY:
            mark_seen(now)
        return self._respond(environ, start_response, "200 OK", stored)

    def _decide_and_insert(self, conn: Any, token: str, aid: int, plan: Any, batch: Any, body: Any, now: Any, *,
                           touch: bool) -> dict[str, Any] | None:
        """The acknowledgement of the stored answer, or None when Flask must decide (refusal, retry...)."""
        from psycopg.types.json import Json  # optional: only PostgreSQL deployments install psycopg

        def stored_evidence(position: int) -> Evidence | None:
            row = conn.execute(EVIDENCE_SQL, {"aid": aid, "position": position}).fetchone()
            return None if row is None else Evidence(row[0], int(row[1]))

        def stored_pace() -> Pace:
            first = conn.execute(FIRST_BYTE_SQL, {"aid": aid}).fetchone()[0]
            answered = frozenset(r[0] for r in conn.execute(ANSWERED_SQL, {"aid": aid}).fetchall())
            return Pace(first, answered)

        try:
            decision = decide_answer(body, plan, batch, now=now, tolerance_s=tolerance_s(self.app.config),
                                     local=recorded_reader(self.app, token), stored=stored_evidence,
                                     pace=stored_pace)
        except ApiError:
            return None
        parsed, item = decision.parsed, decision.item
        if item is None:
            return None
        row = conn.execute(_SAVE_SQL, {
            "answer_id": parsed.answer_id, "item_id": item.item_id, "values": Json(parsed.values),
            "rt_ms": parsed.rt_ms, "played": parsed.played_fraction, "now": now, "aid": aid, "started": STARTED,
            "audio_free": not plan.audio_check_enabled, "flag": decision.flag, "watched": decision.watched,
            "paced": decision.paced}).fetchone()
        if row is None:
            return None
        conn.execute(PROGRESS_SQL, {"now": now, "aid": aid, "started": STARTED})  # an answer is progress
        if touch:
            conn.execute(_TOUCH_SQL, {"now": now, "aid": aid, "before": now - TOUCH_EVERY})
        return {"answer_id": parsed.answer_id, "position": parsed.position, "stored_at": now.isoformat()}

    # ------------------------------------------------------------------------- limiter and headers

    def _rate_limit(self, environ: dict[str, Any], token: str):
        config = self.app.config
        if not config.get("RATE_LIMIT_ENABLED", True) or "api" not in tuple(
                config.get("RATE_LIMIT_BLUEPRINTS", ("api",))):
            return None
        environ[RATE_LIMIT_COUNTED] = True
        refusal = check_rate_limits(self.app, environ.get("REMOTE_ADDR") or "?", token)
        if refusal is None:
            return None
        body, retry_after = refusal

        def respond(start_response: Callable) -> Iterable[bytes]:
            return self._respond(environ, start_response, "429 TOO MANY REQUESTS", body,
                                 extra=[("Retry-After", str(retry_after))])
        return respond

    def _respond(self, environ: dict[str, Any], start_response: Callable, status: str, payload: dict[str, Any],
                 extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:

        data = (json.dumps(payload, separators=(",", ":")) + "\n").encode()  # the bytes Flask's JSON provider writes
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(extra or [])]
        headers += response_headers(self.app, secure=environ.get("wsgi.url_scheme") == "https")
        start_response(status, headers)
        return [data]
