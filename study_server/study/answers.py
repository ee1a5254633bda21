"""Saving answers: one append-only row per answered item, stored the moment it is given, idempotently.

The client makes an ``answer_id`` for every answer and retries the POST until acknowledged. The server
stores the first copy and acknowledges every retry with the same body (built from the stored row), so a
retry storm can neither lose an answer nor store it twice (the ``answer_id`` and ``(assignment, item)``
unique constraints guarantee it even for concurrent retries). Anything that does not fit the participant's
batch or the plan's questions is refused with a 4xx and stores nothing.

What is stored, flagged or refused is decided by ``decide_answer`` alone: the Flask route, its SQLite and
PostgreSQL shortcuts and the WSGI fast path (``study_server.participant.fastpath``) all call it, so they cannot drift.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy import Boolean, Connection, Float, Integer, bindparam, cast, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_server.core.errors import ApiError, Conflict, Forbidden, NotFound
from study_server.store.models import (
    ABANDONED,
    ALLOCATED,
    FINISHED,
    STARTED,
    TECHNICAL_FAILURE,
    Answer,
    Assignment,
    MediaFailure,
    Verdict,
    utcnow,
)
from study_server.study.assignment import ensure_active
from study_server.study.context import AnswerTarget, BatchInfo, Ctx, ItemInfo, LightCtx
from study_server.study.progress import PROGRESS
from study_server.study.studies import PlanView
from study_server.study.technical import breach, end_as_technical_failure, fetched_with_get, max_media_failures
from study_server.study.watching import (
    UNPACED,
    Evidence,
    Pace,
    is_paced,
    paced_seconds,
    stored_pace,
    stored_reader,
    watch_flag,
)

_INSERT_ANSWER = insert(Answer.__table__)
_TOUCH = (update(Assignment.__table__).where(Assignment.__table__.c.id == bindparam("aid"))
          .values(last_seen_at=bindparam("now")))
ANSWER_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")  # used with fullmatch ("$" matches before a final newline)
MAX_RT_MS = 24 * 3600 * 1000
# last_seen_at is refreshed at most this often (saves a write per answer).
TOUCH_EVERY = dt.timedelta(seconds=20)


@dataclass(frozen=True)
class ParsedAnswer:
    answer_id: str
    position: int
    values: dict[str, Any]
    rt_ms: int | None
    played_fraction: float | None


def bad(code: str, message: str) -> ApiError:
    return ApiError(code, message, status=400)


def parse_answer(body: Any, questions: tuple[dict[str, Any], ...]) -> ParsedAnswer:
    """Validate an answer body against the plan's questions (no database access)."""
    if not isinstance(body, Mapping):
        raise bad("bad_request", "the request body must be a JSON object with answer_id, position and values")
    answer_id = body.get("answer_id")
    if not isinstance(answer_id, str) or not ANSWER_ID_RE.fullmatch(answer_id):
        raise bad("bad_answer_id", "answer_id must be 8-64 characters of letters, digits, '_' or '-' "
                  "(make one per answer, e.g. a UUID, and reuse it when retrying)")
    position = body.get("position")
    if isinstance(position, bool) or not isinstance(position, int):
        raise bad("bad_request", "position must be an integer (the item's position in the batch)")
    values = body.get("values")
    if not isinstance(values, Mapping):
        raise bad("bad_request", "values must be an object {question_id: value}")
    by_id = {q["id"]: q for q in questions}
    unknown = sorted(set(values) - set(by_id))
    if unknown:
        raise bad("unknown_question", f"question {unknown[0]!r} is not asked in this study "
                  f"(questions: {', '.join(by_id)})")
    clean: dict[str, Any] = {}
    for q in questions:
        qid = q["id"]
        value = values.get(qid)
        if value is None or value == [] or value == "":
            if q.get("required", True):
                raise bad("missing_answer", f"question {qid!r} needs an answer")
            continue
        options = {o["value"]: o for o in q["options"]}
        if q["type"] == "multi":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad("invalid_value", f"question {qid!r} takes a list of option values")
            if len(set(value)) != len(value):
                raise bad("invalid_value", f"question {qid!r}: an option is selected twice")
            for v in value:
                if v not in options:
                    raise bad("invalid_value", f"question {qid!r}: {v!r} is not one of its options")
            exclusive = [v for v in value if options[v].get("exclusive")]
            if exclusive and len(value) > 1:
                raise bad("invalid_value", f"question {qid!r}: {exclusive[0]!r} cannot be combined with other options")
            order = list(options)
            clean[qid] = sorted(value, key=order.index)  # option order, as the export writes them
        else:
            if not isinstance(value, str) or value not in options:
                raise bad("invalid_value", f"question {qid!r}: {value!r} is not one of its options")
            clean[qid] = value
    rt = body.get("rt_ms")
    if rt is not None and (isinstance(rt, bool) or not isinstance(rt, (int, float)) or not math.isfinite(rt)
                           or not 0 <= rt <= MAX_RT_MS):
        raise bad("bad_timing", f"rt_ms must be a number of milliseconds between 0 and {MAX_RT_MS}, or null")
    played = body.get("played_fraction")
    if played is not None and (isinstance(played, bool) or not isinstance(played, (int, float))
                               or not math.isfinite(played) or not 0 <= played <= 1):
        raise bad("bad_timing", "played_fraction must be a number between 0 and 1, or null")
    return ParsedAnswer(answer_id, position, clean, None if rt is None else int(round(rt)),
                        None if played is None else float(played))


@dataclass(frozen=True)
class AnswerDecision:
    """What to do with an answer: store ``parsed`` for ``item`` with ``flag`` (None: clear).

    ``item`` is None when the position is not one of the batch's: the answer is refused, with a code that
    depends on the assignment's state (``_refuse``)."""

    parsed: ParsedAnswer
    item: ItemInfo | None
    flag: str | None
    watched: bool | None = None  # its own clip: bytes served and duration since the first byte
    paced: bool | None = None  # the answers so far fit the durations of their clips


EvidenceReader = Callable[[int], "Evidence | None"]
PaceReader = Callable[[], Pace]


def decide_answer(body: Any, plan: PlanView, batch: BatchInfo, *, now: dt.datetime, tolerance_s: float,
                  local: EvidenceReader, stored: EvidenceReader, pace: PaceReader | None = None) -> AnswerDecision:
    """The one decision on an answer body, for every save path.

    Refuses a malformed body (``ApiError``, 4xx); otherwise says which item it answers, whether its clip was
    watched and the answers are paced, and its flag (``study_server.study.watching``). ``local`` reads this
    host's record of media requests (``watching.recorded_reader``: this process's, then the workers' shared
    table), ``stored`` the database's; the database is read only when the local record does not already
    clear the answer. ``pace`` reads the first trial's first byte and the items answered so far (None: the
    pace is not judged, e.g. a decision that stores nothing).
    """
    parsed = parse_answer(body, plan.questions)
    item = batch.by_position.get(parsed.position)
    if item is None:
        return AnswerDecision(parsed, None, None)
    size = item.copy.size if item.copy is not None else None
    flag = watch_flag(item.duration_s, local(item.position), now, tolerance_s, size)
    if flag is not None:  # another worker may have served the clip, earlier: the database knows
        flag = watch_flag(item.duration_s, stored(item.position), now, tolerance_s, size)
    watched = flag is None
    paced: bool | None = None
    if pace is not None:
        evidence = pace()
        answered = evidence.answered_item_ids - {item.item_id}
        needed = paced_seconds([i.duration_s for i in batch.items if i.item_id in answered] + [item.duration_s],
                               tolerance_s)
        paced = is_paced(needed, evidence, now)
        if flag is None and not paced:
            flag = UNPACED
    return AnswerDecision(parsed, item, flag, watched, paced)


def acknowledgement(answer: Answer, position: int) -> dict[str, Any]:
    return {"answer_id": answer.answer_id, "position": position, "stored_at": answer.created_at.isoformat()}


def _existing(session: Session, ctx: Ctx, parsed: ParsedAnswer) -> dict[str, Any] | None:
    """The acknowledgement of an already stored copy of this answer, or a refusal; None when new."""
    stored = session.scalar(select(Answer).where(Answer.answer_id == parsed.answer_id))
    if stored is not None:
        item = ctx.batch.by_position.get(parsed.position)
        if stored.assignment_id != ctx.assignment.id or item is None or stored.item_id != item.item_id:
            raise Conflict("answer_id_reused", "this answer_id was already used for another answer; make a new "
                           "id for every answer")
        return acknowledgement(stored, parsed.position)
    item = ctx.batch.by_position.get(parsed.position)
    if item is not None:
        other = session.scalar(select(Answer.answer_id).where(Answer.assignment_id == ctx.assignment.id,
                                                              Answer.item_id == item.item_id))
        if other is not None:
            raise Conflict("already_answered", f"item {parsed.position} was already answered (answer_id "
                           f"{other}); answers cannot be changed", answer_id=other)
    return None


def try_fast_save(session: Session, light: LightCtx, decision: AnswerDecision,
                  now: dt.datetime) -> dict[str, Any] | None:
    """The common case - a started assignment, a new answer to one of its items - with Core statements only.

    Returns the acknowledgement, or None when the case is not the common one (the caller then runs
    ``save_answer``, which explains refusals and acknowledges retries).
    """
    parsed, item = decision.parsed, decision.item
    if (light.status != STARTED or item is None
            or (light.plan.audio_check_enabled and not light.audio_check_passed)):
        return None
    try:
        session.execute(_INSERT_ANSWER, {
            "answer_id": parsed.answer_id, "assignment_id": light.assignment_id, "item_id": item.item_id,
            "values": parsed.values, "rt_ms": parsed.rt_ms, "played_fraction": parsed.played_fraction,
            "created_at": now, "watch_flag": decision.flag, "watched": decision.watched, "paced": decision.paced})
        if light.last_seen_at is None or now - light.last_seen_at > TOUCH_EVERY:
            session.execute(_TOUCH, {"aid": light.assignment_id, "now": now})
        session.execute(PROGRESS, {"aid": light.assignment_id, "now": now})  # an answer is progress
        session.commit()
    except IntegrityError:
        session.rollback()  # a retry or a second answer to the item: save_answer sorts it out
        return None
    except BaseException:
        session.rollback()
        raise
    return {"answer_id": parsed.answer_id, "position": parsed.position, "stored_at": now.isoformat()}


def _one_statement_save():
    """PostgreSQL: the whole common save as ONE statement (run in autocommit).

    INSERT ... SELECT from the assignment's row, so the answer is stored only while the assignment is
    started (and past its sound check, when the plan has one); ON CONFLICT DO NOTHING turns a retry or a
    second answer to the item into "no row" (the caller then runs ``save_answer``, which tells them apart).
    """
    a, ans = Assignment.__table__, Answer.__table__
    source = (select(bindparam("answer_id", type_=ans.c.answer_id.type), a.c.id, bindparam("item_id", type_=Integer),
                     bindparam("values", type_=ans.c["values"].type), bindparam("rt_ms", type_=Integer),
                     cast(bindparam("played", type_=Float), Float), bindparam("now", type_=ans.c.created_at.type),
                     bindparam("flag", type_=ans.c.watch_flag.type),
                     cast(bindparam("watched", type_=Boolean), Boolean), cast(bindparam("paced", type_=Boolean), Boolean))
              .where(a.c.id == bindparam("aid"), a.c.status == STARTED,
                     or_(bindparam("audio_free", type_=Boolean), a.c.audio_check_passed.is_(True))))
    return (pg_insert(ans).from_select(["answer_id", "assignment_id", "item_id", "values", "rt_ms",
                                        "played_fraction", "created_at", "watch_flag", "watched", "paced"], source)
            .on_conflict_do_nothing().returning(ans.c.id))


_SAVE_PG = _one_statement_save()
_TOUCH_IF_OLD = (update(Assignment.__table__)
                 .where(Assignment.__table__.c.id == bindparam("aid"),
                        Assignment.__table__.c.last_seen_at < bindparam("touch_before"))
                 .values(last_seen_at=bindparam("now")))


def try_save_pg(conn: Connection, target: AnswerTarget, decision: AnswerDecision,
                now: dt.datetime) -> dict[str, Any] | None:
    """The common save on PostgreSQL in one round trip; None when it is not the common case (see above).

    ``last_seen_at`` is refreshed by a second statement only when this process last knew it to be older
    than ``TOUCH_EVERY`` (``target.seen``: the app only ever moves it forward, so the true value is at
    least as recent as the one known here).
    """
    parsed, item = decision.parsed, decision.item
    if item is None:
        return None
    stored = conn.execute(_SAVE_PG, {
        "answer_id": parsed.answer_id, "item_id": item.item_id, "values": parsed.values, "rt_ms": parsed.rt_ms,
        "played": parsed.played_fraction, "now": now, "aid": target.assignment_id, "flag": decision.flag,
        "watched": decision.watched, "paced": decision.paced,
        "audio_free": not target.plan.audio_check_enabled}).first()
    if stored is None:
        return None
    conn.execute(PROGRESS, {"aid": target.assignment_id, "now": now})  # an answer is progress
    if target.seen is None or now - target.seen > TOUCH_EVERY:
        conn.execute(_TOUCH_IF_OLD, {"aid": target.assignment_id, "touch_before": now - TOUCH_EVERY, "now": now})
        target.mark_seen(now)
    return {"answer_id": parsed.answer_id, "position": parsed.position, "stored_at": now.isoformat()}


def save_answer(session: Session, ctx: Ctx, body: Any, *, timeout_s: float, tolerance_s: float,
                local: EvidenceReader) -> dict[str, Any]:
    """Validate and store one answer; return its acknowledgement (the same one for every retry).

    The usual path is one INSERT and a COMMIT: duplicates are detected by the unique constraints, and
    only then (or when the assignment cannot take answers) are the stored rows looked at.
    """

    a = ctx.assignment
    now = utcnow()
    decision = decide_answer(body, ctx.plan, ctx.batch, now=now, tolerance_s=tolerance_s, local=local,
                             stored=stored_reader(session, a.id), pace=stored_pace(session, a.id))
    parsed, item = decision.parsed, decision.item
    try:
        if a.status != STARTED or item is None or (ctx.plan.audio_check_enabled and not a.audio_check_passed):
            ack = _existing(session, ctx, parsed)  # a retry of a stored answer is acknowledged in any state
            if ack is not None:
                session.rollback()
                return ack
            _refuse(a, item, ctx, parsed)
        ensure_active(session, a, timeout_s=timeout_s, now=now)  # revives an expired one, or raises
        if a.status != STARTED:
            raise Conflict("assignment_closed", f"this assignment is {a.status}; no more answers are accepted")
        assert item is not None
        # A Core INSERT (no unit of work): this is the hottest statement of the server.
        session.execute(_INSERT_ANSWER, {
            "answer_id": parsed.answer_id, "assignment_id": a.id, "item_id": item.item_id, "values": parsed.values,
            "rt_ms": parsed.rt_ms, "played_fraction": parsed.played_fraction, "created_at": now,
            "watch_flag": decision.flag, "watched": decision.watched, "paced": decision.paced})
        values = {"progress_at": now} if a.status == STARTED else {}
        if now - a.last_seen_at > TOUCH_EVERY:
            values["last_seen_at"] = now
        if values:  # an answer is progress (study_server.study.progress)
            session.execute(update(Assignment).where(Assignment.id == a.id).values(**values)
                            .execution_options(synchronize_session=False))
        session.commit()
        return {"answer_id": parsed.answer_id, "position": parsed.position, "stored_at": now.isoformat()}
    except IntegrityError:
        # A copy of this answer (a retry, maybe concurrent) or another answer to this item is stored.
        session.rollback()
        ack = _existing(session, ctx, parsed)
        session.rollback()
        if ack is None:
            raise
        return ack
    except BaseException:
        session.rollback()
        raise


def _refuse(a: Assignment, item: Any, ctx: Ctx, parsed: ParsedAnswer) -> None:
    """Raise the error that explains why ``a`` cannot take this (new) answer; return when it can."""
    if a.status == ALLOCATED:
        raise Conflict("not_started", "the study has not been started yet: give consent first")
    if a.status in FINISHED:
        raise Conflict("assignment_closed", "this study is already completed; no more answers are accepted")
    if item is None:
        raise NotFound("unknown_item", f"position {parsed.position} is not an item of this participant's "
                       f"batch (positions 0-{len(ctx.batch.items) - 1})")
    if ctx.plan.audio_check_enabled and not a.audio_check_passed:
        raise Forbidden("audio_check_required", "please complete the sound check before the videos")


def answered_positions(session: Session, ctx: Ctx) -> list[int]:
    ids = set(session.scalars(select(Answer.item_id).where(Answer.assignment_id == ctx.assignment.id)))
    return [i.position for i in ctx.batch.items if i.item_id in ids]


def answers_by_position(session: Session, ctx: Ctx) -> dict[int, dict[str, Any]]:
    by_item = {i.item_id: i.position for i in ctx.batch.items}
    rows = session.execute(select(Answer.item_id, Answer.values).where(Answer.assignment_id == ctx.assignment.id))
    return {by_item[item_id]: values for item_id, values in rows if item_id in by_item}


def flags_by_position(session: Session, ctx: Ctx) -> dict[int, str]:
    """position -> watching flag of this assignment's flagged answers."""
    by_item = {i.item_id: i.position for i in ctx.batch.items}
    rows = session.execute(select(Answer.item_id, Answer.watch_flag).where(
        Answer.assignment_id == ctx.assignment.id, Answer.watch_flag.is_not(None)))
    return {by_item[item_id]: flag for item_id, flag in rows if item_id in by_item}


def lock_own_row(session: Session, assignment_id: int) -> None:
    """PostgreSQL: lock the participant's own assignment row (the lock order allows it: own row only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Assignment.id).where(Assignment.id == assignment_id).with_for_update())


def _is_technical_failure(session: Session, assignment_id: int) -> bool:
    return session.scalar(select(Verdict.verdict).where(Verdict.assignment_id == assignment_id)) == TECHNICAL_FAILURE


def media_failed_positions(session: Session, ctx: Ctx) -> set[int]:
    """Positions recorded as "media failed" (no answer: the clip would not load)."""
    by_item = {i.item_id: i.position for i in ctx.batch.items}
    ids = session.scalars(select(MediaFailure.item_id).where(MediaFailure.assignment_id == ctx.assignment.id))
    return {by_item[i] for i in ids if i in by_item}


MAX_MEDIA_FAILURES = 3  # the page lets the participant go on after this many failed loads of one clip
_MEDIA_ERRORS = re.compile(r"[A-Za-z0-9_ .:-]{1,100}")


def record_media_failure(session: Session, ctx: Ctx, body: Any) -> dict[str, Any]:
    """Record that a trial's clip would not load (``{"position", "failures", "error"}``); idempotent.

    Refused (4xx) unless the assignment is started, the position is one of its trials with no answer, and
    the page reports at least ``MAX_MEDIA_FAILURES`` failed loads.
    """
    if not isinstance(body, Mapping):
        raise bad("bad_request", "the request body must be a JSON object with position, failures and error")
    position, failures, error = body.get("position"), body.get("failures"), body.get("error")
    if isinstance(position, bool) or not isinstance(position, int):
        raise bad("bad_request", "position must be an integer (the item's position in the batch)")
    if isinstance(failures, bool) or not isinstance(failures, int) or not MAX_MEDIA_FAILURES <= failures <= 1000:
        raise bad("bad_request", f"failures must be the number of failed loads, at least {MAX_MEDIA_FAILURES}: "
                  "retry the clip before giving up on it")
    if not isinstance(error, str) or not _MEDIA_ERRORS.fullmatch(error):
        raise bad("bad_request", "error must be the browser's media error name (1-100 letters, digits, "
                  "spaces or _.:-)")
    a = ctx.assignment
    item = ctx.batch.by_position.get(position)
    try:
        stored = None
        if item is not None and a.status in FINISHED + (ABANDONED,):  # a retry of a stored report
            stored = session.scalar(select(MediaFailure).where(MediaFailure.assignment_id == a.id,
                                                               MediaFailure.item_id == item.item_id))
        if stored is not None:
            body_out = {"position": position, "media_failed": True, "stored_at": stored.created_at.isoformat(),
                        "status": a.status, "technical_failure": _is_technical_failure(session, a.id)}
            session.rollback()
            return body_out
        if a.status != STARTED:
            raise Conflict("not_started" if a.status == ALLOCATED else "assignment_closed",
                           f"this assignment is {a.status}; nothing can be recorded for its trials")
        if item is None:
            raise NotFound("unknown_item", f"position {position} is not an item of this participant's "
                           f"batch (positions 0-{len(ctx.batch.items) - 1})")
        if ctx.plan.audio_check_enabled and not a.audio_check_passed:  # the checks cannot be skipped this way
            raise Forbidden("audio_check_required", "please complete the sound check before the videos")
        if not fetched_with_get(session, a.id, position):
            raise Conflict("media_not_requested", f"the video of item {position} was never requested: load it "
                           "(GET its media_url) before reporting that it failed", status=409)
        lock_own_row(session, a.id)  # two reports at once see each other's failures (the cap)
        answered = session.scalar(select(Answer.answer_id).where(Answer.assignment_id == a.id,
                                                                 Answer.item_id == item.item_id))
        if answered is not None:
            raise Conflict("already_answered", f"item {position} was already answered (answer_id {answered})",
                           answer_id=answered)
        stored = session.scalar(select(MediaFailure).where(MediaFailure.assignment_id == a.id,
                                                           MediaFailure.item_id == item.item_id))
        technical = False
        if stored is None:
            now = utcnow()
            stored = MediaFailure(assignment_id=a.id, item_id=item.item_id, n_failures=failures, error=error,
                                  created_at=now)
            session.add(stored)
            session.flush()
            failed = media_failed_positions(session, ctx)
            reason = breach([(i.position, i.repeat_of) for i in ctx.batch.items], failed,
                            max_media_failures(ctx.plan.plan))
            if reason is not None:
                end_as_technical_failure(session, a, reason, failed, now)
                technical = True
            else:
                session.execute(PROGRESS, {"aid": a.id, "now": now})  # a trial done is progress
            session.commit()
        body_out = {"position": position, "media_failed": True, "stored_at": stored.created_at.isoformat(),
                    "status": a.status, "technical_failure": technical}
        session.rollback()
        return body_out
    except IntegrityError:  # a concurrent copy of this report
        session.rollback()
        return {"position": position, "media_failed": True, "status": a.status, "technical_failure": False}
    except BaseException:
        session.rollback()
        raise
