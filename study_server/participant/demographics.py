"""The spec's ``[demographics]`` items on the participant's page and their answers (stored per assignment in
``demographics``; exported in participants.csv as ``demo_<item>``).

The items and their values are ``stimuli.demographics``; the words a participant reads (questions, options,
"Prefer not to say") are msgids of the message catalogue, so they follow ``[participant] language``. Every
item offers "prefer not to say"; a required item must be answered (that answer included). Asked after the
consent or at the end, as the spec says; the study completes only with the required items answered.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stimuli.demographics import AGE_BANDS, CHOICES, FREE_TEXT, PREFER_NOT, clean_values
from study_server.core.errors import ApiError, Conflict
from study_server.participant.i18n import N_
from study_server.store.extensions import db
from study_server.store.models import ACTIVE, Demographics, utcnow
from study_server.study.context import Ctx, load
from study_server.web.bodies import request_json

bp = Blueprint("demographics", __name__, url_prefix="/api/v1")

PROMPTS = {
    "age": N_("Your age in years"), "gender": N_("Your gender"),
    "native_language": N_("Your native language(s)"), "country": N_("The country you live in"),
    "hearing": N_("Your hearing"), "vision": N_("Your vision"),
    "device": N_("The device you are using"), "headphones": N_("What you listen with"),
}
AGE_BANDS_PROMPT = N_("Your age")
LABELS = {
    ("gender", "woman"): N_("Woman"), ("gender", "man"): N_("Man"), ("gender", "non_binary"): N_("Non-binary"),
    ("hearing", "normal"): N_("Normal"), ("hearing", "corrected"): N_("Corrected (hearing aid or implant)"),
    ("hearing", "impaired"): N_("Impaired"),
    ("vision", "normal"): N_("Normal"), ("vision", "corrected"): N_("Corrected (glasses or contact lenses)"),
    ("vision", "impaired"): N_("Impaired"),
    ("device", "computer"): N_("Computer"), ("device", "tablet"): N_("Tablet"), ("device", "phone"): N_("Phone"),
    ("headphones", "headphones"): N_("Headphones or earphones"), ("headphones", "speakers"): N_("Speakers"),
    ("headphones", "none"): N_("No sound"),
}
SELF_DESCRIBE = N_("In my own words:")
PREFER_NOT_LABEL = N_("Prefer not to say")
AGE_BAND_LABELS = {"65+": N_("65 or older")}
TEXT_HINT = N_("(required)")


def plan_demographics(plan: dict[str, Any]) -> dict[str, Any] | None:
    return plan.get("demographics")


def form_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """What the page's form shows, in the current locale: one dict per item."""
    d = plan_demographics(plan)
    if not d:
        return []
    out = []
    for item in d["items"]:
        iid = item["id"]
        entry: dict[str, Any] = {"id": iid, "required": item["required"], "prompt": gettext(PROMPTS[iid]),
                                 "prefer_not": PREFER_NOT, "prefer_label": gettext(PREFER_NOT_LABEL)}
        if iid == "age" and d["age"] == "years":
            entry["kind"] = "number"
        elif iid == "age":
            entry.update(kind="choice", prompt=gettext(AGE_BANDS_PROMPT),
                         options=[(b, gettext(AGE_BAND_LABELS[b]) if b in AGE_BAND_LABELS else b)
                                  for b in AGE_BANDS])
        elif iid in FREE_TEXT:
            entry["kind"] = "text"
        else:
            entry.update(kind="choice", options=[(v, gettext(LABELS[(iid, v)])) for v in CHOICES[iid]])
            if iid == "gender":
                entry["self_label"] = gettext(SELF_DESCRIBE)
        out.append(entry)
    return out


def demographics_state(session: Session, ctx: Ctx) -> dict[str, Any] | None:
    d = plan_demographics(ctx.plan.plan)
    if not d:
        return None
    done = session.scalar(select(Demographics.id).where(Demographics.assignment_id == ctx.assignment.id))
    return {"when": d["when"], "done": done is not None,
            "required": any(i["required"] for i in d["items"])}


def check_complete(session: Session, ctx: Ctx) -> None:
    """Refuse to complete a study whose required demographic items are not answered."""
    state = demographics_state(session, ctx)
    if state and state["required"] and not state["done"]:
        raise Conflict("demographics_missing", "answer the questions about yourself first", status=409)


@bp.post("/a/<token>/demographics")
def save(token: str):
    ctx = load(db.session, token)
    d = plan_demographics(ctx.plan.plan)
    if not d:
        raise ApiError("no_demographics", "this study asks no questions about the participant", status=404)
    a = ctx.assignment
    if a.status not in ACTIVE or a.started_at is None:
        raise Conflict("not_started", "give consent before answering the questions about yourself", status=409)
    body = request_json()
    try:
        values = clean_values(d, (body or {}).get("values") if isinstance(body, dict) else None)
    except ValueError as exc:
        raise ApiError("demographics_invalid", str(exc), status=400) from None
    existing = db.session.scalar(select(Demographics).where(Demographics.assignment_id == a.id))
    if existing is not None:  # a retry after a lost reply: the first answers stand
        db.session.rollback()
        return {"saved": True, "values": existing.values}
    db.session.add(Demographics(assignment_id=a.id, values=values, created_at=utcnow()))
    a.last_seen_at = utcnow()
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    return {"saved": True, "values": values}
