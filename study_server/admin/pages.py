"""The researcher's admin surface under ``/admin``: login, dashboard, per-study batch counts, a participant's
answers and verdict, export download, and JSON endpoints for the same numbers (``/admin/api/...``).

Every page and endpoint except the login form needs a logged-in admin (pages redirect to the login form,
the JSON API answers 401). Every POST (login included) needs the session's CSRF token, in the form field
``csrf_token`` or the header ``X-CSRF-Token``; without it the request is refused with 400 and changes
nothing. Logins (also failed ones), logouts, exports and views of a participant's data are written to
the audit log. See ``admin_auth`` for the password and ``admin_stats`` for what each count means.
"""

from __future__ import annotations

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

from study_server.admin import auth as admin_auth
from study_server.admin import stats as admin_stats
from study_server.export.tables import export_study
from study_server.recruit.service import recruitment_summary
from study_server.store.extensions import db
from study_server.store.models import Assignment, AuditLog, Study, utcnow
from study_server.study.assignment import hold_seconds, holds
from study_server.study.assignment import release_hold as release
from study_server.web.security import Limit, RateLimiter

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

_PUBLIC_ENDPOINTS = {"admin.login"}
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_LOGIN_LIMIT = Limit(10, 300)  # login attempts per address per 5 minutes
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
    detail = admin_stats.study_detail(db.session, s, timeout_s=_timeout_s())
    return render_template("admin/study.html", s=detail, assignments=admin_stats.assignment_rows(db.session, s.id),
                           recruitment=_recruitment(s))


def _recruitment(s: Study) -> dict:
    return recruitment_summary(db.session, s)


@bp.get("/assignments/<int:assignment_id>")
def assignment(assignment_id: int):
    a = _assignment_or_404(assignment_id)
    detail = admin_stats.assignment_detail(db.session, a)
    audit("view_assignment", f"assignment:{a.id}")
    return render_template("admin/assignment.html", a=detail)


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
    return render_template("admin/holds.html", holds=_hold_rows(), hold_s=hold_seconds(current_app.config))


@bp.get("/api/holds")
def api_holds():
    return jsonify(holds=_hold_rows())


@bp.post("/holds/<int:assignment_id>/release")
def release_hold(assignment_id: int):
    released = release(db.session, assignment_id)
    audit("release_hold", f"assignment:{assignment_id}", released=released)
    if _api_request():
        return jsonify(released=released)
    flash(f"Place of assignment {assignment_id} released." if released
          else f"Assignment {assignment_id} is no longer a hold (it started or was freed); nothing changed.")
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
