"""The record of media requests shared by a server's worker processes (study_server.study.fetch_table) and the
answer saves that read it instead of the database (study_server.study.watching.recorded_reader).

The property that matters: the table can only ever spare the database read for an answer the database would
clear too. Anything unknown to it - another trial, another participant, another database, a damaged slot, an
evicted entry, no file - reads as None, and the save then reads ``media_fetches``.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import re

import pytest
from sqlalchemy import event, select

from study_server.store.extensions import db
from study_server.study.fetch_table import HEADER, PROBE, SLOT, database_digest, open_table, table_size
from study_server.store.models import Answer, Assignment
from studykit import TASK1, arrive, import_study, make_plan, valid_values

T0 = dt.datetime(2026, 12, 5, 9, 30, 15, 123456, tzinfo=dt.timezone.utc)
DIGEST = database_digest("postgresql+psycopg://u@h/study_a")


def _slot_offsets(path):
    """Offsets of the slots in use (non-zero) in the file."""
    data = open(path, "rb").read()
    return [at for at in range(HEADER, len(data), SLOT) if any(data[at:at + SLOT])]


# ------------------------------------------------------------------------------------------- the table

def test_reads_what_was_written_for_that_trial_only(tmp_path):
    table = open_table(str(tmp_path / "t"), DIGEST)
    assert table.read("tokA", 1) is None
    table.note("tokA", 1, T0, 1000)
    assert table.read("tokA", 1) == (T0, 1000)
    # another position, another participant: unknown, never the neighbour's evidence
    assert table.read("tokA", 2) is None and table.read("tokB", 1) is None and table.read("tokA", 11) is None
    # later requests add bytes and keep the first time (even when a later call brings an earlier time, the
    # earlier one - both are real requests - is kept)
    table.note("tokA", 1, T0 + dt.timedelta(seconds=9), 500)
    assert table.read("tokA", 1) == (T0, 1500)
    table.note("tokA", 1, T0 - dt.timedelta(seconds=2), 0)
    assert table.read("tokA", 1) == (T0 - dt.timedelta(seconds=2), 1500)
    # the file is private and fully allocated
    info = os.stat(tmp_path / "t")
    assert info.st_mode & 0o777 == 0o600 and info.st_size == table_size(table.slots)


def test_another_databases_table_is_not_used(tmp_path):
    path = str(tmp_path / "t")
    open_table(path, DIGEST).note("tokA", 1, T0, 10)
    with pytest.raises(ValueError, match="another database"):
        open_table(path, database_digest("postgresql+psycopg://u@h/study_b"))
    assert open_table(path, DIGEST).read("tokA", 1) == (T0, 10)  # the right one still reads it


def test_collisions_evict_but_never_answer_for_another_key(tmp_path):
    """Two slots (+ the probe run): 200 trials fight for 9 places. Each read is its own value or None."""
    table = open_table(str(tmp_path / "t"), DIGEST, slots=2)
    written = {}
    for i in range(200):
        when = T0 + dt.timedelta(seconds=i)
        table.note(f"tok{i % 50}", i // 50, when, i)
        written[(f"tok{i % 50}", i // 50)] = (when, i)
    found = {k: table.read(*k) for k in written}
    assert all(v is None or v == written[k] for k, v in found.items())
    kept = [k for k, v in found.items() if v is not None]
    assert 0 < len(kept) <= 2 + PROBE - 1
    # eviction takes the oldest: the last one written is always there
    assert found[("tok49", 3)] == written[("tok49", 3)]


@pytest.mark.parametrize("byte", [0, 15, 16, 20, 24, 31, 32, 39])  # key, first time, bytes, checksum
def test_a_damaged_slot_reads_as_unknown(tmp_path, byte):
    path = str(tmp_path / "t")
    table = open_table(path, DIGEST)
    table.note("tokA", 1, T0, 1000)
    [at] = _slot_offsets(path)
    with open(path, "r+b") as fh:  # another process's view of the same file
        fh.seek(at + byte)
        old = fh.read(1)
        fh.seek(at + byte)
        fh.write(bytes([old[0] ^ 0x10]))
    assert table.read("tokA", 1) is None  # torn or corrupt: unknown, so the database decides
    table.note("tokA", 1, T0 + dt.timedelta(seconds=3), 7)  # the slot is rewritten with what is known now
    found = table.read("tokA", 1)
    assert found is not None and found[0] in (T0, T0 + dt.timedelta(seconds=3))


def test_a_torn_write_is_unknown(tmp_path):
    """Half a slot from one write and half from another: the checksum no longer matches."""
    path = str(tmp_path / "t")
    table = open_table(path, DIGEST, slots=1)
    table.note("tokA", 1, T0, 1000)
    [at] = _slot_offsets(path)
    before = open(path, "rb").read()[at:at + SLOT]
    table.note("tokA", 1, T0, 5000)  # same key, other bytes
    after = open(path, "rb").read()[at:at + SLOT]
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(after[:32] + before[32:])  # new contents, old checksum
    assert table.read("tokA", 1) is None


def test_unusable_files_are_refused(tmp_path):
    with pytest.raises(OSError):
        open_table(str(tmp_path / "no-such-folder" / "t"), DIGEST)
    loose = tmp_path / "loose"
    open_table(str(loose), DIGEST)
    loose.chmod(0o666)
    with pytest.raises(ValueError, match="others"):
        open_table(str(loose), DIGEST)
    short = tmp_path / "short"
    short.write_bytes(b"\0" * 100)
    short.chmod(0o600)
    with pytest.raises(ValueError, match="bytes"):
        open_table(str(short), DIGEST)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "somewhere")
    with pytest.raises(OSError):  # a planted link is never followed
        open_table(str(link), DIGEST)
    assert not (tmp_path / "somewhere").exists()


def _writer(path, prefix, n, start):
    table = open_table(path, DIGEST)
    start.wait()
    for i in range(n):
        table.note(f"{prefix}{i % 40}", i % 18, T0 + dt.timedelta(milliseconds=i), 100)


def _read_back(path, prefix, queue):
    table = open_table(path, DIGEST)
    queue.put({(i, p): table.read(f"{prefix}{i}", p) for i in range(40) for p in range(18)})


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_processes_share_the_table(tmp_path, method):
    """Two worker processes write at the same time, a third reads: each sees the others' requests, and a
    read is always a value that was written for that very trial. With fork the parent has mapped the file
    first (gunicorn --preload, had the app served a request before forking)."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    path = str(tmp_path / "shared")
    parent = open_table(path, DIGEST)
    ctx = multiprocessing.get_context(method)
    start = ctx.Event()
    writers = [ctx.Process(target=_writer, args=(path, prefix, 2000, start)) for prefix in ("w1-", "w2-")]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    queue = ctx.Queue()
    reader = ctx.Process(target=_read_back, args=(path, "w1-", queue))
    reader.start()
    seen = queue.get(timeout=60)
    reader.join(60)
    # w1 wrote each (token, position) pair of 40 x 18 with i = 0..1999, so the first time of (t, p) is the
    # smallest i with i % 40 == t and i % 18 == p (if any)
    for (t, p), found in seen.items():
        firsts = [i for i in range(2000) if i % 40 == t and i % 18 == p]
        if not firsts:
            assert found is None
        elif found is not None:  # evictions may lose some; what is read must be a real request of (t, p)
            assert found[0] - T0 in {dt.timedelta(milliseconds=i) for i in firsts}
    assert sum(v is not None for v in seen.values()) >= 0.9 * sum(
        1 for t in range(40) for p in range(18) if any(i % 40 == t and i % 18 == p for i in range(2000)))
    assert parent.read("w2-0", 0) is not None  # and the parent sees the other writer's record


# ------------------------------------------------------------------------------- the saves that use it

def _is_evidence_read(statement: str) -> bool:
    """The per-trial read of ``media_fetches`` that the table saves. Issue 29's pace is judged on another
    read, made by every save (``watching.stored_pace``: the first trial's first byte), not counted here."""
    return bool(re.search(r"\bFROM media_fetches\b", statement)) and "min(" not in statement


def _count_evidence_reads_sqlalchemy(engine):
    reads = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        if _is_evidence_read(statement):
            reads.append(statement)
    return reads


def _count_evidence_reads_psycopg(monkeypatch):
    """Every statement sent through psycopg (SQLAlchemy and the fast path's driver calls alike)."""
    import psycopg

    reads = []
    execute = psycopg.Cursor.execute

    def counting(self, query, *args, **kwargs):
        if _is_evidence_read(str(query)):
            reads.append(query)
        return execute(self, query, *args, **kwargs)
    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    return reads


def _two_workers(make, tmp_path, **config):
    """Two apps on one database and one instance folder: two worker processes of one server."""
    return make(tmp_path, **config), make(tmp_path, **config)


def _start(worker, set_dir, tmp_path, name):
    study = import_study(worker, make_plan(set_dir, TASK1, name=name, out=tmp_path / f"{name}.json"), set_dir)
    client = worker.test_client()
    token = arrive(client, study, lab=f"{name}-p")
    state = client.post(f"/api/v1/a/{token}/start").get_json()
    return client, token, state


def _answer(client, token, state, position, answer_id):
    r = client.post(f"/api/v1/a/{token}/answers", json={
        "answer_id": f"answer-{answer_id}", "position": position, "values": valid_values(state["questions"], 0),
        "rt_ms": 900, "played_fraction": 1.0})
    assert r.status_code == 200, r.get_json()


def _flags(app, token):
    with app.app_context():
        rows = db.session.execute(select(Answer.answer_id, Answer.watch_flag).join(
            Assignment, Assignment.id == Answer.assignment_id).where(Assignment.token == token))
        return {answer_id.removeprefix("answer-"): flag for answer_id, flag in rows}


def _sqlite_app(tmp_path, **config):
    from study_server.store import schema as dbmod
    from study_server.app import create_app

    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    if not (tmp_path / "shared.sqlite3").exists():
        dbmod.upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"),
                       "SECRET_KEY": "test-secret", **config})


def test_flask_route_clip_served_by_another_worker_needs_no_database_read(tmp_path, media_set):
    """SQLite (the Flask route): worker B serves the clips, worker A takes the answers."""
    a, b = _two_workers(_sqlite_app, tmp_path)
    client_a, token, state = _start(a, media_set, tmp_path, "tw-sq")
    client_b = b.test_client()
    reads = _count_evidence_reads_sqlalchemy(a.extensions["emostudy_db"].engine)
    assert client_b.get(state["items"][0]["media_url"]).status_code == 200
    _answer(client_a, token, state, 0, "tw-sq-0")
    assert reads == []  # the table cleared it
    _answer(client_a, token, state, 1, "tw-sq-1")  # no clip requested at all: the database is asked
    assert len(reads) == 1
    assert _flags(a, token) == {"tw-sq-0": None, "tw-sq-1": "never_fetched"}


def test_without_the_table_the_database_decides(tmp_path, media_set):
    """FETCH_TABLE=off, a path that cannot be made, and a file removed after the first worker mapped it:
    every save still works (no 5xx), the clip another worker served is found in the database."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for i, setting in enumerate(("off", str(blocker / "table"), "removed")):
        where = tmp_path / f"case{i}"
        where.mkdir()
        config = {} if setting == "removed" else {"FETCH_TABLE": setting}
        a = _sqlite_app(where, **config)
        client_a, token, state = _start(a, media_set, where, f"nt{i}")
        if setting == "removed":
            from study_server.study.watching import host_fetches

            table = host_fetches(a).table()
            assert table is not None
            os.unlink(table.path)  # e.g. /dev/shm cleaned under a running server
        b = _sqlite_app(where, **config)  # a worker started later (makes a new file when removed)
        reads = _count_evidence_reads_sqlalchemy(a.extensions["emostudy_db"].engine)
        r = b.test_client().get(state["items"][0]["media_url"])
        assert r.status_code == 200 and len(r.data) > 1000
        _answer(client_a, token, state, 0, f"nt{i}-0")
        _answer(client_a, token, state, 1, f"nt{i}-1")
        assert len(reads) == 2, setting
        assert _flags(a, token) == {f"nt{i}-0": None, f"nt{i}-1": "never_fetched"}, setting


@pytest.mark.postgres
@pytest.mark.parametrize("fast", [True, False])
def test_postgres_clip_served_by_another_worker_needs_no_database_read(pg_url, tmp_path, media_set, monkeypatch,
                                                                      fast):
    """PostgreSQL: the fast path (and the Flask route alone) store the answer to a clip another worker
    served unflagged without the media_fetches SELECT; with no request at all, the SELECT runs and the
    answer is flagged never_fetched."""
    from study_server.store import schema as dbmod
    from study_server.app import create_app

    dbmod.upgrade(pg_url)

    def make(path, **config):
        return create_app({"TESTING": True, "DATABASE_URL": pg_url, "INSTANCE_PATH": str(path / "instance"),
                           "SECRET_KEY": "test-secret", "FAST_ANSWERS": fast, **config})
    a, b = _two_workers(make, tmp_path)
    flask_saves = []
    view = a.view_functions["api.answers"]
    monkeypatch.setitem(a.view_functions, "api.answers",
                        lambda *args, **kwargs: flask_saves.append(1) or view(*args, **kwargs))
    name = f"tw-pg{int(fast)}"
    client_a, token, state = _start(a, media_set, tmp_path, name)
    client_b = b.test_client()
    for item in state["items"][:3]:
        assert client_b.get(item["media_url"]).status_code == 200
    reads = _count_evidence_reads_psycopg(monkeypatch)
    for p in range(3):
        _answer(client_a, token, state, p, f"{name}-{p}")
    assert reads == []
    _answer(client_a, token, state, 3, f"{name}-3")
    assert len(reads) == 1
    assert len(flask_saves) == (0 if fast else 4)  # the fast path took every save
    assert _flags(a, token) == {f"{name}-0": None, f"{name}-1": None, f"{name}-2": None,
                                f"{name}-3": "never_fetched"}
    # and with the table off, the same answers read the database each time
    off_a, off_b = _two_workers(make, tmp_path / "off", FETCH_TABLE="off")
    client_a, token, state = _start(off_a, media_set, tmp_path, name + "off")
    assert off_b.test_client().get(state["items"][0]["media_url"]).status_code == 200
    reads.clear()
    _answer(client_a, token, state, 0, f"{name}off-0")
    assert len(reads) == 1 and _flags(off_a, token) == {f"{name}off-0": None}
    for app in (a, b, off_a, off_b):
        db.dispose(app)


def test_where_the_table_lives(tmp_path):
    from study_server.study.watching import table_path

    config = {"DATABASE_URL": "postgresql+psycopg://u:p@h/study_a", "FETCH_TABLE_SLOTS": 65536}
    other_db = {**config, "DATABASE_URL": "postgresql+psycopg://u:p@h/study_b"}
    auto = table_path({**config, "FETCH_TABLE": "auto"}, str(tmp_path))
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert auto.startswith("/dev/shm/emostudy-fetches-")
    assert auto != table_path({**other_db, "FETCH_TABLE": "auto"}, str(tmp_path))  # two studies, two files
    assert auto != table_path({**config, "FETCH_TABLE_SLOTS": 1024}, str(tmp_path))
    assert table_path({**config, "FETCH_TABLE": "instance"}, str(tmp_path)).startswith(str(tmp_path) + os.sep)
    assert table_path({**config, "FETCH_TABLE": "off"}, str(tmp_path)) is None
    assert table_path({**config, "FETCH_TABLE": str(tmp_path / "x")}, "/elsewhere") == str(tmp_path / "x")
