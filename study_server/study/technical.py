"""Technical failures: a session whose clips would not load is never valid (issue 29).

A trial may be recorded as "media failed" (``answers.record_media_failure``) only

- after the sound checks (the listening screen and the word check: ``audio_check_passed``), like an answer;
- for a clip whose bytes were asked for with a GET (``media_fetches.n_gets``; a HEAD is not one): the page
  tried to load it;
- up to the study's cap, the plan's ``consistency.max_media_failures`` (default 2), and never for both
  members of a repeat pair.

The failure that goes beyond the cap (or completes a failed pair) is recorded, and the session ends at once
as a *technical failure*: the assignment is ``abandoned`` (its place is free, it counts in no quota), its
verdict is ``technical_failure`` with the failed positions, and it gets no completion code. Recruitment
never approves it on its own: a submission of it goes to the review queue (MTurk) or gets a return request
(Prolific), as for a failed sound check (``recruit.service.decide``).

A repeat pair with one failed member is not compared: each of its rules counts as one inconsistent answer
(``consistency.evaluate``), so declaring repeats "failed" costs what answering them wrongly costs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from study_server.store.models import ABANDONED, TECHNICAL_FAILURE, Assignment, MediaFetch, Verdict

DEFAULT_MAX_MEDIA_FAILURES = 2


def max_media_failures(plan: Mapping[str, Any]) -> int:
    value = (plan.get("consistency") or {}).get("max_media_failures", DEFAULT_MAX_MEDIA_FAILURES)
    return int(value)


def fetched_with_get(session: Session, assignment_id: int, position: int) -> bool:
    """True when the trial's media was asked for with a GET (served or not; older rows: bytes served)."""
    found = session.scalar(select(func.count()).select_from(MediaFetch).where(
        MediaFetch.assignment_id == assignment_id, MediaFetch.position == position,
        or_(MediaFetch.n_gets > 0, MediaFetch.bytes_served > 0)))
    return bool(found)


def breach(items: Iterable[tuple[int, int | None]], failed: set[int], cap: int) -> str | None:
    """Why ``failed`` positions end the session (None: they do not). ``items``: (position, repeat_of)."""
    if len(failed) > cap:
        return f"more than {cap} clip(s) would not load"
    for position, repeat_of in items:
        if repeat_of is not None and position in failed and repeat_of in failed:
            return f"both clips of a repeat pair would not load (positions {repeat_of} and {position})"
    return None


def end_as_technical_failure(session: Session, a: Assignment, reason: str, failed: set[int],
                             now: dt.datetime) -> Verdict:
    """Abandon ``a`` (its place is freed) with a ``technical_failure`` verdict. Does not commit."""
    a.status = ABANDONED
    a.ended_at = now
    a.last_seen_at = now
    verdict = session.scalar(select(Verdict).where(Verdict.assignment_id == a.id))
    if verdict is None:
        verdict = Verdict(assignment_id=a.id, verdict=TECHNICAL_FAILURE, n_inconsistent=0, n_repeat_answers=0,
                          details={"reason": reason, "media_failed": sorted(failed)}, created_at=now)
        session.add(verdict)
    return verdict
