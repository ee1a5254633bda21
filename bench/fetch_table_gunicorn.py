"""Check through gunicorn that an answer save reads no ``media_fetches`` row when a sibling worker served the clip.

    .venv/bin/python bench/fetch_table_gunicorn.py --workers 4 --participants 6

Starts gunicorn (``bench/server_load.py``'s launcher: ``-w N --threads 2``) three times on a database made
for the run - with the workers' shared table of media requests (``EMOSTUDY_FETCH_TABLE``, a file in the run's
temporary folder), once with ``--preload`` and once without, and once with the table off - and runs a few
participants over HTTP who fetch every trial's clip before answering it, as the page does. The requests land
on whichever worker the kernel gives them. PostgreSQL's statistics count the scans of ``media_fetches``
(``idx_scan + seq_scan``): the media route's upsert is one per clip request, and every save that reads the
row adds one. So with the table the count should equal the number of clip requests; without it, about
(N-1)/N of the saves add a read. Prints one JSON line per launch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_PG = "postgresql+psycopg://emostudy:emostudy@127.0.0.1:5432/emostudy_test"


def _call(base: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw) if resp.headers.get("Content-Type", "").startswith("application/json") else raw


def _scans(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables "
                                     "WHERE relname = 'media_fetches'")).scalar() or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("EMOSTUDY_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--participants", type=int, default=6)
    args = parser.parse_args(argv)

    from sqlalchemy import create_engine, text

    from bench.server_load import BenchDatabase, Gunicorn, import_study, make_study_files

    secret = "check-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="emostudy-fetch-table-") as tmp, BenchDatabase(args.pg_url) as database:
        tmp_path = Path(tmp)
        plan, set_dir = make_study_files(tmp_path)
        import_study(database.url, plan, set_dir, secret)
        engine = create_engine(database.url)
        for table, preload in (("file", True), ("file", False), ("off", True)):
            os.environ["EMOSTUDY_FETCH_TABLE"] = str(tmp_path / "fetches.table") if table == "file" else "off"
            server = Gunicorn(database.url, secret, workers=args.workers, threads=2, log=tmp_path / "gunicorn.log")
            if not preload:
                server.argv.remove("--preload")
            before, clips, saves = _scans(engine), 0, 0
            with server:
                base = f"http://127.0.0.1:{server.port}"
                for i in range(args.participants):
                    token = _call(base, "POST", "/api/v1/studies/bench/arrive",
                                  {"query": {"lab": f"{table}-{preload}-{i}"}})["token"]
                    state = _call(base, "POST", f"/api/v1/a/{token}/start")
                    values = {q["id"]: q["options"][0]["value"] for q in state["questions"]}
                    for item in state["items"]:
                        _call(base, "GET", item["media_url"].replace("http://localhost", ""))
                        clips += 1
                        _call(base, "POST", f"/api/v1/a/{token}/answers", {
                            "answer_id": f"{token[:12]}-{item['position']:02d}", "position": item["position"],
                            "values": values, "rt_ms": 800, "played_fraction": 1.0})
                        saves += 1
            time.sleep(1.5)  # the workers' statistics reach the server when they exit
            with engine.connect() as conn:
                flagged = conn.execute(text("SELECT count(*) FROM answers WHERE watch_flag IS NOT NULL")).scalar()
            scans = _scans(engine) - before
            print(json.dumps({"fetch_table": table, "preload": preload, "workers": args.workers,
                              "clip_requests": clips, "saves": saves, "media_fetches_scans": scans,
                              "saves_that_read_the_row": scans - clips, "flagged_answers_so_far": flagged,
                              "load_average": os.getloadavg()}), flush=True)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
