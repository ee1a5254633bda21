"""How a running study is doing over time: the numbers of the study page besides the counts per batch.

``study_progress(session, study, ...)`` reads one row per assignment (one query) plus the bonus ledger's
total (one query) and returns:

- ``series``: arrivals, starts, completions and valid completions per bin (an hour, or a few hours when the
  study has run for more than three days), binned in the study's time zone;
- ``eta``: valid completions per hour over the last ``RATE_WINDOW_H`` hours and the time to fill every
  batch's quota at that rate (None when nobody finished validly in that window);
- ``durations``: median and quartiles of the time from consent to completion;
- ``pay``: the reward plus the mean bonus of a valid participant, over the median time, as dollars per
  hour, beside Prolific's minimum (MTurk sets none);
- ``dropout``: where the participants who left stopped: consent, listening checks, examples, trial k;
- ``flags``: flagged answers by kind, media failures, inconsistent participants, failed listening checks.

Words for each number are in the template; this module only counts.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study_server.recruit.prolific import MIN_HOURLY
from study_server.store.models import (
    ABANDONED,
    ACTIVE,
    EXPIRED,
    INVALID,
    RETURNED,
    VALID,
    Answer,
    Assignment,
    ListeningCheck,
    MediaFailure,
    Study,
    Verdict,
    utcnow,
)
from study_server.store.recruitment import BONUS_FAILED, BonusPayment

RATE_WINDOW_H = 6  # the "current rate" is the valid completions of the last 6 hours
MAX_BINS = 72  # beyond 72 hours the bins widen (2, 3, 6, 12 or 24 hours) so that the chart stays readable
SERIES = ("arrivals", "starts", "completions", "valid")


@dataclass(frozen=True)
class _Row:
    allocated: float  # seconds since 1970 (UTC): 5,000 participants' datetimes cost more than their numbers
    started: float | None
    completed: float | None
    last_seen: float
    status: str
    verdict: str | None
    audio_check_passed: bool | None
    screen_passed: bool | None
    n_done: int  # answers + trials whose media failed (0 for those who completed: not counted)


def _epoch(session: Session, column):  # noqa: ANN001, ANN202 - a column expression in, one out
    """``column`` as seconds since 1970 in SQL (SQLite stores UTC text; PostgreSQL timestamptz)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _rows(session: Session, study_id: int) -> list[_Row]:
    # trials done count only for those who did not complete (the dropout): most answers are never read
    unfinished = select(Assignment.id).where(Assignment.study_id == study_id, Assignment.completed_at.is_(None))
    answered = (select(Answer.assignment_id, func.count().label("n"))
                .where(Answer.assignment_id.in_(unfinished.scalar_subquery()))
                .group_by(Answer.assignment_id)).subquery()
    failed = (select(MediaFailure.assignment_id, func.count().label("n"))
              .where(MediaFailure.assignment_id.in_(unfinished.scalar_subquery()))
              .group_by(MediaFailure.assignment_id)).subquery()
    q = (select(*(_epoch(session, c) for c in (Assignment.allocated_at, Assignment.started_at, Assignment.completed_at,
                                                Assignment.last_seen_at)),
                Assignment.status, Verdict.verdict, Assignment.audio_check_passed, ListeningCheck.passed,
                func.coalesce(answered.c.n, 0) + func.coalesce(failed.c.n, 0))
         .outerjoin(Verdict, Verdict.assignment_id == Assignment.id)
         .outerjoin(ListeningCheck, ListeningCheck.assignment_id == Assignment.id)
         .outerjoin(answered, answered.c.assignment_id == Assignment.id)
         .outerjoin(failed, failed.c.assignment_id == Assignment.id)
         .where(Assignment.study_id == study_id))

    def sec(v):  # noqa: ANN001, ANN202 - to the millisecond: the float noise of julianday stays out of the sums
        return None if v is None else round(float(v), 3)
    return [_Row(sec(a), sec(b), sec(c), sec(d), status, verdict, bool(audio) if audio is not None else None,
                 bool(screen) if screen is not None else None, int(n or 0))
            for a, b, c, d, status, verdict, audio, screen, n in session.execute(q)]


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _floor_hour(t: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    local = t.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)


def hourly_series(rows: list[_Row], zone: dt.tzinfo, now: dt.datetime) -> dict[str, Any]:
    """Counts per bin from the first arrival's hour to now: {width_h, bins: [bin start], arrivals: [...], ...}."""
    if not rows:
        return {"width_h": 1, "bins": [], **{k: [] for k in SERIES}}
    origin = _floor_hour(_ts(min(r.allocated for r in rows)), zone)
    span_h = (now - origin).total_seconds() / 3600
    width_h = next((w for w in (1, 2, 3, 6, 12, 24) if span_h / w <= MAX_BINS), 24)
    n_bins = max(1, math.ceil(span_h / width_h + 1e-9))
    counts = {k: [0] * n_bins for k in SERIES}
    start, width_s = origin.timestamp(), 3600.0 * width_h

    def add(values: list[int], t: float | None) -> None:
        if t is None:
            return
        i = int((t - start) // width_s)
        if 0 <= i < n_bins:
            values[i] += 1

    arrivals, starts, completions, valid = (counts[k] for k in SERIES)
    for r in rows:
        add(arrivals, r.allocated)
        add(starts, r.started)
        add(completions, r.completed)
        if r.verdict == VALID:
            add(valid, r.completed)
    return {"width_h": width_h, "bins": [origin + dt.timedelta(hours=width_h * i) for i in range(n_bins)], **counts}


def quartiles(values: list[float]) -> dict[str, float] | None:
    """{q1, median, q3, n} (linear interpolation between order statistics); None when empty."""
    if not values:
        return None
    if len(values) == 1:
        return {"q1": values[0], "median": values[0], "q3": values[0], "n": 1}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"q1": q1, "median": median, "q3": q3, "n": len(values)}


def dropout(rows: list[_Row], *, timeout_s: float, now: dt.datetime, listening: bool) -> list[dict[str, Any]]:
    """Where the participants who left (returned, gave up, timed out, or idle past the timeout) stopped."""
    cutoff = now.timestamp() - timeout_s
    steps: dict[str, int] = {}
    trial_steps: dict[int, int] = {}
    for r in rows:
        gone = r.status in (RETURNED, ABANDONED, EXPIRED) or (r.status in ACTIVE and r.last_seen < cutoff)
        if not gone or r.completed is not None:
            continue
        if r.started is None:
            steps["consent"] = steps.get("consent", 0) + 1
        elif r.n_done == 0 and (r.screen_passed is False or r.audio_check_passed is False
                                or (listening and r.audio_check_passed is not True)):
            steps["listening"] = steps.get("listening", 0) + 1
        elif r.n_done == 0:
            steps["examples"] = steps.get("examples", 0) + 1
        else:
            trial_steps[r.n_done + 1] = trial_steps.get(r.n_done + 1, 0) + 1
    out = [{"step": s, "trial": None, "n": steps[s]} for s in ("consent", "listening", "examples") if s in steps]
    out += [{"step": "trial", "trial": k, "n": trial_steps[k]} for k in sorted(trial_steps)]
    return out


def study_progress(session: Session, study: Study, plan: dict[str, Any], *, zone: dt.tzinfo, timeout_s: float,
                   needed: int, integrity: dict[str, int], listening_counts: dict[str, int],
                   now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    rows = _rows(session, study.id)
    series = hourly_series(rows, zone, now)

    window_start = now.timestamp() - RATE_WINDOW_H * 3600
    first_start = min((r.started for r in rows if r.started is not None), default=None)
    window_h = RATE_WINDOW_H
    if first_start is not None and first_start > window_start:
        window_h = max((now.timestamp() - first_start) / 3600, 0.25)  # a young study: its age, at least 15 min
    recent_valid = sum(1 for r in rows if r.verdict == VALID and r.completed and r.completed >= window_start)
    rate = recent_valid / window_h if recent_valid else 0.0
    eta_s = None if rate <= 0 else needed / rate * 3600
    eta = {"window_h": window_h, "recent_valid": recent_valid, "rate_per_h": rate, "needed": needed,
           "eta_s": eta_s if needed else 0.0, "full_at": (now + dt.timedelta(seconds=eta_s)) if eta_s else None}

    took = [round(r.completed - r.started, 3) for r in rows if r.completed is not None and r.started is not None]
    durations = quartiles(sorted(took))

    n_valid = sum(1 for r in rows if r.verdict == VALID)
    bonus_cents = session.scalar(
        select(func.coalesce(func.sum(BonusPayment.amount_cents), 0)).join(
            Assignment, Assignment.id == BonusPayment.assignment_id)
        .where(Assignment.study_id == study.id, BonusPayment.status != BONUS_FAILED)) or 0
    reward = float((plan.get("payment") or {}).get("reward_usd") or 0)
    mean_bonus = (int(bonus_cents) / 100 / n_valid) if n_valid else 0.0
    per_hour = None
    if durations and durations["median"] > 0:
        per_hour = (reward + mean_bonus) / (durations["median"] / 3600)
    pay = {"reward_usd": reward, "mean_bonus_usd": mean_bonus, "per_hour_usd": per_hour,
           "minimum_usd": MIN_HOURLY["USD"],
           "below_minimum": per_hour is not None and per_hour < MIN_HOURLY["USD"]}

    listening = bool((plan.get("audio_check") or {}).get("enabled"))
    flags = {"never_fetched": integrity.get("never_fetched", 0), "too_fast": integrity.get("too_fast", 0),
             "too_few_bytes": integrity.get("too_few_bytes", 0), "unpaced": integrity.get("unpaced", 0),
             "media_failed": integrity.get("media_failed", 0),
             "inconsistent": sum(1 for r in rows if r.verdict == INVALID),
             "listening_failed": listening_counts.get("screen_failed", 0) + listening_counts.get("audio_check_failed", 0)}
    return {"series": series, "eta": eta, "durations": durations, "pay": pay,
            "dropout": dropout(rows, timeout_s=timeout_s, now=now, listening=listening),
            "n_arrivals": len(rows), "flags": flags}
