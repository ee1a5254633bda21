"""The bonus ledger: bonuses computed from the answers (``plan_bonuses``) and paid at most once
(``pay_bonuses``): a payment whose outcome is not known is checked against the platform's own records
before anything is sent again; a person settles what the records cannot (``mark_bonus``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_server.recruit import LedgerError, OutcomeUnknown, PlatformError, RecruitError, money
from study_server.recruit.service import APPROVED_WORDS, audit, check_balance, plan_of
from study_server.store.models import (
    APPROVED,
    COMPLETED,
    SUBMITTED,
    VALID,
    Answer,
    Assignment,
    Item,
    Participant,
    Study,
    StudyStimulus,
    utcnow,
)
from study_server.store.recruitment import (
    BONUS_COMMITTED,
    BONUS_FAILED,
    BONUS_PAYING,
    BONUS_PLANNED,
    BONUS_SENT,
    BONUS_UNKNOWN,
    BonusPayment,
)
from study_server.study.platform_ids import ids_of

SUBMITTED_WORDS = ("Submitted", "AWAITING REVIEW")


@dataclass(frozen=True)
class PlannedBonus:
    assignment_id: int
    platform: str
    worker_id: str
    external_id: str
    n_correct: int
    n_answers: int
    amount_cents: int
    reason: str


def _correct(value: Any, labels: dict[str, Any], truth: str) -> bool:
    """Does an answer match the truth of the bonus rule (stimuli.spec.BONUS_TRUTHS)?"""
    if value is None:
        return False
    if truth == "target":
        return value == (labels.get("visual_emotion") or labels.get("audio_emotion"))
    if truth == "either":
        return value in {labels.get("visual_emotion"), labels.get("audio_emotion")} - {None}
    return value == labels.get(truth)


def bonus_rule_name(plan: dict[str, Any]) -> str:
    b = (plan.get("payment") or {}).get("bonus") or {}
    return f"{b.get('rule', 'none')}:{b.get('question', '')}:{b.get('truth', '')}:{b.get('amount_usd', 0)}"


def plan_bonuses(session: Session, study: Study) -> list[PlannedBonus]:
    """Bonuses of approved (valid) assignments by the plan's rule, computed from the stored answers."""
    plan = plan_of(study)
    rule = (plan.get("payment") or {}).get("bonus") or {}
    if rule.get("rule", "none") == "none":
        return []
    if rule.get("rule") != "per_correct":
        raise RecruitError(f"study {study.name!r}: unknown bonus rule {rule.get('rule')!r} (known: per_correct, none)")
    qid, truth = rule["question"], rule.get("truth", "visual_emotion")
    per = money.to_minor(rule.get("amount_usd", 0), f"study {study.name!r}: payment.bonus.amount_usd")
    cap = rule.get("max_usd")
    cap_cents = None if cap is None else money.to_minor(cap, f"study {study.name!r}: payment.bonus.max_usd")
    count_repeats = bool(rule.get("count_repeats", True))
    out: list[PlannedBonus] = []
    rows = session.execute(
        select(Assignment, Participant).join(Participant, Assignment.participant_id == Participant.id)
        .where(Assignment.study_id == study.id, Assignment.status.in_((APPROVED, COMPLETED, SUBMITTED)))
        .order_by(Assignment.id)).all()
    for a, p in rows:
        if a.verdict is None or a.verdict.verdict != VALID:
            continue
        answers = session.execute(
            select(Answer.values, Item.repeat_of, StudyStimulus.labels)
            .join(Item, Answer.item_id == Item.id).join(StudyStimulus, Item.stimulus_pk == StudyStimulus.id)
            .where(Answer.assignment_id == a.id)).all()
        n_correct = n = 0
        for values, repeat_of, labels in answers:
            if repeat_of is not None and not count_repeats:
                continue
            n += 1
            if _correct(values.get(qid), labels, truth):
                n_correct += 1
        cents = per * n_correct  # whole cents times a count: exact
        if cap_cents is not None:
            cents = min(cents, cap_cents)
        if cents <= 0:
            continue
        ext = paid_external_id(session, a, p.platform)
        out.append(PlannedBonus(a.id, p.platform, p.worker_id, ext or "", n_correct, n, cents,
                                f"Bonus: {n_correct} of {n} emotions identified correctly. Thank you!"))
    return out


def ledger_token(study: Study, assignment_id: int, rule: str) -> str:
    """Deterministic idempotency token of one (assignment, rule): the same on every re-run."""
    return hashlib.sha256(f"emostudy-bonus|{study.name}|{study.plan_sha256}|{assignment_id}|{rule}".encode()).hexdigest()


def paid_external_id(session: Session, a: Assignment, platform: str) -> str | None:
    """The platform id a bonus is paid on: the one approved on the platform (a worker may have used several:
    a returned second HIT keeps its own id), else one submitted there, else the latest when we approved the
    assignment ourselves; None while the work is not approved or submitted on the platform (run `sync`)."""
    if platform in ("mturk", "prolific"):
        ids = ids_of(session, a, platform)
        for wanted in (APPROVED_WORDS, SUBMITTED_WORDS):
            found = [k for k, v in ids.items() if v in wanted]
            if found:
                return found[0]
        if a.status != APPROVED:
            return None
    return a.external_assignment_id or a.prolific_session_id or a.token


@dataclass
class BonusReport:
    paid: list[int] = field(default_factory=list)  # BonusPayment ids
    skipped_already_paid: int = 0
    reconciled_paid: list[int] = field(default_factory=list)  # found paid in the platform's records
    failed: list[str] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    planned_calls: list[str] = field(default_factory=list)
    # Rows another live process is paying right now ("#id worker by host:pid since ..."): left to it.
    claimed_elsewhere: list[str] = field(default_factory=list)
    # Work not approved on the platform yet (run `recruit sync` first): no bonus is pinned to it.
    waiting_for_approval: list[str] = field(default_factory=list)


# A claim of a process on another machine older than this is taken for a crash (its records are read).
STALE_CLAIM = dt.timedelta(hours=1)


def claimant(run: str) -> str:
    """Who claims a row: host, process id and this run (a claim of an earlier run of this process is dead)."""
    return f"{socket.gethostname()}:{os.getpid()}:{run}"[:128]


def claim_alive(row: BonusPayment, run: str, now: dt.datetime | None = None) -> bool:
    """Is the process that claimed ``row`` still making its pay call? Same machine: is its process alive;
    another machine: is the claim younger than ``STALE_CLAIM``."""
    host, pid, owner_run = ((row.claimed_by or "").split(":") + ["", "", ""])[:3]
    if not host:
        return False
    if host != socket.gethostname():
        return row.claimed_at is not None and (now or utcnow()) - row.claimed_at < STALE_CLAIM
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return owner_run == run  # an earlier run of this very process died in the middle
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move(session: Session, row: BonusPayment, frm: tuple[str, ...], to: str, **values: Any) -> bool:
    """Change a row's status only if it is still in one of ``frm`` (a conditional update, committed): of two
    processes acting on one row, only one succeeds. The row is re-read either way."""
    result = session.execute(update(BonusPayment).where(BonusPayment.id == row.id, BonusPayment.status.in_(frm))
                             .values(status=to, **values).execution_options(synchronize_session=False))
    session.commit()
    session.refresh(row)
    return result.rowcount == 1


def _holder(row: BonusPayment) -> str:
    host, pid = ((row.claimed_by or "?").split(":") + ["?"])[:2]
    since = row.claimed_at.strftime("%Y-%m-%d %H:%M:%S UTC") if row.claimed_at else "an unknown time"
    return f"#{row.id} ({row.worker_id}) is being paid by process {pid} on {host} since {since}"


def platform_amount(recruiter: Any, cents_usd: int) -> tuple[str, int]:
    """(currency, whole minor units) the platform is paid in for ``cents_usd`` of the plan's USD."""
    if recruiter.platform == "prolific":
        currency = recruiter.currency()
        return currency, money.convert(cents_usd, currency, recruiter.usd_rate)
    return "USD", int(cents_usd)


def _reconcile_bonus(session: Session, study: Study, recruiter: Any, row: BonusPayment, actor: str) -> str:
    """Ask the platform what it paid on the row's work; returns the row's new status. Every change is
    conditional on the status the row was read in (another process may be reconciling it too)."""
    was, ext = row.status, row.external_id
    session.commit()  # no transaction held while the platform answers
    try:
        paid = recruiter.bonuses_paid(ext)
    except PlatformError as exc:
        _move(session, row, (was,), BONUS_UNKNOWN, response={**(row.response or {}), "check_error": str(exc)})
        return row.status
    minor = row.amount_minor if row.amount_minor is not None else row.amount_cents
    currency = row.currency or "USD"
    match = [p for p in paid if p.get("minor") == minor and (p.get("currency") or "USD") == currency
             and (p.get("reason") is None or p.get("reason") == row.reason[:1024])]
    unreadable = [p for p in paid if p.get("minor") is None]
    if match:
        if _move(session, row, (was,), BONUS_SENT, sent_at=row.sent_at or utcnow(),
                 response={**(row.response or {}), "reconciled": match[0]}):
            audit(session, actor, "recruit.bonus.reconciled", f"{row.platform}:{row.worker_id}",
                  {"ledger_id": row.id, "found_paid": True})
        return row.status
    if unreadable or (was != BONUS_FAILED and recruiter.platform == "prolific"):
        # Prolific pays bulk bonuses asynchronously (its records lag) and its pay call is not idempotent: a
        # payment whose outcome is unknown and that its records do not show yet is left for a person.
        _move(session, row, (was,), BONUS_UNKNOWN)
        return row.status
    if _move(session, row, (was,), BONUS_PLANNED, claimed_by=None, claimed_at=None):
        audit(session, actor, "recruit.bonus.reconciled", f"{row.platform}:{row.worker_id}",
              {"ledger_id": row.id, "found_paid": False, "was": was})
    return row.status


def pay_bonuses(session: Session, study: Study, recruiter: Any, *, dry_run: bool = False, actor: str = "cli",
                confirm: Callable[[list[PlannedBonus]], bool] | None = None) -> BonusReport:
    """Record this platform's planned bonuses in the ledger and pay those not yet paid, at most once.

    Each row is claimed right before its pay call (a conditional update ``planned -> paying`` with this
    process's id and the time): a second payer running at the same moment skips the claimed rows and says so.
    A row whose last call did not clearly succeed (paying of a dead process, committed, unknown, failed) is
    first checked against the platform's own records (MTurk ListBonusPayments of the assignment, Prolific's
    bonus records of the submission): found -> sent; not found -> paid again on MTurk (same
    UniqueRequestToken) or, on Prolific where the pay call is not idempotent and records lag, left unknown
    for a person (``--mark-sent/--mark-failed``). A claim is never taken over by paying.
    """
    plan = plan_of(study)
    rule = bonus_rule_name(plan)
    report = BonusReport()
    run = uuid.uuid4().hex[:12]
    me = claimant(run)
    all_planned = [pb for pb in plan_bonuses(session, study) if pb.platform == recruiter.platform]
    report.waiting_for_approval = [f"{pb.worker_id}" for pb in all_planned if not pb.external_id]
    planned = [pb for pb in all_planned if pb.external_id]
    existing = {b.assignment_id: b for b in session.scalars(
        select(BonusPayment).join(Assignment).where(Assignment.study_id == study.id, BonusPayment.rule == rule,
                                                    BonusPayment.platform == recruiter.platform))}
    todo = [pb for pb in planned if pb.assignment_id not in existing or existing[pb.assignment_id].status != BONUS_SENT]
    report.skipped_already_paid = sum(1 for b in existing.values() if b.status == BONUS_SENT)
    if dry_run:
        report.planned_calls = [f"bonus ${money.fmt(pb.amount_cents)} to {pb.platform}:{pb.worker_id} "
                                f"({pb.external_id})" for pb in todo]
        return report
    if pb_lab := [pb for pb in todo if pb.platform == "lab"]:
        todo = [pb for pb in todo if pb.platform != "lab"]  # lab links pay no money here
        for pb in pb_lab:
            _ledger_row(session, study, pb, rule, existing, ("USD", pb.amount_cents))
    if confirm is not None and todo and not confirm(todo):
        return report
    rows = [(pb, _ledger_row(session, study, pb, rule, existing, platform_amount(recruiter, pb.amount_cents)))
            for pb in todo]
    rechecked: set[int] = set()  # rows an earlier run had called (their records were read first)
    for pb, row in rows:
        session.refresh(row)
        if row.status == BONUS_PAYING and claim_alive(row, run):
            report.claimed_elsewhere.append(_holder(row))
            continue
        if row.status in (BONUS_PLANNED, BONUS_FAILED) and pb.external_id != row.external_id:
            # The bonus follows the work that was approved (a worker may have returned a later HIT).
            _move(session, row, (row.status,), row.status, external_id=pb.external_id)
        if row.status in (BONUS_PAYING, BONUS_COMMITTED, BONUS_UNKNOWN, BONUS_FAILED):
            rechecked.add(row.id)
            status = _reconcile_bonus(session, study, recruiter, row, actor)
            if status == BONUS_SENT:
                report.reconciled_paid.append(row.id)
            elif status == BONUS_UNKNOWN:
                report.unknown.append(row.id)
            elif status == BONUS_PAYING:
                report.claimed_elsewhere.append(_holder(row))
    to_pay = [(pb, row) for pb, row in rows if row.status == BONUS_PLANNED]
    if to_pay:
        check_balance(recruiter, sum(row.amount_cents for _, row in to_pay) / 100, f"{len(to_pay)} bonuses")
    for pb, row in to_pay:
        now = utcnow()
        if not _move(session, row, (BONUS_PLANNED,), BONUS_PAYING, claimed_by=me, claimed_at=now, committed_at=now):
            if row.status == BONUS_SENT:
                report.skipped_already_paid += 1
            else:
                report.claimed_elsewhere.append(_holder(row))
            continue
        ext, minor, reason, token = row.external_id, row.amount_minor, row.reason, row.token
        audit(session, actor, "recruit.bonus", f"{pb.platform}:{pb.worker_id}",
              {"amount_cents": row.amount_cents, "currency": row.currency, "amount_minor": minor,
               "token": token, "assignment": ext, "ledger_id": row.id, "claimed_by": me})
        # No database access from the commit above until the reply: no transaction (on SQLite no write lock)
        # is held while the platform answers.
        try:
            resp = recruiter.bonus(pb.worker_id, ext, minor, reason, token)
        except OutcomeUnknown as exc:
            _move(session, row, (BONUS_PAYING,), BONUS_UNKNOWN, response={"error": str(exc)})
            report.unknown.append(row.id)
            continue
        except PlatformError as exc:
            _move(session, row, (BONUS_PAYING,), BONUS_FAILED, response={"error": str(exc)})
            report.failed.append(str(exc))
            continue
        _move(session, row, (BONUS_PAYING,), BONUS_SENT, sent_at=utcnow(), response=resp or {})
        # MTurk's "token already processed" on a row an earlier run had called: that call paid it (not this run);
        # on a first call it is botocore's own retry of this call.
        earlier = (resp or {}).get("duplicate") and row.id in rechecked
        (report.reconciled_paid if earlier else report.paid).append(row.id)
    if report.unknown:
        lines = "\n".join(f"  {u['line']}" for u in unsettled(session, study) if u["id"] in set(report.unknown))
        raise LedgerError(f"{len(set(report.unknown))} bonus payment(s) have an unknown outcome that "
                          f"{recruiter.platform}'s records do not settle:\n{lines}\ncheck each on {recruiter.platform} "
                          "and settle it with the command shown (then run bonus again)")
    return report


def _ledger_row(session: Session, study: Study, pb: PlannedBonus, rule: str, existing: dict[int, BonusPayment],
                amount: tuple[str, int]) -> BonusPayment:
    """The ledger row of one (assignment, rule), made once: a second process making it at the same moment
    gets the first one's row (the unique (assignment, rule) and token decide)."""
    row = existing.get(pb.assignment_id)
    if row is None:
        currency, minor = amount
        row = BonusPayment(assignment_id=pb.assignment_id, rule=rule, platform=pb.platform, worker_id=pb.worker_id,
                           amount_cents=pb.amount_cents, token=ledger_token(study, pb.assignment_id, rule),
                           status=BONUS_PLANNED, reason=pb.reason, response={}, external_id=pb.external_id,
                           currency=currency, amount_minor=minor)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            row = session.scalar(select(BonusPayment).where(BonusPayment.assignment_id == pb.assignment_id,
                                                            BonusPayment.rule == rule))
            if row is None:
                raise
        existing[pb.assignment_id] = row
    elif row.amount_minor is None and row.status in (BONUS_PLANNED, BONUS_FAILED):
        currency, minor = amount  # a row of an older release (nothing paid): its platform amount, fixed once
        _move(session, row, (row.status,), row.status, currency=currency, amount_minor=minor)
    if row.external_id is None:
        _move(session, row, (row.status,), row.status, external_id=pb.external_id)
    return row


def unsettled(session: Session, study: Study) -> list[dict[str, Any]]:
    """Payments a person must settle (unknown outcome, or a claim whose process is gone), for the CLI and the
    admin page: ledger id, worker pseudonym, amount, status and the command that settles it."""
    rows = session.execute(
        select(BonusPayment, Participant.pseudonym).join(Assignment, BonusPayment.assignment_id == Assignment.id)
        .join(Participant, Assignment.participant_id == Participant.id)
        .where(Assignment.study_id == study.id,
               BonusPayment.status.in_((BONUS_UNKNOWN, BONUS_PAYING, BONUS_COMMITTED)))
        .order_by(BonusPayment.id)).all()
    out = []
    for b, pseudonym in rows:
        if b.status == BONUS_PAYING and claim_alive(b, run=""):
            continue  # being paid right now by a live process: nothing to settle
        currency = b.currency or "USD"
        minor = b.amount_minor if b.amount_minor is not None else b.amount_cents
        amount = f"{money.fmt(minor)} {currency}"
        command = (f"emostudy recruit bonus --study {study.name} --platform {b.platform} --mark-sent {b.id}  "
                   f"(or --mark-failed {b.id} when {b.platform} shows no such payment)")
        out.append({"id": b.id, "pseudonym": pseudonym, "platform": b.platform, "work": b.external_id,
                    "amount": amount, "status": b.status, "command": command,
                    "since": b.committed_at.isoformat() if b.committed_at else None,
                    "line": f"#{b.id}  participant {pseudonym}  {amount}  {b.status}  ->  {command}"})
    return out


def mark_bonus(session: Session, study: Study, ledger_id: int, outcome: str, *, note: str = "",
               actor: str = "cli") -> BonusPayment:
    """A person's decision on a payment after checking the platform: ``sent`` or ``failed``. Audited."""
    row = session.get(BonusPayment, ledger_id)
    if row is None or session.get(Assignment, row.assignment_id).study_id != study.id:
        raise RecruitError(f"no bonus ledger row {ledger_id} in study {study.name!r}; "
                           "`emostudy recruit bonus --dry-run` lists the ledger")
    if outcome not in (BONUS_SENT, BONUS_FAILED):
        raise RecruitError(f"a payment is marked sent or failed, not {outcome!r}")
    if row.status == BONUS_SENT and outcome == BONUS_FAILED:
        raise RecruitError(f"ledger row {ledger_id} is recorded as sent; it cannot be marked failed")
    audit(session, actor, f"recruit.bonus.mark_{outcome}", f"{row.platform}:{row.worker_id}",
          {"ledger_id": row.id, "was": row.status, "amount_cents": row.amount_cents, "note": note})
    row.status = outcome
    if outcome == BONUS_SENT:
        row.sent_at = row.sent_at or utcnow()
    row.response = {**(row.response or {}), "marked_by": actor, "note": note}
    session.commit()
    return row


def ledger(session: Session, study: Study) -> list[BonusPayment]:
    return list(session.scalars(select(BonusPayment).join(Assignment).where(Assignment.study_id == study.id)
                                .order_by(BonusPayment.id)))
