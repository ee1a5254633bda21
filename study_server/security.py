"""HTTP security: headers (CSP, frame-ancestors), cookie flags and the participant API rate limiter."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Install the security hooks on `app` (filled in below)."""
