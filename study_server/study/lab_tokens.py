"""Lab links' one-time tokens: only their sha256 is stored; ``check_token`` is what an arrival asks.

A token is shown once, inside its link (``/s/<study>?lab=TOKEN``). The server's arrival accepts a lab token
for a study that has lab tokens only when it is one of them, and a token serves one participant (a second
person with it resumes the first one's assignment, never gets a new one). ``recruit.lab`` makes them.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.store.models import Study, utcnow
from study_server.store.recruitment import LabToken


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make_tokens(session: Session, study: Study, n: int) -> list[str]:
    tokens = [secrets.token_urlsafe(12) for _ in range(int(n))]
    session.add_all(LabToken(study_id=study.id, token_sha256=_hash(t)) for t in tokens)
    session.commit()
    return tokens


def study_uses_tokens(session: Session, study_id: int) -> bool:
    return session.scalar(select(LabToken.id).where(LabToken.study_id == study_id).limit(1)) is not None


def check_token(session: Session, study_id: int, token: str) -> bool:
    """True when lab links of this study are open (no tokens made) or ``token`` is one of its tokens.
    Marks the token used (the first time)."""
    if not study_uses_tokens(session, study_id):
        return True
    row = session.scalar(select(LabToken).where(LabToken.study_id == study_id, LabToken.token_sha256 == _hash(token)))
    if row is None:
        return False
    if row.used_at is None:
        row.used_at = utcnow()
    return True
