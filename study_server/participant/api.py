"""The participant JSON API under /api/v1 (routes and bodies: docs/server_api.md).

Handlers are thin: parse the request, call the library (assignment, answers, consistency), translate
``ApiError`` into ``{"error": {"code", "message"}}`` (done by the app's error handler).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from study_server.core.errors import ApiError, Conflict
from study_server.participant.demographics import check_complete, demographics_state
from study_server.participant.holds import same_browser
from study_server.participant.listening import state_for as listening_state
from study_server.participant.listening import words_allowed
from study_server.participant.texts import required_statements
from study_server.store.extensions import db
from study_server.store.models import (
    ABANDONED,
    ACTIVE,
    ALLOCATED,
    DECLINED,
    EXPIRED,
    FINISHED,
    STARTED,
    STUDY_OPEN,
    TECHNICAL_FAILURE,
    utcnow,
)
from study_server.study import assignment as assign
from study_server.study.addresses import places_per_address
from study_server.study.answers import (
    TOUCH_EVERY,
    answered_positions,
    decide_answer,
    media_failed_positions,
    record_media_failure,
    save_answer,
    try_fast_save,
    try_save_pg,
)
from study_server.study.assignment import hold_seconds
from study_server.study.audio_check import is_correct
from study_server.study.consistency import complete_assignment
from study_server.study.context import Ctx, answer_target, cache_of, load, load_light
from study_server.study.media import media_url
from study_server.study.platforms import completion_action, parse_arrival
from study_server.study.preview import mark_simulated
from study_server.study.progress import idle_release_s
from study_server.study.studies import plan_view
from study_server.study.watching import recorded_reader, stored_pace, stored_reader, tolerance_s
from study_server.web.bodies import request_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _json_body() -> dict[str, Any]:
    body = request_json(empty={})
    if not isinstance(body, dict):
        raise ApiError("bad_request", "the request body must be a JSON object", status=400)
    return body


def _timeout() -> float:
    return float(current_app.config["ASSIGNMENT_TIMEOUT_S"])


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


@bp.get("/health")
def health():
    return {"ok": True}


@bp.get("/studies/<study>")
def study_info(study: str):
    s = assign.get_study(db.session, study)
    text = plan_view(s).participant  # the participant's title; the task's name would tell the design
    return {"name": s.name, "title": text["title"], "open": s.status == STUDY_OPEN}


@bp.post("/studies/<study>/arrive")
def arrive(study: str):
    body = _json_body()
    query = body.get("query") or {}
    if not isinstance(query, dict):
        raise ApiError("bad_request", "query must be an object of the platform's URL parameters", status=400)
    arrival = parse_arrival(query, mturk_submit_hosts=tuple(current_app.config["MTURK_SUBMIT_HOSTS"]))
    arrival = same_browser(arrival)  # a plain link re-opened by the same browser is the same arrival
    if arrival.preview:
        assign.get_study(db.session, study)
        return {"preview": True}
    allocation = assign.allocate(db.session, study, arrival, secret_key=_secret(), timeout_s=_timeout(),
                                 user_agent=str(body.get("user_agent") or request.user_agent.string or ""),
                                 hold_s=hold_seconds(current_app.config),
                                 idle_s=idle_release_s(current_app.config), address=request.remote_addr,
                                 places_cap=places_per_address(current_app.config, request.remote_addr))
    a = allocation.assignment
    return jsonify(token=a.token, status=a.status, resumed=allocation.resumed,
                   url=url_for("participant.study_page", token=a.token)), (200 if allocation.resumed else 201)


def completion_for(ctx: Ctx) -> dict[str, Any] | None:
    a = ctx.assignment
    if a.completed_at is None or not a.completion_code:
        return None
    return completion_action(ctx.platform or a.participant.platform, code=a.completion_code,
                             external_assignment_id=a.external_assignment_id, turk_submit_to=a.turk_submit_to,
                             prolific_url=current_app.config["PROLIFIC_COMPLETE_URL"])


def state_of(ctx: Ctx, answered: list[int] | None = None, failed: list[int] | None = None) -> dict[str, Any]:
    """What the page needs: questions, opaque media URLs, what is answered. No labels of trial items.

    ``answered``: the answered positions when the caller knows them (else one query)."""
    a, plan, secret = ctx.assignment, ctx.plan, _secret()
    if answered is None:
        answered = answered_positions(db.session, ctx)
    if failed is None:  # trials recorded as "media failed": done, without an answer
        failed = sorted(media_failed_positions(db.session, ctx)) if ctx.assignment.started_at is not None else []
    done = set(answered) | set(failed)
    positions = [i.position for i in ctx.batch.items]
    next_position = next((p for p in positions if p not in done), None)
    max_attempts = int(current_app.config["AUDIO_CHECK_ATTEMPTS"])
    attempts_left = max(0, max_attempts - a.audio_check_attempts)
    audio_enabled = plan.audio_check_enabled
    listening = listening_state(db.session, ctx, secret)
    audio_url = (media_url(secret, a.token, f"a{a.audio_check_attempts}")
                 if audio_enabled and not a.audio_check_passed and attempts_left
                 and (listening is None or listening["words"]) else None)
    labels = {q_opt["value"]: q_opt["label"] for q in plan.questions for q_opt in q["options"]}
    return {
        "token": a.token,
        "status": a.status,
        "study": plan.participant,  # title, intro, instructions: never the researcher's description
        "questions": [{"id": q["id"], "type": q["type"], "prompt": q["prompt"], "required": q.get("required", True),
                       "options": [{"value": o["value"], "label": o["label"], "exclusive": bool(o.get("exclusive"))}
                                   for o in q["options"]]} for q in plan.questions],
        "audio_check": {"enabled": audio_enabled, "passed": a.audio_check_passed, "attempts_left": attempts_left,
                        "media_url": audio_url},
        "demographics": demographics_state(db.session, ctx),  # when, done (participant.demographics), or None
        "listening": listening,  # volume calibration + headphone screen (study_server.participant.listening), or None
        "examples": [{"label": labels.get(e["emotion"], e["emotion"].capitalize()),
                      "media_url": media_url(secret, a.token, f"x{n}")}
                     for n, e in enumerate(plan.plan["examples"])],
        "items": [{"position": p, "media_url": media_url(secret, a.token, f"t{p}")} for p in positions],
        "answered": answered,
        "media_failed": failed,
        "next_position": next_position,
        "total": len(positions),
        "completion": completion_for(ctx),
        # issue 29: ended because too many videos would not load (the page explains; not a failed sound check)
        "technical_failure": a.status == ABANDONED and a.verdict is not None
        and a.verdict.verdict == TECHNICAL_FAILURE,
    }


def _touch(ctx: Ctx) -> None:
    a = ctx.assignment
    if a.status in ACTIVE:
        now = utcnow()
        if now - a.last_seen_at > TOUCH_EVERY:  # a write per page load is enough, not per poll
            a.last_seen_at = now
        db.session.commit()
    elif a.status == EXPIRED:
        assign.ensure_active(db.session, a, timeout_s=_timeout())
        db.session.commit()


@bp.get("/a/<token>")
def state(token: str):
    ctx = load(db.session, token)
    body = state_of(ctx)  # read first, then one commit for the touch
    try:
        _touch(ctx)
    except Conflict:
        db.session.rollback()  # the slot is gone; the state says "expired" and the page explains
        return body
    body["status"] = ctx.assignment.status  # a revived assignment is active again
    return body


@bp.post("/a/<token>/start")
def start(token: str):
    ctx = load(db.session, token)
    if ctx.assignment.status in FINISHED:
        return state_of(ctx)
    never_started = ctx.assignment.started_at is None  # then it has no answers (saves need a started one)
    if never_started:
        _check_consent(ctx)
    assign.start(db.session, ctx.assignment, timeout_s=_timeout())
    a = ctx.assignment
    # The answers that follow may take the fast path (study_server.participant.fastpath) in this process.
    cache_of(current_app).remember(token, (a.id, a.study_id, a.batch_id, ctx.plan_sha256), a.last_seen_at)
    # The page (or any client) has what the trials need without another request.
    return state_of(ctx, answered=[] if never_started else None, failed=[] if never_started else None)


def _check_consent(ctx: Ctx) -> None:
    """A plan with consent statements starts only when the participant ticked every one of them
    (``{"agree": [0, 1, ...]}``, the statements' indices)."""
    n = required_statements(ctx.plan.plan)
    if not n:
        return
    agree = _json_body().get("agree")
    if not isinstance(agree, list) or sorted(set(a for a in agree if isinstance(a, int))) != list(range(n)):
        raise ApiError("consent_required", f"tick all {n} consent statement(s) to take part, or choose "
                       "that you do not consent", status=400)


@bp.post("/a/<token>/decline")
def decline(token: str):
    """The participant read the consent text and did not consent: the place is freed (status declined)."""
    ctx = load(db.session, token)
    a = ctx.assignment
    if a.status not in (ALLOCATED, EXPIRED, DECLINED):
        raise Conflict("already_started", "you have already given consent; use the return button of the "
                       "platform to stop", status=409)
    assign.leave(db.session, a, status=DECLINED)
    return {"status": a.status}


@bp.post("/a/<token>/simulated")
def simulated(token: str):
    """`emostudy simulate` marks its participant's session (signed with the server secret) before consent."""
    ctx = load(db.session, token)
    mark_simulated(db.session, ctx.assignment, str(_json_body().get("signature") or ""), secret_key=_secret())
    return {"kind": ctx.assignment.kind}


@bp.post("/a/<token>/ping")
def ping(token: str):
    ctx = load(db.session, token)
    _touch(ctx)
    return {"status": ctx.assignment.status}


@bp.post("/a/<token>/return")
def give_back(token: str):
    ctx = load(db.session, token)
    assign.leave(db.session, ctx.assignment)
    return {"status": ctx.assignment.status}


@bp.post("/a/<token>/audio-check")
def audio_check(token: str):
    ctx = load(db.session, token)
    a, body = ctx.assignment, _json_body()
    answer = body.get("answer")
    if not isinstance(answer, str) or len(answer) > 100:
        raise ApiError("bad_request", "answer must be the word you heard, as text", status=400)
    max_attempts = int(current_app.config["AUDIO_CHECK_ATTEMPTS"])
    if not ctx.plan.audio_check_enabled or a.audio_check_passed:
        return {"passed": bool(a.audio_check_passed) or not ctx.plan.audio_check_enabled,
                "attempts_left": max(0, max_attempts - a.audio_check_attempts), "media_url": None, "status": a.status}
    if a.status not in (STARTED, EXPIRED):
        raise Conflict("not_started" if a.status not in (ABANDONED,) else "audio_check_failed",
                       "start the study (give consent) before the sound check" if a.status != ABANDONED
                       else "the sound check did not succeed; please return the task", status=409)
    if not words_allowed(db.session, ctx):
        raise Conflict("screen_first", "finish the headphone check before the word check", status=409)
    assign.ensure_active(db.session, a, timeout_s=_timeout())
    passed = is_correct(_secret(), a.token, a.audio_check_attempts, answer)
    if passed:
        a.audio_check_passed = True
    else:
        a.audio_check_attempts += 1
        if a.audio_check_attempts >= max_attempts:
            a.audio_check_passed = False
            a.status = ABANDONED
            a.ended_at = utcnow()
    a.last_seen_at = a.progress_at = utcnow()  # a word-check step is progress
    db.session.commit()
    left = max(0, max_attempts - a.audio_check_attempts)
    next_url = media_url(_secret(), a.token, f"a{a.audio_check_attempts}") if not passed and left else None
    return {"passed": passed, "attempts_left": left, "media_url": next_url, "status": a.status}


@bp.post("/a/<token>/answers")
def answers(token: str):
    body = request_json()
    session = db.session
    local, tolerance, now = recorded_reader(current_app, token), tolerance_s(current_app.config), utcnow()
    # PostgreSQL: a started assignment's answer needs no transaction around it - one INSERT, guarded by the
    # unique constraints, is atomic on its own. Autocommit saves the BEGIN and COMMIT round trips.
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        conn = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        # One statement (and, the first time this process sees the token, one lookup): see try_save_pg.
        target = answer_target(session, token)
        decision = decide_answer(body, target.plan, target.batch, now=now, tolerance_s=tolerance, local=local,
                                 stored=stored_reader(session, target.assignment_id),
                                 pace=stored_pace(session, target.assignment_id))
        ack = try_save_pg(conn, target, decision, now)
    else:
        light = load_light(session, token)
        decision = decide_answer(body, light.plan, light.batch, now=now, tolerance_s=tolerance, local=local,
                                 stored=stored_reader(session, light.assignment_id),
                                 pace=stored_pace(session, light.assignment_id))
        ack = try_fast_save(session, light, decision, now)
    if ack is not None:
        return ack
    # Anything unusual (not started, expired, finished, a retry, a refusal): an ordinary transaction.
    session.close()
    ctx = load(session, token)
    return save_answer(session, ctx, body, timeout_s=_timeout(), tolerance_s=tolerance, local=local)


@bp.post("/a/<token>/media-failed")
def media_failed(token: str):
    """The page gave up on a trial's clip after repeated failed loads: record it (not as an answer)."""
    ctx = load(db.session, token)
    return record_media_failure(db.session, ctx, _json_body())


@bp.post("/a/<token>/complete")
def complete(token: str):
    ctx = load(db.session, token)
    check_complete(db.session, ctx)
    complete_assignment(db.session, ctx, timeout_s=_timeout())
    return {"status": ctx.assignment.status, "completion": completion_for(ctx)}
