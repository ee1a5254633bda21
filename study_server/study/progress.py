"""Places held only by progress (issue 29).

Once a participant has given consent, their session keeps its place while it *progresses*: an answer, a
listening-check step, or media bytes served for a trial, each within ``IDLE_RELEASE_S`` (default 300 s) of
the last. ``assignments.progress_at`` is the time of the last progress; pings and page loads do not move it
(a tab left open with a timer is not a participant). The sweep (``assignment.expire_stale``, run by every
arrival under the study's lock) expires started sessions whose progress is older than ``IDLE_RELEASE_S``;
a released session that comes back is revived when its batch has room (``assignment.ensure_active``), or is
told politely that the study is full.

Writing ``progress_at`` touches only the participant's own row (the lock order of ``assignment``): it is an
UPDATE by primary key, conditional on the session being started.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Update, and_, bindparam, func, or_, update

from study_server.store.models import STARTED, Assignment

DEFAULT_IDLE_RELEASE_S = 300.0
_A = Assignment.__table__.c

# For study_server.participant.fastpath, which talks to the driver directly.
PROGRESS_SQL = "UPDATE assignments SET progress_at = %(now)s WHERE id = %(aid)s AND status = %(started)s"


def idle_release_s(config: Any) -> float | None:
    """``IDLE_RELEASE_S`` (None or <= 0: off, only ``ASSIGNMENT_TIMEOUT_S`` of silence releases a place)."""
    value = float(config.get("IDLE_RELEASE_S", DEFAULT_IDLE_RELEASE_S) or 0)
    return value if value > 0 else None


def progress_statement(assignment_id: int, now: dt.datetime) -> Update:
    """Record progress of a started session (no effect on any other status)."""
    return (update(Assignment.__table__).where(_A.id == assignment_id, _A.status == STARTED)
            .values(progress_at=now))


PROGRESS = (update(Assignment.__table__).where(_A.id == bindparam("aid"), _A.status == STARTED)
            .values(progress_at=bindparam("now")))


def idle_condition(now: dt.datetime, idle_s: float):
    """Started sessions without progress for ``idle_s``: since their last progress, or since they started."""
    cutoff = now - dt.timedelta(seconds=idle_s)
    return and_(_A.status == STARTED,
                or_(_A.progress_at < cutoff,
                    and_(_A.progress_at.is_(None), func.coalesce(_A.started_at, _A.allocated_at) < cutoff)))
