"""The admin's "Preview as participant" (one button per batch on the study page): a session of that batch
that walks the real pages and is never data (``study_server.study.preview``). Its own small blueprint under
``/admin``, guarded like the admin pages (a logged-in admin, the CSRF token on the POST)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, redirect, request, url_for

from study_server.admin import auth as admin_auth
from study_server.store.extensions import db
from study_server.store.models import AuditLog, Study
from study_server.study.duration import measured_median_minutes, study_minutes
from study_server.study.preview import create_preview

bp = Blueprint("admin_preview", __name__, url_prefix="/admin")


@bp.app_context_processor
def _duration_helper():
    """``study_durations(study_id)`` for the admin study page: the expected minutes (the consent page's and the
    recruiting post's) beside the measured median of the completed participants."""
    def study_durations(study_id: int) -> dict:
        study = db.session.get(Study, study_id)
        if study is None:
            return {}
        expected = study_minutes(db.session, study.id, study.plan_sha256, json.loads(study.plan_json))
        median, n = measured_median_minutes(db.session, study.id)
        return {"expected": expected, "median": median, "n": n}
    return {"study_durations": study_durations}


@bp.before_request
def _guard():
    if not admin_auth.csrf_ok():
        return Response("The form's security token is missing or out of date (CSRF check failed). Go back, "
                        "reload the page and try again.", status=400, mimetype="text/plain")
    if not admin_auth.logged_in():
        return redirect(url_for("admin.login"))
    return None


@bp.post("/studies/<int:study_id>/preview")
def preview(study_id: int):
    batch_key = str(request.form.get("batch") or "")
    a = create_preview(db.session, study_id, batch_key, secret_key=current_app.config["SECRET_KEY"])
    db.session.add(AuditLog(actor=str(current_app.config.get("ADMIN_USER") or "admin"), action="preview", target=f"study {study_id} batch {batch_key}",
                            details={"assignment": a.id, "ip": request.remote_addr}))
    db.session.commit()
    return redirect(url_for("participant.study_page", token=a.token), code=303)
