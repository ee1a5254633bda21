"""The researcher's admin surface under ``/admin``: login, dashboard, per-study batch counts, a participant's
answers and verdict, export download, and JSON endpoints for the same numbers (``/admin/api/...``).

Every page and endpoint except the login form needs a logged-in admin (pages redirect to the login form,
the JSON API answers 401). Every POST (login included) needs the session's CSRF token, in the form field
``csrf_token`` or the header ``X-CSRF-Token``; without it the request is refused with 400 and changes
nothing. Logins (also failed ones), logouts, exports and views of a participant's data are written to
the audit log. See ``admin_auth`` for the password and ``admin_stats`` for what each count means.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from sqlalchemy import func, select

from study_server.admin import auth as admin_auth
from study_server.admin import decisions as admin_decisions
from study_server.admin import participant as participant_page
from study_server.admin import stats as admin_stats
from study_server.admin import study_page, words
from study_server.export.tables import export_study
from study_server.recruit import RecruitError
from study_server.recruit.summary import recruitment_summary
from study_server.store.extensions import db
from study_server.store.models import Assignment, AuditLog, Study, utcnow
from study_server.study.assignment import hold_seconds, holds
from study_server.study.assignment import release_hold as release
from study_server.study.studies import plan_view
from study_server.web.security import Limit, RateLimiter

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

_PUBLIC_ENDPOINTS = {"admin.login"}
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_LOGIN_LIMIT = Limit(10, 300)  # login attempts per address per 5 minutes
POLL_S = 10  # an open study page asks for news at most once per 10 s
# Login attempts per account (the user name typed) per 15 minutes, from all addresses together (issue 29: an
# attack spread over many addresses is throttled too).
_ACCOUNT_LIMIT = Limit(30, 900)


def _timeout_s() -> float:
    return float(current_app.config.get("ASSIGNMENT_TIMEOUT_S", 1800))


def _actor() -> str:
    return str(current_app.config.get("ADMIN_USER") or "admin")


def audit(action: str, target: str | None = None, *, actor: str | None = None, **details) -> None:
    """Append one audit row (committed at once, so that it survives whatever the request does next)."""
    details.setdefault("ip", request.remote_addr)
    session = db.session
    session.add(AuditLog(actor=actor or _actor(), action=action, target=target, details=details))
    session.commit()


def _api_request() -> bool:
    return request.path.startswith(url_for("admin.dashboard") + "api/")


@bp.before_request
def _guard():
    if request.method not in _SAFE_METHODS and not admin_auth.csrf_ok():
        if _api_request():
            return jsonify(error={"code": "csrf", "message": "missing or wrong CSRF token (X-CSRF-Token)"}), 400
        return Response("The form's security token is missing or out of date (CSRF check failed). "
                        "Go back, reload the page and try again.", status=400, mimetype="text/plain")
    if request.endpoint in _PUBLIC_ENDPOINTS or admin_auth.logged_in():
        return None
    if _api_request():
        return jsonify(error={"code": "login_required", "message": "log in at /admin/login first"}), 401
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


@bp.app_context_processor
def _template_helpers():
    if request.blueprint != "admin":
        return {}
    return {"csrf_token": admin_auth.csrf_token, "admin_logged_in": admin_auth.logged_in()}


def _safe_next(target: str | None) -> str:
    # Only a path on this server under /admin: never an open redirect to another site.
    default = url_for("admin.dashboard")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(default):
        return default
    return target


# ------------------------------------------------------------------------------------------- login

@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    try:
        admin_auth.password_hash()
        configured, error = True, None
    except admin_auth.AdminConfigError as exc:
        configured, error = False, str(exc)
    if request.method == "GET" or not configured:
        if request.method == "GET" and admin_auth.logged_in():
            return redirect(next_url)
        return render_template("admin/login.html", configured=configured, error=error, next=next_url,
                               user=_actor()), (200 if configured else 503)
    limiter = current_app.extensions["emostudy_admin_login_limiter"]
    account = request.form.get("user", "").strip().lower()[:100]
    if (limiter.hit(("login", request.remote_addr or "?"), _LOGIN_LIMIT)
            or limiter.hit(("login-account", account), _ACCOUNT_LIMIT)):
        audit("login_throttled", actor="anonymous")
        return render_template("admin/login.html", configured=True, next=next_url, user=_actor(),
                               error="Too many login attempts; wait a few minutes."), 429
    user = request.form.get("user", "")
    if user == _actor() and admin_auth.check_password(request.form.get("password", "")):
        admin_auth.log_in()
        audit("login")
        return redirect(next_url)
    audit("login_failed", actor="anonymous", user=user[:100])
    return render_template("admin/login.html", configured=True, next=next_url, user=user,
                           error="Wrong user name or password."), 401


@bp.post("/logout")
def logout():
    audit("logout")
    admin_auth.log_out()
    flash("Logged out.")
    return redirect(url_for("admin.login"))


# ------------------------------------------------------------------------------------------- pages

_MAX_ID = 2 ** 31 - 1  # ids are INTEGER columns: a larger number names nothing (and must not reach the driver)


def _study_or_404(study_id: int) -> Study:
    study = db.session.get(Study, study_id) if 0 < study_id <= _MAX_ID else None
    if study is None:
        abort(404, description=f"no study with id {study_id}")
    return study


def _assignment_or_404(assignment_id: int) -> Assignment:
    assignment = db.session.get(Assignment, assignment_id) if 0 < assignment_id <= _MAX_ID else None
    if assignment is None:
        abort(404, description=f"no assignment with id {assignment_id}")
    return assignment


@bp.get("/")
def dashboard():
    studies = admin_stats.study_summaries(db.session, timeout_s=_timeout_s())
    return render_template("admin/dashboard.html", studies=studies)


@bp.get("/studies/<int:study_id>")
def study(study_id: int):
    s = _study_or_404(study_id)
    view = study_page.study_page(db.session, s, timeout_s=_timeout_s(), base_url=request.url_root)
    return render_template("admin/study.html", v=view, poll_s=POLL_S)


@bp.get("/studies/<int:study_id>/live")
def study_live(study_id: int):
    """The live part of the study page, for the page's polling: 204 while nothing changed (one cheap query)."""
    s = _study_or_404(study_id)
    mark = study_page.fingerprint(db.session, s.id)
    if request.args.get("since") == mark:
        return Response(status=204, headers={"Cache-Control": "no-store"})
    view = study_page.live_numbers(db.session, s, timeout_s=_timeout_s())
    response = Response(render_template("admin/_live.html", v=view, poll_s=POLL_S), mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/studies/<int:study_id>/participants")
def participants(study_id: int):
    s = _study_or_404(study_id)
    page = max(1, min(request.args.get("page", 1, type=int) or 1, 10 ** 6))
    per_page = 200
    zone = words.study_zone(plan_view(s).plan)
    rows = study_page.participant_rows(db.session, s, zone, limit=per_page, offset=(page - 1) * per_page)
    n = db.session.scalar(select(func.count()).select_from(Assignment).where(Assignment.study_id == s.id))
    first = (page - 1) * per_page + 1
    view = {"id": s.id, "title": s.title or s.name, "participants": rows, "page": page, "n": n,
            "first": min(first, n), "last": first + len(rows) - 1, "zone": words.when(utcnow(), zone).rsplit(" ", 1)[-1]}
    return render_template("admin/participants.html", v=view)


@bp.get("/assignments/<int:assignment_id>")
def assignment(assignment_id: int):
    a = _assignment_or_404(assignment_id)
    view = participant_page.participant_view(db.session, a)
    zone = words.study_zone(plan_view(a.study).plan)
    history = [study_page.decision_row(d, zone) for d in admin_decisions.decisions(db.session, a.study_id, a.id)]
    audit("view_assignment", f"assignment:{a.id}")
    return render_template("admin/assignment.html", a=view, decisions=history)


@bp.post("/assignments/<int:assignment_id>/verdict")
def override_verdict(assignment_id: int):
    a = _assignment_or_404(assignment_id)
    try:
        admin_decisions.override_verdict(db.session, a, request.form.get("verdict", ""), request.form.get("reason", ""),
                                         actor=_actor())
        flash(f"Verdict set to {request.form.get('verdict')}; the decision and its reason are logged.")
    except admin_decisions.DecisionError as exc:
        db.session.rollback()
        flash(f"Nothing changed: {exc}.")
    return redirect(url_for("admin.assignment", assignment_id=a.id))


@bp.post("/studies/<int:study_id>/review/<key>")
def decide_review(study_id: int, key: str):
    s = _study_or_404(study_id)
    recruiter_for = current_app.extensions.get("emostudy_admin_recruiter", admin_decisions.default_recruiter)
    try:
        admin_decisions.decide_review(db.session, s, key, request.form.get("decision", ""),
                                      request.form.get("reason", ""), actor=_actor(), recruiter_for=recruiter_for)
        flash(f"Decision carried out ({request.form.get('decision')}) and logged.")
    except (admin_decisions.DecisionError, RecruitError) as exc:
        db.session.rollback()
        flash(f"Nothing changed: {exc}.")
    return redirect(url_for("admin.study", study_id=s.id) + "#review-queue")


# ------------------------------------------------------------------------ arrival holds (issue #15)

def _hold_rows() -> list[dict]:
    now = utcnow()
    rows = []
    for h in holds(db.session, hold_s=hold_seconds(current_app.config)):
        rows.append({"assignment_id": h.assignment_id, "study": h.study, "batch": h.batch_key,
                     "participant": h.participant, "allocated_at": h.allocated_at.isoformat(),
                     "held_s": round((now - h.allocated_at).total_seconds(), 1),
                     "releases_at": h.releases_at.isoformat() if h.releases_at else None,
                     "lapsed": bool(h.releases_at and h.releases_at <= now)})
    return rows


@bp.get("/holds")
def holds_page():
    rows = [{**h, "arrived": words.when(dt.datetime.fromisoformat(h["allocated_at"])),
             "lapses": words.when(dt.datetime.fromisoformat(h["releases_at"])) if h["releases_at"] else "",
             "held": words.duration(h["held_s"])} for h in _hold_rows()]
    return render_template("admin/holds.html", holds=rows, hold_s=hold_seconds(current_app.config))


@bp.get("/api/holds")
def api_holds():
    return jsonify(holds=_hold_rows())


@bp.post("/holds/<int:assignment_id>/release")
def release_hold(assignment_id: int):
    if not 0 < assignment_id <= _MAX_ID:
        abort(404, description=f"no assignment with id {assignment_id}")
    reason = (request.values.get("reason") or "").strip() or "no reason given"
    study_id = db.session.scalar(select(Assignment.study_id).where(Assignment.id == assignment_id))
    if study_id is None:
        released = release(db.session, assignment_id)  # raises the study room's NotFound, as before
    else:
        released = admin_decisions.release_hold(db.session, study_id, assignment_id, reason, actor=_actor())
    audit("release_hold", f"assignment:{assignment_id}", released=released, reason=reason)
    if _api_request():
        return jsonify(released=released)
    flash(f"Place of assignment {assignment_id} released." if released
          else f"Assignment {assignment_id} is no longer a hold (it started or was freed); nothing changed.")
    return redirect(url_for("admin.holds_page"))


@bp.post("/holds/<int:assignment_id>/extend")
def extend_hold(assignment_id: int):
    if not 0 < assignment_id <= _MAX_ID:
        abort(404, description=f"no assignment with id {assignment_id}")
    try:
        until = admin_decisions.extend_hold(db.session, assignment_id, request.form.get("minutes", 0, type=int) or 0,
                                            request.form.get("reason", ""), actor=_actor(),
                                            hold_s=hold_seconds(current_app.config))
        flash(f"The hold of assignment {assignment_id} now lapses at {words.when(until)}; the decision is logged.")
    except admin_decisions.DecisionError as exc:
        db.session.rollback()
        flash(f"Nothing changed: {exc}.")
    return redirect(url_for("admin.holds_page"))


@bp.post("/studies/<int:study_id>/export")
def export(study_id: int):
    s = _study_or_404(study_id)
    with tempfile.TemporaryDirectory(prefix="emostudy-export-") as tmp:
        out = Path(tmp) / s.name
        result = export_study(db.session, s.name, out)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.iterdir()):
                archive.write(path, f"{s.name}/{path.name}")
    audit("export", f"study:{s.name}", n_answers=result.n_answer_rows, n_assignments=result.n_participant_rows)
    buffer.seek(0)
    return send_file(buffer, mimetype="application/zip", as_attachment=True,
                     download_name=f"{s.name}-export.zip")


# ------------------------------------------------------------------------------------------ JSON

@bp.get("/api/studies")
def api_studies():
    return jsonify(studies=admin_stats.study_summaries(db.session, timeout_s=_timeout_s()))


@bp.get("/api/studies/<int:study_id>")
def api_study(study_id: int):
    return jsonify(admin_stats.study_detail(db.session, _study_or_404(study_id), timeout_s=_timeout_s()))


@bp.get("/api/studies/<int:study_id>/progress")
def api_progress(study_id: int):
    return jsonify(study_page.live_numbers(db.session, _study_or_404(study_id), timeout_s=_timeout_s(), as_json=True))


def _recruitment(s: Study) -> dict:
    return recruitment_summary(db.session, s)


@bp.get("/api/studies/<int:study_id>/recruitment")
def api_recruitment(study_id: int):
    return jsonify(_recruitment(_study_or_404(study_id)))


@bp.get("/api/studies/<int:study_id>/assignments")
def api_assignments(study_id: int):
    return jsonify(assignments=admin_stats.assignment_rows(db.session, _study_or_404(study_id).id))


@bp.get("/api/assignments/<int:assignment_id>")
def api_assignment(assignment_id: int):
    a = _assignment_or_404(assignment_id)
    detail = admin_stats.assignment_detail(db.session, a)
    audit("view_assignment", f"assignment:{a.id}", via="api")
    return jsonify(detail)


@bp.errorhandler(404)
def _not_found(exc):
    if _api_request():
        return jsonify(error={"code": "not_found", "message": exc.description}), 404
    return exc



@bp.record_once
def _setup(state) -> None:
    state.app.extensions["emostudy_admin_login_limiter"] = RateLimiter()
