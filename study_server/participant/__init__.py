"""Participant pages: ad/preview, consent, instructions, audio check, examples, trials, completion."""

from __future__ import annotations

from flask import Blueprint, render_template

from study_server.errors import ApiError

bp = Blueprint("participant", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/participant")


def render_error_page(exc: ApiError):
    return render_template("participant/message.html", title="Sorry", message=exc.message), exc.status
