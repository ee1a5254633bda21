"""The researcher's admin surface (login, dashboard, participants, export). Filled in below."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
