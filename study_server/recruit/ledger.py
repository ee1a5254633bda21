"""The bonus ledger: bonuses computed from the answers (``plan_bonuses``) and paid at most once
(``pay_bonuses``): a payment whose outcome is not known is checked against the platform's own records
before anything is sent again; a person settles what the records cannot (``mark_bonus``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.recruit import LedgerError, OutcomeUnknown, PlatformError, RecruitError
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
    BONUS_PLANNED,
    BONUS_SENT,
    BONUS_UNKNOWN,
    BonusPayment,
)
from study_server.study.platform_ids import ids_of


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
    per = Decimal(str(rule.get("amount_usd", 0)))
    cap = rule.get("max_usd")
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
        amount = per * n_correct
        if cap is not None:
            amount = min(amount, Decimal(str(cap)))
        cents = int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
        if cents <= 0:
            continue
        ext = paid_external_id(session, a, p.platform)
        out.append(PlannedBonus(a.id, p.platform, p.worker_id, ext, n_correct, n, cents,
                                f"Bonus: {n_correct} of {n} emotions identified correctly. Thank you!"))
    return out


def ledger_token(study: Study, assignment_id: int, rule: str) -> str:
    """Deterministic idempotency token of one (assignment, rule): the same on every re-run."""
    return hashlib.sha256(f"emostudy-bonus|{study.name}|{study.plan_sha256}|{assignment_id}|{rule}".encode()).hexdigest()


def paid_external_id(session: Session, a: Assignment, platform: str) -> str:
    """The platform id a bonus is paid on: the one that was approved (a worker may have used several),
    else the latest."""
    if platform in ("mturk", "prolific"):
        ids = ids_of(session, a, platform)
        approved = [k for k, v in ids.items() if v in APPROVED_WORDS]
        if approved:
            return approved[0]
    return a.external_assignment_id or a.prolific_session_id or a.token


@dataclass
class BonusReport:
    paid: list[int] = field(default_factory=list)  # BonusPayment ids
    skipped_already_paid: int = 0
    reconciled_paid: list[int] = field(default_factory=list)  # found paid in the platform's records
    failed: list[str] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    planned_calls: list[str] = field(default_factory=list)


def _reconcile_bonus(session: Session, study: Study, recruiter: Any, row: BonusPayment, actor: str) -> str:
    """Ask the platform what it paid on the row's work; returns the row's new status."""
    try:
        paid = recruiter.bonuses_paid(row.external_id)
    except PlatformError as exc:
        row.response = {**(row.response or {}), "check_error": str(exc)}
        session.commit()
        return BONUS_UNKNOWN
    match = [p for p in paid if p.get("amount_cents") == row.amount_cents
             and (p.get("reason") is None or p.get("reason") == row.reason[:1024])]
    unreadable = [p for p in paid if p.get("amount_cents") is None]
    if match:
        row.status, row.sent_at = BONUS_SENT, row.sent_at or utcnow()
        row.response = {**(row.response or {}), "reconciled": match[0]}
        audit(session, actor, "recruit.bonus.reconciled", f"{row.platform}:{row.worker_id}",
              {"ledger_id": row.id, "found_paid": True})
        return BONUS_SENT
    if unreadable or (row.status != BONUS_FAILED and recruiter.platform == "prolific"):
        # Prolific pays bulk bonuses asynchronously and its pay call is not idempotent: a payment whose reply
        # was lost and that its records do not show yet is left for a person (--mark-sent / --mark-failed).
        row.status = BONUS_UNKNOWN
        session.commit()
        return BONUS_UNKNOWN
    audit(session, actor, "recruit.bonus.reconciled", f"{row.platform}:{row.worker_id}",
          {"ledger_id": row.id, "found_paid": False, "was": row.status})
    row.status = BONUS_PLANNED
    session.commit()
    return BONUS_PLANNED


def pay_bonuses(session: Session, study: Study, recruiter: Any, *, dry_run: bool = False, actor: str = "cli",
                confirm: Callable[[list[PlannedBonus]], bool] | None = None) -> BonusReport:
    """Record this platform's planned bonuses in the ledger and pay those not yet paid, at most once.

    A row whose last call did not clearly succeed (committed: a crash during the call; unknown: the reply
    was lost; failed: refused) is first checked against the platform's own records (MTurk
    ListBonusPayments of the assignment, Prolific's bonus records of the submission): found -> sent; not
    found -> paid now (MTurk, with the same UniqueRequestToken) or, on Prolific where the pay call is not
    idempotent and bonuses are paid asynchronously, left unknown for a person (``--mark-sent/--mark-failed``).
    """
    plan = plan_of(study)
    rule = bonus_rule_name(plan)
    report = BonusReport()
    planned = [pb for pb in plan_bonuses(session, study) if pb.platform == recruiter.platform]
    existing = {b.assignment_id: b for b in session.scalars(
        select(BonusPayment).join(Assignment).where(Assignment.study_id == study.id, BonusPayment.rule == rule,
                                                    BonusPayment.platform == recruiter.platform))}
    todo = [pb for pb in planned if pb.assignment_id not in existing or existing[pb.assignment_id].status != BONUS_SENT]
    report.skipped_already_paid = sum(1 for b in existing.values() if b.status == BONUS_SENT)
    if dry_run:
        report.planned_calls = [f"bonus ${pb.amount_cents / 100:.2f} to {pb.platform}:{pb.worker_id} "
                                f"({pb.external_id})" for pb in todo]
        return report
    if pb_lab := [pb for pb in todo if pb.platform == "lab"]:
        todo = [pb for pb in todo if pb.platform != "lab"]  # lab links pay no money here
        for pb in pb_lab:
            _ledger_row(session, study, pb, rule, existing)
    if confirm is not None and todo and not confirm(todo):
        return report
    rows = [(pb, _ledger_row(session, study, pb, rule, existing)) for pb in todo]
    for pb, row in rows:
        if row.status in (BONUS_COMMITTED, BONUS_UNKNOWN, BONUS_FAILED):
            status = _reconcile_bonus(session, study, recruiter, row, actor)
            if status == BONUS_SENT:
                report.reconciled_paid.append(row.id)
            elif status == BONUS_UNKNOWN:
                report.unknown.append(row.id)
    to_pay = [(pb, row) for pb, row in rows if row.status == BONUS_PLANNED]
    if to_pay:
        check_balance(recruiter, sum(row.amount_cents for _, row in to_pay) / 100, f"{len(to_pay)} bonuses")
    for pb, row in to_pay:
        audit(session, actor, "recruit.bonus", f"{pb.platform}:{pb.worker_id}",
              {"amount_cents": row.amount_cents, "token": row.token, "assignment": row.external_id,
               "ledger_id": row.id})
        row.status, row.committed_at = BONUS_COMMITTED, utcnow()
        session.commit()
        try:
            resp = recruiter.bonus(pb.worker_id, row.external_id, row.amount_cents / 100, row.reason, row.token)
        except OutcomeUnknown as exc:
            row.status, row.response = BONUS_UNKNOWN, {"error": str(exc)}
            session.commit()
            report.unknown.append(row.id)
            continue
        except PlatformError as exc:
            row.status, row.response = BONUS_FAILED, {"error": str(exc)}
            session.commit()
            report.failed.append(str(exc))
            continue
        row.status, row.sent_at, row.response = BONUS_SENT, utcnow(), resp or {}
        session.commit()
        report.paid.append(row.id)
    if report.unknown:
        raise LedgerError(f"{len(report.unknown)} bonus payment(s) have an unknown outcome that {recruiter.platform}'s "
                          f"records do not settle (ledger ids {sorted(set(report.unknown))}); check them on "
                          f"{recruiter.platform} and mark each with `emostudy recruit bonus --mark-sent ID` or "
                          "`--mark-failed ID` (then run bonus again)")
    return report


def _ledger_row(session: Session, study: Study, pb: PlannedBonus, rule: str,
                existing: dict[int, BonusPayment]) -> BonusPayment:
    row = existing.get(pb.assignment_id)
    if row is None:
        row = BonusPayment(assignment_id=pb.assignment_id, rule=rule, platform=pb.platform, worker_id=pb.worker_id,
                           amount_cents=pb.amount_cents, token=ledger_token(study, pb.assignment_id, rule),
                           status=BONUS_PLANNED, reason=pb.reason, response={}, external_id=pb.external_id)
        session.add(row)
        session.commit()
        existing[pb.assignment_id] = row
    elif row.external_id is None:
        row.external_id = pb.external_id
        session.commit()
    return row


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
