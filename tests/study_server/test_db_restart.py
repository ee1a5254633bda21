"""Issue #20's fault test: a PostgreSQL cluster of the test's own is stopped (``-m immediate``: a crash, no
checkpoint) and restarted while participants arrive, start, save answers and complete.

The cluster is made by ``initdb`` in a temporary folder and listens on a port of its own (never the cluster
the other tests use). PostgreSQL refuses to run as root, and CI runs as root: the binaries then run as
the ``postgres`` user (``runuser``) in a folder that user owns. The load is in-process (Flask's test client
in threads, through the answer fast path) and retries as ``study.js`` does: 503 and 429 after a short
pause, everything else is an answer. Asserted: no response >= 500 other than 503, at least one 503 (the
fault was met), every acknowledged answer stored exactly once, and the incident logged in a line or two
rather than a traceback per request.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import need_service
from studykit import TASK2, import_study, make_plan, valid_values

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PG_BIN = Path(os.environ.get("EMOSTUDY_PG_BIN", "/usr/lib/postgresql/15/bin"))


class Cluster:
    """A throwaway PostgreSQL cluster: ``start()``, ``stop_immediate()``, ``destroy()``."""

    def __init__(self) -> None:
        need_service((PG_BIN / "initdb").exists(), f"PostgreSQL server binaries ({PG_BIN}/initdb)")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            need_service(shutil.which("runuser") is not None, "runuser (to run PostgreSQL as postgres, not root)")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="emostudy-pg-"))
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", str(self.data), "-U", "emostudy", "-A", "trust", "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg://emostudy@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(PG_BIN / tool), *args], check=True, cwd=self.dir,
                       stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "start",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=60")

    def stop_immediate(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop_immediate()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


class Participant(threading.Thread):
    """Arrive, start, pass the sound check, answer every item, complete - retrying as study.js does."""

    def __init__(self, app, study: str, worker: str, stop: threading.Event, tally: Counter,
                 acked: dict[str, tuple[str, str]], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.client = app.test_client()
        self.app, self.study, self.worker, self.stop, self.tally, self.acked, self.lock = \
            app, study, worker, stop, tally, acked, lock
        self.error: BaseException | None = None

    def call(self, method: str, path: str, body=None, ok=(200, 201)):
        while True:
            try:
                r = self.client.open(path, method=method, json=body)
            except Exception as exc:  # noqa: BLE001 - an exception escaping the app is a finding: counted
                with self.lock:
                    self.tally[f"raised {type(exc).__name__}"] += 1
                raise
            with self.lock:
                self.tally[r.status_code] += 1
            if r.status_code in (503, 429):
                time.sleep(0.05)
                continue
            assert r.status_code in ok, (method, path, r.status_code, r.get_data(as_text=True)[:300])
            return r.get_json()

    def run(self) -> None:
        from study_server.study.audio_check import expected_word

        try:
            token = self.call("POST", f"/api/v1/studies/{self.study}/arrive",
                              {"query": {"lab": self.worker}})["token"]
            state = self.call("POST", f"/api/v1/a/{token}/start")
            if not state["audio_check"]["passed"]:
                word = expected_word(self.app.config["SECRET_KEY"], token, 0)
                self.call("POST", f"/api/v1/a/{token}/audio-check", {"answer": word})
            for item in state["items"]:
                pos = item["position"]
                answer_id = f"{self.worker}-{pos:04d}"  # 8-64 characters
                ack = self.call("POST", f"/api/v1/a/{token}/answers", {
                    "answer_id": answer_id, "position": pos, "values": valid_values(state["questions"]),
                    "rt_ms": 800, "played_fraction": 1.0})
                with self.lock:
                    self.acked[answer_id] = (token, ack["stored_at"])
                time.sleep(0.01)  # a participant watches a clip between saves (here: 10 ms)
            self.call("POST", f"/api/v1/a/{token}/complete")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_immediate_stop_and_restart_under_load(cluster, media_set, tmp_path, caplog):
    from study_server.store import schema as dbmod
    from study_server.app import create_app
    from study_server.store.extensions import db

    admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE emostudy"))
    admin.dispose()
    url = cluster.url.rsplit("/", 1)[0] + "/emostudy"
    dbmod.upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "SECRET_KEY": "test-secret", "DATABASE_POOL_SIZE": 8, "DATABASE_MAX_OVERFLOW": 8,
                      "DATABASE_RETRY_AFTER_S": 1, "DATABASE_CONNECT_TIMEOUT_S": 2})
    try:
        study = import_study(app, make_plan(media_set, TASK2, name="fault", n_batches=4, quota=100,
                                            audio_check=True, out=tmp_path / "fault.json"), media_set)
        stop, lock = threading.Event(), threading.Lock()
        tally: Counter = Counter()
        acked: dict[str, tuple[str, str]] = {}
        done: list[Participant] = []
        running: list[Participant] = []
        caplog.set_level(logging.INFO)
        n = [0]

        def spawn() -> None:
            n[0] += 1
            p = Participant(app, study, f"w{n[0]:04d}", stop, tally, acked, lock)
            running.append(p)
            p.start()

        def keep_busy(seconds: float, width: int = 6) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for p in [p for p in running if not p.is_alive()]:
                    running.remove(p)
                    done.append(p)
                while len(running) < width:
                    spawn()
                time.sleep(0.02)

        keep_busy(2.0)
        before = sum(1 for _ in acked)
        cluster.stop_immediate()
        keep_busy(2.5)  # the database is away: requests get 503 and retry
        cluster.start()
        keep_busy(3.0)
        for p in running:
            p.join(60)
            done.append(p)
        errors = [f"{p.worker}: {p.error!r}" for p in done if p.error is not None]
        assert not errors, errors[:5]
        assert not any(p.is_alive() for p in done)
        over_500 = {code: k for code, k in tally.items() if not isinstance(code, int) or (code >= 500 and code != 503)}
        assert over_500 == {}, tally
        assert tally[503] > 0, f"the fault was never met: {tally}"
        assert before > 0 and len(acked) > before, (before, len(acked))
        with app.app_context():
            stored = dict(db.session.execute(text(
                "SELECT answer_id, count(*) FROM answers GROUP BY answer_id")).all())
        lost = sorted(set(acked) - set(stored))
        assert lost == [], f"{len(lost)} acknowledged answers lost, e.g. {lost[:5]}"
        assert all(stored[a] == 1 for a in acked)
        completed = sum(1 for p in done if p.error is None)
        tracebacks = [r for r in caplog.records if r.exc_info]
        incident_lines = [r.getMessage() for r in caplog.records if r.name == "study_server.store.faults"]
        assert not tracebacks, [r.getMessage() for r in tracebacks[:3]]
        assert 1 <= len(incident_lines) <= 4, incident_lines
        print(f"\nfault test: {completed} sessions completed, {len(acked)} answers acknowledged, "
              f"0 lost; responses {dict(sorted(tally.items(), key=str))}; log: {incident_lines}")
    finally:
        db.dispose(app)
