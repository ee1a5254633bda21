"""Benchmark: PostgreSQL's allocation statement before and after issue #20's count, side by side.

    .venv/bin/python bench/allocate_statement.py --assignments 5000 --runs 30

Issue #20 changed what ``assignment._ALLOCATE_PG`` counts: every assignment active in the statement's
snapshot minus the rows its expiry actually expired (``a.id NOT IN (SELECT id FROM expired)``), instead of
the active ones seen after the idle cutoff (``a.last_seen_at >= cutoff``). This measures both predicates
on the same database, alternating, with ``EXPLAIN (ANALYZE)`` inside a transaction that is rolled back
(the server's own execution time: no network, no client). The study is filled with ``--assignments``
rows (70 % completed with a valid verdict, 25 % active, 5 % idle past the timeout so that the expiry has
work to do) spread over the plan's batches. Prints one JSON object: median and min-max per variant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.server_load import DEFAULT_PG, BenchDatabase, import_study, make_study_files  # noqa: E402

NEW_COUNT = "AND a.id NOT IN (SELECT id FROM expired)"
OLD_COUNT = "AND a.last_seen_at >= %(cutoff)s"


def fill(url: str, n: int, timeout_s: float, rng: random.Random) -> int:
    """Insert ``n`` assignments (and their participants and verdicts); return the study id."""
    import psycopg

    from study_server.core.config import normalize_database_url

    now = dt.datetime.now(dt.timezone.utc)
    with psycopg.connect(normalize_database_url(url).replace("postgresql+psycopg://", "postgresql://")) as conn:
        study_id, = conn.execute("SELECT id FROM studies").fetchone()
        batches = [r[0] for r in conn.execute("SELECT id FROM batches WHERE study_id = %s", (study_id,))]
        for i in range(n):
            pid, = conn.execute(
                "INSERT INTO participants (platform, worker_id, pseudonym, created_at) VALUES "
                "('lab', %s, %s, %s) RETURNING id", (f"w{i}", uuid.uuid4().hex[:16], now)).fetchone()
            u = rng.random()
            status = "completed" if u < 0.70 else "started"
            idle = timeout_s + 60 if u > 0.95 else rng.uniform(0, timeout_s / 2)
            aid, = conn.execute(
                "INSERT INTO assignments (token, study_id, batch_id, participant_id, status, allocated_at, "
                "last_seen_at, audio_check_attempts) VALUES (%s, %s, %s, %s, %s, %s, %s, 0) RETURNING id",
                (uuid.uuid4().hex, study_id, rng.choice(batches), pid, status, now - dt.timedelta(hours=1),
                 now - dt.timedelta(seconds=idle))).fetchone()
            if status == "completed":
                conn.execute("INSERT INTO verdicts (assignment_id, verdict, n_inconsistent, n_repeat_answers, "
                             "details, created_at) VALUES (%s, 'valid', 0, 3, '{}', %s)", (aid, now))
        conn.commit()
        conn.execute("ANALYZE")
    return study_id


def measure(url: str, study_id: int, runs: int, timeout_s: float) -> dict:
    import psycopg

    from study_server.study.assignment import _ALLOCATE_PG, _PLATFORM_FIELDS
    from study_server.core.config import normalize_database_url

    assert NEW_COUNT in _ALLOCATE_PG, "the statement changed: update this benchmark"
    variants = {"after (issue #20)": _ALLOCATE_PG, "before": _ALLOCATE_PG.replace(NEW_COUNT, OLD_COUNT)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    with psycopg.connect(normalize_database_url(url).replace("postgresql+psycopg://", "postgresql://")) as conn:
        pid, = conn.execute("INSERT INTO participants (platform, worker_id, pseudonym, created_at) VALUES "
                            "('lab', 'bench-new', 'bench-new', now()) RETURNING id").fetchone()
        conn.commit()
        for k in range(runs):
            for name in (list(variants) if k % 2 == 0 else list(variants)[::-1]):
                now = dt.datetime.now(dt.timezone.utc)
                params = {"now": now, "cutoff": now - dt.timedelta(seconds=timeout_s), "hold_cutoff": None,
                          "study_id": study_id, "token": uuid.uuid4().hex, "participant_id": pid,
                          "status": "allocated", "allocated_at": now, "last_seen_at": now,
                          "audio_check_attempts": 0, "user_agent": None, **{f: None for f in _PLATFORM_FIELDS}}
                plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + variants[name], params).fetchone()[0]
                conn.rollback()  # nothing expires or is inserted for real: every run sees the same rows
                times[name].append(float(plan[0]["Execution Time"]))
    return {name: {"median_ms": round(statistics.median(v), 3), "min_ms": round(min(v), 3),
                   "max_ms": round(max(v), 3), "runs": len(v)} for name, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("EMOSTUDY_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--assignments", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant, alternating")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emostudy-alloc-") as tmp, BenchDatabase(args.pg_url) as database:
        plan, set_dir = make_study_files(Path(tmp))
        import_study(database.url, plan, set_dir, uuid.uuid4().hex)
        study_id = fill(database.url, args.assignments, args.timeout_s, random.Random(1))
        result = {"bench": "allocate_statement", "assignments": args.assignments,
                  "load_average_1min": round(os.getloadavg()[0], 1),
                  **measure(database.url, study_id, args.runs, args.timeout_s)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
