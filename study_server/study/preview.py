"""Sessions that are not data: the researcher's preview of a batch and the simulated participants of
`emostudy simulate`.

A preview is an assignment of ``kind = "preview"`` in the batch the researcher chose: it walks the real
pages and API, but never takes a place (``assignment.occupancy``), never appears in the admin counts,
exports or reports. A simulated participant arrives like anyone (a lab link) and is then marked
``kind = "simulated"`` with a signature only the server's secret can make (``simulation_signature``), so no
participant can mark their own session; exports leave simulated sessions out unless asked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.core.errors import Conflict, Forbidden, NotFound
from study_server.store.models import ALLOCATED, PREVIEW, REAL, SIMULATED, Assignment, Batch, Participant, utcnow
from study_server.study.platforms import pseudonym

PREVIEW_PLATFORM = "preview"


def create_preview(session: Session, study_id: int, batch_key: str, *, secret_key: str) -> Assignment:
    """A new preview session of ``batch_key``; commits. Returns the assignment (its token opens the pages)."""
    batch = session.scalar(select(Batch).where(Batch.study_id == study_id, Batch.key == batch_key))
    if batch is None:
        raise NotFound("batch_not_found", f"study {study_id} has no batch {batch_key!r}")
    worker = "preview-" + secrets.token_hex(8)
    now = utcnow()
    participant = Participant(platform=PREVIEW_PLATFORM, worker_id=worker,
                              pseudonym=pseudonym(secret_key, PREVIEW_PLATFORM, worker), created_at=now)
    session.add(participant)
    session.flush()
    assignment = Assignment(token=secrets.token_urlsafe(24), study_id=study_id, batch_id=batch.id,
                            participant_id=participant.id, status=ALLOCATED, allocated_at=now, last_seen_at=now,
                            audio_check_attempts=0, kind=PREVIEW)
    session.add(assignment)
    session.commit()
    return assignment


def simulation_signature(secret_key: str, token: str) -> str:
    return hmac.new(secret_key.encode(), f"simulated:{token}".encode(), hashlib.sha256).hexdigest()


def mark_simulated(session: Session, assignment: Assignment, signature: str, *, secret_key: str) -> None:
    """Mark a just-arrived session as simulated (before consent); commits."""
    if not hmac.compare_digest(signature, simulation_signature(secret_key, assignment.token)):
        raise Forbidden("not_simulated", "only `emostudy simulate` (which knows the server secret) marks a "
                        "session as simulated")
    if assignment.kind == SIMULATED:
        return
    if assignment.kind != REAL or assignment.started_at is not None:
        raise Conflict("already_started", "a session is marked simulated before it starts", status=409)
    assignment.kind = SIMULATED
    session.commit()
