"""`emostudy recruit open|status|sync|review|bonus|close|notify|block --study ID --platform mturk|prolific|lab`.

MTurk runs in the sandbox unless ``--live`` is given and confirmed. Every subcommand takes ``--dry-run``,
which prints the calls that would be made and changes nothing. ``notify`` (MTurk NotifyWorkers) and
``block`` (MTurk CreateWorkerBlock) happen only when asked for by name.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import click

from study_server.recruit import RecruitError, ledger, money, service

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
    f = click.option("--usd-rate", type=float, default=None, envvar="EMOSTUDY_PROLIFIC_USD_RATE",
                     help="Prolific in GBP: how many GBP one USD is worth (plans state USD).")(f)
    return f


@contextmanager
def _session(db_url: str | None) -> Iterator[Any]:
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.app import create_app

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.store.extensions import db

    app = create_app({"DATABASE_URL": db_url} if db_url else None)
    with app.app_context():
        yield db.session


def _recruiter(session: Any, study: Any, platform: str, *, live: bool, yes: bool, dry_run: bool,
               prolific_url: str | None, usd_rate: float | None = None) -> Any:
    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.recruit import mturk, prolific

    # lazy: the command table loads no Flask or SQLAlchemy until the command runs
    from study_server.recruit.lab import LabRecruiter

    if platform == "lab":
        return LabRecruiter(session, study)
    known = service.posts(session, study, platform, open_only=False, sandbox=not live)
    campaign = service.get_campaign(session, study, platform, sandbox=not live)
    if platform == "mturk":
        confirmed = yes
        if live and not yes and not dry_run:
            confirmed = click.prompt("Live MTurk pays real money. Type 'live' to continue", default="") == "live"
        client = mturk.make_client(live=live, confirmed=confirmed or dry_run)
        return mturk.MTurkRecruiter(client, hit_ids=[p.external_id for p in known],
                                    hit_type_id=(campaign.settings or {}).get("hit_type_id") if campaign else None)
    token = prolific.token_from_env()
    return prolific.ProlificRecruiter(token=token, study_id=known[-1].external_id if known else None,
                                      base_url=prolific_url or prolific.DEFAULT_BASE_URL,
                                      completion_code=study.completion_code, usd_rate=usd_rate)


@contextmanager
def _context(study_ref: str, platform: str, db_url: str | None, *, live: bool, yes: bool, dry_run: bool,
             prolific_url: str | None, usd_rate: float | None = None) -> Iterator[tuple[Any, Any, Any]]:
    """(session, study, recruiter) for one subcommand."""
    with _session(db_url) as session:
        study = service.find_study(session, study_ref)
        yield session, study, _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run,
                                         prolific_url=prolific_url, usd_rate=usd_rate)


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
@click.option("--allow-low-pay", "allow_low_pay", default=None, metavar="REASON",
              help="Prolific: post below the platform's minimum hourly pay; the reason goes to the audit log.")
@click.option("--screen-out-pay", "screen_out_pay", type=str, default=None, metavar="USD",
              help="Prolific: pay this fixed amount (less than the reward) to who fails the headphone screen "
              "(a SCREENED_OUT completion code) instead of asking them to return.")
def open_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate, base_url, places, reward,
                 keywords, estimated_minutes, publish, countries, min_approval_rate, min_approved_hits, family,
                 allow_low_pay, screen_out_pay):
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
            rec = _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run, prolific_url=prolific_url,
                             usd_rate=usd_rate)
            if platform == "prolific":
                rec.allow_low_pay = allow_low_pay
                if screen_out_pay is not None:
                    money.to_minor(screen_out_pay, "--screen-out-pay")  # whole cents, or refused
                    rec.screen_out_usd = screen_out_pay
            if platform == "mturk":
                # lazy: the command table loads no Flask or SQLAlchemy until the command runs
                from study_server.recruit.mturk import Qualifications

                rec.qualifications = Qualifications(
                    countries=tuple(c.strip().upper() for c in countries.split(",") if c.strip()),
                    min_approval_rate=min_approval_rate, min_approved_hits=min_approved_hits or None)
            ids = service.open_posts(session, study, rec, settings, places=n, sandbox=not live, family=family,
                                     publish=publish)
            click.echo(f"posted {n} places on {platform}: {', '.join(ids)}")
            for link in getattr(rec, "links", []):
                click.echo(link)
    _run(go)


@recruit_group.command("status")
@_common
def status_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate):
    """Posts on the platform and places still needed."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url, usd_rate=usd_rate) as (session, study, rec):
            for row in rec.status():
                click.echo("  ".join(f"{k}={v}" for k, v in row.items()))
            click.echo(f"places still needed for the quotas: {service.places_needed(session, study)}")
    _run(go)


@recruit_group.command("sync")
@_common
@click.option("--base-url", envvar="EMOSTUDY_PUBLIC_URL", default=None, help="Needed to post more places.")
@click.option("--policy", type=click.Choice([service.REJECT_POLICY, service.APPROVE_POLICY]),
              default=service.REJECT_POLICY, help="What to do with incomplete or inconsistent surveys.")
def sync_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate, base_url, policy):
    """Approve valid work, reject inconsistent work (or approve without bonus), queue the doubtful for a
    person, refill up to the quotas (unless closed)."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url, usd_rate=usd_rate) as (session, study, rec):
            stored = service.stored_settings(session, study, platform, sandbox=not live)
            settings = stored if stored is not None else (service.post_settings(study, base_url) if base_url else None)
            r = service.sync(session, study, rec, settings=settings, policy=policy, sandbox=not live, dry_run=dry_run)
            for call in r.planned_calls:
                click.echo(f"[dry-run] {call}")
            click.echo(f"approved {len(r.approved)}, approved without bonus {len(r.approved_without_bonus)}, "
                       f"rejected {len(r.rejected)}, to the review queue {len(r.queued)}, return requested "
                       f"{len(r.return_requested)}, read back {len(r.read_back)}, exclusions granted {r.granted}, "
                       f"expired {r.expired}; places needed {r.needed}, open {r.open_places}, newly posted "
                       f"{len(r.posted)}{' (closed: no posting)' if r.closed else ''}")
            if r.unknown:
                click.echo(f"no reply for {', '.join(r.unknown)}: the next sync reads what the platform did")
            if r.queued:
                click.echo("see `emostudy recruit review --study ... --platform ...`")
    _run(go)


@recruit_group.command("review")
@_common
@click.option("--approve", "approve_id", type=int, default=None, help="Approve review item ID.")
@click.option("--reject", "reject_id", type=int, default=None, help="Reject review item ID (needs --feedback).")
@click.option("--return", "return_id", type=int, default=None, help="Prolific: ask item ID's participant to return.")
@click.option("--dismiss", "dismiss_id", type=int, default=None, help="Close item ID without a platform call.")
@click.option("--feedback", default=None, help="What the worker reads.")
@click.option("--category", default=None, help="Prolific rejection category key: inconsistent, incomplete, "
              "no_code, too_quick, instructions, other.")
def review_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate, approve_id, reject_id,
                   return_id, dismiss_id, feedback, category):
    """The review queue: submissions nobody is rejected for automatically (unknown, duplicate, partial)."""
    def go():
        chosen = [(d, i) for d, i in (("approve", approve_id), ("reject", reject_id), ("return", return_id),
                                      ("dismiss", dismiss_id)) if i is not None]
        if len(chosen) > 1:
            raise click.UsageError("give one of --approve, --reject, --return, --dismiss")
        with _session(db_url) as session:
            study = service.find_study(session, study_ref)
            if not chosen:
                items = service.review_queue(session, study)
                for it in items:
                    click.echo(f"  #{it.id}  {it.platform}:{it.external_id}  worker {it.worker_id}  {it.reason}  "
                               f"{it.evidence}")
                click.echo(f"{len(items)} submission(s) waiting for a person")
                return
            decision, item_id = chosen[0]
            if dry_run:
                click.echo(f"[dry-run] {decision} review item {item_id}")
                return
            rec = _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run, prolific_url=prolific_url,
                             usd_rate=usd_rate)
            item = service.resolve_review(session, study, rec, item_id, decision, feedback=feedback,
                                          category=category)
            click.echo(f"review item {item.id}: {item.status}")
    _run(go)


@recruit_group.command("bonus")
@_common
@click.option("--mark-sent", "mark_sent", type=int, default=None, metavar="ID",
              help="A person checked the platform: ledger row ID was paid.")
@click.option("--mark-failed", "mark_failed", type=int, default=None, metavar="ID",
              help="A person checked the platform: ledger row ID was not paid (the next run pays it).")
@click.option("--note", default="", help="Why (kept in the audit log with --mark-sent/--mark-failed).")
def bonus_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate, mark_sent, mark_failed,
                  note):
    """Compute bonuses from the answers, show them, pay them (at most once)."""
    def go():
        with _session(db_url) as session:
            study = service.find_study(session, study_ref)
            if mark_sent is not None or mark_failed is not None:
                if mark_sent is not None and mark_failed is not None:
                    raise click.UsageError("give --mark-sent or --mark-failed, not both")
                row = ledger.mark_bonus(session, study, mark_sent if mark_sent is not None else mark_failed,
                                         "sent" if mark_sent is not None else "failed", note=note)
                click.echo(f"ledger row {row.id} ({row.worker_id}, ${money.fmt(row.amount_cents)}): {row.status}")
                return
            for row in ledger.ledger(session, study):
                if row.status != "sent" and row.platform == platform:
                    click.echo(f"  ledger #{row.id}  {row.worker_id}  ${money.fmt(row.amount_cents)}  {row.status}")
            unsettled = [u for u in ledger.unsettled(session, study) if u["platform"] == platform]
            if unsettled:
                click.echo(f"{len(unsettled)} payment(s) a person must settle (check {platform}, then run the command):")
                for u in unsettled:
                    click.echo(f"  {u['line']}")
            planned = [b for b in ledger.plan_bonuses(session, study) if b.platform == platform]
            total = sum(b.amount_cents for b in planned)
            for b in planned:
                click.echo(f"  {b.worker_id}  {b.n_correct}/{b.n_answers} correct  ${money.fmt(b.amount_cents)}")
            click.echo(f"{len(planned)} bonuses, ${money.fmt(total)} in all (already paid ones are skipped)")
            rec = _recruiter(session, study, platform, live=live, yes=yes, dry_run=dry_run, prolific_url=prolific_url,
                             usd_rate=usd_rate)
            confirm = None if yes else (lambda todo: click.confirm(f"pay {len(todo)} bonuses now?", default=False))
            r = ledger.pay_bonuses(session, study, rec, dry_run=dry_run, confirm=confirm)
            for call in r.planned_calls:
                click.echo(f"[dry-run] {call}")
            click.echo(f"paid {len(r.paid)}, already paid before {r.skipped_already_paid}, found paid on "
                       f"{platform} {len(r.reconciled_paid)}, failed {len(r.failed)}")
            for f in r.failed:
                click.echo(f"  failed: {f}")
            for c in r.claimed_elsewhere:
                click.echo(f"  skipped: {c} (another `recruit bonus` is paying it; it is not paid twice)")
            if r.waiting_for_approval:
                click.echo(f"  not yet approved on {platform} (run `emostudy recruit sync` first): "
                           f"{', '.join(r.waiting_for_approval)}")
    _run(go)


@recruit_group.command("close")
@_common
def close_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate):
    """Stop recruiting on the platform; `sync` keeps reviewing but never posts again."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url, usd_rate=usd_rate) as (session, study, rec):
            closed = service.close(session, study, rec, dry_run=dry_run, sandbox=not live)
            click.echo(("[dry-run] " if dry_run else "closed: ") + ", ".join(closed or ["nothing open"]))
    _run(go)


@recruit_group.command("notify")
@_common
@click.option("--worker", "workers", multiple=True, required=True, help="MTurk worker id (repeatable).")
@click.option("--subject", required=True)
@click.option("--message", required=True)
def notify_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate, workers, subject, message):
    """MTurk: send workers a message (NotifyWorkers), e.g. about a bonus."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url, usd_rate=usd_rate) as (session, study, rec):
            if dry_run:
                click.echo(f"[dry-run] notify {len(workers)} worker(s): {subject}")
                return
            failures = service.notify(session, study, rec, list(workers), subject, message)
            click.echo(f"notified {len(workers) - len(failures)} of {len(workers)}")
            for f in failures:
                click.echo(f"  not notified: {f.get('WorkerId')}: {f.get('NotifyWorkersFailureMessage')}")
    _run(go)


@recruit_group.command("block")
@_common
@click.option("--worker", required=True, help="MTurk worker id.")
@click.option("--reason", required=True, help="Kept by MTurk and in our audit log.")
def block_command(study_ref, platform, live, yes, dry_run, db_url, prolific_url, usd_rate, worker, reason):
    """MTurk: block a worker from all your HITs (CreateWorkerBlock). Only by this explicit command."""
    def go():
        with _context(study_ref, platform, db_url, live=live, yes=yes, dry_run=dry_run,
                      prolific_url=prolific_url, usd_rate=usd_rate) as (session, study, rec):
            if dry_run:
                click.echo(f"[dry-run] block {worker}: {reason}")
                return
            service.block(session, study, rec, worker, reason)
            click.echo(f"blocked {worker}")
    _run(go)
