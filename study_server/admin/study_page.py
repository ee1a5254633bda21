"""What the study page shows, in words: the live numbers (counts per batch, the chart of arrivals, starts,
completions and valid completions, the estimated time to full, time and pay, dropout, flags), the
participant link of each recruitment channel, the posts, the review queue of every channel, the payments
that need a person, the decisions made, and the latest participants.

``fingerprint`` is what the page's polling compares (one query on indexed columns): it changes when a
participant arrives, makes a request, completes, or a decision is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study_server.admin import decisions as admin_decisions
from study_server.admin import progress, stats, words
from study_server.admin.chart import line_chart
from study_server.recruit import ledger, money
from study_server.recruit.prolific import URL_PARAMS
from study_server.recruit.summary import recruitment_summary
from study_server.store.models import AdminDecision, Assignment, Participant, Study, utcnow
from study_server.store.recruitment import BONUS_FAILED, BONUS_UNKNOWN, BonusPayment
from study_server.study.studies import plan_view

SERIES_NAMES = {"arrivals": "Arrivals", "starts": "Starts (consent given)", "completions": "Completions",
                "valid": "Valid completions"}
DROPOUT_WORDS = {"consent": "before giving consent", "listening": "at the listening checks",
                 "examples": "at the instructions and examples"}
LATEST = 100  # participants listed on the study page (all of them: the participants page)
REVIEW_SHOWN = 50  # lab / open-link completions listed in the review queue at once (the oldest first)


def fingerprint(session: Session, study_id: int) -> str:
    row = session.execute(select(
        select(func.count(Assignment.id)).where(Assignment.study_id == study_id).scalar_subquery(),
        select(func.max(Assignment.last_seen_at)).where(Assignment.study_id == study_id).scalar_subquery(),
        select(func.max(AdminDecision.id)).where(AdminDecision.study_id == study_id).scalar_subquery())).one()
    n, seen, decided = row
    return hashlib.sha256(f"{n}|{seen}|{decided or 0}".encode()).hexdigest()[:16]  # opaque to the page


def _bin_labels(starts: list[dt.datetime], zone: dt.tzinfo) -> list[str]:
    out, last_day = [], None
    for t in starts:
        local = t.astimezone(zone)
        day = local.date()
        out.append(local.strftime("%H:%M") if day == last_day else local.strftime("%d %b %H:%M"))
        last_day = day
    return out


def live_numbers(session: Session, study: Study, *, timeout_s: float, as_json: bool = False,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    plan = plan_view(study).plan
    zone = words.study_zone(plan)
    detail = stats.study_detail(session, study, timeout_s=timeout_s)
    p = progress.study_progress(session, study, plan, zone=zone, timeout_s=timeout_s,
                                needed=detail["totals"]["needed"], integrity=detail["integrity"],
                                listening_counts=detail["listening"], now=now)
    series = p["series"]
    labels = _bin_labels(series["bins"], zone)
    if as_json:
        return {"study": study.name, "timezone": str(zone), "bin_hours": series["width_h"],
                "bins": [t.isoformat() for t in series["bins"]],
                **{k: series[k] for k in progress.SERIES}, "eta": {**p["eta"], "full_at": p["eta"]["full_at"].isoformat()
                                                                  if p["eta"]["full_at"] else None},
                "durations_s": p["durations"], "pay": p["pay"], "dropout": p["dropout"], "flags": p["flags"],
                "batches": detail["batches"], "totals": detail["totals"]}
    per = "hour" if series["width_h"] == 1 else f"{series['width_h']} hours"
    chart = line_chart(labels, {k: series[k] for k in progress.SERIES}, names=SERIES_NAMES,
                       caption=f"Arrivals, starts, completions and valid completions per {per}") if labels else ""
    eta = p["eta"]
    d = p["durations"]
    dropout_total = sum(r["n"] for r in p["dropout"])
    return {
        "id": study.id, "fingerprint": fingerprint(session, study.id), "now": words.when(now, zone),
        "zone": words.when(now, zone).rsplit(" ", 1)[-1],
        "batches": detail["batches"], "totals": detail["totals"], "chart": chart, "per": per,
        "series_total": {k: sum(series[k]) for k in progress.SERIES},
        "n_arrivals": p["n_arrivals"],
        "eta": {**eta, "eta_text": words.duration(eta["eta_s"]) if eta["eta_s"] else "",
                "full_at_text": words.when(eta["full_at"], zone) if eta["full_at"] else "",
                "window_text": words.duration(eta["window_h"] * 3600)},
        "durations": None if d is None else {"median": words.duration(d["median"]), "q1": words.duration(d["q1"]),
                                             "q3": words.duration(d["q3"]), "n": d["n"]},
        "pay": p["pay"],
        "dropout": [{"where": DROPOUT_WORDS.get(r["step"]) or f"at trial {r['trial']}", "n": r["n"],
                     "share": r["n"] / p["n_arrivals"] if p["n_arrivals"] else 0.0} for r in p["dropout"]],
        "dropout_total": dropout_total, "flags": p["flags"], "listening": detail["listening"],
    }


def participant_links(study: Study, base_url: str, used: set[str]) -> list[dict[str, Any]]:
    url = base_url.rstrip("/") + f"/s/{study.name}"
    return [
        {"channel": "Prolific", "in_use": "prolific" in used, "url": f"{url}?{URL_PARAMS}",
         "how": "the study URL on Prolific (Prolific fills in the three ids); emostudy recruit open --platform "
                "prolific sets it for you"},
        {"channel": "MTurk", "in_use": "mturk" in used, "url": url,
         "how": "the HIT's external question; MTurk adds the worker, HIT and assignment ids"},
        {"channel": "Lab link", "in_use": "lab" in used, "url": f"{url}?lab=(one-time code)",
         "how": "one link per person; emostudy recruit open --platform lab --places N prints them (shown once)"},
        {"channel": "Open link", "in_use": "link" in used, "url": url,
         "how": "anyone with the link; every arrival is a new participant"},
    ]


def _posts(summary: dict[str, Any], zone: dt.tzinfo) -> list[dict[str, Any]]:
    out = []
    for p in summary["posts"]:
        if p["platform"] == "mturk":
            where = "MTurk sandbox (test, no money)" if p["sandbox"] else "MTurk marketplace (real money)"
        else:
            where = words.platform(p["platform"])
        created = dt.datetime.fromisoformat(p["created_at"]) if p["created_at"] else None
        out.append({"where": where, "id": p["id"], "places": p["places"], "status": p["status"],
                    "created": words.when(created, zone)})
    return out


def payments_to_settle(session: Session, study: Study, zone: dt.tzinfo) -> list[dict[str, Any]]:
    """Bonus payments a person must settle (the ledger's ``unsettled``: outcome unknown, or a claim whose process
    is gone) and those the platform refused, with what settles each."""
    out = []
    for u in ledger.unsettled(session, study):
        b = session.get(BonusPayment, u["id"])
        base = f"emostudy recruit bonus --study {study.name} --platform {b.platform}"
        what = ("the reply was lost: it may have been paid" if b.status == BONUS_UNKNOWN
                else "the pay call was interrupted")
        out.append({"id": b.id, "who": u["pseudonym"], "platform": words.platform(b.platform), "amount": u["amount"],
                    "status": b.status, "what": what, "since": words.when(b.committed_at or b.created_at, zone),
                    "error": (b.response or {}).get("error", ""),
                    "commands": [base + "  (reads the platform's records first)", u["command"]]})
    failed = session.execute(
        select(BonusPayment, Participant.pseudonym).join(Assignment, Assignment.id == BonusPayment.assignment_id)
        .join(Participant, Participant.id == Assignment.participant_id)
        .where(Assignment.study_id == study.id, BonusPayment.status == BONUS_FAILED)
        .order_by(BonusPayment.id)).all()
    for b, pseudonym in failed:
        minor = b.amount_minor if b.amount_minor is not None else b.amount_cents
        out.append({"id": b.id, "who": pseudonym, "platform": words.platform(b.platform),
                    "amount": f"{money.fmt(minor)} {b.currency or 'USD'}", "status": b.status,
                    "what": "refused by the platform (nothing was paid)",
                    "since": words.when(b.committed_at or b.created_at, zone),
                    "error": (b.response or {}).get("error", ""),
                    "commands": [f"emostudy recruit bonus --study {study.name} --platform {b.platform}  "
                                 "(reads the platform's records, then pays again)"]})
    return sorted(out, key=lambda r: r["id"])


def decision_row(d: AdminDecision, zone: dt.tzinfo) -> dict[str, Any]:
    return {"at": words.when(d.at, zone, name=False), "actor": d.actor, "assignment_id": d.assignment_id,
            "kind": {"verdict": "verdict overridden", "hold": "hold", "review": "review queue"}.get(d.kind, d.kind),
            "action": d.action, "reason": d.reason}


def participant_rows(session: Session, study: Study, zone: dt.tzinfo, *, limit: int | None,
                     offset: int = 0) -> list[dict[str, Any]]:
    rows = stats.assignment_rows(session, study.id, limit=limit, offset=offset, raw_times=True)
    pseudonyms = {aid: p for aid, p in session.execute(
        select(Assignment.id, Participant.pseudonym).join(Participant, Participant.id == Assignment.participant_id)
        .where(Assignment.id.in_([r["id"] for r in rows])))} if rows else {}
    return [{**r, "who": pseudonyms.get(r["id"], ""), "platform": words.platform(r["platform"]),
             "status": words.status(r["status"]), "started": words.when(r["started_at"], zone, name=False),
             "completed": words.when(r["completed_at"], zone, name=False),
             "took": words.duration((r["completed_at"] - r["started_at"]).total_seconds())
             if r["completed_at"] and r["started_at"] else ""} for r in rows]


def study_page(session: Session, study: Study, *, timeout_s: float, base_url: str) -> dict[str, Any]:
    plan = plan_view(study).plan
    zone = words.study_zone(plan)
    summary = recruitment_summary(session, study)
    used = {p["platform"] for p in summary["posts"]} | set(session.scalars(
        select(Participant.platform).join(Assignment, Assignment.participant_id == Participant.id)
        .where(Assignment.study_id == study.id).distinct()))
    review = admin_decisions.review_rows(session, study, limit=REVIEW_SHOWN)
    for r in review:
        r["since_text"] = words.when(r["since"], zone, name=False)
        r["platform_text"] = words.platform(r["platform"])
        r["reason_text"] = words.REVIEW_REASON_WORDS.get(r["reason"], r["reason"])
    return {
        "id": study.id, "name": study.name, "title": study.title or study.name, "task": study.task,
        "status": study.status, "created": words.when(study.created_at, zone),
        "zone": words.when(study.created_at, zone).rsplit(" ", 1)[-1],
        "live": live_numbers(session, study, timeout_s=timeout_s),
        "links": participant_links(study, base_url, used),
        "posts": _posts(summary, zone), "places_needed": summary["places_needed"],
        "ledger": summary["bonus_ledger"], "review": review,
        "n_review": admin_decisions.n_review_rows(session, study) if len(review) >= REVIEW_SHOWN else len(review),
        "payments": payments_to_settle(session, study, zone),
        "decisions": [decision_row(d, zone) for d in admin_decisions.decisions(session, study.id, limit=50)],
        "participants": participant_rows(session, study, zone, limit=LATEST),
        "n_participants": session.scalar(select(func.count()).select_from(Assignment)
                                         .where(Assignment.study_id == study.id)),
    }
