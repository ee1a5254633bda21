"""Recruitment decisions from our database, carried out through a recruiter.

``sync`` is safe to run at any time (cron): it grants the exclusion qualification to workers who took
part, approves valid submissions, rejects incomplete or inconsistent ones (or approves them without a
bonus, by policy), expires idle assignments and posts more places until every batch can reach its quota
of valid participants. ``plan_bonuses`` computes bonuses from the answers; ``pay_bonuses`` pays them
through the ledger, never twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.models import (ACTIVE, APPROVED, COMPLETED, FINISHED, REJECTED, SUBMITTED, VALID, Answer,
                                 Assignment, AuditLog, Batch, Item, Participant, Study, StudyStimulus, utcnow)
from study_server.recruit import LedgerError, PlatformError, RecruitError
from study_server.recruit.base import PostSettings, Submission
from study_server.recruit.models import (BONUS_COMMITTED, BONUS_FAILED, BONUS_PLANNED, BONUS_SENT, BonusPayment,
                                         ExclusionQualification, QualificationGrant, RecruitPost)
from study_server.studies import participant_text

REJECT_POLICY, APPROVE_POLICY = "reject", "approve-without-bonus"
FEEDBACK_INCOMPLETE = ("Thank you for your time. We could not accept this assignment because the survey was not "
                       "completed (some videos were not answered), as stated in the instructions.")
FEEDBACK_INCONSISTENT = ("Thank you for your time. We could not accept this assignment because too many answers to "
                         "the repeated videos contradicted each other, which the instructions said would be checked.")
FEEDBACK_UNKNOWN = ("We have no record of a survey completed for this assignment in our study; please contact us "
                    "if you believe this is an error.")


def find_study(session: Session, ref: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == ref))
    if study is None and ref.isdigit():
        study = session.get(Study, int(ref))
    if study is None:
        names = ", ".join(session.scalars(select(Study.name).order_by(Study.id))) or "none imported yet"
        raise RecruitError(f"no study {ref!r} in the database (studies: {names}); import one with "
                           "`emostudy study import PLAN --set SET`")
    return study


def plan_of(study: Study) -> dict[str, Any]:
    return json.loads(study.plan_json)


def post_settings(study: Study, base_url: str, **overrides: Any) -> PostSettings:
    """Title, description and reward from the plan (the participant's title and intro, never the
    researcher's description); the participant URL from ``base_url``."""
    plan = plan_of(study)
    text = participant_text(plan)
    reward = float((plan.get("payment") or {}).get("reward_usd", 0) or 0)
    url = base_url.rstrip("/") + f"/s/{study.name}"
    values: dict[str, Any] = {"title": text["title"], "study_url": url, "reward_usd": reward,
                              "description": (text["intro"] or text["title"])[:2000]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return PostSettings(**values)


def audit(session: Session, actor: str, action: str, target: str | None, details: dict[str, Any]) -> None:
    """Write the audit record and commit it, before the call it announces is made."""
    session.add(AuditLog(actor=actor, action=action, target=target, details=details))
    session.commit()


# -- posting ---------------------------------------------------------------------------------------
def places_needed(session: Session, study: Study) -> int:
    """Places still to fill: per batch, quota minus (valid finished + active), never below zero."""
    from study_server.assignment import occupancy

    occ = occupancy(session, study.id)
    quotas = dict(session.execute(select(Batch.id, Batch.quota).where(Batch.study_id == study.id)).all())
    return sum(max(0, quotas[b] - occ.get(b, 0)) for b in quotas)


def exclusion_qualification(session: Session, recruiter: Any, family: str, sandbox: bool, *,
                            create: bool) -> ExclusionQualification | None:
    row = session.scalar(select(ExclusionQualification).where(ExclusionQualification.family == family,
                                                              ExclusionQualification.sandbox == sandbox))
    if row is None and create:
        qid = recruiter.create_exclusion_qualification(family)
        row = ExclusionQualification(family=family, sandbox=sandbox, qualification_type_id=qid)
        session.add(row)
        session.commit()
    return row


def open_posts(session: Session, study: Study, recruiter: Any, settings: PostSettings, *, places: int | None = None,
               sandbox: bool = True, actor: str = "cli", family: str | None = None) -> list[str]:
    """Post the study. MTurk: exclusion qualifications first (this study's family, excluded families)."""
    places = places_needed(session, study) if places is None else int(places)
    if places <= 0:
        raise RecruitError(f"study {study.name!r} needs no more participants (every batch is at its quota)")
    details: dict[str, Any] = {"places": places, "sandbox": sandbox, "reward_usd": settings.reward_usd}
    if recruiter.platform == "mturk":
        exclude_ids = []
        for other in plan_of(study).get("study", {}).get("exclude_studies") or []:
            q = exclusion_qualification(session, recruiter, other, sandbox, create=True)
            exclude_ids.append(q.qualification_type_id)
        family = family or study.name
        exclusion_qualification(session, recruiter, family, sandbox, create=True)
        details["family"] = family
        recruiter.qualifications = type(recruiter.qualifications)(
            **{**recruiter.qualifications.__dict__, "exclude_qualification_ids": tuple(exclude_ids)})
        recruiter.request_token_prefix = f"emostudy-{study.name}-{study.plan_sha256[:8]}-"
        details["exclude_qualifications"] = exclude_ids
    audit(session, actor, f"recruit.open.{recruiter.platform}", study.name, details)
    ids = recruiter.open(settings, places)
    _record_posts(session, study, recruiter, ids, places, sandbox=sandbox,
                  details={"reward_usd": settings.reward_usd, "family": details.get("family")})
    return ids


def _record_posts(session: Session, study: Study, recruiter: Any, ids: list[str], places: int, *, sandbox: bool,
                  details: dict[str, Any]) -> None:
    """One RecruitPost per new HIT / Prolific study / batch of lab links, with the places each holds."""
    from study_server.recruit.mturk import hit_sizes

    sizes = hit_sizes(places) if recruiter.platform == "mturk" else [places] * len(ids)
    for pid, n in zip(ids, sizes, strict=True):
        session.add(RecruitPost(study_id=study.id, platform=recruiter.platform, sandbox=sandbox, external_id=pid,
                                type_id=getattr(recruiter, "hit_type_id", None), places=n, details=details))
    session.commit()


def posts(session: Session, study: Study, platform: str, *, open_only: bool = True) -> list[RecruitPost]:
    q = select(RecruitPost).where(RecruitPost.study_id == study.id, RecruitPost.platform == platform)
    if open_only:
        q = q.where(RecruitPost.status == "open")
    return list(session.scalars(q.order_by(RecruitPost.id)))


# -- review -----------------------------------------------------------------------------------------
@dataclass
class SyncReport:
    granted: int = 0
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    approved_without_bonus: list[str] = field(default_factory=list)
    expired: int = 0
    needed: int = 0
    open_places: int = 0
    posted: list[str] = field(default_factory=list)
    planned_calls: list[str] = field(default_factory=list)  # dry run: what would be done


def _assignment_for(session: Session, study: Study, sub: Submission) -> Assignment | None:
    q = select(Assignment).join(Participant).where(Assignment.study_id == study.id,
                                                   Participant.platform == sub.platform)
    if sub.platform == "mturk":
        q = q.where(Assignment.external_assignment_id == sub.external_id)
    elif sub.platform == "prolific":
        q = q.where(Participant.worker_id == sub.worker_id)
    else:
        q = q.where(Assignment.token == sub.external_id)
    return session.scalar(q.limit(1))


def decide(assignment: Assignment | None, policy: str = REJECT_POLICY) -> tuple[str, str | None]:
    """('approve' | 'reject' | 'approve-without-bonus', feedback) for a submission."""
    if assignment is None:
        return ("reject", FEEDBACK_UNKNOWN)
    verdict = assignment.verdict.verdict if assignment.verdict is not None else None
    if assignment.status in FINISHED and verdict == VALID:
        return ("approve", None)
    feedback = FEEDBACK_INCONSISTENT if verdict is not None else FEEDBACK_INCOMPLETE
    return ("approve-without-bonus", feedback) if policy == APPROVE_POLICY else ("reject", feedback)


def sync(session: Session, study: Study, recruiter: Any, *, settings: PostSettings | None = None,
         policy: str = REJECT_POLICY, sandbox: bool = True, dry_run: bool = False, actor: str = "cli",
         timeout_s: float = 1800, family: str | None = None) -> SyncReport:
    from study_server.assignment import expire_stale

    report = SyncReport()
    if recruiter.platform == "mturk":
        family = family or _posted_family(session, study) or study.name
        report.granted = _grant_exclusions(session, study, recruiter, family, sandbox, dry_run, report, actor)
    for sub in recruiter.review():
        a = _assignment_for(session, study, sub)
        action, feedback = decide(a, policy)
        target = f"{sub.platform}:{sub.external_id}"
        if dry_run:
            report.planned_calls.append(f"{action} {target}" + (f" ({feedback[:40]}...)" if feedback else ""))
            continue
        audit(session, actor, f"recruit.{action}", target, {"study": study.name, "worker": sub.worker_id,
                                                             "feedback": feedback})
        if action == "reject":
            recruiter.reject(sub, feedback or FEEDBACK_INCOMPLETE)
            report.rejected.append(sub.external_id)
        else:
            recruiter.approve(sub, None)
            (report.approved if action == "approve" else report.approved_without_bonus).append(sub.external_id)
        if a is not None:
            a.status = REJECTED if action == "reject" else APPROVED
            a.submitted_at = a.submitted_at or utcnow()
            a.reviewed_at = utcnow()
        session.commit()
    if not dry_run:
        report.expired = expire_stale(session, study.id, timeout_s)
        session.commit()
    report.needed = places_needed(session, study)
    statuses = recruiter.status() if recruiter.platform != "lab" else []
    report.open_places = sum(int(s.get("available") or 0) + int(s.get("pending") or 0) for s in statuses)
    shortfall = report.needed - report.open_places
    if shortfall > 0 and settings is not None and recruiter.platform != "lab":
        if dry_run:
            report.planned_calls.append(f"post {shortfall} more places on {recruiter.platform}")
        else:
            audit(session, actor, f"recruit.extend.{recruiter.platform}", study.name, {"places": shortfall})
            new_ids = recruiter.extend(settings, shortfall)
            if recruiter.platform == "mturk":  # Prolific adds places to its one study: no new post
                _record_posts(session, study, recruiter, new_ids, shortfall, sandbox=sandbox,
                              details={"reward_usd": settings.reward_usd, "family": family})
            report.posted = new_ids
    return report


def _posted_family(session: Session, study: Study) -> str | None:
    """The exclusion family chosen when the study was posted on MTurk."""
    for post in reversed(posts(session, study, "mturk", open_only=False)):
        if (post.details or {}).get("family"):
            return post.details["family"]
    return None


def _grant_exclusions(session: Session, study: Study, recruiter: Any, family: str, sandbox: bool, dry_run: bool,
                      report: SyncReport, actor: str) -> int:
    qual = exclusion_qualification(session, recruiter, family, sandbox, create=not dry_run)
    workers = sorted(set(session.scalars(
        select(Participant.worker_id).join(Assignment, Assignment.participant_id == Participant.id)
        .where(Assignment.study_id == study.id, Participant.platform == "mturk"))))
    if qual is None:
        report.planned_calls.extend(f"grant exclusion of family {family!r} to {w}" for w in workers)
        return 0
    done = set(session.scalars(select(QualificationGrant.worker_id)
                               .where(QualificationGrant.qualification_id == qual.id)))
    n = 0
    for w in workers:
        if w in done:
            continue
        if dry_run:
            report.planned_calls.append(f"grant exclusion of family {family!r} to {w}")
            continue
        audit(session, actor, "recruit.grant_exclusion", f"mturk:{w}", {"family": family})
        recruiter.grant(qual.qualification_type_id, w)
        session.add(QualificationGrant(qualification_id=qual.id, worker_id=w))
        session.commit()
        n += 1
    return n


# -- bonuses ----------------------------------------------------------------------------------------
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
        ext = a.external_assignment_id or a.prolific_session_id or a.token
        out.append(PlannedBonus(a.id, p.platform, p.worker_id, ext, n_correct, n, cents,
                                f"Bonus: {n_correct} of {n} emotions identified correctly. Thank you!"))
    return out


def ledger_token(study: Study, assignment_id: int, rule: str) -> str:
    """Deterministic idempotency token of one (assignment, rule): the same on every re-run."""
    return hashlib.sha256(f"emostudy-bonus|{study.name}|{study.plan_sha256}|{assignment_id}|{rule}".encode()).hexdigest()


@dataclass
class BonusReport:
    paid: list[int] = field(default_factory=list)  # BonusPayment ids
    skipped_already_paid: int = 0
    failed: list[str] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    planned_calls: list[str] = field(default_factory=list)


def pay_bonuses(session: Session, study: Study, recruiter: Any, *, dry_run: bool = False, actor: str = "cli",
                confirm: Callable[[list[PlannedBonus]], bool] | None = None) -> BonusReport:
    """Record planned bonuses in the ledger and pay those not yet paid.

    MTurk: a row left ``committed`` by a crash is retried with the same UniqueRequestToken (MTurk refuses a
    second payment with that token). Prolific: its pay call is not idempotent, so a ``committed`` row is
    never retried automatically: it is reported (``LedgerError``) for a person to check on Prolific.
    """
    plan = plan_of(study)
    rule = bonus_rule_name(plan)
    report = BonusReport()
    planned = plan_bonuses(session, study)
    existing = {b.assignment_id: b for b in session.scalars(
        select(BonusPayment).join(Assignment).where(Assignment.study_id == study.id, BonusPayment.rule == rule))}
    todo = [pb for pb in planned if pb.assignment_id not in existing
            or existing[pb.assignment_id].status in (BONUS_PLANNED, BONUS_FAILED, BONUS_COMMITTED)]
    report.skipped_already_paid = sum(1 for b in existing.values() if b.status == BONUS_SENT)
    if dry_run:
        report.planned_calls = [f"bonus ${pb.amount_cents / 100:.2f} to {pb.platform}:{pb.worker_id} "
                                f"({pb.external_id})" for pb in todo]
        return report
    if confirm is not None and todo and not confirm(todo):
        return report
    for pb in todo:
        row = existing.get(pb.assignment_id)
        if row is None:
            row = BonusPayment(assignment_id=pb.assignment_id, rule=rule, platform=pb.platform, worker_id=pb.worker_id,
                               amount_cents=pb.amount_cents, token=ledger_token(study, pb.assignment_id, rule),
                               status=BONUS_PLANNED, reason=pb.reason, response={})
            session.add(row)
            session.commit()
        if row.status == BONUS_COMMITTED and pb.platform != "mturk":
            report.unknown.append(row.id)
            continue
        if pb.platform == "lab":
            continue  # lab links pay no money here: the ledger lists what to pay by hand
        audit(session, actor, "recruit.bonus", f"{pb.platform}:{pb.worker_id}",
              {"amount_cents": row.amount_cents, "token": row.token, "assignment": pb.external_id})
        row.status = BONUS_COMMITTED
        session.commit()
        try:
            resp = recruiter.bonus(pb.worker_id, pb.external_id, row.amount_cents / 100, row.reason, row.token)
        except PlatformError as exc:
            row.status = BONUS_FAILED
            row.response = {"error": str(exc)}
            session.commit()
            report.failed.append(str(exc))
            continue
        row.status, row.sent_at, row.response = BONUS_SENT, utcnow(), resp or {}
        session.commit()
        report.paid.append(row.id)
    if report.unknown:
        raise LedgerError(f"{len(report.unknown)} bonus payment(s) were being paid when a previous run stopped "
                          f"(ledger ids {report.unknown}); check them on {recruiter.platform} and mark them with "
                          "`emostudy recruit bonus --mark-sent ID` or `--mark-failed ID` before paying again")
    return report


def close(session: Session, study: Study, recruiter: Any, *, actor: str = "cli", dry_run: bool = False) -> list[str]:
    open_ = posts(session, study, recruiter.platform)
    if dry_run:
        return [f"close {recruiter.platform}:{p.external_id}" for p in open_]
    audit(session, actor, f"recruit.close.{recruiter.platform}", study.name, {"posts": [p.external_id for p in open_]})
    recruiter.close()
    for p in open_:
        p.status = "closed"
    session.commit()
    return [p.external_id for p in open_]


def recruitment_summary(session: Session, study: Study) -> dict[str, Any]:
    """What the admin pages show: the posts on each platform and the bonus ledger (JSON-ready)."""
    rows = [{"platform": p.platform, "id": p.external_id, "places": p.places, "status": p.status,
             "sandbox": p.sandbox, "created_at": p.created_at.isoformat() if p.created_at else None}
            for p in posts(session, study, "mturk", open_only=False) + posts(session, study, "prolific", open_only=False)
            + posts(session, study, "lab", open_only=False)]
    ledger: dict[str, dict[str, Any]] = {}
    for b in session.scalars(select(BonusPayment).join(Assignment).where(Assignment.study_id == study.id)):
        entry = ledger.setdefault(b.status, {"n": 0, "usd": 0.0})
        entry["n"] += 1
        entry["usd"] = round(entry["usd"] + b.amount_cents / 100, 2)
    return {"posts": rows, "places_needed": places_needed(session, study), "bonus_ledger": ledger}
