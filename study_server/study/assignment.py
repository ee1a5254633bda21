"""Balanced, atomic assignment of participants to batches.

A new participant gets the batch with the fewest *occupying* assignments - active ones (allocated,
started) plus finished ones whose verdict is valid - among the batches still under quota; ties are broken
at random. The whole decision (expire stale assignments, count, insert) runs under one lock per study:

- PostgreSQL: ``SELECT ... FROM studies WHERE id = :id FOR NO KEY UPDATE`` - concurrent arrivals of a study
  queue on the study's row, so two of them can never both take a batch's last slot;
- SQLite: every transaction begins with ``BEGIN IMMEDIATE`` (see ``extensions.py``): the database's write
  lock is held from the first statement.

Assignments with no request for ``timeout_s`` expire and free their slot; so does an arrival that has not
started (given consent) within ``hold_s`` of being allocated (the arrival hold: scripted arrivals that never
start cannot keep real participants out for longer than that). A worker who returns resumes their own
assignment (an expired one is revived when its batch still has room), so nobody ever gets two batches of
one study. The plan's ``study.exclude_studies`` keeps out people who took part in those studies.

Lock order (PostgreSQL; it cannot cycle)
----------------------------------------
Every transaction that changes assignments of a study takes its locks in this order:

1. the study's row, ``FOR NO KEY UPDATE`` (``lock_study``) - taken first, before the transaction writes
   anything, by every path that decides by counting or changes *other* participants' rows: arrival
   (``_ALLOCATE_PG``, ``allocate``), expiry (``expire_stale``, which takes it itself, so the recruitment
   sync's sweep queues behind arrivals too), revival (``_revive`` via ``ensure_active``/``_resume``) and the
   admin's release of a hold (``release_hold``);
2. then assignment rows (the expiry's UPDATE, the new assignment's INSERT).

Paths that change only the participant's *own* assignment row - start, touch (``api._touch``), sound check,
answer save (Flask route and ``fastpath``), completion, return - take no study lock unless they revive an
expired assignment, and then they take it before writing anything. They hold at most their own row and
wait on nothing but that row, so a cycle through them is impossible, with one PostgreSQL subtlety handled
by the lock's mode: updating a row that the same transaction already wrote (e.g. an early autoflush of
``last_seen_at`` followed by the commit's ``status`` update) makes PostgreSQL re-check its foreign keys,
which takes ``FOR KEY SHARE`` on the study's row. ``FOR UPDATE`` conflicts with that (the cycle of issue
#20: the completion waited for the study row held by an arrival, the arrival's expiry waited for the
completion's assignment row); ``FOR NO KEY UPDATE`` does not, and still excludes every other arrival.
Completion also writes its row once (``consistency.complete_assignment`` reads without autoflush).

Quota exactness: ``_ALLOCATE_PG`` counts every assignment that is active in its snapshot *minus the rows
its expiry actually expired* (``RETURNING``). The expiry waits for a row that another transaction holds
and re-reads it (READ COMMITTED), so a participant refreshed meanwhile stays active - and stays counted.
Changes made without the study lock never add occupancy (a refresh keeps it, completion keeps or frees
it, a return frees it), so the count is never below the truth after the expiry.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study_server.core.errors import Conflict, Forbidden, NotFound
from study_server.store.models import (
    ABANDONED,
    ACTIVE,
    ALLOCATED,
    DECLINED,
    EXPIRED,
    FINISHED,
    PREVIEW,
    RETURNED,
    STARTED,
    STUDY_OPEN,
    VALID,
    Assignment,
    Batch,
    Participant,
    Study,
    Verdict,
    utcnow,
)
from study_server.study.addresses import address_net
from study_server.study.lab_tokens import check_token
from study_server.study.platform_ids import remember_platform_ids
from study_server.study.platforms import LAB, Arrival, pseudonym
from study_server.study.progress import idle_condition
from study_server.study.studies import plan_view


@dataclass(frozen=True)
class Allocation:
    assignment: Assignment
    resumed: bool  # True: the worker already had this assignment


def hold_seconds(config) -> float | None:  # noqa: ANN001 - a Flask config
    """``ARRIVAL_HOLD_S`` as ``allocate``'s ``hold_s`` (None when holds are off)."""
    value = float(config.get("ARRIVAL_HOLD_S", 180) or 0)
    return value if value > 0 else None


def get_study(session: Session, name: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        raise NotFound("study_not_found", f"there is no study named {name!r}; check the link you were given")
    return study


def lock_study(session: Session, study_id: int) -> None:
    """Serialize allocation decisions of one study until the transaction ends (step 1 of the lock order).

    ``FOR NO KEY UPDATE``: excludes other arrivals, but not the foreign-key checks (``FOR KEY SHARE``) of
    transactions that write assignments of the study."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Study.id).where(Study.id == study_id).with_for_update(key_share=True))
    # SQLite: the transaction already holds the database's write lock (BEGIN IMMEDIATE).


def expire_stale(session: Session, study_id: int, timeout_s: float, now: dt.datetime | None = None, *,
                 hold_s: float | None = None, idle_s: float | None = None) -> int:
    """Mark active assignments idle for longer than ``timeout_s`` - and, with ``hold_s``, arrivals not
    started within ``hold_s`` of their allocation - as expired; return how many.

    Takes the study's lock first (the lock order in the module docstring). Does not commit."""
    now = now or utcnow()
    lock_study(session, study_id)
    cutoff = now - dt.timedelta(seconds=timeout_s)
    stale = Assignment.last_seen_at < cutoff
    if hold_s is not None:
        stale = or_(stale, and_(Assignment.status == ALLOCATED,
                                Assignment.allocated_at < now - dt.timedelta(seconds=hold_s),
                                or_(Assignment.hold_until.is_(None), Assignment.hold_until < now)))
    if idle_s is not None:  # started sessions without progress (study_server.study.progress)
        stale = or_(stale, idle_condition(now, idle_s))
    result = session.execute(
        update(Assignment)
        .where(Assignment.study_id == study_id, Assignment.status.in_(ACTIVE), stale)
        .values(status=EXPIRED, ended_at=now)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def occupancy(session: Session, study_id: int, batch_ids: Iterable[int] | None = None) -> dict[int, int]:
    """batch id -> active + valid-finished assignments (every batch of the study, zeros included)."""
    occupying = or_(Assignment.status.in_(ACTIVE),
                    and_(Assignment.status.in_(FINISHED), Verdict.verdict == VALID))
    rows = session.execute(
        select(Assignment.batch_id, func.count())
        .select_from(Assignment).outerjoin(Verdict, Verdict.assignment_id == Assignment.id)
        .where(Assignment.study_id == study_id, occupying, Assignment.kind != PREVIEW)  # a preview takes no place
        .group_by(Assignment.batch_id)).all()
    if batch_ids is None:
        batch_ids = session.scalars(select(Batch.id).where(Batch.study_id == study_id))
    counts = {bid: 0 for bid in batch_ids}
    counts.update({bid: int(n) for bid, n in rows})
    return counts


def _quotas(session: Session, study_id: int) -> dict[int, int]:
    return dict(session.execute(select(Batch.id, Batch.quota).where(Batch.study_id == study_id)).all())


def _excluded(session: Session, participant: Participant, study: Study) -> str | None:
    names = plan_view(study).study.get("exclude_studies") or []
    if not names:
        return None
    hit = session.scalar(
        select(Study.name).join(Assignment, Assignment.study_id == Study.id)
        .where(Assignment.participant_id == participant.id, Study.name.in_(names),
               Assignment.started_at.is_not(None)).limit(1))
    return hit


def allocate(session: Session, study_name: str, arrival: Arrival, *, secret_key: str, timeout_s: float,
             user_agent: str | None = None, rng: random.Random | None = None,
             now: dt.datetime | None = None, hold_s: float | None = None,
             idle_s: float | None = None, address: str | None = None,
             places_cap: int | None = None) -> Allocation:
    """Give the arriving worker their batch (or their existing assignment) and commit.

    ``hold_s``: arrivals of the study not started within this many seconds of allocation lose their place
    (None: only ``timeout_s`` of inactivity does).

    Raises ``NotFound('study_not_found')``, ``Conflict('study_closed' | 'study_full' | 'slot_expired')``,
    ``Forbidden('excluded' | 'audio_check_failed')``.
    """
    if arrival.preview or not arrival.worker_id:
        raise ValueError("an MTurk preview is not an arrival: show the ad and store nothing")
    for attempt in range(3):
        try:
            return _allocate_once(session, study_name, arrival, secret_key=secret_key, timeout_s=timeout_s,
                                  user_agent=user_agent, rng=rng or random.Random(), now=now, hold_s=hold_s,
                                  idle_s=idle_s, address=address, places_cap=places_cap)
        except IntegrityError:
            # The same worker arrived at two studies at once and both created the participant row.
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _allocate_once(session: Session, study_name: str, arrival: Arrival, *, secret_key: str, timeout_s: float,
                   user_agent: str | None, rng: random.Random, now: dt.datetime | None,
                   hold_s: float | None = None, idle_s: float | None = None, address: str | None = None,
                   places_cap: int | None = None) -> Allocation:
    """One try. Everything that does not decide the batch runs before the study's lock.

    PostgreSQL: under the lock run only ``_ALLOCATE_PG`` (expire, count, choose, INSERT: one statement,
    sent with the lock in one round trip) and the COMMIT. Atomicity: that statement's snapshot is taken
    after the lock is granted (READ COMMITTED: a fresh snapshot per statement) and the assignment is
    committed before the lock is released, so two arrivals can never both take a batch's last slot.
    SQLite: the transaction holds the database's write lock from its first statement.
    The participant row is inserted before the lock in the same transaction (a refused arrival rolls it
    back); two concurrent arrivals of one new worker collide on its unique key and the loser retries
    (``allocate``), then resumes the winner's assignment.
    """
    now = now or utcnow()
    try:
        study = get_study(session, study_name)
        participant_id = session.scalar(_PARTICIPANT_ID, {"platform": arrival.platform,
                                                          "worker_id": arrival.worker_id})
        if participant_id is not None:
            existing = session.scalar(select(Assignment).where(Assignment.study_id == study.id,
                                                               Assignment.participant_id == participant_id))
            if existing is not None:
                return _resume(session, existing, arrival, timeout_s=timeout_s, now=now, hold_s=hold_s,
                               idle_s=idle_s)
            participant = session.get(Participant, participant_id)
            assert participant is not None
            excluded_by = _excluded(session, participant, study)
            if excluded_by:
                raise Forbidden("excluded", "You have already taken part in a related study, so this one is not "
                                "open to you. Thank you for your interest; please return the task.")
        if study.status != STUDY_OPEN:  # people already in the study may finish it; nobody new joins
            raise Conflict("study_closed", "This study is not open at the moment. Thank you for your interest; "
                           "please check back later or choose another task.")
        if arrival.platform == LAB and not _lab_token_ok(session, study.id, arrival.worker_id):
            raise Forbidden("lab_token_invalid", "This lab link is not valid for this study. Please ask the "
                            "researcher for a new link.")
        net = address_net(address) if address is not None else None
        if net is not None and places_cap is not None and _held_by(session, study.id, net) >= places_cap:
            raise Conflict("address_full", "Thank you for your interest! Several people at your internet address "
                           "are taking part in this study right now, so it cannot take one more from there at "
                           "the moment. Please try again later.", status=429)
        if participant_id is None:
            participant_id = session.execute(_INSERT_PARTICIPANT, {
                "platform": arrival.platform, "worker_id": arrival.worker_id,
                "pseudonym": pseudonym(secret_key, arrival.platform, arrival.worker_id), "created_at": now,
            }).scalar_one()
        values = {"token": secrets.token_urlsafe(24), "study_id": study.id, "participant_id": participant_id,
                  "status": ALLOCATED, "allocated_at": now, "last_seen_at": now, "audio_check_attempts": 0,
                  "user_agent": (user_agent or "")[:400] or None, "arrival_net": net, **_platform_ids(arrival)}
        session.flush()  # anything pending (a lab token marked used) is written before the lock, not under it
        if session.get_bind().dialect.name == "postgresql":
            assignment_id = _insert_under_lock_pg(session, values, timeout_s=timeout_s, now=now, hold_s=hold_s,
                                                  idle_s=idle_s)
            session.commit()  # releases the lock
            assignment = session.get(Assignment, assignment_id)
            assert assignment is not None
            return Allocation(assignment, resumed=False)
        # ---- SQLite (the transaction holds the database's write lock): count, choose, INSERT, COMMIT
        expire_stale(session, study.id, timeout_s, now, hold_s=hold_s, idle_s=idle_s)  # the study's lock first
        quotas = _quotas(session, study.id)
        counts = occupancy(session, study.id, batch_ids=quotas)
        open_batches = [bid for bid, n in counts.items() if n < quotas[bid]]
        if not open_batches:
            raise Conflict("study_full", "Thank you for your interest! This study has all the participants it "
                           "needs right now. Please return the task; places may open again later.")
        fewest = min(counts[bid] for bid in open_batches)
        values["batch_id"] = rng.choice(sorted(bid for bid in open_batches if counts[bid] == fewest))
        assignment_id = session.execute(_INSERT_ASSIGNMENT, values).scalar_one()
        session.commit()
        # ---- the lock is released; the ORM object for the caller
        assignment = session.get(Assignment, assignment_id)
        assert assignment is not None
        return Allocation(assignment, resumed=False)
    except BaseException:
        session.rollback()
        raise


_PARTICIPANT_ID = (select(Participant.id).where(Participant.platform == bindparam("platform"),
                                                Participant.worker_id == bindparam("worker_id")))
_INSERT_PARTICIPANT = insert(Participant).returning(Participant.id)
_INSERT_ASSIGNMENT = insert(Assignment).returning(Assignment.id)
_PLATFORM_FIELDS = ("hit_id", "external_assignment_id", "turk_submit_to", "prolific_study_id", "prolific_session_id")


def _platform_ids(arrival: Arrival) -> dict[str, str | None]:
    return {name: getattr(arrival, name) or None for name in _PLATFORM_FIELDS}


def _resume(session: Session, existing: Assignment, arrival: Arrival, *, timeout_s: float,
            now: dt.datetime, hold_s: float | None = None, idle_s: float | None = None) -> Allocation:
    """A returning worker gets their own assignment back (revived under the lock when it had lapsed)."""
    if existing.status in (EXPIRED, RETURNED):
        lock_study(session, existing.study_id)
        session.refresh(existing)  # the row as it is now that the lock is held
    _refresh_platform_ids(existing, arrival)
    if existing.status in (EXPIRED, RETURNED):
        _revive(session, existing, timeout_s=timeout_s, now=now, hold_s=hold_s, idle_s=idle_s)
    elif existing.status == ABANDONED:
        raise Forbidden("audio_check_failed", "This study needs working sound, and the sound check "
                        "did not succeed earlier. Please return the task; thank you for trying.")
    elif existing.status in ACTIVE:
        existing.last_seen_at = now
    session.commit()
    return Allocation(existing, resumed=True)


def _sql_in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"  # the model's own constants, never user input


# PostgreSQL's allocation decision as one statement: expire stale assignments and lapsed arrival holds
# (CTE), count each batch's occupancy, choose among the batches under quota one with the fewest (ties at
# random), insert the assignment. No row: every batch is at its quota.
# The CTE's changes are not visible to the rest of the statement, and its UPDATE re-reads a row that another
# transaction held (a refresh committed meanwhile leaves it active), while the count reads the statement's
# snapshot. So the count takes what was active in the snapshot minus exactly the rows that the UPDATE
# expired (its RETURNING): both parts agree on every row (issue #20's over-quota interleaving).
_ALLOCATE_PG = f"""
WITH expired AS (
    UPDATE assignments SET status = '{EXPIRED}', ended_at = %(now)s
    WHERE study_id = %(study_id)s AND status IN {_sql_in(ACTIVE)}
      AND (last_seen_at < %(cutoff)s
           OR (%(hold_cutoff)s::timestamptz IS NOT NULL AND status = '{ALLOCATED}'
               AND allocated_at < %(hold_cutoff)s::timestamptz
               AND (hold_until IS NULL OR hold_until < %(now)s))
           OR (%(idle_cutoff)s::timestamptz IS NOT NULL AND status = '{STARTED}'
               AND coalesce(progress_at, started_at, allocated_at) < %(idle_cutoff)s::timestamptz))
    RETURNING id),
counted AS (
    SELECT a.batch_id, count(*) AS n
    FROM assignments a LEFT JOIN verdicts v ON v.assignment_id = a.id
    WHERE a.study_id = %(study_id)s AND a.kind <> '{PREVIEW}'
      AND ((a.status IN {_sql_in(ACTIVE)} AND a.id NOT IN (SELECT id FROM expired))
           OR (a.status IN {_sql_in(FINISHED)} AND v.verdict = '{VALID}'))
    GROUP BY a.batch_id),
chosen AS (
    SELECT b.id FROM batches b LEFT JOIN counted c ON c.batch_id = b.id
    WHERE b.study_id = %(study_id)s AND coalesce(c.n, 0) < b.quota
    ORDER BY coalesce(c.n, 0), random()
    LIMIT 1)
INSERT INTO assignments (token, study_id, batch_id, participant_id, status, allocated_at, last_seen_at,
                         audio_check_attempts, user_agent, arrival_net, {", ".join(_PLATFORM_FIELDS)})
SELECT %(token)s, %(study_id)s, chosen.id, %(participant_id)s, %(status)s, %(allocated_at)s, %(last_seen_at)s,
       %(audio_check_attempts)s, %(user_agent)s, %(arrival_net)s, {", ".join(f"%({n})s" for n in _PLATFORM_FIELDS)}
FROM chosen
RETURNING id
"""
_LOCK_PG = "SELECT id FROM studies WHERE id = %(study_id)s FOR NO KEY UPDATE"  # the lock order: step 1


def _insert_under_lock_pg(session: Session, values: dict, *, timeout_s: float, now: dt.datetime,
                          hold_s: float | None = None, idle_s: float | None = None) -> int:
    """Lock the study and run ``_ALLOCATE_PG`` in ONE network round trip (psycopg's pipeline mode: the
    server runs the second statement right after the first has the lock, with a snapshot taken then).
    The caller commits, which releases the lock: two round trips under the lock in all.
    Raises ``Conflict('study_full')``; a unique-key collision comes back as SQLAlchemy's IntegrityError.
    """
    import psycopg  # optional: only PostgreSQL deployments install psycopg

    raw = session.connection().connection.driver_connection
    params = {**values, "now": now, "cutoff": now - dt.timedelta(seconds=timeout_s),
              "hold_cutoff": None if hold_s is None else now - dt.timedelta(seconds=hold_s),
              "idle_cutoff": None if idle_s is None else now - dt.timedelta(seconds=idle_s)}
    try:
        if psycopg.Pipeline.is_supported():
            with raw.pipeline() as pipeline:
                lock, cursor = raw.cursor(), raw.cursor()
                lock.execute(_LOCK_PG, params)
                cursor.execute(_ALLOCATE_PG, params)
                pipeline.sync()
                row = cursor.fetchone()
        else:  # libpq older than 14: the same two statements, one round trip each
            with raw.cursor() as cursor:
                cursor.execute(_LOCK_PG, params)
                cursor.execute(_ALLOCATE_PG, params)
                row = cursor.fetchone()
    except psycopg.IntegrityError as exc:
        raise IntegrityError(_ALLOCATE_PG, params, exc) from exc
    if row is None:
        raise Conflict("study_full", "Thank you for your interest! This study has all the participants it "
                       "needs right now. Please return the task; places may open again later.")
    return int(row[0])




def _held_by(session: Session, study_id: int, net: str) -> int:
    """Places of the study held at once by arrivals from ``net`` (active assignments). Read before the
    study's lock: a cap against floods, not a quota (two arrivals at the same instant may both pass)."""
    return int(session.scalar(select(func.count()).select_from(Assignment).where(
        Assignment.study_id == study_id, Assignment.arrival_net == net, Assignment.status.in_(ACTIVE))) or 0)


def _lab_token_ok(session: Session, study_id: int, token: str) -> bool:
    """Lab links: when the researcher made tokens for the study (``emostudy recruit``), only those work."""
    return check_token(session, study_id, token)


def _refresh_platform_ids(assignment: Assignment, arrival: Arrival) -> None:
    # MTurk gives a returning worker a new assignmentId when they accept the HIT again. Every id they
    # used stays findable (issue #16: a submission under the earlier id must not look unknown).
    remember_platform_ids(assignment, arrival)
    for name in ("hit_id", "external_assignment_id", "turk_submit_to", "prolific_study_id", "prolific_session_id"):
        value = getattr(arrival, name)
        if value:
            setattr(assignment, name, value)


def _revive(session: Session, assignment: Assignment, *, timeout_s: float, now: dt.datetime,
            hold_s: float | None = None, idle_s: float | None = None) -> None:
    """Give an expired/returned assignment its slot back if its batch has room (caller holds the lock).

    The count is a statement of its own after the expiry's, in the same transaction: it sees what the
    expiry did (READ COMMITTED takes a new snapshot per statement)."""
    expire_stale(session, assignment.study_id, timeout_s, now, hold_s=hold_s, idle_s=idle_s)
    counts = occupancy(session, assignment.study_id)
    batch = session.get(Batch, assignment.batch_id)
    assert batch is not None
    if counts.get(batch.id, 0) >= batch.quota:
        raise Conflict("slot_expired", "Your place in this study was released after a long pause and has "
                       "since been taken by someone else; the study is now full. Please return the task. "
                       "Thank you for your time.")
    assignment.status = STARTED if assignment.started_at else ALLOCATED
    if assignment.started_at is None:
        assignment.allocated_at = now  # a new arrival hold: the revived place is allocated again
    assignment.ended_at = None
    assignment.last_seen_at = now
    if assignment.started_at is not None:
        assignment.progress_at = now  # coming back is progress: a fresh idle_release_s


def ensure_active(session: Session, assignment: Assignment, *, timeout_s: float,
                  now: dt.datetime | None = None) -> None:
    """Before storing work for ``assignment``: revive it if it expired meanwhile (and there is room).

    Does not commit; the caller's transaction stores the work and the revival together.
    """
    now = now or utcnow()
    if assignment.status in ACTIVE:
        if assignment.last_seen_at < now - dt.timedelta(seconds=timeout_s):
            # Stale but not yet swept: it still holds its slot, so it may simply continue.
            assignment.last_seen_at = now
        return
    if assignment.status == EXPIRED:
        lock_study(session, assignment.study_id)
        session.refresh(assignment)
        if assignment.status == EXPIRED:
            _revive(session, assignment, timeout_s=timeout_s, now=now)
        return
    raise Conflict("assignment_closed", f"this assignment is {assignment.status}; no more answers are accepted",
                   status=409)


def conditional_status(session: Session, assignment_id: int, **values) -> bool:
    """``UPDATE assignments SET ... WHERE id = :id AND status IN (allocated, started)``; True when it changed
    the row. The status read when the request began may be stale (an arrival may have expired the
    assignment and taken its place since): a write by primary key alone would overfill the batch (issue 29).
    """
    result = session.execute(update(Assignment).where(Assignment.id == assignment_id,
                                                      Assignment.status.in_(ACTIVE))
                             .values(**values).execution_options(synchronize_session=False))
    return bool(result.rowcount)


def write_active(session: Session, assignment: Assignment, *, timeout_s: float, now: dt.datetime,
                 values: dict) -> None:
    """Write ``values`` to ``assignment`` only while it is active; when it is not (expired meanwhile), take
    the study's lock, re-read it and revive it if its batch has room (``Conflict('slot_expired')`` if not),
    then write. The caller commits; the object is refreshed from the database afterwards."""
    # Nothing of the row is written before this statement (the lock order: a revival below takes the
    # study's lock, which must come before any write of the row); pending values it sets are dropped.
    session.expire(assignment, [k for k in values if k in Assignment.__table__.c])
    with session.no_autoflush:
        changed = conditional_status(session, assignment.id, **values)
    if not changed:
        lock_study(session, assignment.study_id)
        session.refresh(assignment)
        if assignment.status != EXPIRED:
            raise Conflict("assignment_closed", f"this assignment is {assignment.status}", status=409)
        _revive(session, assignment, timeout_s=timeout_s, now=now)
        session.flush()
        if not conditional_status(session, assignment.id, **values):
            raise Conflict("assignment_closed", f"this assignment is {assignment.status}", status=409)
    session.expire(assignment)


def start(session: Session, assignment: Assignment, *, timeout_s: float) -> None:
    """The participant consented: allocated -> started. Idempotent.

    The write is conditional on the assignment still being active (``write_active``)."""
    now = utcnow()
    ensure_active(session, assignment, timeout_s=timeout_s, now=now)
    started = assignment.started_at or now
    try:
        write_active(session, assignment, timeout_s=timeout_s, now=now,
                     values={"status": STARTED, "started_at": started, "last_seen_at": now,
                             "progress_at": func.coalesce(Assignment.progress_at, now)})
        session.commit()
    except BaseException:
        session.rollback()
        raise


def leave(session: Session, assignment: Assignment, status: str = RETURNED) -> None:
    """The participant declined or gave up: frees the slot. Finished assignments are left as they are."""
    if status not in (RETURNED, ABANDONED, DECLINED):
        raise ValueError(f"leave() sets returned, abandoned or declined, not {status!r}")
    if assignment.status in ACTIVE or assignment.status == EXPIRED:
        assignment.status = status
        assignment.ended_at = utcnow()
    session.commit()


# ------------------------------------------------------------------------------------ arrival holds

@dataclass(frozen=True)
class Hold:
    """A place held by an arrival that has not started (given consent) yet."""

    assignment_id: int
    study: str
    batch_key: str
    participant: str  # the pseudonym, never the worker id
    allocated_at: dt.datetime
    releases_at: dt.datetime | None  # None: no hold time configured (only the inactivity timeout applies)


def holds(session: Session, *, hold_s: float | None, study_name: str | None = None) -> list[Hold]:
    """Every allocated, not yet started assignment (oldest first), with when its hold lapses."""
    q = (select(Assignment.id, Study.name, Batch.key, Participant.pseudonym, Assignment.allocated_at,
                Assignment.hold_until)
         .join(Study, Study.id == Assignment.study_id).join(Batch, Batch.id == Assignment.batch_id)
         .join(Participant, Participant.id == Assignment.participant_id)
         .where(Assignment.status == ALLOCATED, Assignment.kind != PREVIEW)  # a preview holds no place
         .order_by(Assignment.allocated_at, Assignment.id))
    if study_name is not None:
        q = q.where(Study.name == study_name)
    out = []
    for aid, name, key, pseud, allocated, until in session.execute(q).all():
        if allocated.tzinfo is None:
            allocated = allocated.replace(tzinfo=dt.timezone.utc)
        releases = None if hold_s is None else max(allocated + dt.timedelta(seconds=hold_s), until or allocated)
        out.append(Hold(aid, name, key, pseud, allocated, releases))
    return out


def release_hold(session: Session, assignment_id: int, now: dt.datetime | None = None) -> bool:
    """Free the place of an arrival that has not started (the admin's "release"); commit.

    Returns False when the assignment is no longer a hold (it started, or was freed meanwhile). The study's
    lock is taken first (the lock order); the worker may still come back and is revived if there is room.
    """
    try:
        study_id = session.scalar(select(Assignment.study_id).where(Assignment.id == assignment_id))
        if study_id is None:
            raise NotFound("assignment_not_found", f"there is no assignment {assignment_id}")
        lock_study(session, study_id)
        result = session.execute(
            update(Assignment).where(Assignment.id == assignment_id, Assignment.status == ALLOCATED)
            .values(status=EXPIRED, ended_at=now or utcnow()).execution_options(synchronize_session=False))
        session.commit()
        return bool(result.rowcount)
    except BaseException:
        session.rollback()
        raise
