"""Benchmark: the admin study page of a study with 5,000 participants (issue 32; target < 200 ms).

    .venv/bin/python bench/admin_study_page.py                    # 5,000 participants, 15 rounds
    .venv/bin/python bench/admin_study_page.py --participants 1000 --rounds 5
    .venv/bin/python bench/admin_study_page.py --pg-url postgresql://emostudy:emostudy@127.0.0.1/emostudy_test

What it does: migrates a new SQLite file (or a new PostgreSQL database next to ``--pg-url``, dropped at the
end), imports the tiny test study of ``tests/study_server/studykit.py`` (Task 1, 2 batches of 9 items,
quota 2,500 per batch) and writes N participants straight into the tables, spread over the last 72 hours:
60 % completed (9 answers, a verdict, 1 in 6 rejected, a few flagged answers and failed videos), the rest
left at consent, the examples or some trial, or still active. Then, logged in as the admin through Flask's
test client, one request at a time, every round in a fresh order:

- ``before``: the study page as it was before issue 32 (commit 90bdbe7: its template is kept in
  ``bench/admin_study_page_before.html``, rendered from the same counts and every participant's row);
- ``after``: ``GET /admin/studies/ID`` (progress, chart, dropout, pay, queue, the latest 100 participants);
- ``live-unchanged``: the page's polling request when nothing changed (204);
- ``live-changed``: the polling request after a change (the live part of the page, 200);
- ``participant``: one completed participant's page.

Prints one JSON line per request kind (median, p90, min of wall ms over the rounds, the median of this
thread's CPU ms - the test client runs the app in this thread, and SQLite in this process -, statements per
request) and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tests" / "study_server"):  # run as a script from a checkout; studykit makes the study
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

PASSWORD = "bench password"
BEFORE_TEMPLATE = Path(__file__).with_name("admin_study_page_before.html")


def populate(app, study_name: str, n: int, seed: int = 1) -> None:
    """N participants written straight into the tables (one transaction)."""
    from sqlalchemy import insert, select

    from study_server.store.extensions import db
    from study_server.store.models import (
        Answer, Assignment, Batch, Item, MediaFailure, Participant, Study, Verdict, utcnow)

    rng = random.Random(seed)
    now = utcnow()
    with app.app_context():
        s = db.session
        study = s.scalar(select(Study).where(Study.name == study_name))
        batches = list(s.scalars(select(Batch).where(Batch.study_id == study.id).order_by(Batch.index)))
        items = {b.id: list(s.scalars(select(Item).where(Item.batch_id == b.id).order_by(Item.position)))
                 for b in batches}
        s.execute(insert(Participant), [{"id": k + 1, "platform": "prolific" if k % 3 else "lab",
                                         "worker_id": f"bench-{k}", "pseudonym": f"{k:016x}", "created_at": now}
                                        for k in range(n)])
        assignments, answers, verdicts, failures = [], [], [], []
        for k in range(n):
            batch = batches[k % len(batches)]
            arrived = now - dt.timedelta(seconds=rng.uniform(0, 72 * 3600))
            fate = rng.random()
            started = arrived + dt.timedelta(seconds=rng.uniform(5, 60)) if fate > 0.08 else None
            n_answers = 9 if fate > 0.4 else (0 if fate < 0.2 else rng.randint(1, 8))
            took = dt.timedelta(minutes=rng.uniform(7, 25))
            completed = started + took if (started and n_answers == 9) else None
            status = "completed" if completed else ("started" if fate > 0.35 and started else "returned")
            assignments.append({"id": k + 1, "token": f"bench-token-{k}", "study_id": study.id, "batch_id": batch.id,
                                "participant_id": k + 1, "status": status, "allocated_at": arrived,
                                "started_at": started, "completed_at": completed, "audio_check_attempts": 0,
                                "last_seen_at": completed or started or arrived})
            for pos, item in enumerate(items[batch.id][:n_answers if started else 0]):
                flag = "too_fast" if rng.random() < 0.01 else None
                answers.append({"answer_id": f"b{k}-{pos}", "assignment_id": k + 1, "item_id": item.id,
                                "values": {"emotion": "anger", "realness": "not-sure", "aspects": ["none"]},
                                "rt_ms": rng.randint(500, 4000), "played_fraction": 1.0, "watch_flag": flag,
                                "created_at": started + dt.timedelta(seconds=60 + 60 * pos)})
            if completed:
                bad = rng.random() < 1 / 6
                verdicts.append({"assignment_id": k + 1, "verdict": "rejected" if bad else "valid",
                                 "n_inconsistent": 7 if bad else 1, "n_repeat_answers": 9, "details": {},
                                 "created_at": completed})
                if rng.random() < 0.01:
                    failures.append({"assignment_id": k + 1, "item_id": items[batch.id][0].id, "n_failures": 3,
                                     "error": "MEDIA_ERR_NETWORK", "created_at": completed})
        s.execute(insert(Assignment), assignments)
        s.execute(insert(Answer), answers)
        s.execute(insert(Verdict), verdicts)
        if failures:
            s.execute(insert(MediaFailure), failures)
        s.commit()


def run(url: str, n: int, rounds: int, tmp: Path) -> list[dict]:
    from flask import render_template_string
    from sqlalchemy import event, select
    from werkzeug.security import generate_password_hash

    from studykit import TASK1, build_media_set, import_study, make_plan
    from study_server.admin import stats
    from study_server.app import create_app
    from study_server.recruit.summary import recruitment_summary
    from study_server.store import schema
    from study_server.store.extensions import db
    from study_server.store.models import Assignment, Study

    schema.upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "INSTANCE_PATH": str(tmp / "instance"),
                      "ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
                      "RATE_LIMIT_ENABLED": False})
    set_dir = build_media_set(tmp / "set")
    name = import_study(app, make_plan(set_dir, TASK1, name="bench-admin", quota=n // 2, out=tmp / "plan.json"),
                        set_dir)
    t0 = time.perf_counter()
    populate(app, name, n)
    print(json.dumps({"populated": n, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    with app.app_context():
        sid = db.session.scalar(select(Study.id).where(Study.name == name))
        done = db.session.scalar(select(Assignment.id).where(Assignment.study_id == sid,
                                                             Assignment.status == "completed").limit(1))
        engine = db.engine
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token}).status_code == 302
    before_template = BEFORE_TEMPLATE.read_text()

    def before():  # the pre-issue-32 route: the same numbers, every participant's row, the old template
        with app.test_request_context(f"/admin/studies/{sid}"):
            s = db.session.get(Study, sid)
            from study_server.admin import auth
            html = render_template_string(
                before_template, s=stats.study_detail(db.session, s, timeout_s=1800),
                assignments=stats.assignment_rows(db.session, s.id), recruitment=recruitment_summary(db.session, s),
                csrf_token=auth.csrf_token, admin_logged_in=True)
            return 200, html

    def get(path):
        def call():
            r = client.get(path)
            return r.status_code, r.get_data(as_text=True)
        return call

    mark = client.get(f"/admin/studies/{sid}").get_data(as_text=True).split('data-fingerprint="', 1)[1].split('"', 1)[0]
    kinds = {"before": before, "after": get(f"/admin/studies/{sid}"),
             "live-unchanged": get(f"/admin/studies/{sid}/live?since={mark}"),
             "live-changed": get(f"/admin/studies/{sid}/live?since=stale"),
             "participant": get(f"/admin/assignments/{done}")}
    expect = {"before": 200, "after": 200, "live-unchanged": 204, "live-changed": 200, "participant": 200}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}  # this thread's CPU: what a loaded machine disturbs less
    queries: dict[str, int] = {}
    counter = []
    event.listen(engine, "before_cursor_execute", lambda *a: counter.append(1))
    for k, fn in kinds.items():  # warm-up (template compilation, plan parsing, caches)
        assert fn()[0] == expect[k], k
    order = list(kinds)
    for r in range(rounds):
        random.Random(r).shuffle(order)
        for k in order:
            counter.clear()
            t, c = time.perf_counter(), time.thread_time()
            status, _ = kinds[k]()
            times[k].append((time.perf_counter() - t) * 1000)
            cpu[k].append((time.thread_time() - c) * 1000)
            queries[k] = len(counter)
            assert status == expect[k], (k, status)
    db.dispose(app)
    out = []
    for k, v in times.items():
        v = sorted(v)
        out.append({"kind": k, "participants": n, "rounds": rounds, "median_ms": round(statistics.median(v), 1),
                    "p90_ms": round(v[int(0.9 * (len(v) - 1))], 1), "min_ms": round(v[0], 1),
                    "cpu_median_ms": round(statistics.median(cpu[k]), 1),
                    "statements": queries[k]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--pg-url", default=None, help="a PostgreSQL URL next to which a new database is made")
    args = ap.parse_args()
    load_before = os.getloadavg()
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "loadavg_before": [round(x, 2) for x in load_before],
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="emostudy-bench-admin-") as tmp:
        tmp = Path(tmp)
        if args.pg_url:
            from adminkit import fresh_postgres_database
            with fresh_postgres_database(args.pg_url, prefix="emostudy_bench") as url:
                rows = run(url, args.participants, args.rounds, tmp)
                info["database"] = "postgresql"
        else:
            rows = run(f"sqlite:///{tmp / 'bench.sqlite3'}", args.participants, args.rounds, tmp)
            info["database"] = "sqlite"
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    for row in rows:
        print(json.dumps(row))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
