"""Participant pages: ad/preview, the study page (consent, instructions, audio check, examples, trials),
the completion page and media.

The study page is one HTML shell driven by ``static/study.js`` through the JSON API (docs/server_api.md);
the token travels in the URL (not a cookie) so that the study works inside third-party iframes. No page,
script or URL names a trial's emotion, source or condition: trials are positions with opaque media URLs.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from study_server.core.errors import ApiError
from study_server.participant.api import completion_for
from study_server.participant.demographics import form_items
from study_server.participant.holds import same_browser
from study_server.participant.i18n import error_text, force_locale, select_language, ui_strings
from study_server.participant.listening import wav_response
from study_server.participant.texts import docs_of
from study_server.store.extensions import db
from study_server.store.models import FINISHED
from study_server.study import assignment as assign
from study_server.study.addresses import places_per_address
from study_server.study.assignment import hold_seconds
from study_server.study.audio_check import word_wav
from study_server.study.context import load
from study_server.study.duration import study_minutes
from study_server.study.media import check_signature, resolve_slot, send_media
from study_server.study.platforms import parse_arrival
from study_server.study.progress import idle_release_s
from study_server.study.studies import plan_view
from study_server.study.watching import record_fetch

_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # stimuli.spec's study names

bp = Blueprint("participant", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/participant")

def render_error_page(exc: ApiError):
    """The participant's page for an API error: the catalogue's sentence for its code, in the study's language."""
    plan = None
    study = str((request.view_args or {}).get("study") or "")
    # only a well-formed name of a study that exists is looked up (never a name that made the error itself)
    if _STUDY_NAME.fullmatch(study) and exc.code != "study_not_found":
        try:
            plan = plan_view(assign.get_study(db.session, study)).plan
        except ApiError:
            plan = None
        db.session.rollback()
    with force_locale(select_language(plan)):
        title, message = error_text(exc.code)
        return render_template("participant/message.html", title=title, message=message,
                               page_lang=select_language(plan)), exc.status


@bp.get("/s/<study>")
def arrive(study: str):
    arrival = parse_arrival(request.args, mturk_submit_hosts=tuple(current_app.config["MTURK_SUBMIT_HOSTS"]))
    arrival = same_browser(arrival)  # a plain link re-opened by the same browser is the same arrival
    if arrival.preview:
        s = assign.get_study(db.session, study)
        view = plan_view(s)
        text, lang = view.participant, select_language(view.plan)
        db.session.rollback()
        with force_locale(lang):
            return render_template("participant/ad.html", title=text["title"], intro=text["intro"],
                                   open=s.status == "open", page_lang=lang)
    allocation = assign.allocate(db.session, study, arrival, secret_key=current_app.config["SECRET_KEY"],
                                 timeout_s=float(current_app.config["ASSIGNMENT_TIMEOUT_S"]),
                                 user_agent=request.user_agent.string, hold_s=hold_seconds(current_app.config),
                                 idle_s=idle_release_s(current_app.config), address=request.remote_addr,
                                 places_cap=places_per_address(current_app.config, request.remote_addr))
    return redirect(url_for("participant.study_page", token=allocation.assignment.token), code=302)


@bp.get("/a/<token>")
def study_page(token: str):
    ctx = load(db.session, token)
    if ctx.assignment.status in FINISHED:
        return redirect(url_for("participant.done_page", token=token), code=302)
    plan = ctx.plan.plan
    text = ctx.plan.participant  # never the researcher's description; no sentence of ours about the videos
    payment = plan.get("payment", {})
    docs, lang = docs_of(plan), select_language(plan)
    with force_locale(lang):
        return render_template(
            "participant/study.html", token=token, title=text["title"], intro=text["intro"],
            instructions=text["instructions"], n_items=len(ctx.batch.items), docs=docs, page_lang=lang,
            demo_items=form_items(plan), minutes=study_minutes(db.session, ctx.study_id, ctx.plan_sha256, plan), ui_strings=ui_strings(),
            reward=payment.get("reward_usd"), bonus=(payment.get("bonus") or {}).get("rule", "none") != "none",
            audio_check=ctx.plan.audio_check_enabled, n_examples=len(plan["examples"]),
            headphones=(plan.get("audio_check") or {}).get("kind", "words") != "words",
            contact=current_app.config.get("CONTACT_EMAIL") or "")


@bp.get("/a/<token>/done")
def done_page(token: str):
    ctx = load(db.session, token)
    action = completion_for(ctx)
    if action is None:
        return redirect(url_for("participant.study_page", token=token), code=302)
    plan, lang = ctx.plan.plan, select_language(ctx.plan.plan)
    with force_locale(lang):
        return render_template("participant/done.html", title=ctx.plan.participant["title"], action=action,
                               debrief_html=docs_of(plan).debrief_html, page_lang=lang)


@bp.get("/m/<token>/<slot>/<sig>")
def media(token: str, slot: str, sig: str):
    secret = current_app.config["SECRET_KEY"]
    check_signature(secret, token, slot, sig)
    ctx = load(db.session, token)
    db.session.rollback()  # read-only: release the connection (and SQLite's lock) before streaming
    if slot[:1] == "a" and slot[1:].isdigit() and int(slot[1:]) < int(current_app.config["AUDIO_CHECK_ATTEMPTS"]):
        # the word check's sound: this participant's own bytes (issue 29), never a shipped file's
        response = wav_response(word_wav(secret, token, int(slot[1:])))
        response.headers["Cache-Control"] = "private, no-store"
        return record_fetch(current_app, db.session, ctx, token=token, slot=slot, response=response)
    trial = {i.position: (i.media, i.sha256, i.copy) for i in ctx.batch.items}
    media_file = resolve_slot(slot, token=token, secret_key=secret, set_root=ctx.set_root, trial_media=trial,
                              example_media=list(ctx.examples),
                              n_audio_attempts=int(current_app.config["AUDIO_CHECK_ATTEMPTS"]))
    try:
        response = send_media(current_app, media_file)
    except ApiError:
        if request.method == "GET":  # a GET that failed on our side: the attempt is evidence too
            record_fetch(current_app, db.session, ctx, token=token, slot=slot, response=None)
        raise
    return record_fetch(current_app, db.session, ctx, token=token, slot=slot,  # evidence of watching
                        response=response)
