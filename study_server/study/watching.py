"""Server-side evidence of watching: when each trial's media was first requested, and how many bytes were served.

The browser enforces watching (an answer needs the clip to have played to its end), but a script can post
answers without ever loading a clip. So the media route records, per trial (assignment x position), the
time of the first request for its clip and the body bytes answered (``media_fetches``), and every answer is
judged against that record when it is stored (``answers.decide_answer``, the one decision both save paths
call):

- ``never_fetched``: no byte of the trial's media was ever served (HEAD requests, 304s and empty
  ranges serve none: issue 29);
- ``too_few_bytes``: fewer bytes were served than the clip has (its copy's ``size``: a Range request of
  one byte, or a HEAD and a conditional GET, is not watching);
- ``too_fast``: the answer arrived sooner after the first *byte served* for that trial than the clip lasts
  (``duration_s`` from the set's manifest) minus ``WATCH_TOLERANCE_S`` (default 0.5 s: the clock is the
  server's on both ends, so the tolerance only absorbs rounding and a player that reports its end a
  frame early);
- ``unpaced``: the clip was watched, but the answers so far came sooner than their clips could have
  played one after the other: the k-th answer must come no earlier than the sum of the durations of the
  clips answered so far (this one included) after the first trial began (its first byte), each duration
  minus the tolerance (each clip's player may report its end that early).

Each answer stores ``watched`` (bytes and time of its own clip) and ``paced`` (the pace) besides the flag.
With ``MEDIA_BACKEND=s3`` the server hands out a presigned redirect and never sees the bytes: a GET of the
redirect counts as the clip's bytes (the time and pace checks still hold).

A flagged answer is stored and acknowledged like any other (nothing acknowledged is dropped), carries its
flag (``answers.watch_flag``), is counted on the admin pages and in the export, and - unless the plan's
``consistency.watch_flags`` is ``"ignore"`` - counts as one inconsistent answer in the verdict.

The answer is judged first against this host's record of requests (``recorded_reader``), and the database
is read (one indexed read of ``media_fetches``) only when that record does not clear it. The host's record
is two caches of the database's evidence, asked in this order:

- this process's own (``LocalFetches``, a dictionary): the clips this worker served;
- the host's (``study_server.study.fetch_table``, a table in a file every worker process of this server maps,
  ``FETCH_TABLE``): the clips any worker on this host served. With gunicorn's ``-w N`` a clip is served by
  another worker than the answer about N-1 times in N; without the table each of those saves read the
  database.

Either can only know a first request later than the database's (each is written after the database row is
committed, with that request's time, and can lose entries but never invent one), so an answer they clear
the database would clear too; when they do not (a miss, a lost entry, a damaged slot, no table), the
database decides.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from flask import request
from sqlalchemy import bindparam, func, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_server.store.models import Answer, MediaFetch, utcnow
from study_server.study.fetch_table import VERSION, database_digest, open_table
from study_server.study.progress import progress_statement

log = logging.getLogger(__name__)

NEVER_FETCHED, TOO_FAST, TOO_FEW_BYTES, UNPACED = "never_fetched", "too_fast", "too_few_bytes", "unpaced"
FLAGS = (NEVER_FETCHED, TOO_FEW_BYTES, TOO_FAST, UNPACED)
DEFAULT_TOLERANCE_S = 0.5
# Values of the plan's consistency.watch_flags: count each flagged answer as an inconsistent one, or not.
COUNT_AS_INCONSISTENT, IGNORE = "inconsistent", "ignore"

_F = MediaFetch.__table__
_EVIDENCE = select(_F.c.first_byte_at, _F.c.bytes_served).where(
    _F.c.assignment_id == bindparam("aid"), _F.c.position == bindparam("position"),
    _F.c.first_byte_at.is_not(None))
# For study_server.participant.fastpath, which talks to the driver directly.
EVIDENCE_SQL = ("SELECT first_byte_at, bytes_served FROM media_fetches "
                "WHERE assignment_id = %(aid)s AND position = %(position)s AND first_byte_at IS NOT NULL")
# The pace: when the first trial began (its first byte) and which items are answered already.
_FIRST_BYTE = select(func.min(_F.c.first_byte_at)).where(_F.c.assignment_id == bindparam("aid"))
_ANSWERED = select(Answer.__table__.c.item_id).where(Answer.__table__.c.assignment_id == bindparam("aid"))
FIRST_BYTE_SQL = "SELECT min(first_byte_at) FROM media_fetches WHERE assignment_id = %(aid)s"
ANSWERED_SQL = "SELECT item_id FROM answers WHERE assignment_id = %(aid)s"


@dataclass(frozen=True)
class Evidence:
    first_requested_at: dt.datetime  # the first request that served bytes (issue 29: HEAD serves none)
    bytes_served: int


@dataclass(frozen=True)
class Pace:
    """What the pace of an answer is judged on: the first trial's first byte, the items answered before."""

    first_trial_began: dt.datetime | None
    answered_item_ids: frozenset[int]


def watch_flag(duration_s: float | None, evidence: Evidence | None, now: dt.datetime,
               tolerance_s: float, size: int | None = None) -> str | None:
    """The flag of an answer given at ``now`` to a clip of ``duration_s`` seconds and ``size`` bytes (its
    copy's; None: unknown, not checked); None when the clip was watched."""
    if evidence is None:
        return NEVER_FETCHED
    if size is not None and evidence.bytes_served < size:
        return TOO_FEW_BYTES
    if duration_s is not None and (now - evidence.first_requested_at).total_seconds() < duration_s - tolerance_s:
        return TOO_FAST
    return None


def paced_seconds(durations: Iterable[float | None], tolerance_s: float) -> float:
    """The least time the clips of ``durations`` take one after another: each may end ``tolerance_s`` early
    (the tolerance of one clip, per clip)."""
    return sum(max(0.0, (d or 0.0) - tolerance_s) for d in durations)


def is_paced(needed_s: float, pace: Pace, now: dt.datetime) -> bool:
    """True when ``needed_s`` (``paced_seconds`` of the answered clips and this one) passed between the first
    trial's first byte and ``now``."""
    if pace.first_trial_began is None:
        return False
    return (now - _aware(pace.first_trial_began)).total_seconds() >= needed_s


def counts_against_verdict(plan: dict[str, Any]) -> bool:
    return (plan.get("consistency") or {}).get("watch_flags", COUNT_AS_INCONSISTENT) != IGNORE


def tolerance_s(config: Any) -> float:
    return float(config.get("WATCH_TOLERANCE_S", DEFAULT_TOLERANCE_S))


# ------------------------------------------------------------------------------ this process's record

class LocalFetches:
    """The first requests this process served: token -> position -> Evidence (bounded; cleared when full)."""

    MAX_TOKENS = 10_000  # ~20 MB at most (18 trials each); a miss costs one indexed read

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, dict[int, Evidence]] = {}

    def note(self, token: str, position: int, first: dt.datetime, nbytes: int) -> None:
        with self._lock:
            if token not in self._by_token and len(self._by_token) >= self.MAX_TOKENS:
                self._by_token.clear()
            known = self._by_token.setdefault(token, {})
            old = known.get(position)
            known[position] = Evidence(old.first_requested_at if old else first,
                                       (old.bytes_served if old else 0) + nbytes)

    def reader(self, token: str) -> Callable[[int], Evidence | None]:
        known = self._by_token.get(token) or {}
        return known.get

    def clear(self) -> None:
        with self._lock:
            self._by_token.clear()


def local_fetches(app: Any) -> LocalFetches:
    found = app.extensions.get("emostudy_fetches")
    if found is None:
        found = app.extensions.setdefault("emostudy_fetches", LocalFetches())
    return found


# ------------------------------------------------------------------------------------- the host's record

_TABLE_OFF = {"off", "0", "false", "no", "none"}


def table_path(config: Any, instance_path: str) -> str | None:
    """The file of the host's table for this server (None: ``FETCH_TABLE=off``).

    ``auto`` (the default): ``/dev/shm/emostudy-fetches-<uid>-<database>-v<format>-<slots>`` (memory,
    cleared at boot) where there is a writable ``/dev/shm``, else the instance folder; ``instance``: the
    instance folder (the tests); anything else: that path. ``<database>`` is a digest of the database URL:
    two servers of different databases never share a file (a table also carries the digest, and one made for
    another database is not used), while workers and servers of one database on this host do.
    """

    setting = str(config.get("FETCH_TABLE") or "auto").strip()
    if setting.lower() in _TABLE_OFF:
        return None
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    digest = database_digest(str(config["DATABASE_URL"])).hex()[:16]
    # the format and size in the name too: a server restarted with other settings makes its own file
    name = f"emostudy-fetches-{uid}-{digest}-v{VERSION}-{int(config.get('FETCH_TABLE_SLOTS') or 65536)}"
    if setting.lower() == "auto":
        shm = "/dev/shm"
        if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
            return os.path.join(shm, name)
        setting = "instance"
    if setting.lower() == "instance":
        return os.path.join(instance_path, name + ".table")
    return os.path.expanduser(setting)


class HostFetches:
    """The app's handle on the host's table: opened on first use; unusable -> None, logged once, never retried."""

    def __init__(self, path: str | None, database_url: str, slots: int = 65536) -> None:
        self.path = path
        self.slots = slots
        self._url = database_url
        self._lock = threading.Lock()
        self._table: Any = None
        self._failed = path is None

    def table(self) -> Any:
        table = self._table
        if table is not None or self._failed:
            return table

        with self._lock:
            if self._table is None and not self._failed:
                try:
                    if self.path is not None:
                        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                    self._table = open_table(str(self.path), database_digest(self._url), slots=self.slots)
                except Exception as exc:  # noqa: BLE001 - without the table every save reads the database
                    self._failed = True
                    log.warning("the shared record of media requests (%s) is not used: %s; answer saves read "
                                "media_fetches when this worker did not serve the clip", self.path, exc)
            return self._table

    def read(self, token: str, position: int) -> Evidence | None:
        table = self.table()
        if table is None:
            return None
        try:
            found = table.read(token, position)
        except Exception:  # noqa: BLE001 - unknown: the database decides
            log.exception("reading the shared record of media requests failed")
            return None
        return None if found is None else Evidence(*found)

    def note(self, token: str, position: int, first: dt.datetime, nbytes: int) -> None:
        table = self.table()
        if table is None:
            return
        try:
            table.note(token, position, first, nbytes)
        except Exception:  # noqa: BLE001 - the database row is written; this is only a cache
            log.exception("writing the shared record of media requests failed")


def host_fetches(app: Any) -> HostFetches:
    found = app.extensions.get("emostudy_host_fetches")
    if found is None:
        path = table_path(app.config, app.instance_path)
        found = app.extensions.setdefault("emostudy_host_fetches", HostFetches(
            path, app.config["DATABASE_URL"], int(app.config.get("FETCH_TABLE_SLOTS") or 65536)))
    return found


def recorded_reader(app: Any, token: str) -> Callable[[int], Evidence | None]:
    """This host's record of the participant's trials (``decide_answer``'s ``local``): this process's
    first, then the host's table. Every save path (the Flask route, the fast path) reads through this."""
    own = local_fetches(app).reader(token)
    host = host_fetches(app)
    if host.table() is None:
        return own

    def read(position: int) -> Evidence | None:
        found = own(position)
        return found if found is not None else host.read(token, position)
    return read


def stored_pace(session: Session, assignment_id: int) -> Callable[[], Pace]:
    """The pace evidence from the database (two indexed reads), through the ORM session's connection."""
    def read() -> Pace:
        first = session.execute(_FIRST_BYTE, {"aid": assignment_id}).scalar()
        answered = frozenset(session.execute(_ANSWERED, {"aid": assignment_id}).scalars())
        return Pace(None if first is None else _aware(first), answered)
    return read


def stored_reader(session: Session, assignment_id: int) -> Callable[[int], Evidence | None]:
    """Evidence from the database (every worker's requests), through the ORM session's connection."""
    def read(position: int) -> Evidence | None:
        row = session.execute(_EVIDENCE, {"aid": assignment_id, "position": position}).first()
        return None if row is None else Evidence(_aware(row[0]), int(row[1]))
    return read


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


# ------------------------------------------------------------------------------------ recording

def served_bytes(response: Any, method: str, redirect_size: int | None = None) -> int:
    """The body bytes of a media response: 0 for HEAD, 304 and errors; a GET's presigned S3 redirect counts
    as ``redirect_size`` (the clip's; the server cannot see what S3 sends)."""
    if method != "GET":
        return 0
    if response.status_code in (301, 302, 303, 307, 308):
        return int(redirect_size or 0)
    if response.status_code not in (200, 206):
        return 0
    return int(response.content_length or 0)


def record_fetch(app: Any, session: Session, ctx: Any, *, token: str, slot: str, response: Any) -> Any:
    """Record a request for ``slot``'s media (trial slots ``t<N>`` only), commit, and return ``response``.

    ``ctx``: the request's ``context.Ctx``; ``response``: the media response, or None for a GET that failed
    (the attempt is recorded: a "media failed" report needs one). The first request's time and the first
    byte's are kept; requests, GETs and bytes add up. Bytes served are progress (``progress.note_progress``).
    """
    if slot[:1] == "t" and slot[1:].isdigit():
        assignment_id = inspect(ctx.assignment).identity[0]  # no reload of the (expired) row
        position, now = int(slot[1:]), utcnow()
        item = ctx.batch.by_position.get(position)
        size = item.copy.size if item is not None and item.copy is not None else None
        nbytes = 0 if response is None else served_bytes(response, request.method, size)
        _upsert(session, assignment_id, position, nbytes, now,  # committed first: the caches never run ahead
                is_get=request.method == "GET")
        if nbytes > 0:  # the caches hold the first byte's time (what watching is judged on)
            local_fetches(app).note(token, position, now, nbytes)
            host_fetches(app).note(token, position, now, nbytes)
    elif response is not None and served_bytes(response, request.method) > 0:
        # an example's or a check sound's bytes: progress too (study_server.study.progress)
        try:
            session.execute(progress_statement(inspect(ctx.assignment).identity[0], utcnow()))
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return response


def _upsert(session: Session, assignment_id: int, position: int, nbytes: int, now: dt.datetime, *,
            is_get: bool = True) -> None:
    gets = 1 if is_get else 0
    first_byte = now if nbytes > 0 else None
    values = {"assignment_id": assignment_id, "position": position, "first_requested_at": now, "n_requests": 1,
              "bytes_served": nbytes, "first_byte_at": first_byte, "n_gets": gets}
    dialect = session.get_bind().dialect.name
    try:
        if dialect in ("postgresql", "sqlite"):
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            stmt = insert(_F).values(values)
            session.execute(stmt.on_conflict_do_update(
                index_elements=["assignment_id", "position"],
                set_={"n_requests": _F.c.n_requests + 1, "bytes_served": _F.c.bytes_served + nbytes,
                      "n_gets": func.coalesce(_F.c.n_gets, 0) + gets,
                      "first_byte_at": func.coalesce(_F.c.first_byte_at, stmt.excluded.first_byte_at)}))
        else:  # another database: insert, or add to the row that is there
            try:
                with session.begin_nested():
                    session.execute(_F.insert().values(values))
            except IntegrityError:
                session.execute(update(_F).where(_F.c.assignment_id == assignment_id, _F.c.position == position)
                                .values(n_requests=_F.c.n_requests + 1, bytes_served=_F.c.bytes_served + nbytes,
                                        n_gets=func.coalesce(_F.c.n_gets, 0) + gets,
                                        first_byte_at=func.coalesce(_F.c.first_byte_at, first_byte)))
        if nbytes > 0:
            session.execute(progress_statement(assignment_id, now))
        session.commit()
    except BaseException:
        session.rollback()
        raise
