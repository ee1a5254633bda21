"""One participant's page: their trials in the order they saw them, each with its conditions in words,
the answers as the plan labels them, the response time, the evidence of watching and the flags, the
listening checks, the verdict and every decision about them. Times in the study's time zone, to the second.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from study_server.admin import words
from study_server.store.models import (
    Answer,
    Assignment,
    Item,
    ListeningCheck,
    MediaFailure,
    MediaFetch,
    ScreenTrial,
    StudyStimulus,
)
from study_server.study.studies import plan_view, shown_order


def _word(value: Any) -> str:
    return "" if value in (None, "") else str(value).replace("_", " ")


def trials(session: Session, assignment: Assignment, plan: dict[str, Any], zone: dt.tzinfo) -> list[dict[str, Any]]:
    """The batch's trials in the order this participant saw them (answered or not)."""
    items = session.execute(
        select(Item.id, Item.position, Item.repeat_of, StudyStimulus.stimulus_id, StudyStimulus.labels)
        .join(StudyStimulus, StudyStimulus.id == Item.stimulus_pk)
        .where(Item.batch_id == assignment.batch_id).order_by(Item.position)).all()
    by_position = {row.position: row for row in items}
    order = shown_order(plan, [(r.position, r.repeat_of) for r in items], assignment.token)
    per_participant = order is not None
    order = list(order) if order is not None else [r.position for r in items]
    shown_index = {p: n for n, p in enumerate(order)}
    answers = {a.item_id: a for a in session.scalars(select(Answer).where(Answer.assignment_id == assignment.id))}
    failures = {f.item_id: f for f in session.scalars(select(MediaFailure)
                                                      .where(MediaFailure.assignment_id == assignment.id))}
    # media_fetches are kept by the position the participant saw (their own order's) - see export.tables
    fetches = {f.position: f for f in session.scalars(select(MediaFetch)
                                                      .where(MediaFetch.assignment_id == assignment.id))}
    questions = {q["id"]: q for q in plan.get("questions", [])}
    day = assignment.allocated_at.astimezone(zone).date()

    def clock(t: dt.datetime | None) -> str:  # the time of day; the date too when it is not the arrival's
        if t is None:
            return ""
        return t.astimezone(zone).strftime("%H:%M:%S") if t.astimezone(zone).date() == day \
            else words.when(t, zone, name=False)
    out = []
    for n, position in enumerate(order):
        it = by_position[position]
        labels = it.labels or {}
        answer, failure = answers.get(it.id), failures.get(it.id)
        fetch = fetches.get(n if per_participant else position)
        out.append({
            "trial": n + 1, "position": position, "stimulus_id": it.stimulus_id,
            "source": _word(labels.get("source")), "visual": _word(labels.get("visual_emotion")),
            "audio": _word(labels.get("audio_emotion")),
            "repeat_of_trial": None if it.repeat_of is None else shown_index[it.repeat_of] + 1,
            "answer": dict(words.answer_text(answer.values, questions, key="id")) if answer else {},
            "rt_ms": answer.rt_ms if answer else None,
            "played_fraction": answer.played_fraction if answer else None,
            "answered_at": clock(answer.created_at) if answer else "",
            "watch_flag": words.watch_flag(answer.watch_flag) if answer else "",
            "video_requested_at": clock(fetch.first_requested_at) if fetch else "",
            "video_requests": fetch.n_requests if fetch else 0,
            "video_kb": round(fetch.bytes_served / 1024, 1) if fetch else None,
            "media_failed": None if failure is None else f"{failure.error} ({failure.n_failures} tries)",
        })
    return out


def listening(session: Session, assignment: Assignment, zone: dt.tzinfo) -> dict[str, Any] | None:
    check = session.scalar(select(ListeningCheck).where(ListeningCheck.assignment_id == assignment.id))
    n_trials, n_correct = session.execute(
        select(func.count(ScreenTrial.id), func.coalesce(func.sum(case((ScreenTrial.correct.is_(True), 1), else_=0)), 0))
        .where(ScreenTrial.assignment_id == assignment.id)).one() if check is not None else (0, 0)
    if check is None and assignment.audio_check_passed is None:
        return None
    screen = None
    if check is not None:
        screen = {"calibrated_at": words.when(check.calibrated_at, zone),
                  "blocks": check.attempts_used, "last_block_correct": check.n_correct,
                  "passed": {True: "passed", False: "failed", None: "not decided"}[check.passed],
                  "trials": int(n_trials or 0), "correct": int(n_correct or 0)}
    word_check = {True: "passed", False: "failed", None: "not taken"}[assignment.audio_check_passed]
    return {"screen": screen, "word_check": word_check, "word_attempts": assignment.audio_check_attempts}


def participant_view(session: Session, assignment: Assignment) -> dict[str, Any]:
    study = assignment.study
    plan = plan_view(study).plan
    zone = words.study_zone(plan)
    v = assignment.verdict
    override = (v.details or {}).get("override") if v is not None else None
    p = assignment.participant
    return {
        "id": assignment.id, "study_id": study.id, "study": study.title or study.name, "batch": assignment.batch.key,
        "platform": words.platform(p.platform), "pseudonym": p.pseudonym, "worker_id": p.worker_id,
        "status": words.status(assignment.status), "zone": words.when(assignment.allocated_at, zone).rsplit(" ", 1)[-1],
        "arrived": words.when(assignment.allocated_at, zone), "started": words.when(assignment.started_at, zone),
        "completed": words.when(assignment.completed_at, zone),
        "took": words.duration((assignment.completed_at - assignment.started_at).total_seconds())
        if assignment.completed_at and assignment.started_at else "",
        "verdict": None if v is None else {
            "verdict": v.verdict, "n_inconsistent": v.n_inconsistent, "n_repeat_answers": v.n_repeat_answers,
            "checked": (override or {}).get("checked_verdict", v.verdict), "overridden": override is not None,
            "watch_flags": len((v.details or {}).get("watch_flags") or []),
            "watch_flags_counted": (v.details or {}).get("watch_flags_counted", True)},
        "trials": trials(session, assignment, plan, zone),
        "questions": [{"id": q["id"], "heading": q["id"].replace("_", " ").replace("-", " ").capitalize(),
                       "prompt": q.get("prompt") or q["id"]} for q in plan.get("questions", [])],
        "listening": listening(session, assignment, zone),
    }
