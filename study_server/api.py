"""The participant JSON API under /api/v1 (documented in docs/server_api.md)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/health")
def health():
    return {"ok": True}
