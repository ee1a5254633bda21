"""The server's commands: ``emostudy db``, ``emostudy study``, ``emostudy serve``, ``emostudy export``.

Thin over ``study_server.store.schema``, ``studies.import_plan`` and ``export.export_study``. The database is
``--db URL``, else ``EMOSTUDY_DATABASE_URL``, else the SQLite file in the instance folder (``--instance DIR``
or the app's default instance folder) - the same rules as ``create_app``, which resolves them.

Production serving is gunicorn, not ``emostudy serve``::

    EMOSTUDY_ENV=production EMOSTUDY_SECRET_KEY=... EMOSTUDY_DATABASE_URL=postgresql://... \\
        gunicorn -w 4 -b 127.0.0.1:8000 'study_server.app:create_app()'
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from study_server.core.errors import StudyServerError


def _db_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--db", "db_url", metavar="URL", envvar="EMOSTUDY_DATABASE_URL", show_envvar=True,
                  help="Database URL (sqlite:///file or postgresql://user:pw@host/db).")
    @click.option("--instance", type=click.Path(file_okay=False, path_type=Path),
                  help="Instance folder (SQLite database and secret key) when no URL is given.")
    @functools.wraps(command)
    def wrapper(*args: Any, db_url: str | None, instance: Path | None, **kwargs: Any) -> Any:
        try:
            return command(*args, app_factory=lambda **extra: _make_app(db_url, instance, **extra), **kwargs)
        except StudyServerError as exc:
            raise click.ClickException(str(exc)) from exc
    return wrapper


def _make_app(db_url: str | None, instance: Path | None, **extra: Any):
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.app import create_app

    overrides: dict[str, Any] = dict(extra)
    if db_url:
        overrides["DATABASE_URL"] = db_url
    if instance:
        overrides["INSTANCE_PATH"] = str(instance.resolve())
    return create_app(overrides)


def _require_migrated(url: str) -> None:
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store import schema as db

    if not db.is_up_to_date(url):
        # lazy: the command table loads no Flask or SQLAlchemy until the command runs
        from study_server.core.config import mask_url

        raise click.ClickException(
            f"the database {mask_url(url)} is at revision {', '.join(db.current(url)) or 'none (empty)'}, "
            f"not at the newest ({', '.join(db.head_revisions())}): run `emostudy db upgrade` first")


# ------------------------------------------------------------------------------------------------ db

@click.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
@_db_options
def db_upgrade(app_factory, revision: str) -> None:
    """Migrate the database to the newest schema (creates it when empty)."""
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.core.config import mask_url

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store import schema as db

    url = app_factory().config["DATABASE_URL"]
    db.upgrade(url, revision)
    click.echo(f"{mask_url(url)}: at {', '.join(db.current(url))}")


@db_group.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask before dropping every table (REVISION base).")
@_db_options
def db_downgrade(app_factory, revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION (e.g. 0001_initial; 'base' drops every table and all data)."""
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.core.config import mask_url

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store import schema as db

    url = app_factory().config["DATABASE_URL"]
    if revision == "base" and not yes:
        click.confirm(f"Drop every emostudy table of {mask_url(url)}, with all answers?", abort=True)
    db.downgrade(url, revision)
    click.echo(f"{mask_url(url)}: at {', '.join(db.current(url)) or 'base (empty)'}")


@db_group.command("current")
@_db_options
def db_current(app_factory) -> None:
    """Show the database's revision and whether it is the newest."""
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.core.config import mask_url

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store import schema as db

    url = app_factory().config["DATABASE_URL"]
    current, heads = db.current(url), db.head_revisions()
    state = "up to date" if current == heads else f"behind (newest: {', '.join(heads)}; run `emostudy db upgrade`)"
    click.echo(f"{mask_url(url)}: at {', '.join(current) or 'base (empty)'}, {state}")


# --------------------------------------------------------------------------------------------- study

@click.group("study")
def study_group() -> None:
    """Import study plans into the server database."""


@study_group.command("import")
@click.argument("plan", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "set_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The stimulus set folder the plan was compiled from.")
@click.option("--replace", is_flag=True, help="Replace a study of the same name (only while nobody took part).")
@_db_options
def study_import(app_factory, plan: Path, set_dir: Path, replace: bool) -> None:
    """Import PLAN (made by `emostudy plan`) and print the new study's id."""
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store.extensions import db

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.study.studies import import_plan

    app = app_factory()
    _require_migrated(app.config["DATABASE_URL"])
    with app.app_context():
        study = import_plan(db.session, plan, set_dir, replace=replace, secret_key=app.config["SECRET_KEY"])
        n_items = sum(len(b.items) for b in study.batches)
        click.echo(f"imported study {study.name!r} ({study.task}): {len(study.batches)} batches, "
                   f"{n_items} items, quota {study.quota_per_batch} per batch", err=True)
        click.echo(study.id)
    db.dispose(app)


@study_group.command("list")
@_db_options
def study_list(app_factory) -> None:
    """List the imported studies with their valid / quota counts."""
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.admin import stats as admin_stats

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store.extensions import db

    app = app_factory()
    _require_migrated(app.config["DATABASE_URL"])
    with app.app_context():
        studies = admin_stats.study_summaries(db.session, timeout_s=app.config["ASSIGNMENT_TIMEOUT_S"])
    db.dispose(app)
    if not studies:
        click.echo("no study yet: import one with `emostudy study import PLAN --set SET`")
        return
    rows = [("id", "name", "task", "status", "batches", "active", "valid/quota", "rejected")]
    for s in studies:
        t = s["totals"]
        rows.append((str(s["id"]), s["name"], s["task"], s["status"], str(s["n_batches"]), str(t["active"]),
                     f"{t['valid']}/{t['quota']}", str(t["rejected"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


# ----------------------------------------------------------------------------------------- serve

@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--debug", is_flag=True, help="Flask debug mode (reloader off; never on a public address).")
@_db_options
def serve_command(app_factory, host: str, port: int, debug: bool) -> None:
    """Run the study server with Flask's development server.

    In production run gunicorn instead: gunicorn -w 4 -b 127.0.0.1:8000 'study_server.app:create_app()'
    """
    app = app_factory(**({"DEBUG": True} if debug else {}))
    _require_migrated(app.config["DATABASE_URL"])
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.core.config import mask_url

    click.echo(f"emostudy study server on http://{host}:{port}/ (database {mask_url(app.config['DATABASE_URL'])}); "
               "development server - use gunicorn in production", err=True)
    app.run(host=host, port=port, debug=debug, use_reloader=False, threaded=True)


# ---------------------------------------------------------------------------------------- export

@click.command("export")
@click.argument("study")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="A new (or empty) folder; an export never overwrites.")
@click.option("--format", "export_format", type=click.Choice(["emostudy", "psych-ds"]), default="emostudy",
              show_default=True, help="emostudy: the files `emostudy analyze` reads; psych-ds: a Psych-DS dataset "
                                      "(dataset_description.json, data/, documentation/, analysis/analysis.R).")
@click.option("--include-simulated", is_flag=True,
              help="Also export the simulated participants of `emostudy simulate` (left out by default; previews "
                   "are never exported).")
@click.option("--spec", "spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="psych-ds: the study's spec file, copied into materials/ (must be the one the plan was made from).")
@_db_options
def export_command(app_factory, study: str, out_dir: Path, export_format: str, include_simulated: bool,
                   spec_file: Path | None) -> None:
    """Export STUDY (its name or id): answers.csv, participants.csv, plan.json, manifest.json, codebook.md
    (or, with --format psych-ds, the same data as a Psych-DS dataset with an R script)."""
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.export.tables import export_study

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store.extensions import db

    app = app_factory()
    _require_migrated(app.config["DATABASE_URL"])
    with app.app_context():
        result = export_study(db.session, study, out_dir, format=export_format, include_simulated=include_simulated,
                              spec_text=spec_file.read_bytes() if spec_file else None)
    db.dispose(app)
    click.echo(f"{result.folder}: {result.n_answer_rows} answer rows, {result.n_participant_rows} participants")
