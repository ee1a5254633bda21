"""A researcher's decisions from the admin pages, each written to ``admin_decisions`` (who, when, what, why)
and to the audit log, shown on the study and participant pages and exported as decisions.csv.

- ``override_verdict``: a completed participant's verdict set to valid or rejected, with a reason. The
  verdict row keeps the consistency check's own result (``details["override"]``); counts, the quota and the
  export use the new verdict, and ``emostudy recruit sync`` approves or rejects on the platform from it.
- ``release_hold`` / ``extend_hold``: an arrival's place freed (``study.assignment.release_hold``), or its
  hold made to lapse later (``Assignment.hold_until``), with a reason.
- ``review_rows`` / ``decide_review``: the review queue of every channel. Platform submissions the
  recruitment code queued (unknown, duplicate, partial) are decided through ``recruit.service.resolve_review``
  (its audit-first ledger rules: approve, reject, ask to return, dismiss); lab and open-link participants
  have no platform review, so every completed one waits here to be approved, rejected or marked paid by hand.

Errors: ``DecisionError`` (a ``ValueError``) names what is missing or wrong and how to fix it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from study_server.recruit import RecruitError, mturk, prolific
from study_server.recruit import service as recruit_service
from study_server.recruit.lab import LabRecruiter
from study_server.store.models import (
    ALLOCATED,
    APPROVED,
    COMPLETED,
    INVALID,
    REJECTED,
    VALID,
    AdminDecision,
    Answer,
    Assignment,
    AuditLog,
    Participant,
    Study,
    Verdict,
    utcnow,
)
from study_server.store.recruitment import RecruitPost, ReviewItem
from study_server.study.assignment import release_hold as _release

VERDICT, HOLD, REVIEW = "verdict", "hold", "review"
PLATFORM_DECISIONS = ("approve", "reject", "return", "dismiss")
LAB_DECISIONS = ("approve", "reject", "paid")
OFF_PLATFORM = ("lab", "link")


class DecisionError(ValueError):
    """A decision cannot be made as asked (no reason given, nothing to override, unknown queue entry)."""


def _need_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("every decision needs a reason: write in a few words why (it is kept and exported)")
    return reason[:2000]


def _log(session: Session, *, actor: str, study_id: int, assignment_id: int | None, kind: str, action: str,
         reason: str, **details: Any) -> AdminDecision:
    row = AdminDecision(actor=actor, study_id=study_id, assignment_id=assignment_id, kind=kind, action=action,
                        reason=reason, details=details, at=utcnow())
    session.add(row)
    session.add(AuditLog(actor=actor, action=f"decision.{kind}",
                         target=f"assignment:{assignment_id}" if assignment_id else f"study:{study_id}",
                         details={"action": action, "reason": reason, **details}))
    return row


def override_verdict(session: Session, assignment: Assignment, verdict: str, reason: str, *, actor: str) -> AdminDecision:
    """Set a completed assignment's verdict to ``valid`` or ``rejected``; commit."""
    reason = _need_reason(reason)
    if verdict not in (VALID, INVALID):
        raise DecisionError(f"a verdict is {VALID!r} or {INVALID!r}, not {verdict!r}")
    row = assignment.verdict
    if row is None:
        raise DecisionError(f"assignment {assignment.id} has no verdict yet (the participant has not completed); "
                            "only a completed participant's verdict can be overridden")
    if row.verdict == verdict:
        raise DecisionError(f"assignment {assignment.id} is already {verdict}; nothing to change")
    before = row.verdict
    details = dict(row.details or {})
    details.setdefault("override", {"checked_verdict": before})
    details["override"].update({"verdict": verdict, "by": actor, "at": utcnow().isoformat(timespec="seconds")})
    row.verdict, row.details = verdict, details
    decision = _log(session, actor=actor, study_id=assignment.study_id, assignment_id=assignment.id, kind=VERDICT,
                    action=f"{before} -> {verdict}", reason=reason, platform_status=assignment.status)
    session.commit()
    return decision


def release_hold(session: Session, study_id: int, assignment_id: int, reason: str, *, actor: str) -> bool:
    """Free an arrival's held place; log the decision only when a hold was released. Commits."""
    reason = _need_reason(reason)
    released = _release(session, assignment_id)
    if released:
        _log(session, actor=actor, study_id=study_id, assignment_id=assignment_id, kind=HOLD, action="release",
             reason=reason)
        session.commit()
    return released


MAX_EXTEND_MIN = 240


def extend_hold(session: Session, assignment_id: int, minutes: int, reason: str, *, actor: str,
                hold_s: float | None, now: dt.datetime | None = None) -> dt.datetime:
    """Give an arrival that has not started more time: its hold lapses ``minutes`` after the later of now
    and when it would have lapsed (the inactivity timeout still applies). Returns the new lapse time; commits."""
    reason = _need_reason(reason)
    if not 1 <= minutes <= MAX_EXTEND_MIN:
        raise DecisionError(f"extend a hold by 1 to {MAX_EXTEND_MIN} minutes, not {minutes}")
    if hold_s is None:
        raise DecisionError("arrival holds are off (EMOSTUDY_ARRIVAL_HOLD_S=0): there is no hold to extend")
    a = session.get(Assignment, assignment_id)
    if a is None or a.status != ALLOCATED:
        raise DecisionError(f"assignment {assignment_id} is not an arrival hold any more (it started or was freed)")
    now = now or utcnow()
    lapses = max(a.allocated_at + dt.timedelta(seconds=hold_s), a.hold_until or a.allocated_at, now)
    until = lapses + dt.timedelta(minutes=minutes)
    done = session.execute(update(Assignment).where(Assignment.id == assignment_id, Assignment.status == ALLOCATED)
                           .values(hold_until=until).execution_options(synchronize_session=False))
    if not done.rowcount:
        session.rollback()
        raise DecisionError(f"assignment {assignment_id} started or was freed meanwhile; nothing changed")
    _log(session, actor=actor, study_id=a.study_id, assignment_id=a.id, kind=HOLD, action=f"extend {minutes} min",
         reason=reason, until=until.isoformat(timespec="seconds"))
    session.commit()
    return until


def decisions(session: Session, study_id: int, assignment_id: int | None = None, *, limit: int = 200) -> list[AdminDecision]:
    q = select(AdminDecision).where(AdminDecision.study_id == study_id)
    if assignment_id is not None:
        q = q.where(AdminDecision.assignment_id == assignment_id)
    return list(session.scalars(q.order_by(AdminDecision.at.desc(), AdminDecision.id.desc()).limit(limit)))


# ------------------------------------------------------------------------------------ the review queue

def _off_platform_waiting(study_id: int):  # noqa: ANN202 - a WHERE clause
    return (Assignment.study_id == study_id, Assignment.status == COMPLETED,
            Assignment.participant_id.in_(select(Participant.id).where(Participant.platform.in_(OFF_PLATFORM))))


def n_review_rows(session: Session, study: Study) -> int:
    """How many entries the review queue holds in all (``review_rows`` lists at most ``limit`` lab ones)."""
    return len(recruit_service.review_queue(session, study)) + int(session.scalar(
        select(func.count()).select_from(Assignment).where(*_off_platform_waiting(study.id))) or 0)


def review_rows(session: Session, study: Study, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Open queue entries of every channel, oldest first: platform submissions, then lab / link completions
    (the oldest ``limit`` of those)."""
    rows: list[dict[str, Any]] = []
    for item in recruit_service.review_queue(session, study):
        aid = (item.evidence or {}).get("assignment")
        pseudonym = session.scalar(select(Participant.pseudonym).join(
            Assignment, Assignment.participant_id == Participant.id).where(Assignment.id == aid)) if aid else None
        rows.append({"key": f"item-{item.id}", "item_id": item.id, "assignment_id": aid, "platform": item.platform,
                     "who": pseudonym or item.worker_id, "reason": item.reason, "since": item.created_at,
                     "verdict": (item.evidence or {}).get("verdict"), "answers": (item.evidence or {}).get("answers"),
                     "submission": item.external_id, "platform_status": (item.evidence or {}).get("platform_status"),
                     "decisions": PLATFORM_DECISIONS if item.platform == "prolific"
                     else tuple(d for d in PLATFORM_DECISIONS if d != "return")})
    listed = (select(Assignment.id).where(*_off_platform_waiting(study.id))
              .order_by(Assignment.completed_at, Assignment.id).limit(limit))
    n_answers = (select(Answer.assignment_id, func.count().label("n"))
                 .where(Answer.assignment_id.in_(listed.scalar_subquery())).group_by(Answer.assignment_id)).subquery()
    for a, platform, pseudonym, verdict, n in session.execute(
            select(Assignment, Participant.platform, Participant.pseudonym, Verdict.verdict,
                   func.coalesce(n_answers.c.n, 0))
            .join(Participant, Participant.id == Assignment.participant_id)
            .outerjoin(Verdict, Verdict.assignment_id == Assignment.id)
            .outerjoin(n_answers, n_answers.c.assignment_id == Assignment.id)
            .where(Assignment.id.in_(listed.scalar_subquery()))
            .order_by(Assignment.completed_at, Assignment.id)):
        rows.append({"key": f"assignment-{a.id}", "item_id": None, "assignment_id": a.id, "platform": platform,
                     "who": pseudonym, "reason": "completed; decide by hand",
                     "since": a.completed_at, "verdict": verdict, "answers": int(n), "decisions": LAB_DECISIONS,
                     "submission": None, "platform_status": None})
    return rows


RecruiterFactory = Callable[[Session, Study, str], Any]


def default_recruiter(session: Session, study: Study, platform: str) -> Any:
    """The recruiter that carries out a queued platform decision (the same clients as ``emostudy recruit``).

    Live MTurk is refused here (it pays real money and asks for a typed confirmation on the command line)."""
    if platform in OFF_PLATFORM:
        return LabRecruiter(session, study)
    known = list(session.scalars(select(RecruitPost).where(RecruitPost.study_id == study.id,
                                                             RecruitPost.platform == platform)
                                 .order_by(RecruitPost.id)))
    if platform == "mturk":
        if any(not p.sandbox for p in known):
            raise RecruitError("live MTurk decisions are made on the command line, which asks for a confirmation: "
                               f"emostudy recruit review --study {study.name} --platform mturk --live --approve ID")
        return mturk.MTurkRecruiter(mturk.make_client(live=False), hit_ids=[p.external_id for p in known])
    if platform == "prolific":
        return prolific.ProlificRecruiter(token=prolific.token_from_env(),
                                          study_id=known[-1].external_id if known else None,
                                          completion_code=study.completion_code)
    raise RecruitError(f"no recruiter for platform {platform!r}")


def decide_review(session: Session, study: Study, key: str, decision: str, reason: str, *, actor: str,
                  recruiter_for: RecruiterFactory = default_recruiter) -> AdminDecision:
    """Carry out a decision on the queue entry ``key`` (``item-N`` or ``assignment-N``); commit."""
    reason = _need_reason(reason)
    kind, _, number = key.partition("-")
    if not number.isdigit() or kind not in ("item", "assignment") or not 0 < int(number) < 2 ** 31:
        raise DecisionError(f"unknown review queue entry {key!r}")
    if kind == "item":
        item = session.get(ReviewItem, int(number))
        if item is None or item.study_id != study.id:
            raise DecisionError(f"no review queue entry {key} in study {study.name!r}")
        if decision not in PLATFORM_DECISIONS:
            raise DecisionError(f"a platform submission is decided with {', '.join(PLATFORM_DECISIONS)}, not {decision!r}")
        recruiter = recruiter_for(session, study, item.platform)
        # the recruitment code writes its audit row before the platform call and records the outcome after it
        recruit_service.resolve_review(session, study, recruiter, item.id, decision, actor=actor,
                                       feedback=reason if decision == "reject" else None,
                                       category="other" if decision == "reject" else None)
        aid = (item.evidence or {}).get("assignment")
        row = _log(session, actor=actor, study_id=study.id, assignment_id=aid, kind=REVIEW, action=decision,
                   reason=reason, platform=item.platform, item=item.id, status=item.status)
        session.commit()
        return row
    a = session.get(Assignment, int(number))
    if a is None or a.study_id != study.id:
        raise DecisionError(f"no review queue entry {key} in study {study.name!r}")
    platform = session.scalar(select(Participant.platform).where(Participant.id == a.participant_id))
    if platform not in OFF_PLATFORM or (a.status != COMPLETED and decision != "paid"):
        raise DecisionError(f"assignment {a.id} is not waiting in the review queue (status {a.status})")
    if decision not in LAB_DECISIONS:
        raise DecisionError(f"a {platform} participant is decided with {', '.join(LAB_DECISIONS)}, not {decision!r}")
    if decision in ("approve", "reject"):
        a.status, a.reviewed_at = (APPROVED if decision == "approve" else REJECTED), utcnow()
    row = _log(session, actor=actor, study_id=study.id, assignment_id=a.id, kind=REVIEW,
               action="paid by hand" if decision == "paid" else decision, reason=reason, platform=platform)
    if decision == "paid":
        a.status, a.reviewed_at = APPROVED, a.reviewed_at or utcnow()
    session.commit()
    return row
