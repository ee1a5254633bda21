"""What the admin pages show of a study's recruitment: the posts on each platform, the bonus ledger, the
review queue, the campaigns and the payments a person must settle."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from study_server.recruit.ledger import unsettled
from study_server.recruit.service import places_needed, posts, review_queue
from study_server.store.models import Assignment, Study
from study_server.store.recruitment import BonusPayment, Campaign


def recruitment_summary(session: Session, study: Study) -> dict[str, Any]:
    """What the admin pages show: the posts on each platform, the bonus ledger and the review queue."""
    rows = [{"platform": p.platform, "id": p.external_id, "places": p.places, "status": p.status,
             "sandbox": p.sandbox, "created_at": p.created_at.isoformat() if p.created_at else None}
            for p in posts(session, study, "mturk", open_only=False) + posts(session, study, "prolific", open_only=False)
            + posts(session, study, "lab", open_only=False)]
    ledger_: dict[str, dict[str, Any]] = {}
    for b in session.scalars(select(BonusPayment).join(Assignment).where(Assignment.study_id == study.id)):
        entry = ledger_.setdefault(b.status, {"n": 0, "usd": 0.0})
        entry["n"] += 1
        entry["usd"] = round(entry["usd"] + b.amount_cents / 100, 2)
    queue = [{"id": r.id, "platform": r.platform, "external_id": r.external_id, "worker_id": r.worker_id,
              "reason": r.reason, "evidence": r.evidence, "created_at": r.created_at.isoformat() if r.created_at else None}
             for r in review_queue(session, study)]
    campaigns = {c.platform + (" (sandbox)" if c.platform == "mturk" and c.sandbox else ""): c.status
                 for c in session.scalars(select(Campaign).where(Campaign.study_id == study.id))}

    return {"posts": rows, "places_needed": places_needed(session, study), "bonus_ledger": ledger_,
            "review_queue": queue, "campaigns": campaigns, "unsettled_payments": unsettled(session, study)}
