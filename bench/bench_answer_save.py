"""CPU and wall time of one answer save on PostgreSQL, in-process (the WSGI fast path), before and after a change.

    .venv/bin/python bench/bench_answer_save.py --before 3fc80a4 --rounds 3 --sessions 30

Each variant runs in its own child process, one request at a time, through Flask's test client on the
benchmark's study (bench/server_load.py's set and plan, 18 items per session) in a PostgreSQL database made
for the run (and dropped after it). Only the answer POSTs are timed: server CPU is the thread's CPU time
inside the WSGI app, wall is the time of the call (so it includes the database round trips). Variants
alternate round by round so that a shared machine's load falls on all of them alike:

- ``before-fetched`` / ``before-other-worker`` / ``before-unfetched``: ``study_server`` as of ``--before``
  (exported with ``git archive`` into a temporary folder), with a request for each trial's clip before its
  answer, served by this process or by a second one (see ``other-worker``), and without: the same request
  sequences as the variants below, so that each pair pays the same cache effects (a save right after
  another process ran costs more CPU than one right after this process served the clip, in any version);
- ``fetched``: this tree; the page fetched each trial's clip (from this process) before answering, the case
  of one worker: this process's own record clears the answer, no extra query;
- ``other-worker``: fetched, but from a second app in another process (spawned, as a gunicorn worker is
  forked), sharing this server's table of media requests (``study_server.study.fetch_table``, here a file in the
  run's temporary folder): this process's own record is empty and the table clears the answer; with
  gunicorn's ``-w N`` this is the case of about (N-1)/N of the saves;
- ``other-worker-known``: a reference, not a deployment: the same, but this process is also told of each
  request in its own record (a dictionary hit, the cheapest lookup there is), so that the rest of the
  difference to ``before-other-worker`` - the other process's media route now writes ``media_fetches``, and
  its work and the database's run beside this save on a small machine - is seen apart from the lookup;
- ``other-worker-cold``: the same as ``other-worker``, with the table off (``EMOSTUDY_FETCH_TABLE=off`` in
  both processes, as when its file cannot be made): one extra indexed read of ``media_fetches`` on the same
  connection, the cost every such save paid before the table;
- ``unfetched``: no clip requested: the answer is flagged ``never_fetched`` (the same extra read, after a
  miss in both records). ``bench/server_load.py``'s participants never fetch media, so all its saves are
  this case.

Each "after" variant runs right beside its "before", every other round in reverse order. Prints one JSON
line per measurement and a summary: medians over the rounds, their ratio to ``before``, and the ratio taken
round by round (``cpu_ratio_paired``: median and range), which a load that changes during the run disturbs
less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # after PYTHONPATH: a child may run other code (--before)

DEFAULT_PG = "postgresql+psycopg://emostudy:emostudy@127.0.0.1:5432/emostudy_test"
MODES = ("before-fetched", "before-other-worker", "before-unfetched", "fetched", "other-worker", "other-worker-known",
         "other-worker-cold", "unfetched")
FETCHING = ("before-fetched", "before-other-worker", "fetched", "other-worker", "other-worker-known",
            "other-worker-cold")
ELSEWHERE = ("before-other-worker", "other-worker", "other-worker-known", "other-worker-cold")  # a second process
# Each variant's "before": the old code with the same request sequence (same process switches, same caches).
BASE = {"fetched": "before-fetched", "other-worker": "before-other-worker", "other-worker-known": "before-other-worker",
        "other-worker-cold": "before-other-worker", "unfetched": "before-unfetched"}


def _server_module(name: str):
    """``study_server.<room>.<name>`` of this tree, or ``study_server.<name>`` of a --before tree made before
    the package was split into rooms (issue #26)."""
    import importlib

    for room in ("store", "study", "core", ""):
        try:
            return importlib.import_module(".".join(p for p in ("study_server", room, name) if p))
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"study_server has no module {name!r}")


def media_worker(conn) -> None:
    """The other worker: an app of its own (same settings, same database, same table) serving media URLs."""
    from study_server.app import create_app
    db = _server_module("extensions").db

    app = create_app()
    client = app.test_client()
    while True:
        url = conn.recv()
        if url is None:
            break
        r = client.get(url)
        r.close()
        conn.send(r.status_code)
    db.dispose(app)


def child(url: str, secret: str, sessions: int, mode: str) -> dict:
    from study_server.app import create_app

    os.environ.update({"EMOSTUDY_ENV": "production", "EMOSTUDY_SECRET_KEY": secret, "EMOSTUDY_DATABASE_URL": url,
                       "EMOSTUDY_RATE_LIMIT_PER_IP": "100000000/60", "EMOSTUDY_RATE_LIMIT_PER_ASSIGNMENT": "10000/60"})
    if mode == "other-worker-cold":
        os.environ["EMOSTUDY_FETCH_TABLE"] = "off"  # in both processes (the other one inherits it)
    app = create_app()
    inner = app.wsgi_app
    cpu: list[float] = []
    wall: list[float] = []
    media_cpu: list[float] = []

    def timed(environ, start_response):
        t0, w0 = time.thread_time(), time.perf_counter()
        body = b"".join(inner(environ, start_response))
        if environ["PATH_INFO"].endswith("/answers"):
            cpu.append(time.thread_time() - t0)
            wall.append(time.perf_counter() - w0)
        elif environ["PATH_INFO"].startswith("/m/"):
            media_cpu.append(time.thread_time() - t0)
        return [body]

    app.wsgi_app = timed  # type: ignore[method-assign]
    client = app.test_client()
    if os.environ.get("BENCH_NO_GC"):  # diagnosis: no garbage collection in the timed requests
        import gc

        gc.disable()
    if mode in ELSEWHERE:
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        other = spawn.Process(target=media_worker, args=(theirs,), daemon=True)
        other.start()

        def fetch(url: str) -> None:
            ours.send(url)
            status = ours.recv()
            if status != 200:
                raise SystemExit(f"media request failed in the other worker: {status}")
    else:
        def fetch(url: str) -> None:
            client.get(url).close()
    if mode == "other-worker-known":
        utcnow = _server_module("models").utcnow
        local_fetches = _server_module("watching").local_fetches

        note_own = local_fetches(app).note
    run = uuid.uuid4().hex[:6]

    def session(name: str) -> None:
        token = client.post("/api/v1/studies/bench/arrive", json={"query": {"lab": name}}).get_json()["token"]
        state = client.post(f"/api/v1/a/{token}/start").get_json()
        values = {q["id"]: q["options"][0]["value"] for q in state["questions"]}
        for item in state["items"]:
            if mode in FETCHING:
                fetch(item["media_url"])
                if mode == "other-worker-known":
                    note_own(token, item["position"], utcnow(), 0)
            r = client.post(f"/api/v1/a/{token}/answers", json={
                "answer_id": f"{name}-{item['position']:02d}", "position": item["position"], "values": values,
                "rt_ms": 800, "played_fraction": 1.0})
            if r.status_code != 200:
                raise SystemExit(f"save failed: {r.status_code} {r.get_data(as_text=True)[:300]}")

    for i in range(3):  # warm-up: connections, compiled statements, caches
        session(f"w-{mode}-{run}-{i}")
    cpu.clear()
    wall.clear()
    media_cpu.clear()
    for i in range(sessions):
        session(f"m-{mode}-{run}-{i}")
    db = _server_module("extensions").db

    if mode in ELSEWHERE:
        ours.send(None)
        other.join(30)
    try:
        host_fetches = _server_module("watching").host_fetches

        table = host_fetches(app).table() is not None
    except (ImportError, AttributeError):  # the code before the table
        table = None
    db.dispose(app)
    return {"mode": mode, "fetch_table": table, "saves": len(cpu),
            "server_cpu_ms": round(1000 * statistics.mean(cpu), 3),
            "wall_p50_ms": round(1000 * statistics.median(wall), 3),
            "wall_mean_ms": round(1000 * statistics.mean(wall), 3),
            "media_cpu_ms": round(1000 * statistics.mean(media_cpu), 3) if media_cpu else None}


def export_code(rev: str, into: Path) -> Path:
    """``study_server`` as of ``rev`` in ``into`` (git archive; nothing in the working tree changes)."""
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "study_server"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "code", filter="data")
    return into / "code"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("EMOSTUDY_TEST_POSTGRES_URL", DEFAULT_PG),
                        help="a PostgreSQL database URL; the benchmark makes its own database beside it")
    parser.add_argument("--before", help="git revision to compare with (default: only this tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=30, help="measured sessions (18 saves each) per variant")
    parser.add_argument("--quick", action="store_true", help="one round of 5 sessions (a smoke run)")
    parser.add_argument("--modes", default=",".join(MODES), help="variants to run (default: all: %(default)s)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "SECRET", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.sessions = 1, 5
    if args.child:
        url, secret, mode = args.child
        print(json.dumps(child(url, secret, args.sessions, mode)), flush=True)
        return 0

    from bench.server_load import BenchDatabase, import_study, machine, make_study_files

    secret = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="emostudy-bench-save-") as tmp, BenchDatabase(args.pg_url) as database:
        tmp_path = Path(tmp)
        plan, set_dir = make_study_files(tmp_path)
        import_study(database.url, plan, set_dir, secret)
        before_code = export_code(args.before, tmp_path) if args.before else None
        modes = [m for m in args.modes.split(",") if not m.startswith("before") or before_code]
        unknown = set(modes) - set(MODES)
        if unknown:
            parser.error(f"--modes: unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(MODES)}")
        print(json.dumps({"config": {"before": args.before, "rounds": args.rounds, "sessions": args.sessions,
                                     **machine(), "load_average": os.getloadavg()}}), flush=True)
        results: dict[str, list[dict]] = {m: [] for m in modes}
        # Each "after" right beside its "before", and every other round in reverse order (ABBA), so that a
        # load that rises or falls during the run falls on both sides of each pair alike.
        order = sorted(modes, key=lambda m: (MODES.index(BASE.get(m, m)), m != BASE.get(m, m), MODES.index(m)))
        for round_no in range(args.rounds):
            for mode in (order if round_no % 2 == 0 else order[::-1]):
                code = before_code if mode.startswith("before") else REPO
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), str(REPO)]),
                       "EMOSTUDY_FETCH_TABLE": str(tmp_path / "fetches.table")}  # not in /dev/shm: goes with the run
                out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--sessions", str(args.sessions),
                                      "--child", database.url, secret, mode],
                                     env=env, check=True, capture_output=True, text=True, cwd=str(code))
                line = json.loads(out.stdout.strip().splitlines()[-1])
                results[mode].append(line)
                print(json.dumps(line), flush=True)
        summary = {m: {k: statistics.median(r[k] for r in rows) for k in ("server_cpu_ms", "wall_p50_ms")}
                   for m, rows in results.items()}
        if before_code:  # each variant against the "before" with the same request sequence
            for m in modes:
                base = summary.get(BASE.get(m, m))
                if base is None:
                    continue
                summary[m]["cpu_ratio_to_before"] = round(summary[m]["server_cpu_ms"] / base["server_cpu_ms"], 3)
                summary[m]["wall_ratio_to_before"] = round(summary[m]["wall_p50_ms"] / base["wall_p50_ms"], 3)
                # the same ratio round by round (each pair ran side by side): its median and range
                paired = sorted(a["server_cpu_ms"] / b["server_cpu_ms"]
                                for a, b in zip(results[m], results[BASE.get(m, m)]))
                summary[m]["cpu_ratio_paired"] = {"median": round(statistics.median(paired), 3),
                                                  "min": round(paired[0], 3), "max": round(paired[-1], 3)}
        print(json.dumps({"summary": summary, "load_average_after": os.getloadavg()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
