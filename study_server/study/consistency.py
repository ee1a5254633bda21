"""Consistency verdicts: compare the answers to repeated items with the plan's rules (docs/contracts.md).

For every repeat item (``repeat_of`` = its original's position) and every rule, the answer to the repeat
is *inconsistent* when

- ``equal``: the two values differ;
- ``max_abs_diff``: the options' scores differ by more than ``tolerance``;
- ``max_set_diff``: the option sets' symmetric difference has more than ``tolerance`` elements.

A survey is rejected when more than ``max_inconsistent`` of its repeat answers (repeats x rules) are
inconsistent: the paper's Task 1 rejects 6 or more of 9, Task 2 3 or more of 4.

Answers flagged by the server's evidence of watching (``study_server.study.watching``: media never fetched, or
answered sooner than the clip could play) each count as one more inconsistent answer, unless the plan's
``consistency.watch_flags`` is ``"ignore"``. A trial recorded as "media failed" (the clip would not load)
has no answer: the participant may complete without it (up to the study's cap, ``study_server.study.technical``),
and each rule of a repeat pair with a failed clip counts as one inconsistent answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.core.errors import Conflict, Forbidden
from study_server.store.models import ALLOCATED, COMPLETED, FINISHED, STARTED, Study, Verdict, utcnow
from study_server.study.answers import answers_by_position, flags_by_position, media_failed_positions
from study_server.study.assignment import ensure_active, write_active
from study_server.study.context import Ctx
from study_server.study.platforms import PROLIFIC, new_completion_code
from study_server.study.technical import breach, max_media_failures
from study_server.study.watching import counts_against_verdict

VALID, REJECTED = "valid", "rejected"


@dataclass(frozen=True)
class VerdictResult:
    verdict: str
    n_inconsistent: int
    n_repeat_answers: int
    details: dict[str, Any] = field(default_factory=dict)


def _as_set(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(v) for v in value)
    return frozenset([str(value)])


def _score(question: Mapping[str, Any], value: Any) -> float | None:
    for option in question["options"]:
        if option["value"] == value:
            score = option.get("score")
            return None if score is None else float(score)
    return None


def is_inconsistent(rule: Mapping[str, Any], question: Mapping[str, Any], first: Any, second: Any) -> bool:
    kind, tolerance = rule["kind"], float(rule.get("tolerance") or 0)
    if kind == "equal":
        if question["type"] == "multi":
            return _as_set(first) != _as_set(second)
        return first != second
    if kind == "max_abs_diff":
        a, b = _score(question, first), _score(question, second)
        if a is None or b is None:  # an unanswered optional question, or an option without a score
            return not (a is None and b is None and first == second)
        return abs(a - b) > tolerance
    if kind == "max_set_diff":
        return len(_as_set(first) ^ _as_set(second)) > tolerance
    raise ValueError(f"unknown consistency rule kind {kind!r} (known: equal, max_abs_diff, max_set_diff)")


def evaluate(plan: Mapping[str, Any], items: Iterable[tuple[int, int | None]],
             answers: Mapping[int, Mapping[str, Any]], *, watch_flags: Mapping[int, str] | None = None,
             media_failed: Iterable[int] = ()) -> VerdictResult:
    """The verdict of one survey.

    ``items``: (position, repeat_of) of the batch; ``answers``: position -> {question_id: value};
    ``watch_flags``: position -> flag of the flagged answers; ``media_failed``: positions without an answer
    because their clip would not load (pairs with one of them are not checked).
    """
    watch_flags = dict(watch_flags or {})
    failed = set(media_failed)
    questions = {q["id"]: q for q in plan["questions"]}
    rules = plan["consistency"]["rules"]
    max_inconsistent = int(plan["consistency"]["max_inconsistent"])
    checks: list[dict[str, Any]] = []
    for position, repeat_of in items:
        if repeat_of is None:
            continue
        if position in failed or repeat_of in failed:
            # Not comparable: each rule of the pair counts as one inconsistent answer (issue 29), so a
            # "failed" repeat costs what a wrong one costs (study_server.study.technical).
            for rule in rules:
                checks.append({"position": position, "repeat_of": repeat_of, "question": rule["question"],
                               "rule": rule["kind"], "original": None, "repeat": None, "inconsistent": True,
                               "media_failed": True})
            continue
        for rule in rules:
            q = questions[rule["question"]]
            first = answers.get(repeat_of, {}).get(q["id"])
            second = answers.get(position, {}).get(q["id"])
            bad = is_inconsistent(rule, q, first, second)
            checks.append({"position": position, "repeat_of": repeat_of, "question": q["id"], "rule": rule["kind"],
                           "original": first, "repeat": second, "inconsistent": bad})
    counted = counts_against_verdict(dict(plan))
    n_bad = sum(c["inconsistent"] for c in checks) + (len(watch_flags) if counted else 0)
    verdict = REJECTED if n_bad > max_inconsistent else VALID
    return VerdictResult(verdict=verdict, n_inconsistent=n_bad, n_repeat_answers=len(checks),
                         details={"max_inconsistent": max_inconsistent, "checks": checks,
                                  "watch_flags": {str(p): f for p, f in sorted(watch_flags.items())},
                                  "watch_flags_counted": counted, "media_failed": sorted(failed)})


def complete_assignment(session: Session, ctx: Ctx, *, timeout_s: float) -> Verdict:
    """Finish a participant's survey: every item answered -> verdict stored, status completed. Idempotent.

    Returns the stored ``Verdict``. Raises ``Conflict('incomplete')`` listing the unanswered positions.
    A rejected verdict frees the batch slot at once (occupancy counts only valid finished surveys).
    """
    a = ctx.assignment
    try:
        if a.status in FINISHED or (a.status not in (ALLOCATED, STARTED) and a.completed_at is not None):
            verdict = session.scalar(select(Verdict).where(Verdict.assignment_id == a.id))
            session.rollback()
            return verdict
        if a.status == ALLOCATED:
            raise Conflict("not_started", "the study has not been started yet: give consent first")
        if ctx.plan.audio_check_enabled and not a.audio_check_passed:  # no route skips the sound checks
            raise Forbidden("audio_check_required", "please complete the sound check before the videos")
        now = utcnow()
        ensure_active(session, a, timeout_s=timeout_s, now=now)
        if a.status != STARTED:
            raise Conflict("assignment_closed", f"this assignment is {a.status}; it cannot be completed")
        # No autoflush: the assignment's row is written once, at the commit (see the lock order in
        # study_server/study/assignment.py; an early flush of last_seen_at made the commit a second write).
        with session.no_autoflush:
            answers = answers_by_position(session, ctx)
            flags = flags_by_position(session, ctx)
            failed = media_failed_positions(session, ctx)
        missing = [i.position for i in ctx.batch.items if i.position not in answers and i.position not in failed]
        if breach([(i.position, i.repeat_of) for i in ctx.batch.items], failed, max_media_failures(ctx.plan.plan)):
            raise Conflict("assignment_closed", "too many videos would not load; this session cannot be completed")
        if missing:
            raise Conflict("incomplete", f"{len(missing)} item(s) still need an answer", missing=missing)
        platform = ctx.platform or a.participant.platform  # read with the assignment by context.load
        result = evaluate(ctx.plan.plan, [(i.position, i.repeat_of) for i in ctx.batch.items], answers,
                          watch_flags=flags, media_failed=failed)
        verdict = Verdict(assignment_id=a.id, verdict=result.verdict, n_inconsistent=result.n_inconsistent,
                          n_repeat_answers=result.n_repeat_answers, details=result.details, created_at=now)
        code = a.completion_code or (_study_code(session, a.study_id) if platform == PROLIFIC
                                     else new_completion_code())
        # Conditional on the assignment still being active: one expired meanwhile (its place maybe taken)
        # is revived under the study's lock when there is room, else refused (issue 29: quota exact).
        write_active(session, a, timeout_s=timeout_s, now=now,
                     values={"status": COMPLETED, "completed_at": now, "last_seen_at": now,
                             "completion_code": code})
        session.add(verdict)
        session.commit()
        return verdict
    except BaseException:
        session.rollback()
        raise


def _study_code(session: Session, study_id: int) -> str:
    return session.scalar(select(Study.completion_code).where(Study.id == study_id))
