"""Where a participant who failed a listening screen is sent: the platform's screen-out, when the study was
opened with one (``emostudy recruit open --screen-out-pay``), else nowhere (they are asked to return)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.store.recruitment import Campaign
from study_server.study.platforms import completion_action


def screen_out_action(session: Session, study_id: int, platform: str) -> dict[str, Any] | None:
    """Where a participant who failed the headphone screen goes: Prolific's completion page with the study's
    screen-out code, when the study was opened with a screen-out payment; else None (asked to return)."""
    if platform != "prolific":
        return None
    c = session.scalar(select(Campaign).where(Campaign.study_id == study_id, Campaign.platform == "prolific")
                       .order_by(Campaign.id.desc()).limit(1))
    so = (c.settings or {}).get("screen_out") if c is not None else None
    if not so:
        return None
    return completion_action("prolific", code=so["code"])
