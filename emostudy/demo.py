"""`emostudy demo`: the whole product on this machine, on the embedded default (SQLite, local files).

    inputs (shipped photos + espeak-ng speech) -> two stimulus sets (training-free renderer, or the neural
    generator with --checkpoint; plus clips of a sentence of their own for the familiarisation
    examples) -> two study plans (the paper's Task 1 and Task 2 on these sets), and a norming (validation) study
    of the Task 1 set's main clips (stimuli/specs/norming.toml, small) -> SQLite database -> a local server (links
    printed) | --simulate N: simulated participants over HTTP, export, analysis reports; for the norming study
    NORMING_RATERS simulated raters, `emostudy norms` (the norms report) and `emostudy select`. The machine
    check of each set (emostudy check: SET/qc/qc.html, linked from the reports page) runs in the background
    once the build is done; its page says so until it is ready.

Every build step is one `emostudy` (or `python -m`) child process, so the steps meet only at their files,
exactly as a researcher's own pipeline would, and the serving process never imports torch. A re-run reuses
what was built (``DIR/state.json`` records each finished step with its inputs); ``--fresh`` moves the old
folder aside (never deletes it) and builds anew.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import click

from stimuli.manifest import atomic_write_bytes

SPECS_DIR = Path(importlib.util.find_spec("stimuli").origin).parent / "specs"  # the ready-made specs
DEMO_SENTENCES = "IEO,TIE,DFA"
# Spoken only in the clips made for the familiarisation examples (2 per emotion: 2 faces x 1 sentence), which
# carry a source label of their own (EXAMPLE-FULL, EXAMPLE-WARP): no labelled example is a trial's clip (the
# plan refuses that), as in the paper, whose examples were recordings no trial showed.
EXAMPLE_SENTENCES = "ITH"
EXAMPLE_PREFIX = "EXAMPLE-"
TASKS = ("task1", "task2")
# The demo's norming study: the Task 1 set's main clips (2 faces x 6 emotions x 3 sentences = 36) in 3 batches
# of 12 (+ 2 repeats), 6 valid raters per batch; a few more simulated raters than places, as some are careless.
NORMING = "norming"
NORMING_QUOTA = 6
NORMING_RATERS = 22


class DemoPaths:
    """Where each part of the demo lives under its folder."""

    def __init__(self, root: Path):
        self.root = root
        self.faces = root / "inputs" / "faces"
        self.speech = root / "inputs" / "speech"
        self.example_speech = root / "inputs" / "speech-examples"
        self.sets = root / "sets"
        self.plans = root / "plans"
        self.specs = root / "specs"
        self.instance = root / "instance"
        self.exports = root / "exports"
        self.reports = root / "reports"
        self.state = root / "state.json"


def _emostudy() -> list[str]:
    exe = Path(sys.executable).with_name("emostudy")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "emostudy"]


class Pipeline:
    """Runs the steps, skipping those recorded as done with the same inputs."""

    def __init__(self, paths: DemoPaths, echo: Callable[[str], None]):
        self.paths, self.echo = paths, echo
        self.state: dict[str, Any] = json.loads(paths.state.read_text()) if paths.state.is_file() else {}

    def _save(self) -> None:
        atomic_write_bytes(self.paths.state, (json.dumps(self.state, indent=1, sort_keys=True) + "\n").encode())

    def step(self, name: str, key: Any, argv: list[str], *, env: dict[str, str] | None = None) -> bool:
        """Run ``argv`` unless step ``name`` already ran with the same ``key``. True when it ran."""
        if name in self.state and self.state[name] == key:
            self.echo(f"  [reuse] {name}")
            return False
        self.echo(f"  [run]   {name}: {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))}")
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise click.ClickException(f"demo step {name!r} failed (exit code {proc.returncode}); its output is "
                                       "above. Fix the cause and run the demo again: finished steps are reused.")
        self.echo(f"          done in {time.perf_counter() - t0:.1f} s")
        self.state[name] = key
        self._save()
        return True


def _spec_text(task: str, backend_source: str) -> str:
    text = (SPECS_DIR / f"demo-{task}.toml").read_text(encoding="utf-8")
    if task == "task2" and backend_source != "WARP":
        text = text.replace('sources = ["WARP"]', f'sources = ["{backend_source}"]')
        text = text.replace('sources = ["EXAMPLE-WARP"]', f'sources = ["{EXAMPLE_PREFIX}{backend_source}"]')
    if task == "task1" and backend_source != "FULL":
        text = text.replace('sources = ["FULL", "LIPS", "STILL"]', f'sources = ["{backend_source}", "LIPS", "STILL"]')
        text = text.replace('sources = ["EXAMPLE-FULL"]', f'sources = ["{EXAMPLE_PREFIX}{backend_source}"]')
    # The simulated participants fetch each video but answer at machine speed: the server flags their
    # answers "too_fast" (see the admin pages); the demo's studies record those flags without counting them.
    return text.replace("[consistency]\n", '[consistency]\nwatch_flags = "ignore"\n', 1)


def _norming_spec_text(main_source: str) -> str:
    """The ready-made norming spec, made small for the demo (names, quota, batch size, the clips rated)."""
    text = (SPECS_DIR / "norming.toml").read_text(encoding="utf-8")
    for old, new in (('name = "norming"', 'name = "demo-norming"'),
                     ("quota_per_batch = 20", f"quota_per_batch = {NORMING_QUOTA}"),
                     ("clips_per_batch = 24", "clips_per_batch = 12"),
                     ("sources = []", f'sources = ["{main_source}"]'),
                     ("estimated_minutes = 12", "estimated_minutes = 8")):
        if old not in text:
            raise click.ClickException(f"stimuli/specs/norming.toml no longer has {old!r}: update emostudy/demo.py")
        text = text.replace(old, new, 1)
    return text.replace("[consistency]\n", '[consistency]\nwatch_flags = "ignore"\n', 1)


def build(paths: DemoPaths, *, checkpoint: Path | None, seed: int, echo: Callable[[str], None],
          norming: bool = True) -> Pipeline:
    """Inputs, sets, plans, database, imported studies. Returns the pipeline (its state)."""
    for p in (paths.sets, paths.plans, paths.specs, paths.instance):
        p.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(paths, echo)
    emo = _emostudy()
    # The warp renders at 128 px here (a researcher's set renders at the face's own resolution): the demo is a
    # quick tour, and Grace Hopper's face at its own resolution (284 px) takes five times as long.
    warp = ["--backend", "warp", "--size", "128"]
    neural = ["--backend", "neural", "--checkpoint", str(checkpoint)] if checkpoint else warp
    ck = str(checkpoint) if checkpoint else None
    main_source = "OURS" if checkpoint else "WARP"
    pipe.step("inputs", DEMO_SENTENCES, [sys.executable, "-m", "generator.produce.demo_inputs", "--faces", str(paths.faces),
                                         "--speech", str(paths.speech), "--sentences", DEMO_SENTENCES])
    pipe.step("inputs-examples", EXAMPLE_SENTENCES, [sys.executable, "-m", "generator.produce.demo_inputs", "--faces",
                                                     str(paths.faces), "--speech", str(paths.example_speech),
                                                     "--sentences", EXAMPLE_SENTENCES])
    common = ["--faces", str(paths.faces), "--speech", str(paths.speech), "--seed", str(seed)]
    for_examples = ["--faces", str(paths.faces), "--speech", str(paths.example_speech), "--seed", str(seed)]
    task1 = paths.sets / "task1"
    full_render = neural if checkpoint else [*warp, "--components", "expression,mouth,life"]
    full_source = "OURS" if checkpoint else "FULL"
    full = [*full_render, "--source", full_source]
    for label, extra in ((full_source, full),
                         ("LIPS", [*warp, "--components", "mouth,life", "--source", "LIPS"]),
                         ("STILL", [*warp, "--components", "none", "--source", "STILL"])):
        pipe.step(f"set-task1-{label}", [seed, ck], [*emo, "generate", "--design", "matched", *common, *extra,
                                                     "--name", "demo-task1", "--out", str(task1)])
    pipe.step("set-task1-examples", [seed, ck], [*emo, "generate", "--design", "matched", *for_examples,
                                                 *full_render, "--source", EXAMPLE_PREFIX + full_source,
                                                 "--name", "demo-task1", "--out", str(task1)])
    pipe.step("set-task2", [seed, ck], [*emo, "generate", "--design", "mismatched", *common, *neural,
                                        "--source", main_source, "--repeats", "2", "--name", "demo-task2",
                                        "--out", str(paths.sets / "task2")])
    pipe.step("set-task2-examples", [seed, ck], [*emo, "generate", "--design", "matched", *for_examples, *neural,
                                                 "--source", EXAMPLE_PREFIX + main_source, "--name", "demo-task2",
                                                 "--out", str(paths.sets / "task2")])
    # The machine check (SET/qc/qc.html) runs in the background once the studies are served (start_checks):
    # it took most of a fresh build's time, and nothing the participants see waits for it.
    for task in TASKS:
        spec = paths.specs / f"demo-{task}.toml"
        text = _spec_text(task, "OURS" if checkpoint else ("FULL" if task == "task1" else "WARP"))
        if not spec.is_file() or spec.read_text(encoding="utf-8") != text:
            atomic_write_bytes(spec, text.encode())
        manifest = paths.sets / task / "manifest.json"
        key = [seed, text, manifest.read_text(encoding="utf-8")]
        pipe.step(f"plan-{task}", _digest(key), [*emo, "plan", "--spec", str(spec), "--set", str(paths.sets / task),
                                                 "--seed", str(seed), "--out", str(paths.plans / f"{task}.json"),
                                                 "--force"])
    studies = list(TASKS)
    if norming:  # the validation step between check and the main study (docs/running-a-study.md)
        spec = paths.specs / "demo-norming.toml"
        text = _norming_spec_text("OURS" if checkpoint else "FULL")
        if not spec.is_file() or spec.read_text(encoding="utf-8") != text:
            atomic_write_bytes(spec, text.encode())
        key = [seed, text, (paths.sets / "task1" / "manifest.json").read_text(encoding="utf-8")]
        pipe.step(f"plan-{NORMING}", _digest(key), [*emo, "plan", "--spec", str(spec), "--set", str(task1), "--seed",
                                                    str(seed), "--out", str(paths.plans / f"{NORMING}.json"), "--force"])
        studies.append(NORMING)
    inst = ["--instance", str(paths.instance)]
    pipe.step("db", "head", [*emo, "db", "upgrade", *inst])
    for task in studies:
        set_dir = paths.sets / ("task1" if task == NORMING else task)
        plan = paths.plans / f"{task}.json"
        imported = pipe.state.get(f"import-{task}")
        argv = [*emo, "study", "import", str(plan), "--set", str(set_dir), *inst]
        if imported is not None and imported != _digest(plan.read_text(encoding="utf-8")):
            argv.append("--replace")  # the plan changed (new checkpoint, new seed): only while nobody took part
        pipe.step(f"import-{task}", _digest(plan.read_text(encoding="utf-8")), argv)
    return pipe


CHECK_STAMP = ".demo-check"  # SET/qc/.demo-check: the clips (ids, sha256) the finished check saw


def _clips_key(paths: DemoPaths, task: str) -> str:
    rows = json.loads((paths.sets / task / "manifest.json").read_text(encoding="utf-8"))["stimuli"]
    return _digest(sorted((r["stimulus_id"], r["sha256"]) for r in rows))


def _check_done(paths: DemoPaths, task: str) -> bool:
    qc = paths.sets / task / "qc"
    stamp = qc / CHECK_STAMP
    return (qc / "qc.json").is_file() and stamp.is_file() and stamp.read_text().strip() == _clips_key(paths, task)


PENDING_PAGE = ("<!doctype html><meta charset='utf-8'><meta http-equiv='refresh' content='10'>"
                "<title>stimulus check running</title><h1>Stimulus check of the {task} set: running</h1>"
                "<p>The machine check (emostudy check) runs in the background while the studies are served. "
                "This page reloads every 10 s and shows the report when the check is done.</p>")


def start_checks(paths: DemoPaths, echo: Callable[[str], None]) -> threading.Thread | None:
    """Check the sets whose clips changed since their last check, one after the other, in a background thread
    (``emostudy check SET --no-manifest``: the plans and imported studies keep the manifest they were made
    from). Until a set's check is done its qc.html says that it is running. None when every set is checked."""
    todo = [task for task in TASKS if not _check_done(paths, task)]
    if not todo:
        return None
    for task in todo:
        qc = paths.sets / task / "qc"
        qc.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(qc / "qc.html", PENDING_PAGE.format(task=task).encode())
    emo = _emostudy()

    def run() -> None:
        for task in todo:
            key = _clips_key(paths, task)
            log = paths.root / f"check-{task}.log"
            with open(log, "w", encoding="utf-8") as fh:
                proc = subprocess.run([*emo, "check", str(paths.sets / task), "--faces", str(paths.faces), "--jobs",
                                       "1", "--no-manifest"], stdout=fh, stderr=subprocess.STDOUT)
            if proc.returncode == 0:
                atomic_write_bytes(paths.sets / task / "qc" / CHECK_STAMP, (key + "\n").encode())
                echo(f"    stimulus check of {task} done: {paths.sets / task / 'qc' / 'qc.html'}")
            else:
                echo(f"    stimulus check of {task} failed (exit {proc.returncode}); see {log}")

    thread = threading.Thread(target=run, name="demo-check", daemon=True)
    thread.start()
    return thread


def _digest(obj: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _admin_password(instance: Path) -> str:
    path = instance / "admin_password"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    pw = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pw + "\n")
    return pw


def make_app(paths: DemoPaths, password: str):
    from study_server.app import create_app

    # The simulated participants all arrive from 127.0.0.1: no per-address arrival limit or cap on places held
    # at once on this local server.
    return create_app({"INSTANCE_PATH": str(paths.instance), "ADMIN_PASSWORD": password,
                       "COOKIE_SECURE": False, "ARRIVAL_RATE_PER_IP": "", "PLACES_PER_ADDRESS": 0})


def _free_port(host: str, port: int) -> int:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return port
        except OSError:
            s.bind((host, 0))
            return s.getsockname()[1]


def _quiet_handler():
    from werkzeug.serving import WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # thousands of simulated requests
            pass

    return Quiet


def simulate_and_report(paths: DemoPaths, app: Any, n: int, *, seed: int, echo: Callable[[str], None],
                        norming: bool = False) -> list[Path]:
    """Run ``n`` simulated participants per task against a real HTTP server, export, analyze; with ``norming``,
    also NORMING_RATERS simulated raters of the norming study, its norms report and a selection."""
    from rich.progress import Progress
    from werkzeug.serving import make_server

    from study_server.participant.simulate import ResponseModel, simulate

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_quiet_handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    secret = app.config["SECRET_KEY"]
    # Each simulation run has new participants (lab ids derive from the seed), deterministically.
    pipe = Pipeline(paths, echo)
    runs_before = sum(1 for k in pipe.state if k.startswith("export-task1-"))
    run = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    emo = _emostudy()
    reports = []
    studies = [(task, task, n) for task in TASKS] + ([(NORMING, "task1", NORMING_RATERS)] if norming else [])
    try:
        for task, set_name, count in studies:
            rows = json.loads((paths.sets / set_name / "manifest.json").read_text())["stimuli"]
            study = f"demo-{task}"
            with Progress() as progress:
                bar = progress.add_task(f"simulated participants ({study})", total=count)
                plan = json.loads((paths.plans / f"{task}.json").read_text())
                # the same simulation as `emostudy simulate` (fast: the demo has no minutes to wait per video)
                rep = simulate(base, study, count, manifest_rows=rows, secret_key=secret, model=ResponseModel(),
                               task=plan["study"]["task"], plan_questions=plan["questions"], plan=plan,
                               seed=seed * 1000 + runs_before, on_done=lambda: progress.advance(bar), speed="fast")
            echo(f"  {study}: {rep.completed} of {rep.participants} simulated participants completed "
                 f"({rep.careless} careless), {rep.answers_acknowledged} answers acknowledged"
                 + (f"; {len(rep.refused)} turned away (e.g. {rep.refused[0]})" if rep.refused else ""))
    finally:
        server.shutdown()
        thread.join(timeout=10)
    for task in TASKS:
        export = paths.exports / f"{task}-{run}"
        report = paths.reports / f"{task}-{run}"
        inst = ["--instance", str(paths.instance)]
        # the demo's participants are all simulated: its export asks for them (a real study's leaves them out)
        pipe.step(f"export-{task}-{run}", None, [*emo, "export", f"demo-{task}", "--out", str(export),
                                                 "--include-simulated", *inst])
        pipe.step(f"analyze-{task}-{run}", None, [*emo, "analyze", str(export), "--out", str(report),
                                                  "--seed", str(seed)])
        reports.append(report / "report.html")
    if norming:
        reports.append(norms_and_select(paths, pipe, run, echo))
    index = paths.reports / "index.html"
    links = "".join(f'<li><a href="{p.parent.name}/report.html">{p.parent.name}</a></li>' for p in reports)
    links += "".join(f'<li><a href="../sets/{task}/qc/qc.html">stimulus check (machine QC) of the {task} set</a></li>'
                     for task in TASKS if (paths.sets / task / "qc" / "qc.html").is_file())
    atomic_write_bytes(index, (f"<!doctype html><meta charset='utf-8'><title>emostudy demo reports</title>"
                               f"<h1>emostudy demo reports</h1><ul>{links}</ul>").encode())
    return reports


def norms_and_select(paths: DemoPaths, pipe: Pipeline, run: str, echo: Callable[[str], None]) -> Path:
    """Export the norming study, write its norms report, and select the clips recognised by at least half the
    raters, balanced over emotions, into a new set (``sets/task1-selected-RUN``). The rule may fail to fill the
    balance with so few raters: the refusal (which names the short cells) is shown, and the demo goes on."""
    emo = _emostudy()
    export = paths.exports / f"{NORMING}-{run}"
    report = paths.reports / f"{NORMING}-{run}"
    inst = ["--instance", str(paths.instance)]
    pipe.step(f"export-{NORMING}-{run}", None, [*emo, "export", f"demo-{NORMING}", "--out", str(export),
                                                  "--include-simulated", *inst])
    # The check ran in the background with --no-manifest (the plans hold the manifest's sha256): its report
    # gives the machine's opinion of each clip.
    qc = paths.sets / "task1" / "qc" / "qc.json"
    pipe.step(f"norms-{run}", None, [*emo, "norms", str(export), "--out", str(report),
                                     *(["--qc", str(qc)] if qc.is_file() else [])])
    selected = paths.sets / f"task1-selected-{run}"
    argv = [*emo, "select", str(paths.sets / "task1"), "--norms", str(report), "--min-recognition", "0.5",
            "--balance", "emotion", "--out", str(selected)]
    echo(f"  [run]   select: {' '.join(argv[len(emo):])}")
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        echo(f"          {line}")
    return report / "report.html"


def serve_forever(app: Any, host: str, port: int, password: str, echo: Callable[[str], None],
                  norming: bool = False) -> None:
    from werkzeug.serving import make_server

    server = make_server(host, _free_port(host, port), app, threaded=True)
    base = f"http://{host}:{server.server_port}"
    echo("")
    echo("The study server is running (Ctrl-C stops it):")
    echo(f"  Task 1 participant link:  {base}/s/demo-task1")
    echo(f"  Task 2 participant link:  {base}/s/demo-task2")
    if norming:
        echo(f"  Norming participant link: {base}/s/demo-{NORMING}   (validation of the Task 1 set's clips)")
    echo(f"  Admin:                    {base}/admin/   user: admin   password: {password}")
    echo("")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        server.server_close()


@click.command("demo")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("emostudy-demo"),
              show_default=True, help="Where everything goes (re-runs reuse what was built).")
@click.option("--fresh", is_flag=True, help="Move an existing --dir aside (never deleted) and build anew.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Use the neural generator with this checkpoint instead of the training-free renderer.")
@click.option("--simulate", "n_sim", type=click.IntRange(min=0), default=0,
              help="Send N simulated participants through each task, then export and write the reports.")
@click.option("--no-serve", is_flag=True, help="Do not start the server at the end.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--norming/--no-norming", default=True, show_default=True,
              help=f"Also a small norming (validation) study of the Task 1 set: with --simulate, {NORMING_RATERS} "
                   "simulated raters, the norms report (emostudy norms) and a selected set (emostudy select).")
def demo_command(root: Path, fresh: bool, checkpoint: Path | None, n_sim: int, no_serve: bool, host: str, port: int,
                 seed: int, norming: bool = True) -> None:
    """The whole product on this machine: stimuli, two studies, a local server (and simulated answers)."""
    t0 = time.perf_counter()
    if fresh and root.exists():
        aside = root.with_name(f"{root.name}.old-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(root), aside)
        click.echo(f"moved the previous demo folder aside to {aside}")
    root.mkdir(parents=True, exist_ok=True)
    paths = DemoPaths(root.resolve())
    click.echo(f"emostudy demo in {paths.root}")
    click.echo("1/3 building stimuli, plans and the database")
    build(paths, checkpoint=checkpoint, seed=seed, echo=click.echo, norming=norming)
    click.echo(f"    built in {time.perf_counter() - t0:.0f} s")
    checking = start_checks(paths, click.echo)
    for task in TASKS:
        click.echo(f"    stimulus check ({task}): {paths.sets / task / 'qc' / 'qc.html'}"
                   + (" (running in the background; the page says when it is done)" if checking else ""))
    if checking is not None and (no_serve or n_sim):
        checking.join()  # a run that ends (or reports) waits for its checks: its reports link them
    password = _admin_password(paths.instance)
    app = make_app(paths, password)
    if n_sim:
        click.echo(f"2/3 {n_sim} simulated participants per task, export and analysis")
        reports = simulate_and_report(paths, app, n_sim, seed=seed, echo=click.echo, norming=norming)
        for r in reports:
            click.echo(f"    report: {r}")
        click.echo(f"    all reports: {paths.reports / 'index.html'}")
    if no_serve:
        click.echo(f"done in {time.perf_counter() - t0:.0f} s")
        return
    click.echo("3/3 serving")
    serve_forever(app, host, port, password, click.echo, norming=norming)
