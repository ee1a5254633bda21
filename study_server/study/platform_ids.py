"""Every platform id a worker's assignment ever arrived with, kept (``PlatformAssignmentId``).

MTurk gives a returning worker a new assignment id each time they accept a HIT of the study; the
assignment row keeps only the latest, so a submission made under an earlier id would look unknown. The
arrival code calls ``remember_platform_ids`` before it refreshes the ids; ``assignment_for_external_id``
finds the assignment by any of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from study_server.store.models import Assignment
from study_server.store.recruitment import PlatformAssignmentId


def _pairs(assignment: Assignment, source: Any) -> list[tuple[str, str, str | None]]:
    out = []
    if getattr(source, "external_assignment_id", None):
        out.append(("mturk", source.external_assignment_id, getattr(source, "hit_id", None)))
    if getattr(source, "prolific_session_id", None):
        out.append(("prolific", source.prolific_session_id, getattr(source, "prolific_study_id", None)))
    return out


def remember_platform_ids(assignment: Assignment, arrival: Any) -> None:
    """Record the assignment's current platform ids and the arrival's new ones (added to the session;
    the caller commits). Never moves an id from one assignment to another."""
    session = object_session(assignment)
    if session is None:
        return
    for platform, external_id, post_id in _pairs(assignment, assignment) + _pairs(assignment, arrival):
        remember(session, assignment.id, platform, external_id, post_id)


def remember(session: Session, assignment_id: int, platform: str, external_id: str, post_id: str | None,
             platform_status: str | None = None) -> PlatformAssignmentId:
    row = session.scalar(select(PlatformAssignmentId).where(PlatformAssignmentId.platform == platform,
                                                            PlatformAssignmentId.external_id == external_id))
    if row is None:
        row = PlatformAssignmentId(assignment_id=assignment_id, platform=platform, external_id=external_id,
                                   post_id=post_id, platform_status=platform_status)
        session.add(row)
        session.flush()
    elif platform_status:
        row.platform_status = platform_status
    return row


def assignment_for_external_id(session: Session, study_id: int, platform: str, external_id: str) -> Assignment | None:
    """The assignment that arrived with this platform id, now or earlier."""
    a = session.scalar(select(Assignment).join(PlatformAssignmentId, PlatformAssignmentId.assignment_id == Assignment.id)
                       .where(Assignment.study_id == study_id, PlatformAssignmentId.platform == platform,
                              PlatformAssignmentId.external_id == external_id))
    if a is not None:
        return a
    column = Assignment.external_assignment_id if platform == "mturk" else Assignment.prolific_session_id
    return session.scalar(select(Assignment).where(Assignment.study_id == study_id, column == external_id).limit(1))


def ids_of(session: Session, assignment: Assignment, platform: str) -> dict[str, str | None]:
    """external id -> platform status, for every id this assignment used on ``platform``."""
    rows = dict(session.execute(select(PlatformAssignmentId.external_id, PlatformAssignmentId.platform_status)
                                .where(PlatformAssignmentId.assignment_id == assignment.id,
                                       PlatformAssignmentId.platform == platform)).all())
    current = assignment.external_assignment_id if platform == "mturk" else assignment.prolific_session_id
    if current and current not in rows:
        rows[current] = None
    return rows
