"""The application factory. Nothing connects or starts at import; ``create_app`` binds everything."""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from study_server.admin.pages import bp as admin_bp
from study_server.admin.preview import bp as admin_preview_bp
from study_server.core.config import Config, build_config, describe_config, finalize_config
from study_server.core.errors import ApiError
from study_server.participant import holds, i18n
from study_server.participant.api import bp as api_bp
from study_server.participant.demographics import bp as demographics_bp
from study_server.participant.fastpath import FastAnswers
from study_server.participant.listening import bp as listening_bp
from study_server.participant.pages import bp as participant_bp
from study_server.participant.pages import render_error_page
from study_server.store import faults
from study_server.store.extensions import db
from study_server.web import security

log = logging.getLogger(__name__)


def create_app(config: type[Config] | str | Mapping[str, Any] | None = None, *,
               instance_path: str | os.PathLike | None = None) -> Flask:
    """Build the study server.

    ``config``: a ``Config`` class, a name (development/testing/production), a dict of overrides on top
    of ``EMOSTUDY_ENV``'s class, or None. ``EMOSTUDY_*`` environment variables override the class.
    """
    app = Flask("study_server", instance_path=str(instance_path) if instance_path else None,
                instance_relative_config=True)
    values = build_config(config)
    if values.get("INSTANCE_PATH"):
        app.instance_path = str(values["INSTANCE_PATH"])
    values = finalize_config(values, app.instance_path)
    if values.get("MEDIA_BACKEND") == "s3" and not values.get("CSP_MEDIA_SRC"):
        bucket, region = values["S3_BUCKET"], values.get("S3_REGION")
        origins = [f"https://{bucket}.s3.amazonaws.com"]
        if region:
            origins.append(f"https://{bucket}.s3.{region}.amazonaws.com")
        if values.get("S3_ENDPOINT_URL"):
            origins.append(str(values["S3_ENDPOINT_URL"]).rstrip("/"))
        values["CSP_MEDIA_SRC"] = " ".join(origins)
    app.config.update(values)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    db.init_app(app)
    i18n.init_app(app)

    if app.config.get("FAST_ANSWERS", True):
        app.wsgi_app = FastAnswers(app.wsgi_app, app)  # type: ignore[method-assign]  # inside ProxyFix
    security.init_app(app)
    app.register_blueprint(participant_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_preview_bp)
    app.register_blueprint(listening_bp)
    app.register_blueprint(demographics_bp)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        if request.blueprint == "participant" and not request.path.startswith("/api/"):
            return render_error_page(exc)
        return jsonify(exc.to_json()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Under /api/ every error is JSON (unknown routes, wrong methods, too-large bodies).
        if not request.path.startswith("/api/"):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": exc.description or exc.name}}), exc.code

    holds.init_app(app)
    faults.init_app(app)  # last: it wraps every registered view
    log.debug("study server configured: %s", describe_config(app.config))
    return app
