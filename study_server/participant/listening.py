"""Listening conditions before the trials: a volume calibration and a headphone screen.

The spec's ``[audio_check] kind`` chooses the checks (docs/running-a-study.md, "Listening conditions"):

    words           type a spoken word (``study_server.study.audio_check``): sound plays
    huggins         volume calibration, then the Huggins-pitch headphone screen (Milne et al., 2021)
    antiphase       volume calibration, then the antiphase headphone screen (Woods et al., 2017)
    huggins+words   volume calibration, the Huggins screen, then the word

A screen is ``trials`` three-interval trials (one sound each, answer 1, 2 or 3); an attempt passes with at
least ``pass_at`` correct; ``attempts`` blocks may be tried. Which interval is right, and the noise itself,
come from an HMAC of the server secret, the assignment token, the attempt and the trial: nothing the
browser receives tells the answer (every sound of a kind has the same length and size, its URL is an
opaque signed slot, and the server says whether an *attempt* passed, never whether a trial was right).

Every answer is one row of ``screen_trials``; the attempt's outcome is kept on ``listening_checks``.
Passing every check of the kind sets ``assignment.audio_check_passed`` (the flag that the trials already
wait for on every save path); failing the screen ends the assignment as ``abandoned`` before any work was
done, which the recruiters treat as "returned, not rejected" (a Prolific return request, no MTurk
rejection).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from study_server.core.errors import ApiError, Conflict, NotFound
from study_server.store.extensions import db
from study_server.store.models import ABANDONED, EXPIRED, STARTED, ListeningCheck, ScreenTrial, utcnow
from study_server.study import assignment as assign
from study_server.study.context import Ctx, load
from study_server.study.listening_sounds import N_INTERVALS, calibration_noise, screen_trial, wav_bytes
from study_server.study.media import signature
from study_server.study.screen_out import screen_out_action
from study_server.web.bodies import request_json

KINDS = ("words", "huggins", "antiphase", "huggins+words")
SCREEN_OF = {"words": None, "huggins": "huggins", "antiphase": "antiphase", "huggins+words": "huggins"}
_SLOT_RE = re.compile(r"(?:c0|h(\d{1,2})-(\d{1,2}))")

bp = Blueprint("listening", __name__)


@dataclass(frozen=True)
class ListeningSpec:
    kind: str  # one of KINDS
    trials: int
    pass_at: int
    attempts: int

    @property
    def screen(self) -> str | None:
        return SCREEN_OF[self.kind]

    @property
    def words(self) -> bool:
        return self.kind in ("words", "huggins+words")


def listening_spec(plan: dict[str, Any]) -> ListeningSpec | None:
    """The plan's listening checks, or None when the plan has no audio check."""
    ac = plan.get("audio_check") or {}
    if not ac.get("enabled"):
        return None
    return ListeningSpec(kind=str(ac.get("kind", "words")), trials=int(ac.get("trials", 6)),
                         pass_at=int(ac.get("pass_at", 5)), attempts=int(ac.get("attempts", 1)))


# ------------------------------------------------------------------------------------------ secrets
def _draw(secret_key: str, token: str, kind: str, attempt: int, trial: int) -> int:
    msg = f"listening:{token}:{kind}:{attempt}:{trial}".encode()
    return int.from_bytes(hmac.new(secret_key.encode(), msg, hashlib.sha256).digest()[:8], "big")


def trial_design(secret_key: str, token: str, kind: str, attempt: int, trial: int) -> tuple[int, int, int]:
    """(target interval 0-2, the antiphase tone's interval, noise seed) of one trial."""
    h = _draw(secret_key, token, kind, attempt, trial)
    target = h % N_INTERVALS
    other = (target + 1 + (h >> 8) % 2) % N_INTERVALS
    return target, other, h >> 16


def expected_answers(secret_key: str, token: str, kind: str, attempt: int, trials: int) -> list[int]:
    """The right answers (1-3) of an attempt: for tests and simulated participants that know the secret."""
    return [trial_design(secret_key, token, kind, attempt, t)[0] + 1 for t in range(trials)]


def slot_url(secret_key: str, token: str, slot: str) -> str:
    return f"/l/{token}/{slot}/{signature(secret_key, 'listening:' + token, slot)}"


# ------------------------------------------------------------------------------------------ state
def _check_row(session, assignment_id: int) -> ListeningCheck | None:
    return session.scalar(select(ListeningCheck).where(ListeningCheck.assignment_id == assignment_id))


def _answered(session, assignment_id: int, kind: str, attempt: int) -> dict[int, int]:
    rows = session.execute(select(ScreenTrial.trial, ScreenTrial.answer).where(
        ScreenTrial.assignment_id == assignment_id, ScreenTrial.kind == kind, ScreenTrial.attempt == attempt))
    return {t: a for t, a in rows}


def state_for(session, ctx: Ctx, secret_key: str) -> dict[str, Any] | None:
    """The page's view of the listening checks (None without a screen): no answers, only progress."""
    spec = listening_spec(ctx.plan.plan)
    if spec is None or spec.screen is None:
        return None
    a = ctx.assignment
    row = _check_row(session, a.id)
    calibrated = row is not None and row.calibrated_at is not None
    passed = row.passed if row is not None else None
    attempt = row.attempts_used if row is not None else 0
    screen: dict[str, Any] = {"kind": spec.screen, "trials": spec.trials, "passed": passed,
                              "attempts_left": max(0, spec.attempts - attempt), "answered": 0,
                              "next_trial": None, "media_url": None}
    if passed is None and attempt < spec.attempts:
        done = _answered(session, a.id, spec.screen, attempt)
        nxt = next((t for t in range(spec.trials) if t not in done), None)
        screen.update(answered=len(done), next_trial=nxt,
                      media_url=slot_url(secret_key, a.token, f"h{attempt}-{nxt}") if nxt is not None else None)
    return {"kind": spec.kind, "words": spec.words, "calibrated": calibrated,
            "calibration_url": slot_url(secret_key, a.token, "c0"), "screen": screen}


def words_allowed(session, ctx: Ctx) -> bool:
    """May the word check run now? (Not for a screen-only kind; after the screen for huggins+words.)"""
    spec = listening_spec(ctx.plan.plan)
    if spec is None:
        return False
    if not spec.words:
        return False
    if spec.screen is None:
        return True
    row = _check_row(session, ctx.assignment.id)
    return bool(row is not None and row.passed)


# ------------------------------------------------------------------------------------------ routes
def _secret() -> str:
    return current_app.config["SECRET_KEY"]


def _timeout() -> float:
    return float(current_app.config["ASSIGNMENT_TIMEOUT_S"])


def _body() -> dict[str, Any]:
    body = request_json(empty={})  # size and depth limits, JSON 4xx (study_server.web.bodies)
    if not isinstance(body, dict):
        raise ApiError("bad_request", "the request body must be a JSON object", status=400)
    return body


def _screen_ctx(token: str) -> tuple[Ctx, ListeningSpec]:
    ctx = load(db.session, token)
    spec = listening_spec(ctx.plan.plan)
    if spec is None or spec.screen is None:
        raise NotFound("no_screen", "this study has no headphone check")
    a = ctx.assignment
    if a.status == ABANDONED:
        raise Conflict("audio_check_failed", "the listening check did not succeed; please return the task")
    if a.status not in (STARTED, EXPIRED):
        raise Conflict("not_started", "start the study (give consent) before the listening check")
    return ctx, spec


def _row_for_update(ctx: Ctx) -> ListeningCheck:
    row = _check_row(db.session, ctx.assignment.id)
    if row is None:
        row = ListeningCheck(assignment_id=ctx.assignment.id, attempts_used=0)
        db.session.add(row)
        try:
            db.session.flush()
        except IntegrityError:  # a simultaneous first request made it
            db.session.rollback()
            row = _check_row(db.session, ctx.assignment.id)
            assert row is not None
    return row


@bp.post("/api/v1/a/<token>/listening/calibrated")
def calibrated(token: str):
    if _body():
        raise ApiError("bad_request", "send an empty JSON object {}: this step has no fields", status=400)
    ctx, _spec = _screen_ctx(token)
    assign.ensure_active(db.session, ctx.assignment, timeout_s=_timeout())
    row = _row_for_update(ctx)
    if row.calibrated_at is None:
        row.calibrated_at = utcnow()
    ctx.assignment.last_seen_at = ctx.assignment.progress_at = utcnow()  # a listening-check step is progress
    db.session.commit()
    return {"listening": state_for(db.session, ctx, _secret())}


@bp.post("/api/v1/a/<token>/listening/answer")
def answer(token: str):
    ctx, spec = _screen_ctx(token)
    body = _body()
    trial, choice = body.get("trial"), body.get("answer")
    if type(trial) is not int or not 0 <= trial < spec.trials:
        raise ApiError("bad_request", f"trial must be a whole number from 0 to {spec.trials - 1}", status=400)
    if type(choice) is not int or not 1 <= choice <= N_INTERVALS:
        raise ApiError("bad_request", "answer must be 1, 2 or 3 (the sound you chose)", status=400)
    a = ctx.assignment
    assign.ensure_active(db.session, a, timeout_s=_timeout())
    row = _row_for_update(ctx)
    if row.calibrated_at is None:
        raise Conflict("not_calibrated", "set the volume (the calibration step) before the headphone check")
    if row.passed is not None:  # decided already (a retry of the last answer): the same reply again
        db.session.rollback()
        return _answer_reply(ctx, a, row)
    attempt = row.attempts_used
    done = _answered(db.session, a.id, spec.screen, attempt)
    if trial not in done:
        nxt = next(t for t in range(spec.trials) if t not in done)
        if trial != nxt:
            raise Conflict("out_of_order", f"answer trial {nxt} first", status=409)
        target = trial_design(_secret(), a.token, spec.screen, attempt, trial)[0] + 1
        db.session.add(ScreenTrial(assignment_id=a.id, kind=spec.screen, attempt=attempt, trial=trial,
                                   answer=choice, correct=choice == target))
        done[trial] = choice
    if len(done) == spec.trials:
        answers = db.session.execute(select(ScreenTrial.correct).where(
            ScreenTrial.assignment_id == a.id, ScreenTrial.kind == spec.screen,
            ScreenTrial.attempt == attempt)).scalars().all()
        n_correct = sum(bool(c) for c in answers)
        row.n_correct = n_correct
        row.attempts_used = attempt + 1
        if n_correct >= spec.pass_at:
            row.passed = True
            if not spec.words:
                a.audio_check_passed = True  # every check of the kind passed: the trials may start
        elif row.attempts_used >= spec.attempts:
            row.passed = False
            a.audio_check_passed = False
            a.status = ABANDONED
            a.ended_at = utcnow()
    a.last_seen_at = a.progress_at = utcnow()  # a listening-check step is progress
    try:
        db.session.commit()
    except IntegrityError:  # the same trial answered twice at once: the first one counts
        db.session.rollback()
    return _answer_reply(ctx, a, row)


def _answer_reply(ctx: Ctx, a: Any, row: ListeningCheck) -> dict[str, Any]:
    """The reply to a screen answer; a failed screen of a Prolific study opened with a screen-out payment
    also says where to go (Prolific's completion page with the screen-out code)."""
    out: dict[str, Any] = {"listening": state_for(db.session, ctx, _secret()), "status": a.status}
    if a.status == ABANDONED and row.passed is False:
        so = screen_out_action(db.session, ctx.study_id, ctx.platform)
        if so is not None:
            out["screen_out"] = so
    return out


@bp.get("/l/<token>/<slot>/<sig>")
def sound(token: str, slot: str, sig: str):
    """A listening-check sound: the same bytes on every request for this slot, no validators, no names."""
    m = _SLOT_RE.fullmatch(slot)
    if not m or not hmac.compare_digest(signature(_secret(), "listening:" + token, slot), sig):
        raise NotFound("media_not_found", "this sound link is not valid; reload the study page")
    ctx = load(db.session, token)
    spec = listening_spec(ctx.plan.plan)
    if spec is None or spec.screen is None:
        raise NotFound("media_not_found", "this sound link is not valid; reload the study page")
    if slot == "c0":
        seed = _draw(_secret(), token, "calibration", 0, 0)
        data = wav_bytes(calibration_noise(seed >> 16), seed)
    else:
        attempt, trial = int(m.group(1)), int(m.group(2))
        if attempt >= spec.attempts or trial >= spec.trials:
            raise NotFound("media_not_found", "this sound link is not valid; reload the study page")
        target, other, seed = trial_design(_secret(), token, spec.screen, attempt, trial)
        data = wav_bytes(screen_trial(spec.screen, seed, target, other=other), seed)
    db.session.rollback()  # nothing to keep; release the connection before sending
    return wav_response(data)


def wav_response(data: bytes) -> Response:
    """Whole file or one byte range (browsers ask for ranges of audio), with no ETag or Last-Modified."""
    total = len(data)
    status, body, headers = 200, data, {"Accept-Ranges": "bytes"}
    rng = request.headers.get("Range", "")
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
    if m and (m.group(1) or m.group(2)):
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
        else:
            start, end = max(0, total - int(m.group(2))), total - 1
        if start > end or start >= total:
            return Response(status=416, headers={"Content-Range": f"bytes */{total}"})
        status, body = 206, data[start:end + 1]
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    resp = Response(body, status=status, mimetype="audio/wav", headers=headers)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp
