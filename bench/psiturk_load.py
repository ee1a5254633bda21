"""Benchmark: psiTurk 3.3.1's experiment server under the same saturation load, side by side with ours.

    .venv/bin/python bench/psiturk_load.py                                  # saturation 10/50/100, 30 s each
    .venv/bin/python bench/psiturk_load.py --levels 10 --seconds 5          # a quick look
    .venv/bin/python bench/psiturk_load.py --levels 10,50,100 --seconds 15 --json psiturk.json
    .venv/bin/python bench/psiturk_load.py --levels 5 --seconds 5 --trace-network   # where the server connects

    from bench.psiturk_load import run_psiturk
    results = run_psiturk(pg_url, [10, 50, 100], 15.0)      # [{"config": ...}, {"phase": "saturation", ...}, ...]

Why: the issue asks for "at least twice psiTurk 3.3's sessions per minute at every level, with a lower p99
save latency", and this VM's speed varies from day to day, so psiTurk is measured in the same session, on
the same cores and the same PostgreSQL, by the same kind of simulated participants as
``bench/server_load.py``.

What it does, all bounded in time (the server it starts is stopped on exit, the database dropped):

1. installs psiTurk 3.3.1 into its own virtual environment (default ``bench-results/psiturk-venv``, git-ignored;
   Python 3.11 via ``python3.11 -m venv``) unless one with the same pins is already there. psiTurk 3.3.1
   (2022) pins ``Flask~=1.1.4``, ``SQLAlchemy~=1.3.5``, ``gunicorn[gevent]~=20.0.4``, ``requests~=2.22.0``,
   ``pyOpenSSL~=22.0.0`` and more; on Python 3.11 those resolve and run, except that requests 2.22 injects
   pyOpenSSL 22.0 at import and pyOpenSSL 22.0 fails with cryptography >= 38 (``lib`` has no ``GEN_EMAIL``),
   so ``cryptography`` is pinned below 38. ``PINS`` below is the whole set; ``pip freeze`` is printed.
2. makes a psiTurk project in a temporary directory: ``config.txt`` (PostgreSQL database
   ``psiturk_bench_<random>``, created next to the one ``--pg-url`` names), psiTurk's own example templates
   (copied from the installed package: ad, consent, exp, closepopup, thanks-mturksubmit, ...), no
   ``custom.py``; creates psiTurk's tables once (importing ``psiturk.experiment``, as a first ``psiturk server``
   does), then starts psiTurk's server exactly as psiTurk launches it: the ``psiturk-server`` entry point,
   which runs gunicorn in-process with ``worker_class = 'gevent'``, ``workers = [Server Parameters] threads``
   and ``bind = host:port`` from ``config.txt``. psiTurk calls the number of gunicorn *worker processes*
   "threads" (default ``auto`` = 2 x CPUs + 1); here ``threads = 2``, i.e. two gevent worker processes
   (gunicorn's own ``threads`` setting is not set by psiTurk and means nothing to the gevent worker; each
   worker takes up to gunicorn's default 1,000 connections). Everything else is psiTurk's default (keep-alive
   2 s, loglevel 2 = warning, access log /dev/null, timeout 30 s, scheduler paused, dashboard off,
   allow_repeats false, one condition). Host 127.0.0.1.
3. simulates participants in this process (asyncio + aiohttp, one keep-alive connection each, back-to-back
   sessions, like ``server_load.py``'s saturation phase). A session is what the browser of a psiTurk
   experiment does in ``sandbox`` mode (the live code path: hit ids not starting with ``debug``, so psiTurk's
   status checks apply; no request of the server goes to MTurk in any mode - the final form post to MTurk
   is the browser's and is not made):

       GET  /pub?mode=sandbox&assignmentId=A&hitId=H&workerId=W&turkSubmitTo=...   ad (MTurk's iframe)
       GET  /consent?hitId=H&assignmentId=A&workerId=W&mode=sandbox                  consent popup
       GET  /exp?hitId=H&assignmentId=A&workerId=W&mode=sandbox                      creates the participant
       GET  /sync/W:A                                            new PsiTurk(): Backbone fetch
       PUT  /sync/W:A   {whole blob, 5 instruction rows}         startTask(): saveData() ...
       POST /inexp      uniqueId=W:A                             ... and status STARTED
       18 x PUT /sync/W:A {whole blob, all trials so far}        recordTrialData() + saveData() per trial
       PUT  /sync/W:A   {whole blob + questionnaire rows}        the questionnaire's saveData()
       GET  /complete?uniqueId=W:A&mode=sandbox                  completeHIT(): status COMPLETED
       GET  /pub?<same as the first>                             closepopup reloads the ad: "thanks" page
       GET  /worker_submitted?uniqueId=W:A                       status SUBMITTED, then the form goes to MTurk

   The blob is ``psiturk.js``'s Backbone ``TaskData`` model as ``JSON.stringify`` sends it (id, condition,
   counterbalance, assignmentId, workerId, hitId, currenttrial, bonus, data, questiondata, eventdata,
   useragent, mode), trial rows ``{uniqueid, current_trial, dateTime, trialdata}`` with the same content as
   our answers (position, stimulus, the two emotion questions, rt, played fraction). Static files (jQuery,
   Backbone, psiturk.js, task.js, css) and the instruction-page preloads are not fetched, as server_load.py
   fetches neither our front end nor media. Requests are retried on network errors and 5xx (as ours);
   a trial is *acknowledged* when the PUT that first carries it answers 200 ``{"status": "user data
   saved"}``. Pages are checked for what they must contain (psiTurk answers its errors with 200 pages).
4. after each phase reads every participant of the phase from the database and counts the acknowledged
   trials missing from its stored ``datastring`` (``lost``; ``duplicates`` = trial rows stored twice).
   Also reports the sockets of the psiTurk server processes whose peer is not loopback (must be none);
   ``--trace-network`` runs the server under strace and lists every address it connected or sent to.

Prints one JSON object per phase (and the config first); ``--json PATH`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))
DEFAULT_PG = "postgresql://emostudy:emostudy@127.0.0.1:5432/emostudy_test"
DEFAULT_VENV = REPO / "bench-results" / "psiturk-venv"
PSITURK_VERSION = "3.3.1"
N_TRIALS = 18
WORKERS = 2  # psiTurk's "threads" = gunicorn worker processes (gevent)

# psiTurk 3.3.1 and the versions its ~= pins resolve to on Python 3.11; cryptography < 38 is the one fix
# (pyOpenSSL 22.0, which requests 2.22 imports, needs it). gunicorn/gevent/psycopg2 for the server on PostgreSQL.
PINS = [
    f"psiturk=={PSITURK_VERSION}",
    "Flask==1.1.4", "Werkzeug==1.0.1", "Jinja2==2.11.3", "itsdangerous==1.1.0", "markupsafe==2.0.1",
    "click==7.1.2", "SQLAlchemy==1.3.24", "gunicorn==20.0.4", "gevent==26.9.0", "greenlet==3.5.6",
    "requests==2.22.0", "urllib3==1.25.11", "pyOpenSSL==22.0.0", "cryptography==37.0.4",
    "APScheduler==3.6.3", "user-agents==2.2.0", "psycopg2-binary==2.9.13",
]

USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
EMOTIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness")  # the paper's six
INSTRUCTION_PAGES = ["instructions/instruct-1.html", "instructions/instruct-2.html",
                     "instructions/instruct-3.html", "instructions/instruct-ready.html"]


def _say(*args) -> None:
    print("[psiturk_load]", *args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- virtual environment

def ensure_venv(venv: Path) -> Path:
    """psiTurk's virtual environment (created and filled when missing or made with other pins); its python."""
    python = venv / "bin" / "python"
    stamp = venv / "emostudy-pins.txt"
    wanted = "\n".join(PINS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        probe = subprocess.run([str(python), "-c", "import psiturk.version as v, psycopg2, gevent, requests, "
                                "gunicorn; print(v.version_number)"], capture_output=True, text=True, timeout=120)
        if probe.returncode == 0 and probe.stdout.strip() == PSITURK_VERSION:
            _say(f"using psiTurk {PSITURK_VERSION} in {venv} (pins in {stamp.name}, versions in pip-freeze.txt)")
            return python
        _say(f"{venv} is broken ({probe.stderr.strip()[-300:]}); reinstalling")
    base = shutil.which("python3.11")
    if base is None:
        raise SystemExit("python3.11 is needed to create psiTurk's virtual environment")
    if venv.exists():
        if not stamp.exists() and any(venv.iterdir()):  # never delete a directory this script did not make
            raise SystemExit(f"{venv} exists and was not made by this script: choose another --venv")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _say(f"creating {venv} with {base} -m venv")
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    _say("installing (pip, from the package index):\n    " + "\n    ".join(PINS))
    subprocess.run([str(python), "-m", "pip", "install", "--no-input", *PINS], check=True, timeout=1800,
                   stdout=sys.stderr)  # stdout stays for the JSON lines
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True,
                            timeout=120).stdout
    (venv / "pip-freeze.txt").write_text(freeze)
    _say("installed in " + str(venv) + ":\n    " + "\n    ".join(freeze.split()))
    stamp.write_text(wanted)
    return python


# ------------------------------------------------------------------------------------------- database

def psycopg2_url(url: str) -> str:
    """The URL as psiTurk needs it: ``postgres://`` and no ``+driver`` part (``postgresql+psycopg://`` is ours).

    SQLAlchemy 1.3 reads ``postgres://`` as ``postgresql+psycopg2://``, and psiTurk 3.3.1's model gives the
    data column a plain ``TEXT`` only when ``'postgres://'`` is in the URL; with ``postgresql://`` it asks
    for ``TEXT(4294967295)``, which PostgreSQL refuses. libpq (psycopg) takes ``postgres://`` too."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgres", "postgresql"):
        raise SystemExit(f"not a PostgreSQL URL: {scheme}://...")
    return "postgres://" + rest


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead (query string kept)."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0] if head.count("/") >= 3 else head
    return f"{base}/{name}" + (f"?{query}" if query else "")


def _connect(url: str):
    import psycopg  # our venv's driver (psycopg 3): takes a libpq URL

    return psycopg.connect(psycopg2_url(url), autocommit=True)


class PsiturkDatabase:
    """A PostgreSQL database for psiTurk (``psiturk_bench_<random>``), dropped at the end."""

    def __init__(self, base_url: str) -> None:
        self.base = psycopg2_url(base_url)
        self.name = f"psiturk_bench_{uuid.uuid4().hex[:10]}"
        self.url = with_database(self.base, self.name)

    def __enter__(self) -> "PsiturkDatabase":
        with _connect(self.base) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc) -> None:
        with _connect(self.base) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# -------------------------------------------------------------------------------------- psiTurk server

def make_project(root: Path, python: Path, database_url: str, port: int, workers: int) -> Path:
    """A psiTurk project: config.txt, psiTurk's example templates, its tables created."""
    project = root / "psiturk-project"
    project.mkdir()
    example = Path(subprocess.run([str(python), "-c", "import os, psiturk; print(os.path.join("
                                   "os.path.dirname(psiturk.__file__), 'example'))"],
                                  capture_output=True, text=True, check=True, timeout=120).stdout.strip())
    shutil.copytree(example / "templates", project / "templates")
    shutil.copytree(example / "static", project / "static")
    (project / "config.txt").write_text(f"""\
[HIT Configuration]
title = Emotion perception (benchmark)
description = benchmark
keywords = benchmark

[Database Parameters]
database_url = {database_url}

[Server Parameters]
host = 127.0.0.1
port = {port}
threads = {workers}
loglevel = 2
logfile = server.log
accesslog = /dev/null
do_scheduler = false
enable_dashboard = false
secret_key = {uuid.uuid4().hex}

[Task Parameters]
experiment_code_version = 1.0
num_conds = 1
num_counters = 1
contact_email_on_error = bench@example.invalid
allow_repeats = false

[Shell Parameters]
launch_in_mode = sandbox
""")
    # a first start creates the tables; done once here so that two workers do not race on CREATE TABLE
    done = subprocess.run([str(python), "-c", "import psiturk.experiment"], cwd=project, env=_server_env(project),
                          timeout=120, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"psiTurk could not start in {project}:\n{(done.stdout + done.stderr)[-3000:]}")
    return project


def _server_env(project: Path) -> dict[str, str]:
    """The environment minus what psiTurk or gunicorn would take over config.txt."""
    drop = ("DATABASE_URL", "PORT", "ON_CLOUD", "ON_HEROKU", "GUNICORN_CMD_ARGS", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PSITURK_")}
    env["PSITURK_GLOBAL_CONFIG_LOCATION"] = str(project)  # no ~/.psiturkconfig
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PsiturkServer:
    """``psiturk-server`` (gunicorn, gevent workers) in the project directory, stopped on exit.

    With ``trace``, it runs under ``strace -f`` recording every connect/sendto/sendmsg of the server's
    processes (``network_peers()`` lists where they went; slows the server: for checks, not for numbers)."""

    def __init__(self, python: Path, project: Path, port: int, trace: bool = False) -> None:
        self.argv = [str(python.parent / "psiturk-server")]
        self.trace_log = project / "strace.log" if trace else None
        if self.trace_log:
            strace = shutil.which("strace")
            if strace is None:
                raise SystemExit("--trace-network needs strace")
            self.argv = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg",
                         "-o", str(self.trace_log), *self.argv]
        self.project = project
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The gunicorn arbiter (under strace: strace's child)."""
        assert self.proc is not None
        if not self.trace_log:
            return self.proc.pid
        children = [pid for pid in _all_pids() if _ppid(pid) == self.proc.pid]
        return children[0] if children else self.proc.pid

    def network_peers(self) -> dict[str, int]:
        """Addresses the traced processes connected or sent to, with counts (AF_UNIX paths included)."""
        import re

        peers: dict[str, int] = {}
        if not self.trace_log or not self.trace_log.exists():
            return peers
        pattern = re.compile(r'(?:inet_pton\(AF_INET6?, |inet_addr\()"([^"]+)"|sun_path="([^"]*)"')
        for line in self.trace_log.read_text(errors="replace").splitlines():
            for ip, path in pattern.findall(line):
                key = ip or f"unix:{path}"
                peers[key] = peers.get(key, 0) + 1
        return peers

    def __enter__(self) -> "PsiturkServer":
        self._out = open(self.project / "psiturk-server.out", "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.project, env=_server_env(self.project), stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            from bench.common import wait_listening

            wait_listening(self.proc, self.port, "psiturk-server", self.log_tail)
            return self
        except BaseException:
            self.__exit__()
            raise

    def log_tail(self) -> str:
        text = ""
        for name in ("psiturk-server.out", "server.log"):
            path = self.project / name
            if path.exists():
                text += f"\n--- {name}\n" + path.read_text(errors="replace")[-2000:]
        return text

    def pids(self) -> list[int]:
        arbiter = self.pid
        return [arbiter, *(pid for pid in _all_pids() if _ppid(pid) == arbiter)]

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # gunicorn's arbiter: graceful stop of its workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session started for this server only
                self.proc.wait()
        self._out.close()


# ------------------------------------------------------------------------------ CPU time and sockets

_TICK = os.sysconf("SC_CLK_TCK")


def _all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cpu_ticks(server_pid: int, database: str) -> dict[str, dict[int, int]]:
    """utime + stime per process: the server (arbiter and its workers) and the PostgreSQL backends of ``database``."""
    groups: dict[str, dict[int, int]] = {"server": {}, "postgres": {}}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is None:
            continue
        if pid == server_pid or int(fields[1]) == server_pid:
            group = "server"
        else:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if not (cmdline.startswith("postgres:") and f" {database} " in cmdline):
                continue
            group = "postgres"
        groups[group][pid] = int(fields[11]) + int(fields[12])
    return groups


def cpu_delta(before: dict[str, dict[int, int]], after: dict[str, dict[int, int]]) -> dict[str, float]:
    return {group: round(sum(t - before[group].get(pid, 0) for pid, t in ticks.items()) / _TICK, 2)
            for group, ticks in after.items()}


def _hex_addr(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


def foreign_sockets(pids: list[int]) -> list[str]:
    """TCP/UDP sockets of ``pids`` connected to anything but loopback (psiTurk must talk to nothing else)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[9] not in inodes:
                continue
            host, port = _hex_addr(cols[2])
            if port == 0 or host in ("127.0.0.1", "::1", "::ffff:127.0.0.1") or host.startswith("127."):
                continue
            found.append(f"{table} {host}:{port}")
    return sorted(set(found))


# ------------------------------------------------------------------------------------------ participants

from bench.common import SessionFailed, record, with_retries  # noqa: E402  (REPO is on sys.path above)
from bench.common import Stats as PhaseStats  # noqa: E402


async def request(http, method: str, url: str, stats: PhaseStats, *, kind: str, expect: str,
                  json_body=None, form=None, tries: int = 6) -> tuple[str, float]:
    """One request, retried on network errors and 5xx; the reply must be 200 and contain ``expect``."""
    async def one_try():
        started = time.perf_counter()
        async with http.request(method, url, json=json_body, data=form) as response:
            text = await response.text()
            ms = record(stats, kind, started)
            if response.status == 200 and expect in text:
                return text, ms
            if response.status < 500:
                stats.error(f"{kind}: {response.status} {text[:80]!r}" if response.status != 200
                            else f"{kind}: unexpected page {_title(text)!r}")
                raise SessionFailed(kind)
            stats.error(f"retried {response.status}")
            return None

    return await with_retries(stats, f"{method} {kind}", one_try, tries)


def _title(page: str) -> str:
    for marker in ("<h1>", "<title>"):
        if marker in page:
            return page.split(marker, 1)[1].split("<", 1)[0].strip()[:80]
    return page[:80]


def _mturk_id(rng: random.Random, n: int, prefix: str = "") -> str:
    return prefix + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n - len(prefix)))


def _now_ms() -> int:
    return int(time.time() * 1000)


async def one_session(http, base: str, worker_id: str, stats: PhaseStats, rng: random.Random) -> None:
    hit_id, assignment_id = _mturk_id(rng, 30, "3"), _mturk_id(rng, 30, "3")
    ids = f"hitId={hit_id}&assignmentId={assignment_id}&workerId={worker_id}"
    ad = (f"{base}/pub?mode=sandbox&assignmentId={assignment_id}&hitId={hit_id}&workerId={worker_id}"
          "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    await request(http, "GET", ad, stats, kind="ad", expect="/consent?hitId=")
    await request(http, "GET", f"{base}/consent?{ids}&mode=sandbox", stats, kind="consent", expect="/exp?hitId=")
    page, _ = await request(http, "GET", f"{base}/exp?{ids}&mode=sandbox", stats, kind="exp",
                            expect="var uniqueId = ")
    uid = page.split('var uniqueId = "', 1)[1].split('"', 1)[0]
    sync = f"{base}/sync/{uid}"
    # new PsiTurk(uniqueId, adServerLoc, mode): a TaskData model with psiturk.js's defaults, then fetch()
    blob: dict = {"id": uid, "condition": 0, "counterbalance": 0, "assignmentId": 0, "workerId": 0, "hitId": 0,
                  "currenttrial": 0, "bonus": 0, "data": [], "questiondata": {}, "eventdata": [], "useragent": "",
                  "mode": ""}
    blob["useragent"], blob["mode"] = USER_AGENT, "sandbox"
    t0 = _now_ms()
    blob["eventdata"] += [{"eventtype": "initialized", "value": None, "timestamp": t0, "interval": 0},
                          {"eventtype": "window_resize", "value": [1280, 720], "timestamp": t0, "interval": 0}]
    fetched, _ = await request(http, "GET", sync, stats, kind="sync_get", expect='"workerId"')
    blob.update(json.loads(fetched))

    def record(trialdata: dict) -> None:  # psiTurk.recordTrialData
        blob["data"].append({"uniqueid": uid, "current_trial": blob["currenttrial"], "dateTime": _now_ms(),
                             "trialdata": trialdata})
        blob["currenttrial"] += 1

    # doInstructions(pages): "Begin", one row per page, then finishInstructions() -> startTask()
    record({"phase": "INSTRUCTIONS", "templates": INSTRUCTION_PAGES, "action": "Begin"})
    for i, page_name in enumerate(INSTRUCTION_PAGES):
        last = i == len(INSTRUCTION_PAGES) - 1
        record({"phase": "INSTRUCTIONS", "template": page_name, "indexOf": i,
                "action": "FinishInstructions" if last else "NextPage", "viewTime": rng.randint(2000, 9000)})
    await request(http, "PUT", sync, stats, kind="sync_start", expect="user data saved", json_body=blob)
    await request(http, "POST", f"{base}/inexp", stats, kind="inexp", expect="success", form={"uniqueId": uid})
    for position in range(N_TRIALS):
        stimulus = position if position < N_TRIALS - 3 else position - (N_TRIALS - 3)
        record({"phase": "TEST", "position": position, "stimulus_id": f"s{stimulus:02d}",
                "repeat_of": None if position < N_TRIALS - 3 else stimulus,
                "primary": EMOTIONS[position % 6], "secondary": "none", "rt": rng.randint(300, 3000),
                "played_fraction": 1.0})
        _, ms = await request(http, "PUT", sync, stats, kind="save", expect="user data saved", json_body=blob)
        stats.save_ms.append(ms)
        stats.acked.add((uid, position))
    # the questionnaire: rows "begin" and "submit", its answers, saveData(), then completeHIT()
    record({"phase": "postquestionnaire", "status": "begin"})
    record({"phase": "postquestionnaire", "status": "submit"})
    blob["questiondata"].update({"engagement": "5", "difficulty": "2"})
    await request(http, "PUT", sync, stats, kind="sync_final", expect="user data saved", json_body=blob)
    await request(http, "GET", f"{base}/complete?uniqueId={uid}&mode=sandbox", stats, kind="complete",
                  expect="window.opener.location.reload")
    await request(http, "GET", ad, stats, kind="ad_thanks", expect="mturk_form")
    await request(http, "GET", f"{base}/worker_submitted?uniqueId={uid}", stats, kind="worker_submitted",
                  expect='"success"')
    stats.sessions += 1


async def one_session_minimal(http, base: str, worker_id: str, stats: PhaseStats, rng: random.Random) -> None:
    """The same four kinds of request as our benchmark's session, one to one (21 requests): arrive =
    GET /exp (creates the participant, assigns a condition), start = POST /inexp (psiTurk's "task begun"),
    18 answers = 18 PUT /sync of the whole blob so far, complete = GET /complete. No ad, consent, fetch or
    questionnaire: the lightest session psiTurk's browser code could make."""
    hit_id, assignment_id = _mturk_id(rng, 30, "3"), _mturk_id(rng, 30, "3")
    ids = f"hitId={hit_id}&assignmentId={assignment_id}&workerId={worker_id}"
    page, _ = await request(http, "GET", f"{base}/exp?{ids}&mode=sandbox", stats, kind="exp",
                            expect="var uniqueId = ")
    uid = page.split('var uniqueId = "', 1)[1].split('"', 1)[0]
    sync = f"{base}/sync/{uid}"
    blob: dict = {"id": uid, "condition": 0, "counterbalance": 0, "assignmentId": assignment_id,
                  "workerId": worker_id, "hitId": hit_id, "currenttrial": 0, "bonus": 0, "data": [],
                  "questiondata": {}, "eventdata": [], "useragent": USER_AGENT, "mode": "sandbox"}
    await request(http, "POST", f"{base}/inexp", stats, kind="inexp", expect="success", form={"uniqueId": uid})
    for position in range(N_TRIALS):
        stimulus = position if position < N_TRIALS - 3 else position - (N_TRIALS - 3)
        blob["data"].append({"uniqueid": uid, "current_trial": blob["currenttrial"], "dateTime": _now_ms(),
                             "trialdata": {"phase": "TEST", "position": position, "stimulus_id": f"s{stimulus:02d}",
                                           "repeat_of": None if position < N_TRIALS - 3 else stimulus,
                                           "primary": EMOTIONS[position % 6], "secondary": "none",
                                           "rt": rng.randint(300, 3000), "played_fraction": 1.0}})
        blob["currenttrial"] += 1
        _, ms = await request(http, "PUT", sync, stats, kind="save", expect="user data saved", json_body=blob)
        stats.save_ms.append(ms)
        stats.acked.add((uid, position))
    await request(http, "GET", f"{base}/complete?uniqueId={uid}&mode=sandbox", stats, kind="complete",
                  expect="window.opener.location.reload")
    stats.sessions += 1


SESSIONS = {"browser": one_session, "minimal": one_session_minimal}


async def participant(base: str, index: int, run: str, stats: PhaseStats, *, sessions: int | None,
                      deadline: float, kind: str = "browser") -> None:
    import aiohttp

    rng = random.Random(f"{run}-{index}")
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=1, force_close=False)
    headers = {"User-Agent": USER_AGENT, "Accept-Language": "en-US,en;q=0.9"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:
        n = 0
        while (sessions is None or n < sessions) and time.monotonic() < deadline:
            try:  # MTurk worker ids are "A" + 13 characters; a new worker per session (allow_repeats = false)
                await SESSIONS[kind](http, base, f"A{run}{index:04d}{n:05d}", stats, rng)
            except SessionFailed:
                pass  # counted in stats.errors
            n += 1


async def run_phase(base: str, n: int, *, run: str, seconds: float, sessions: int | None,
                    kind: str = "browser") -> tuple[PhaseStats, float]:
    stats = PhaseStats()
    started = time.monotonic()
    tasks = [asyncio.ensure_future(participant(base, i, run, stats, sessions=sessions, deadline=started + seconds,
                                               kind=kind))
             for i in range(n)]
    # sessions started before the deadline finish; none may hang the run (28 requests x 30 s at worst)
    done, pending = await asyncio.wait(tasks, timeout=seconds + 180)
    for task in pending:
        task.cancel()
    if pending:
        stats.error(f"participants cancelled after {seconds + 180:.0f} s")
        await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            stats.error(f"participant crashed: {task.exception()!r}")
    return stats, time.monotonic() - started


def count_participants(db_url: str) -> int:
    with _connect(db_url) as conn:
        return int(conn.execute("SELECT count(*) FROM assignments").fetchone()[0])


def stored_trials(db_url: str, run: str) -> tuple[dict[str, list[int]], dict[int, int]]:
    """Per uniqueId of ``run`` (worker ids ``A<run>...``) the TEST positions in its datastring; statuses."""
    with _connect(db_url) as conn:
        rows = conn.execute("SELECT uniqueid, datastring, status FROM assignments WHERE workerid LIKE %s",
                            (f"A{run}%",)).fetchall()
    positions: dict[str, list[int]] = {}
    statuses: dict[int, int] = {}
    for uid, datastring, status in rows:
        statuses[status] = statuses.get(status, 0) + 1
        try:
            data = json.loads(datastring)["data"] if datastring else []
        except (ValueError, KeyError, TypeError):
            data = []
        positions[uid] = [row["trialdata"]["position"] for row in data
                          if isinstance(row, dict) and row.get("trialdata", {}).get("phase") == "TEST"]
    return positions, statuses


def summarize(n: int, stats: PhaseStats, elapsed: float, db_url: str, run: str, cpu: dict[str, float],
              participants_before: int, sockets: list[str]) -> dict:
    positions, statuses = stored_trials(db_url, run)
    stored = {(uid, p) for uid, ps in positions.items() for p in ps}
    n_rows = sum(len(ps) for ps in positions.values())
    names = {0: "not_accepted", 1: "allocated", 2: "started", 3: "completed", 4: "submitted", 6: "quit_early"}
    return {
        "phase": "saturation", "server": f"psiturk-{PSITURK_VERSION}", "participants": n, "seconds": round(elapsed, 1),
        "sessions_completed": stats.sessions, "sessions_per_min": round(stats.sessions / elapsed * 60, 1),
        "answers_acknowledged": len(stats.acked), "answers_stored": len(stored),
        "lost": len(stats.acked - stored), "duplicates": n_rows - len(stored),
        **stats.latencies(elapsed),
        "participant_status_in_db": {names.get(s, str(s)): k for s, k in sorted(statuses.items())},
        "participants_in_db_before": participants_before,
        "cpu_s": cpu,
        "server_cpu_ms_per_session": round(1000 * (cpu["server"] + cpu["postgres"]) / stats.sessions, 1)
        if stats.sessions else None,
        "non_loopback_sockets": sockets,
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


def machine() -> dict:
    from bench.common import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


# ------------------------------------------------------------------------------------------------ runs

def run_psiturk(pg_url: str, levels: list[int], seconds: float, warmup: int = 20, *, venv: Path | None = None,
                workers: int = WORKERS, echo: bool = True, trace_network: bool = False,
                session: str = "browser") -> list[dict]:
    """psiTurk 3.3.1 under saturation at each level (participants, no pause) for ``seconds`` each.

    Returns ``[{"config": {...}}, {"phase": "saturation", ...}, ...]`` (one dict per level, the keys of
    server_load.py's phases plus a few); prints each as one JSON line as it comes when ``echo``. ``warmup``
    participants do one session each first (not counted). ``trace_network``: run the server under strace
    and add ``{"network_peers": {address: count}}`` at the end (a check; the numbers are then not comparable)."""
    python = ensure_venv(Path(venv) if venv else DEFAULT_VENV)
    results: list[dict] = []

    def emit(result: dict) -> None:
        results.append(result)
        if echo:
            print(json.dumps(result), flush=True)

    with tempfile.TemporaryDirectory(prefix="emostudy-psiturk-") as tmp, PsiturkDatabase(pg_url) as database:
        port = _free_port()
        project = make_project(Path(tmp), python, database.url, port, workers)
        with PsiturkServer(python, project, port, trace=trace_network) as server:
            base = f"http://127.0.0.1:{port}"
            versions = subprocess.run([str(python), "-c", "import psiturk.version, flask, sqlalchemy, gunicorn, "
                                       "gevent, psycopg2; print(psiturk.version.version_number, flask.__version__, "
                                       "sqlalchemy.__version__, gunicorn.__version__, gevent.__version__, "
                                       "psycopg2.__version__.split()[0])"],
                                      capture_output=True, text=True, check=True, timeout=60).stdout.split()
            emit({"config": {"server": f"psiturk-{PSITURK_VERSION}", "launch": "psiturk-server (gunicorn in-process)",
                             "workers": workers, "worker_class": "gevent", "gunicorn_threads": "unset (1)",
                             "worker_connections": 1000, "keepalive_s": 2, "mode": "sandbox",
                             "versions": dict(zip(("psiturk", "flask", "sqlalchemy", "gunicorn", "gevent",
                                                   "psycopg2"), versions)),
                             "database": "PostgreSQL (psycopg2)", **machine()}})
            if warmup:
                stats, _ = asyncio.run(run_phase(base, warmup, run="W00", seconds=60.0, sessions=1, kind=session))
                if stats.sessions == 0:
                    raise SystemExit(f"no warm-up session completed: {stats.errors}{server.log_tail()}")
            for k, n in enumerate(levels):
                run = f"R{k:02d}"
                participants_before = count_participants(database.url)
                before = cpu_ticks(server.pid, database.name)
                client_cpu = time.process_time()
                stats, elapsed = asyncio.run(run_phase(base, n, run=run, seconds=seconds, sessions=None, kind=session))
                cpu = cpu_delta(before, cpu_ticks(server.pid, database.name))
                cpu["client"] = round(time.process_time() - client_cpu, 2)
                sockets = foreign_sockets(server.pids())
                result = summarize(n, stats, elapsed, database.url, run, cpu, participants_before, sockets)
                emit({**result, "session": session, "workers": workers})
        if trace_network:
            peers = server.network_peers()
            emit({"network_peers": peers, "non_loopback": sorted(
                p for p in peers if not (p.startswith("127.") or p in ("::1", "::ffff:127.0.0.1")
                                         or p.startswith("unix:")))})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("EMOSTUDY_TEST_POSTGRES_URL", DEFAULT_PG),
                        help="a PostgreSQL database whose server may create another database (default: %(default)s)")
    parser.add_argument("--levels", default="10,50,100", help="saturation levels (participants)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each level")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up participants, one session each")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help="gevent worker processes (psiTurk's 'threads' setting; default %(default)s)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="psiTurk's virtual environment, made if missing (default: %(default)s)")
    parser.add_argument("--session", choices=sorted(SESSIONS), default="browser",
                        help="browser: what psiTurk's example task does (28 requests); minimal: our benchmark's four "
                             "kinds one to one (21 requests: /exp, /inexp, 18 PUT /sync, /complete)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--trace-network", action="store_true",
                        help="check: run the server under strace and list every address it connected or sent to")
    args = parser.parse_args(argv)
    results = run_psiturk(args.pg_url, [int(x) for x in args.levels.split(",")], args.seconds, args.warmup,
                          venv=args.venv, workers=args.workers, trace_network=args.trace_network,
                          session=args.session)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    bad = [r for r in results if r.get("lost") or r.get("duplicates") or r.get("non_loopback_sockets")
           or r.get("non_loopback")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
