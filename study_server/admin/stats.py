"""The numbers the admin pages and the admin JSON API show (one query per table, no writes).

Counts per batch (``Counts``):

- ``active``: allocated or started, with a request within the assignment timeout;
- ``expired``: status expired, or active but idle past the timeout (the next arrival will expire it);
- ``left``: returned or abandoned;
- ``valid`` / ``rejected``: the consistency verdict at completion;
- ``completed``: assignments with a verdict (valid + rejected);
- ``needed``: valid participants still missing to reach the quota.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from study_server.store.models import (
    ABANDONED,
    ACTIVE,
    DECLINED,
    EXPIRED,
    INVALID,
    PREVIEW,
    RETURNED,
    VALID,
    Answer,
    Assignment,
    Batch,
    Item,
    ListeningCheck,
    MediaFailure,
    Participant,
    Study,
    StudyStimulus,
    Verdict,
    utcnow,
)
from study_server.study.watching import FLAGS as WATCH_FLAGS

COUNT_FIELDS = ("quota", "active", "valid", "rejected", "expired", "left", "completed", "needed")


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def batch_counts(session: Session, study_id: int, *, timeout_s: float,
                 now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One dict per batch of the study, in batch order: batch_id, n_items and the ``COUNT_FIELDS``."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=timeout_s)
    is_active = Assignment.status.in_(ACTIVE)

    def total(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    counted = (
        select(Assignment.batch_id,
               total(and_(is_active, Assignment.last_seen_at >= cutoff)).label("active"),
               total((Assignment.status == EXPIRED) | and_(is_active, Assignment.last_seen_at < cutoff))
               .label("expired"),
               total(Assignment.status.in_((RETURNED, ABANDONED, DECLINED))).label("left"),
               total(Verdict.verdict == VALID).label("valid"),
               total(Verdict.verdict == INVALID).label("rejected"))
        .select_from(Assignment).outerjoin(Verdict, Verdict.assignment_id == Assignment.id)
        .where(Assignment.study_id == study_id, Assignment.kind != PREVIEW).group_by(Assignment.batch_id)
    ).subquery()
    n_items = (select(Item.batch_id, func.count().label("n")).group_by(Item.batch_id)).subquery()
    rows = session.execute(
        select(Batch.key, Batch.quota, func.coalesce(n_items.c.n, 0), counted.c.active, counted.c.expired,
               counted.c.left, counted.c.valid, counted.c.rejected)
        .outerjoin(counted, counted.c.batch_id == Batch.id)
        .outerjoin(n_items, n_items.c.batch_id == Batch.id)
        .where(Batch.study_id == study_id).order_by(Batch.index)).all()
    out = []
    for key, quota, items, active, expired, left, valid, rejected in rows:
        valid, rejected = int(valid or 0), int(rejected or 0)
        out.append({"batch_id": key, "n_items": int(items), "quota": int(quota), "active": int(active or 0),
                    "valid": valid, "rejected": rejected, "expired": int(expired or 0), "left": int(left or 0),
                    "completed": valid + rejected, "needed": max(int(quota) - valid, 0)})
    return out


def sum_counts(batches: list[dict[str, Any]]) -> dict[str, int]:
    return {field: sum(int(b[field]) for b in batches) for field in COUNT_FIELDS}


def study_summaries(session: Session, *, timeout_s: float) -> list[dict[str, Any]]:
    """Every study (by name) with its batches' counts and their totals."""
    out = []
    for study in session.scalars(select(Study).order_by(Study.name)):
        batches = batch_counts(session, study.id, timeout_s=timeout_s)
        out.append({"id": study.id, "name": study.name, "title": study.title, "task": study.task,
                    "status": study.status, "n_batches": len(batches), "totals": sum_counts(batches),
                    "batches": batches})
    return out


def study_detail(session: Session, study: Study, *, timeout_s: float) -> dict[str, Any]:
    batches = batch_counts(session, study.id, timeout_s=timeout_s)
    return {"id": study.id, "name": study.name, "title": study.title, "task": study.task, "status": study.status,
            "created_at": _iso(study.created_at), "batches": batches, "totals": sum_counts(batches),
            "integrity": integrity_counts(session, study.id), "listening": listening_counts(session, study.id)}


def integrity_counts(session: Session, study_id: int) -> dict[str, int]:
    """Answers flagged by the evidence of watching (per flag) and trials recorded as "media failed"."""
    flags = dict(session.execute(
        select(Answer.watch_flag, func.count()).join(Assignment, Assignment.id == Answer.assignment_id)
        .where(Assignment.study_id == study_id, Answer.watch_flag.is_not(None))
        .group_by(Answer.watch_flag)).all())
    failed = session.scalar(select(func.count()).select_from(MediaFailure)
                            .join(Assignment, Assignment.id == MediaFailure.assignment_id)
                            .where(Assignment.study_id == study_id))
    return {"flagged_answers": int(sum(flags.values())), **{f: int(flags.get(f, 0)) for f in WATCH_FLAGS},
            "media_failed": int(failed or 0)}



def listening_counts(session: Session, study_id: int) -> dict[str, int]:
    """The listening checks of a study: calibrated, screen passed / failed / undecided, word check failed."""
    row = session.execute(
        select(func.count(ListeningCheck.id),
               func.coalesce(func.sum(case((ListeningCheck.calibrated_at.is_not(None), 1), else_=0)), 0),
               func.coalesce(func.sum(case((ListeningCheck.passed.is_(True), 1), else_=0)), 0),
               func.coalesce(func.sum(case((ListeningCheck.passed.is_(False), 1), else_=0)), 0))
        .join(Assignment, Assignment.id == ListeningCheck.assignment_id)
        .where(Assignment.study_id == study_id)).one()
    words_failed = session.scalar(select(func.count()).select_from(Assignment).where(
        Assignment.study_id == study_id, Assignment.audio_check_passed.is_(False),
        ~Assignment.id.in_(select(ListeningCheck.assignment_id).where(ListeningCheck.passed.is_(False)))))
    started, calibrated, passed, failed = (int(v or 0) for v in row)
    return {"screen_started": started, "calibrated": calibrated, "screen_passed": passed, "screen_failed": failed,
            "screen_undecided": started - passed - failed, "audio_check_failed": int(words_failed or 0)}


def assignment_rows(session: Session, study_id: int, *, limit: int | None = None, offset: int = 0,
                    raw_times: bool = False) -> list[dict[str, Any]]:
    """The study's assignments, newest first, with their answer counts and verdicts (``limit`` of them from
    ``offset``: the study page shows the latest few). ``raw_times``: datetimes instead of ISO text."""
    # only the listed assignments' answers are counted (the study page lists the latest 100 of thousands)
    listed = (select(Assignment.id).where(Assignment.study_id == study_id)
              .order_by(Assignment.allocated_at.desc(), Assignment.id.desc()).limit(limit).offset(offset))
    n_answers = (select(Answer.assignment_id, func.count().label("n"), func.count(Answer.watch_flag).label("flags"))
                 .where(Answer.assignment_id.in_(listed.scalar_subquery()))
                 .group_by(Answer.assignment_id)).subquery()
    n_failed = (select(MediaFailure.assignment_id, func.count().label("n"))
                .where(MediaFailure.assignment_id.in_(listed.scalar_subquery()))
                .group_by(MediaFailure.assignment_id)).subquery()
    rows = session.execute(
        select(Assignment.id, Batch.key, Participant.platform, Assignment.status, Verdict.verdict,
               func.coalesce(n_answers.c.n, 0), Assignment.allocated_at, Assignment.started_at,
               Assignment.completed_at, func.coalesce(n_answers.c.flags, 0), func.coalesce(n_failed.c.n, 0))
        .join(Batch, Batch.id == Assignment.batch_id)
        .join(Participant, Participant.id == Assignment.participant_id)
        .outerjoin(Verdict, Verdict.assignment_id == Assignment.id)
        .outerjoin(n_answers, n_answers.c.assignment_id == Assignment.id)
        .outerjoin(n_failed, n_failed.c.assignment_id == Assignment.id)
        .where(Assignment.study_id == study_id)
        .order_by(Assignment.allocated_at.desc(), Assignment.id.desc()).limit(limit).offset(offset)).all()
    t = (lambda v: v) if raw_times else _iso
    return [{"id": aid, "batch_id": key, "platform": platform, "status": status, "verdict": verdict,
             "n_answers": int(n), "allocated_at": t(alloc), "started_at": t(started),
             "completed_at": t(completed), "n_watch_flags": int(flags), "n_media_failed": int(failed)}
            for aid, key, platform, status, verdict, n, alloc, started, completed, flags, failed in rows]


def assignment_detail(session: Session, assignment: Assignment) -> dict[str, Any]:
    """One assignment: platform ids (raw, the admin pays with them), status, verdict and every answer."""
    answers = session.execute(
        select(Answer, Item.position, Item.repeat_of, StudyStimulus.stimulus_id)
        .join(Item, Item.id == Answer.item_id).join(StudyStimulus, StudyStimulus.id == Item.stimulus_pk)
        .where(Answer.assignment_id == assignment.id).order_by(Item.position)).all()
    verdict = assignment.verdict
    return {
        "id": assignment.id, "study_id": assignment.study_id, "study": assignment.study.name,
        "batch_id": assignment.batch.key, "platform": assignment.participant.platform,
        "worker_id": assignment.participant.worker_id, "pseudonym": assignment.participant.pseudonym,
        "status": assignment.status, "allocated_at": _iso(assignment.allocated_at),
        "started_at": _iso(assignment.started_at), "completed_at": _iso(assignment.completed_at),
        "audio_check_passed": assignment.audio_check_passed,
        "verdict": None if verdict is None else {
            "verdict": verdict.verdict, "n_inconsistent": verdict.n_inconsistent,
            "n_repeat_answers": verdict.n_repeat_answers, "details": verdict.details},
        "answers": [{"answer_id": a.answer_id, "position": pos, "repeat_of": rep, "stimulus_id": sid,
                     "values": a.values, "rt_ms": a.rt_ms, "played_fraction": a.played_fraction,
                     "answered_at": _iso(a.created_at), "watch_flag": a.watch_flag} for a, pos, rep, sid in answers],
        "media_failed": [{"position": pos, "n_failures": f.n_failures, "error": f.error,
                          "recorded_at": _iso(f.created_at)} for f, pos in session.execute(
            select(MediaFailure, Item.position).join(Item, Item.id == MediaFailure.item_id)
            .where(MediaFailure.assignment_id == assignment.id).order_by(Item.position)).all()],
    }
