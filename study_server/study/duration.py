"""The study's expected duration (``stimuli.duration``) from its plan and the lengths of its clips, as the
server stores them (``StudyStimulus.labels["duration_s"]``, the manifest row). Cached per plan: a plan and its
set never change once imported."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stimuli.duration import Duration, expected_duration
from study_server.store.models import StudyStimulus

_CACHE: dict[tuple[int, str], Duration] = {}


def study_duration(session: Session, study_id: int, plan_sha256: str, plan: dict[str, Any]) -> Duration:
    key = (study_id, plan_sha256)
    if key not in _CACHE:
        rows = session.execute(select(StudyStimulus.stimulus_id, StudyStimulus.labels)
                               .where(StudyStimulus.study_id == study_id)).all()
        _CACHE[key] = expected_duration(plan, {sid: (labels or {}).get("duration_s") for sid, labels in rows})
    return _CACHE[key]
