"""`emostudy simulate STUDY --participants N [--speed real|fast] [--url URL]`: simulated participants take a
study through the real HTTP API (arrive, consent, listening checks, every video fetched, answers, demographics,
completion), on a local server started on the study's database, or on a running one (``--url``; the command
must share the server's database and secret, as it runs beside it).

Each session is marked ``simulated`` (signed with the server secret) and left out of exports unless
`emostudy export --include-simulated`. ``--speed real`` waits for each video and answers at a person's pace,
so the server's evidence of watching records what a person would leave; ``--speed fast`` answers at once and
the server flags those answers ``too_fast``, as it would anyone's.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import click
from sqlalchemy import select

from study_server.commands.server import _db_options, _require_migrated
from study_server.participant.simulate import SPEEDS, ResponseModel, simulate
from study_server.store.extensions import db
from study_server.store.models import Study


@click.command("simulate")
@click.argument("study")
@click.option("--participants", "n", type=click.IntRange(min=1), required=True, help="How many participants.")
@click.option("--speed", type=click.Choice(SPEEDS), default="real", show_default=True,
              help="real: watch each video and answer at a person's pace; fast: answer at once (flagged too_fast).")
@click.option("--url", default=None, help="A running server's base URL (default: a local one on the database).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulated answers and ids.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Participants at the same time.")
@_db_options
def simulate_command(app_factory, study: str, n: int, speed: str, url: str | None, seed: int, workers: int) -> None:
    """Send N simulated participants through STUDY over HTTP; their answers are marked simulated."""
    app = app_factory(RATE_LIMIT_ENABLED=False)
    _require_migrated(app.config["DATABASE_URL"])
    with app.app_context():
        found = db.session.scalar(select(Study).where(Study.name == study))
        if found is None:
            raise click.ClickException(f"no study named {study!r} in {app.config['DATABASE_URL']}; import it with "
                                       "`emostudy study import`")
        plan: dict[str, Any] = json.loads(found.plan_json)
        rows = json.loads(found.manifest_json)["stimuli"]
        db.session.rollback()
    secret = app.config["SECRET_KEY"]
    server = None
    if url is None:
        from werkzeug.serving import make_server  # lazy: the command table loads no Flask until the command runs

        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
    try:
        report = simulate(url, study, n, manifest_rows=rows, secret_key=secret, model=ResponseModel(),
                          task=plan["study"]["task"], plan_questions=plan["questions"], seed=seed, workers=workers,
                          speed=speed, plan=plan)
    finally:
        if server is not None:
            server.shutdown()
        db.dispose(app)
    click.echo(f"{study}: {report.completed} of {report.participants} simulated participants completed "
               f"({report.careless} careless), {report.answers_acknowledged} answers acknowledged; marked simulated "
               "(export them with `emostudy export --include-simulated`)"
               + (f"; {len(report.refused)} turned away (e.g. {report.refused[0]})" if report.refused else ""))
