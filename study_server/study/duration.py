"""The study's expected duration (``stimuli.duration``) from its plan and the lengths of its clips, as the
server stores them (``StudyStimulus.labels["duration_s"]``, the manifest row). Cached per plan: a plan and its
set never change once imported.

``study_minutes`` is the one number every place states: the consent page, the recruiting post (Prolific's
estimated completion time and its pay-per-hour check) and the admin page, beside the measured median. The
spec's ``[recruitment] estimated_minutes``, when set, is the researcher's own estimate and wins everywhere."""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stimuli.duration import Duration, expected_duration
from study_server.store.models import FINISHED, REAL, Assignment, StudyStimulus

_CACHE: dict[tuple[int, str], Duration] = {}


def study_duration(session: Session, study_id: int, plan_sha256: str, plan: dict[str, Any]) -> Duration:
    key = (study_id, plan_sha256)
    if key not in _CACHE:
        rows = session.execute(select(StudyStimulus.stimulus_id, StudyStimulus.labels)
                               .where(StudyStimulus.study_id == study_id)).all()
        _CACHE[key] = expected_duration(plan, {sid: (labels or {}).get("duration_s") for sid, labels in rows})
    return _CACHE[key]


def study_minutes(session: Session, study_id: int, plan_sha256: str, plan: dict[str, Any]) -> int:
    """The expected minutes of one participant: the spec's estimate when it gives one, else the plan's."""
    stated = ((plan.get("study") or {}).get("recruitment") or {}).get("estimated_minutes")
    return int(stated) if stated else study_duration(session, study_id, plan_sha256, plan).minutes


def measured_median_minutes(session: Session, study_id: int) -> tuple[float | None, int]:
    """(median minutes from start to completion, how many) of the study's completed real participants."""
    rows = session.execute(select(Assignment.started_at, Assignment.completed_at).where(
        Assignment.study_id == study_id, Assignment.kind == REAL, Assignment.status.in_(FINISHED),
        Assignment.started_at.is_not(None), Assignment.completed_at.is_not(None))).all()
    spans = [(done - start).total_seconds() / 60.0 for start, done in rows]
    return (statistics.median(spans) if spans else None), len(spans)
