"""Words for the admin pages instead of internals: times to the second in the study's time zone, statuses,
platforms, flags and a participant's answers as the plan labels them.

The study's time zone is the plan's ``study.timezone`` (the spec's ``[study] timezone``, an IANA name);
plans without one show UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

UTC = dt.timezone.utc

PLATFORM_WORDS = {"mturk": "MTurk", "prolific": "Prolific", "lab": "Lab link", "link": "Open link"}
STATUS_WORDS = {"allocated": "arrived, not started", "started": "in progress", "completed": "completed",
                "submitted": "submitted on the platform", "approved": "approved", "rejected": "rejected at review",
                "returned": "returned", "abandoned": "gave up", "expired": "timed out"}
WATCH_WORDS = {"never_fetched": "answered without loading the video", "too_fast": "answered sooner than the video lasts"}
REVIEW_REASON_WORDS = {"unknown": "no record of this submission here", "duplicate": "a second submission by one worker",
                       "partial": "did not finish the survey"}


def study_zone(plan: dict[str, Any]) -> dt.tzinfo:
    """The study's time zone (UTC when the plan names none or a name this machine does not know)."""
    name = (plan.get("study") or {}).get("timezone") or "UTC"
    if name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def when(value: dt.datetime | None, zone: dt.tzinfo = UTC, *, name: bool = True) -> str:
    """``2026-12-07 19:04:05 CET``: to the second, in ``zone`` (``name=False``: without the zone's name,
    for table cells under a heading that names it); empty for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S") + (" " + (local.tzname() or "UTC") if name else "")


def duration(seconds: float | None) -> str:
    """``12 min 5 s``, ``3 h 20 min``, ``40 s``; empty for None."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days {s % 86400 // 3600} h"


def platform(name: str | None) -> str:
    return PLATFORM_WORDS.get(name or "", name or "")


def status(name: str | None) -> str:
    return STATUS_WORDS.get(name or "", name or "")


def watch_flag(name: str | None) -> str:
    return WATCH_WORDS.get(name or "", name or "")


def answer_text(values: dict[str, Any], questions: dict[str, dict[str, Any]], *,
                key: str = "prompt") -> list[tuple[str, str]]:
    """(question prompt - or id with ``key="id"`` -, chosen option labels) per answered question, in the
    plan's question order."""
    out = []
    for qid, q in questions.items():
        if qid not in values:
            continue
        labels = {o["value"]: o.get("label") or o["value"] for o in q.get("options", [])}
        chosen = values[qid] if isinstance(values[qid], list) else [values[qid]]
        out.append((qid if key == "id" else (q.get("prompt") or qid), ", ".join(str(labels.get(v, v)) for v in chosen)))
    return out
