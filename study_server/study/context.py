"""A participant request's context: the assignment of a token with its study's plan and batch items.

Plans and batches never change after import, so their parsed forms are cached per app (keyed by the
plan's sha256 as well as the row id, so a replaced study is never served from a stale entry).

Positions are the participant's: with the plan's ``order = "per-participant"`` the batch a context holds
is the participant's own order of the items (``shown_batch``: ``position`` = where the participant sees
the item, ``repeat_of`` in the same numbering); with ``per-batch`` it is the plan's. Every request of a
token gets the same order (a pure function of the plan's seed and the token).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from study_server.core.errors import NotFound
from study_server.store.models import Assignment, Item, MediaCopy, Participant, Study, StudyStimulus
from study_server.study.media import Copy
from study_server.study.studies import PlanView, parse_plan, shown_order

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # fullmatch: "$" would let a trailing newline in
_A = Assignment.__table__.c
_LIGHT_BY_TOKEN = (select(_A.id, _A.study_id, _A.batch_id, _A.status, _A.last_seen_at, _A.audio_check_passed,
                          Study.__table__.c.plan_sha256)
                   .join(Study.__table__, Study.__table__.c.id == _A.study_id).where(_A.token == bindparam("token")))
# Built once: SQLAlchemy memoizes a statement's cache key, and this one runs on every participant request.
_BY_TOKEN = (select(Assignment, Study.name, Study.plan_sha256, Study.set_root, Participant.platform)
             .join(Study, Study.id == Assignment.study_id)
             .join(Participant, Participant.id == Assignment.participant_id)
             .where(Assignment.token == bindparam("token")))


@dataclass(frozen=True)
class ItemInfo:
    item_id: int
    position: int  # where the participant sees it (the plan's position unless the order is per participant)
    repeat_of: int | None  # the position of the original, in the same numbering
    media: str  # relative to the set root
    sha256: str
    copy: Copy | None = None  # what is served (None: a study imported before copies existed)
    duration_s: float | None = None  # the clip's length (manifest), for study_server.study.watching


@dataclass(frozen=True)
class BatchInfo:
    items: tuple[ItemInfo, ...]
    by_position: dict[int, ItemInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_position", {i.position: i for i in self.items})


@dataclass
class Ctx:
    assignment: Assignment
    study_id: int
    study_name: str
    plan_sha256: str
    set_root: str
    plan: PlanView
    batch: BatchInfo
    examples: tuple[tuple[str, str, Copy | None], ...]  # (media, sha256, copy) of the plan's examples
    platform: str = ""  # the participant's platform (mturk, prolific, lab, link), read with the assignment


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: dict[tuple[int, str], BatchInfo] = {}
        self.examples: dict[tuple[int, str], tuple[tuple[str, str, Copy | None], ...]] = {}
        self.plans: dict[tuple[int, str], PlanView] = {}
        # token -> (assignment id, study id, batch id, plan sha256): fixed for an assignment's lifetime.
        self.targets: dict[str, tuple[int, int, int, str]] = {}
        self.seen: dict[str, dt.datetime | None] = {}  # token -> latest last_seen_at known to this process
        self.shown: dict[str, BatchInfo] = {}  # token -> the participant's order (per-participant plans)

    def remember(self, token: str, target: tuple[int, int, int, str], last_seen: dt.datetime | None) -> None:
        """Keep an assignment's fixed facts (and the last_seen_at known now) for its later requests."""
        if last_seen is not None and last_seen.tzinfo is None:
            last_seen = last_seen.replace(tzinfo=dt.timezone.utc)
        if token not in self.targets and len(self.targets) >= _MAX_TARGETS:
            self.targets.clear()
            self.seen.clear()
            self.shown.clear()
        self.targets[token] = target
        known = self.seen.get(token)
        if known is None or (last_seen is not None and last_seen > known):
            self.seen[token] = last_seen

    def known(self, token: str):
        """``(assignment id, plan, batch, last_seen_at known, mark_seen)`` when everything an answer save
        needs is cached in this process, else None (no database access)."""
        target = self.targets.get(token)
        if target is None:
            return None
        aid, study_id, batch_id, plan_sha = target
        plan = self.plans.get((study_id, plan_sha))
        batch = self.batches.get((batch_id, plan_sha))
        if plan is None or batch is None:
            return None
        return (aid, plan, shown_batch(self, plan, batch, token), self.seen.get(token),
                lambda when: self.seen.__setitem__(token, when))


_MAX_TARGETS = 100_000  # ~15 MB at most; cleared when full (a miss costs one query)


def shown_batch(cache: _Cache, plan: PlanView, batch: BatchInfo, token: str) -> BatchInfo:
    """``batch`` in the order the participant with ``token`` sees it (the batch itself unless the plan's
    order is per participant; cached per token)."""
    if not plan.per_participant_order:
        return batch
    shown = cache.shown.get(token)
    if shown is None:
        order = shown_order(plan.plan, [(i.position, i.repeat_of) for i in batch.items], token)
        at = {plan_pos: n for n, plan_pos in enumerate(order)}
        shown = BatchInfo(tuple(
            dataclasses.replace(batch.by_position[p], position=n,
                                repeat_of=None if batch.by_position[p].repeat_of is None
                                else at[batch.by_position[p].repeat_of])
            for n, p in enumerate(order)))
        if len(cache.shown) >= _MAX_TARGETS:
            cache.shown.clear()
        cache.shown[token] = shown
    return shown


def cache_of(app) -> _Cache:  # noqa: ANN001 - a Flask app
    """The app's per-process cache of plans, batches and assignment targets."""
    cache = app.extensions.get("emostudy_cache")
    if cache is None:
        cache = app.extensions.setdefault("emostudy_cache", _Cache())
    return cache


def _cache() -> _Cache:
    return cache_of(current_app)


def _check_token(token: str) -> None:
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise NotFound("assignment_not_found", "this study link is not valid; open the study again from "
                       "the page that sent you here")


def _not_found() -> NotFound:
    return NotFound("assignment_not_found", "this study link is not valid; open the study again from "
                    "the page that sent you here")


def load(session: Session, token: str) -> Ctx:
    """The context of ``token``; ``NotFound('assignment_not_found')`` for unknown or malformed tokens."""
    _check_token(token)
    row = session.execute(_BY_TOKEN, {"token": token}).first()
    if row is None:
        raise _not_found()
    assignment, name, plan_sha, set_root, platform = row
    plan, batch, examples = study_parts(session, assignment.study_id, assignment.batch_id, plan_sha)
    return Ctx(assignment=assignment, study_id=assignment.study_id, study_name=name, plan_sha256=plan_sha,
               set_root=set_root, plan=plan, batch=shown_batch(_cache(), plan, batch, token), examples=examples,
               platform=platform)


def study_parts(session: Session, study_id: int, batch_id: int,
                plan_sha: str) -> tuple[PlanView, BatchInfo, tuple[tuple[str, str, Copy | None], ...]]:
    """The parsed plan, the batch's items in the plan's order and the examples' media (cached per app)."""
    cache = _cache()
    key = (study_id, plan_sha)
    plan = cache.plans.get(key)
    if plan is None:
        plan_json = session.scalar(select(Study.plan_json).where(Study.id == study_id))
        plan = cache.plans[key] = parse_plan(plan_sha, plan_json)
    batch = cache.batches.get((batch_id, plan_sha))
    if batch is None:
        rows = session.execute(
            select(Item.id, Item.position, Item.repeat_of, StudyStimulus.media, StudyStimulus.sha256,
                   StudyStimulus.labels, *_COPY)
            .join(StudyStimulus, StudyStimulus.id == Item.stimulus_pk)
            .outerjoin(MediaCopy, MediaCopy.item_id == Item.id)
            .where(Item.batch_id == batch_id).order_by(Item.position)).all()
        batch = BatchInfo(tuple(ItemInfo(item_id, pos, rep, media, sha, _copy(*c), duration_s=_duration(labels))
                                for item_id, pos, rep, media, sha, labels, *c in rows))
        cache.batches[(batch_id, plan_sha)] = batch
    examples = cache.examples.get(key)
    if examples is None:
        stim = {sid: (media, sha) for sid, media, sha in session.execute(
            select(StudyStimulus.stimulus_id, StudyStimulus.media, StudyStimulus.sha256)
            .where(StudyStimulus.study_id == study_id)).all()}
        copies = {n: _copy(*c) for n, *c in session.execute(
            select(MediaCopy.example_index, *_COPY)
            .where(MediaCopy.study_id == study_id, MediaCopy.example_index.is_not(None))).all()}
        examples = cache.examples[key] = tuple((*stim[e["stimulus_id"]], copies.get(n))
                                               for n, e in enumerate(plan.plan["examples"]))
    return plan, batch, examples


def _duration(labels: Any) -> float | None:
    value = labels.get("duration_s") if isinstance(labels, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


_COPY = (MediaCopy.container, MediaCopy.size, MediaCopy.sha256, MediaCopy.pad_key)


def _copy(container: str | None, size: int | None, sha256: str | None, pad_key: str | None) -> Copy | None:
    return None if container is None else Copy(container, size, sha256, pad_key)


@dataclass(frozen=True)
class LightCtx:
    """What the answer hot path needs, read with one Core query (no ORM objects)."""

    assignment_id: int
    status: str
    last_seen_at: Any
    audio_check_passed: bool | None
    plan: PlanView
    batch: BatchInfo


def load_light(session: Session, token: str) -> LightCtx:
    _check_token(token)
    row = session.execute(_LIGHT_BY_TOKEN, {"token": token}).first()
    if row is None:
        raise _not_found()
    aid, study_id, batch_id, status, last_seen, audio_ok, plan_sha = row
    if last_seen is not None and last_seen.tzinfo is None:
        last_seen = last_seen.replace(tzinfo=dt.timezone.utc)
    plan, batch, _ = study_parts(session, study_id, batch_id, plan_sha)
    return LightCtx(aid, status, last_seen, audio_ok, plan, shown_batch(_cache(), plan, batch, token))


@dataclass(frozen=True)
class AnswerTarget:
    """The fixed facts of an assignment that an answer save needs: no status (the INSERT checks it)."""

    token: str
    assignment_id: int
    plan: PlanView
    batch: BatchInfo
    seen: dt.datetime | None  # the most recent last_seen_at this process knows of (None: unknown)
    _cache: "_Cache" = field(repr=False, compare=False)

    def mark_seen(self, when: dt.datetime) -> None:
        self._cache.seen[self.token] = when


def answer_target(session: Session, token: str) -> AnswerTarget:
    """From the per-process cache (no query), or one query the first time this process sees ``token``.

    An assignment's study, batch and plan never change (a re-imported study is a new row with new
    assignments), so the cached entry cannot go stale; a deleted assignment makes the save's INSERT
    store nothing, and the caller's fallback then answers ``assignment_not_found``.
    """
    cache = _cache()
    target = cache.targets.get(token)
    if target is None:
        _check_token(token)
        row = session.execute(_LIGHT_BY_TOKEN, {"token": token}).first()
        if row is None:
            raise _not_found()
        target = (row.id, row.study_id, row.batch_id, row.plan_sha256)
        cache.remember(token, target, row.last_seen_at)
    aid, study_id, batch_id, plan_sha = target
    plan, batch, _ = study_parts(session, study_id, batch_id, plan_sha)
    return AnswerTarget(token, aid, plan, shown_batch(cache, plan, batch, token), cache.seen.get(token), cache)
