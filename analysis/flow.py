"""Participant flow (CONSORT-style): how the surveys of an export went from arrival to the analysed sample.

Every survey (assignment) of the export falls in exactly one final outcome:

- ``valid``: complete and consistent (the verdict used by the analysis is ``valid``);
- ``rejected``: complete but more repeated answers inconsistent than the plan allows;
- otherwise not complete, split by the server's ``status`` in participants.csv: ``returned`` (the
  participant gave the task back on the platform), ``expired`` (the time ran out), ``incomplete``
  (anything else: abandoned, still allocated or started when the study was exported, or no status);
- ``other``: a complete survey whose verdict is neither (e.g. a server verdict ``pending``).

The steps: *arrived* = every survey; *started* = a ``started_at`` time, a status that implies it (started, completed,
submitted, approved, rejected), or at least one answer; *completed* = valid + rejected + other; *analysed* = the valid surveys, with the
participants and answers that enter the statistics.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.cleaning import Cleaned
from analysis.io import Export

# Statuses that imply the trials were started (returned / expired / abandoned do not: check started_at).
STARTED_STATUSES = {"started", "completed", "submitted", "approved", "rejected"}
LEFT = ("returned", "expired", "incomplete")


def _left_kind(status: str) -> str:
    return status if status in ("returned", "expired") else "incomplete"


def participant_flow(export: Export, cleaned: Cleaned) -> dict[str, Any]:
    """Counts of surveys at each step (keys: docs/analysis.md, ``flow``)."""
    surveys = cleaned.surveys
    verdict_col = "server_verdict" if cleaned.verdict_source == "server" else "verdict"
    verdict = surveys.set_index("assignment")[verdict_col].astype(str)
    answered = surveys.set_index("assignment")["n_answered"]
    parts = export.participants
    status = pd.Series("", index=verdict.index, dtype=object)
    started_at = pd.Series("", index=verdict.index, dtype=object)
    if parts is not None:
        p = parts.set_index(parts["assignment"].astype(str))
        if "status" in p.columns:
            status = p["status"].astype(str).reindex(verdict.index).fillna("")
        if "started_at" in p.columns:
            started_at = p["started_at"].astype(str).reindex(verdict.index).fillna("")
    started = (started_at != "") | status.isin(STARTED_STATUSES) | (answered.reindex(verdict.index) > 0)
    complete = verdict.isin(["valid", "rejected"]) | (
        surveys.set_index("assignment")["complete"].astype(bool) & ~verdict.isin(["incomplete"]))
    out: dict[str, Any] = {
        "arrived": int(len(verdict)), "started": int(started.sum()), "completed": int(complete.sum()),
        "valid": int((verdict == "valid").sum()), "rejected": int((verdict == "rejected").sum()),
        "other": int((complete & ~verdict.isin(["valid", "rejected"])).sum()),
        "verdict_source": cleaned.verdict_source,
        "status_known": bool(parts is not None and "status" in parts.columns),
    }
    for key, sel in (("not_started", ~started), ("not_completed", started & ~complete)):
        kinds = status[sel].map(_left_kind)
        out[key] = {"total": int(sel.sum()), **{k: int((kinds == k).sum()) for k in LEFT}}
    for k in LEFT:
        out[k] = out["not_started"][k] + out["not_completed"][k]
    c = cleaned.counts
    used = cleaned.answers
    out["analysed_surveys"] = int(used["assignment"].nunique()) if len(used) else 0
    out["analysed_participants"] = int(c["n_participants_valid"])
    out["analysed_answers"] = int(c["n_answers_used"])
    return out
