"""The evidence lookups of one answer save on their own: this process's record, the workers' table, the database.

    .venv/bin/python bench/evidence_lookup.py --n 3000

In one process, on a PostgreSQL database made for the run: the median CPU and wall time of
``watching.recorded_reader(app, token)(position)`` when this process's record has the trial (a dictionary
hit), when only the shared table has it (``study_server.study.fetch_table``), when neither has it, and of the
fast path's ``media_fetches`` read (``watching.EVIDENCE_SQL``) on a pooled connection in autocommit. Each is
run ``--n`` times in a row, so caches are warm: in a real save the read's cost is higher (see
bench/bench_answer_save.py's ``other-worker-cold`` variant). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_PG = "postgresql+psycopg://emostudy:emostudy@127.0.0.1:5432/emostudy_test"


def _median_us(fn, n: int) -> dict:
    cpu, wall = [], []
    for _ in range(n):
        t0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        fn()
        cpu.append(time.thread_time_ns() - t0)
        wall.append(time.perf_counter_ns() - w0)
    return {"cpu_us": round(statistics.median(cpu) / 1000, 1), "wall_us": round(statistics.median(wall) / 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("EMOSTUDY_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args(argv)

    from bench.server_load import BenchDatabase
    from study_server.store import schema as dbmod
    from study_server.app import create_app
    from study_server.store.models import utcnow
    from study_server.study.watching import EVIDENCE_SQL, host_fetches, local_fetches, recorded_reader

    with tempfile.TemporaryDirectory(prefix="emostudy-lookup-") as tmp, BenchDatabase(args.pg_url) as database:
        dbmod.upgrade(database.url)
        app = create_app({"ENV_NAME": "production", "SECRET_KEY": "lookup-" + "x" * 32,
                          "DATABASE_URL": database.url, "FETCH_TABLE": os.path.join(tmp, "fetches.table")})
        now = utcnow()
        local_fetches(app).note("token-served-here", 3, now, 1000)
        host_fetches(app).note("token-served-elsewhere", 3, now, 1000)
        load_before = os.getloadavg()
        out = {"own_record_hit": _median_us(lambda: recorded_reader(app, "token-served-here")(3), args.n),
               "shared_table_hit": _median_us(lambda: recorded_reader(app, "token-served-elsewhere")(3), args.n),
               "both_miss": _median_us(lambda: recorded_reader(app, "token-never-served")(3), args.n)}
        engine = app.extensions["emostudy_db"].engine
        pooled = engine.raw_connection()
        conn = pooled.driver_connection
        conn.autocommit = True
        out["database_read"] = _median_us(
            lambda: conn.execute(EVIDENCE_SQL, {"aid": 1, "position": 3}).fetchone(), args.n)
        pooled.close()
        engine.dispose()
        print(json.dumps({**out, "n": args.n, "load_average": [load_before, os.getloadavg()]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
