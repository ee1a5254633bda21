"""Lab links: one-time tokens for in-person or invited participants. No payments.

A token is shown once, inside its link (``/s/<study>?lab=TOKEN``); only its sha256 is stored. The
server's arrival accepts a lab token for a study that has lab tokens only when it is one of them
(``check_token``), and a token serves one participant (a second person with it resumes the first one's
assignment, never gets a new one).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.recruit.base import PostSettings, Submission
from study_server.store.models import Study
from study_server.store.recruitment import LabToken
from study_server.study.lab_tokens import make_tokens


class LabRecruiter:
    """Lab links behind the recruiter interface: posting makes tokens, nothing is paid."""

    platform = "lab"

    def __init__(self, session: Session, study: Study):
        self.session, self.study = session, study
        self.links: list[str] = []

    def open(self, settings: PostSettings, places: int) -> list[str]:
        tokens = make_tokens(self.session, self.study, places)
        self.links = [f"{settings.study_url}?lab={t}" for t in tokens]
        return [f"lab-{self.study.id}-{secrets.token_hex(4)}"]

    extend = open

    def status(self) -> list[dict[str, Any]]:
        rows = list(self.session.scalars(select(LabToken).where(LabToken.study_id == self.study.id)))
        used = sum(1 for r in rows if r.used_at is not None)
        return [{"id": "lab", "status": "open", "places": len(rows), "available": len(rows) - used, "pending": 0,
                 "completed": used}]

    def review(self) -> list[Submission]:
        return []  # lab participants are reviewed from the database alone (approve happens at completion)

    def approve(self, sub: Submission, feedback: str | None = None) -> None:
        return None

    def reject(self, sub: Submission, feedback: str, category: str | None = None) -> None:
        return None

    def bonus(self, worker_id: str, external_id: str, amount_usd: float, reason: str, token: str) -> dict[str, Any]:
        return {"paid": False, "note": "lab participants are paid by hand"}

    def exclude(self, worker_ids: list[str]) -> None:
        return None

    def close(self) -> None:
        return None
