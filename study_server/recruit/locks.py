"""One ``sync`` or ``open`` of a study at a time (two at once posted places twice and died on the unique
constraints).

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock(30030, study id)``) on a connection held
for the run; its ``application_name`` says who holds it and since when. SQLite: an exclusive ``flock`` on a
lock file next to the database file, holding the same words. Both are released by the operating system or
the database server when the process dies, so a crash never leaves a study locked. A second run does not
wait: it stops at once, before any change, and says who is running since when.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import text

from study_server.recruit import AnotherRun

LOCK_CLASS = 30030  # the first key of our advisory locks (the second is the study id)


def _holder_words(what: str) -> dict[str, Any]:
    return {"what": what, "pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def _busy(study_name: str, what: str, holder: dict[str, Any] | None) -> AnotherRun:
    if holder:
        since = str(holder.get("since") or "an unknown time")
        since = since if since.endswith("UTC") or since.startswith("an ") else since + " UTC"
        who = (f"another {holder.get('what', 'sync')} is running since {since} "
               f"(process {holder.get('pid', '?')} on {holder.get('host', '?')})")
    else:
        who = "another sync is running (its start time could not be read)"
    return AnotherRun(f"study {study_name!r}: {who}; this {what} stopped before changing anything. Run it again "
                      "when that one has finished (cron: the next run picks up everything).")


@contextmanager
def study_lock(session: Any, study: Any, what: str) -> Iterator[None]:
    """Hold the study's recruitment lock for the block, or raise AnotherRun at once."""
    engine = session.get_bind()
    if engine.dialect.name == "postgresql":
        with _pg_lock(engine, study, what):
            yield
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield  # an in-memory database lives in one process: nothing to serialise
        return
    with _file_lock(Path(f"{database}.recruit-study-{study.id}.lock"), study, what):
        yield


@contextmanager
def _pg_lock(engine: Any, study: Any, what: str) -> Iterator[None]:
    words = _holder_words(what)
    keys = {"k1": LOCK_CLASS, "k2": int(study.id)}
    # Who holds it, for the next one to read (application_name is at most 63 bytes: short keys). Set before
    # the lock is taken, so a holder is never seen without it.
    label = "emostudy " + json.dumps({"what": what, "pid": words["pid"], "since": words["since"][:16]},
                                     separators=(",", ":"))
    conn = engine.connect()
    try:
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": label[:63]})
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k1, :k2)"), keys).scalar()
        conn.commit()
        if not got:
            holder = _pg_holder(conn, keys)
            conn.execute(text("SELECT set_config('application_name', '', false)"))
            conn.commit()
            raise _busy(study.name, what, holder)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k1, :k2)"), keys)
            conn.execute(text("SELECT set_config('application_name', '', false)"))
            conn.commit()
    finally:
        conn.close()


def _pg_holder(conn: Any, keys: dict[str, int]) -> dict[str, Any] | None:
    """The words of the session holding the advisory lock (None if it cannot be read)."""
    for attempt in range(3):
        row = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :k1 AND l.objid::bigint = :k2"),
            keys).first()
        conn.commit()
        name = str(row[0] or "") if row else ""
        if name.startswith("emostudy "):
            try:
                return json.loads(name[len("emostudy "):])
            except ValueError:
                return None
        time.sleep(0.1 * (attempt + 1))  # pg_stat_activity may show the holder a moment late
    return None


@contextmanager
def _file_lock(path: Path, study: Any, what: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = None
            for attempt in range(3):  # the holder writes its words just after it takes the lock
                try:
                    holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
                except ValueError:
                    holder = None
                if holder:
                    break
                time.sleep(0.1 * (attempt + 1))
            raise _busy(study.name, what, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder_words(what)).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
