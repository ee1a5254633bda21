"""`emostudy recruit open|status|sync|bonus|close --study ID --platform mturk|prolific|lab`.

MTurk runs in the sandbox unless ``--live`` is given and confirmed. Every subcommand takes ``--dry-run``,
which prints the calls that would be made and changes nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import click

from study_server.recruit import RecruitError
from study_server.recruit import service

PLATFORMS = ("mturk", "prolific", "lab")


def _common(f):
    f = click.option("--study", "study_ref", required=True, help="Study name (or numeric id).")(f)
    f = click.option("--platform", type=click.Choice(PLATFORMS), required=True)(f)
    f = click.option("--live", is_flag=True, help="MTurk: the real marketplace (real money). Default: sandbox.")(f)
    f = click.option("--yes", is_flag=True, help="Do not ask for confirmations (cron).")(f)
    f = click.option("--dry-run", is_flag=True, help="Print the calls that would be made; change nothing.")(f)
    f = click.option("--db", "db_url", envvar="EMOSTUDY_DATABASE_URL", default=None,
                     help="Database URL (default: EMOSTUDY_DATABASE_URL, else the instance SQLite file).")(f)
    f = click.option("--prolific-url", default=None, envvar="EMOSTUDY_PROLIFIC_API_URL", hidden=True)(f)
    return f


@contextmanager
def _session(db_url: str | None) -> Iterator[Any]:
    from study_server.app import create_app
    from study_server.extensions import db

    app = create_app({"DATABASE_URL": db_url} if db_url else None)
    with app.app_context():
        yield db.session


def _recruiter(session: Any, study: Any, platform: str, *, live: bool, yes: bool, dry_run: bool,
               prolific_url: str | None) -> Any:
    from study_server.recruit import mturk, prolific
    from study_server.recruit.lab import LabRecruiter

    if platform == "lab":
        return LabRecruiter(session, study)
    known = service.posts(session, study, platform)
    if platform == "mturk":
        confirmed = yes
        if live and not yes and not dry_run:
            confirmed = click.prompt("Live MTurk pays real money. Type 'live' to continue", default="") == "live"
        client = mturk.make_client(live=live, confirmed=confirmed or dry_run)
        return mturk.MTurkRecruiter(client, hit_ids=[p.external_id for p in known],
                                    hit_type_id=known[-1].type_id if known else None)
    token = prolific.token_from_env()
    return prolific.ProlificRecruiter(token=token, study_id=known[-1].external_id if known else None,
                                      base_url=prolific_url or prolific.DEFAULT_BASE_URL,
                                      completion_code=study.completion_code)


@contextmanager
def _context(study_ref: str, platform: str, db_url: str | None, *, live: bool, yes: bool, dry_run: bool,
             prolific_url: str | None) -> Iterator[tuple[Any, Any, Any]]:
    """(session, study, recruiter) for one subcommand."""
    with _session(db_url) as session:
        study = service.find_study(session, study_ref)
        yield session, study, _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run,
                                         prolific_url=prolific_url)


def _run(fn):
    try:
        return fn()
    except RecruitError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("recruit")
def recruit_group() -> None:
    """Recruit and pay participants (MTurk sandbox unless --live)."""


@recruit_group.command("open")
@_common
@click.option("--base-url", required=True, envvar="EMOSTUDY_PUBLIC_URL",
              help="Public HTTPS address of the study server, e.g. https://study.example.org")
@click.option("--places", type=int, default=None, help="Places to post (default: what the quotas still need).")
@click.option("--reward", type=float, default=None, help="Override the plan's reward (USD).")
@click.option("--keywords", default=None)
@click.option("--minutes", "estimated_minutes", type=int, default=None, help="Estimated completion time.")
@click.option("--publish", is_flag=True, help="Prolific: publish the draft study at once.")
@click.option("--countries", default="US", show_default=True,
              help="MTurk: worker locales (comma list of ISO codes; empty for any).")
@click.option("--min-approval-rate", type=click.IntRange(0, 100), default=95, show_default=True,
              help="MTurk: lifetime approval rate, percent (the paper: above 95%).")
@click.option("--min-approved-hits", type=click.IntRange(min=0), default=100, show_default=True,
              help="MTurk: approved HITs at least (new workers read 100% approval).")
@click.option("--family", default=None, help="MTurk: exclusion family of this study (default: its name); "
              "studies that exclude this one refuse its workers.")
def open_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, base_url, places, reward, keywords,
                 estimated_minutes, publish, countries, min_approval_rate, min_approved_hits, family):
    """Post the study on a platform."""
    def go():
        with _session(db_url) as session:
            study = service.find_study(session, study_ref)
            settings = service.post_settings(study, base_url, reward_usd=reward, keywords=keywords,
                                             estimated_minutes=estimated_minutes)
            n = places if places is not None else service.places_needed(session, study)
            if dry_run:
                click.echo(f"would post {n} places for {study.name!r} on {platform}"
                           f"{' (sandbox)' if platform == 'mturk' and not live else ''}: {settings}")
                return
            rec = _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run, prolific_url=prolific_url)
            if platform == "mturk":
                from study_server.recruit.mturk import Qualifications

                rec.qualifications = Qualifications(
                    countries=tuple(c.strip().upper() for c in countries.split(",") if c.strip()),
                    min_approval_rate=min_approval_rate, min_approved_hits=min_approved_hits or None)
            ids = service.open_posts(session, study, rec, settings, places=n, sandbox=not live, family=family)
            if platform == "prolific" and publish:
                rec.publish()
            click.echo(f"posted {n} places on {platform}: {', '.join(ids)}")
            for link in getattr(rec, "links", []):
                click.echo(link)
    _run(go)


@recruit_group.command("status")
@_common
def status_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url):
    """Posts on the platform and places still needed."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url) as (session, study, rec):
            for row in rec.status():
                click.echo("  ".join(f"{k}={v}" for k, v in row.items()))
            click.echo(f"places still needed for the quotas: {service.places_needed(session, study)}")
    _run(go)


@recruit_group.command("sync")
@_common
@click.option("--base-url", envvar="EMOSTUDY_PUBLIC_URL", default=None, help="Needed to post more places.")
@click.option("--policy", type=click.Choice([service.REJECT_POLICY, service.APPROVE_POLICY]),
              default=service.REJECT_POLICY, help="What to do with incomplete or inconsistent surveys.")
def sync_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, base_url, policy):
    """Approve valid work, reject the rest (or approve without bonus), refill up to the quotas."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url) as (session, study, rec):
            settings = service.post_settings(study, base_url) if base_url else None
            r = service.sync(session, study, rec, settings=settings, policy=policy, sandbox=not live, dry_run=dry_run)
            for call in r.planned_calls:
                click.echo(f"[dry-run] {call}")
            click.echo(f"approved {len(r.approved)}, approved without bonus {len(r.approved_without_bonus)}, "
                       f"rejected {len(r.rejected)}, exclusions granted {r.granted}, expired {r.expired}; "
                       f"places needed {r.needed}, open {r.open_places}, newly posted {len(r.posted)}")
    _run(go)


@recruit_group.command("bonus")
@_common
def bonus_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url):
    """Compute bonuses from the answers, show them, pay them (never twice)."""
    def go():
        with _session(db_url) as session:
            study = service.find_study(session, study_ref)
            planned = [b for b in service.plan_bonuses(session, study) if b.platform == platform]
            total = sum(b.amount_cents for b in planned) / 100
            for b in planned:
                click.echo(f"  {b.worker_id}  {b.n_correct}/{b.n_answers} correct  ${b.amount_cents / 100:.2f}")
            click.echo(f"{len(planned)} bonuses, ${total:.2f} in all (already paid ones are skipped)")
            rec = _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run, prolific_url=prolific_url)
            confirm = None if yes else (lambda todo: click.confirm(f"pay {len(todo)} bonuses now?", default=False))
            r = service.pay_bonuses(session, study, rec, dry_run=dry_run, confirm=confirm)
            for call in r.planned_calls:
                click.echo(f"[dry-run] {call}")
            click.echo(f"paid {len(r.paid)}, already paid before {r.skipped_already_paid}, failed {len(r.failed)}")
            for f in r.failed:
                click.echo(f"  failed: {f}")
    _run(go)


@recruit_group.command("close")
@_common
def close_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url):
    """Stop recruiting on the platform."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url) as (session, study, rec):
            closed = service.close(session, study, rec, dry_run=dry_run)
            click.echo(("[dry-run] " if dry_run else "closed: ") + ", ".join(closed or ["nothing open"]))
    _run(go)
