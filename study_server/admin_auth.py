"""The admin's login (one hashed password) and the CSRF token of every admin form.

The password comes from the environment only: ``EMOSTUDY_ADMIN_PASSWORD_HASH`` (a werkzeug hash, see
``hash_password``) or, for development, ``EMOSTUDY_ADMIN_PASSWORD`` (hashed once in memory). The app
config keys ``ADMIN_PASSWORD_HASH`` / ``ADMIN_PASSWORD`` (what ``study_server.config`` reads from those
variables) are looked at first. Without either, nobody can log in and the login page says why.

The session (Flask's signed cookie) holds the login time and a random CSRF token; a login starts a new
session (no fixation) and expires after ``ADMIN_SESSION_SECONDS`` (default 8 hours).
"""

from __future__ import annotations

import hmac
import os
import secrets
import time

from flask import current_app, request, session
from werkzeug.security import check_password_hash, generate_password_hash

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_KEY = "admin_login_at"


class AdminConfigError(RuntimeError):
    """The admin password is not configured."""


def hash_password(password: str) -> str:
    """The value to put in ``EMOSTUDY_ADMIN_PASSWORD_HASH`` (scrypt, salted)."""
    if len(password) < 8:
        raise ValueError("an admin password needs at least 8 characters")
    return generate_password_hash(password)


def password_hash() -> str:
    """The configured hash; raises AdminConfigError naming the variables to set."""
    config = current_app.config
    stored = config.get("ADMIN_PASSWORD_HASH") or os.environ.get("EMOSTUDY_ADMIN_PASSWORD_HASH")
    if stored:
        return stored
    plain = config.get("ADMIN_PASSWORD") or os.environ.get("EMOSTUDY_ADMIN_PASSWORD")
    if not plain:
        raise AdminConfigError(
            "no admin password is configured: set EMOSTUDY_ADMIN_PASSWORD_HASH to the output of "
            "`python -m study_server.admin_auth` (or EMOSTUDY_ADMIN_PASSWORD for development) and restart")
    cache = current_app.extensions.setdefault("emostudy_admin_hash", {})
    if plain not in cache:  # hash once per process: verifying then costs one scrypt, as with a stored hash
        cache.clear()
        cache[plain] = generate_password_hash(plain)
    return cache[plain]


def check_password(candidate: str) -> bool:
    return check_password_hash(password_hash(), candidate)


def csrf_token() -> str:
    """This session's CSRF token (made on first use); templates call it for every form."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return bool(expected) and hmac.compare_digest(str(expected), given)


def log_in() -> None:
    session.clear()  # a new session at login: an old cookie (and its token) cannot ride along
    session[_SESSION_KEY] = time.time()
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def log_out() -> None:
    session.clear()


def logged_in() -> bool:
    started = session.get(_SESSION_KEY)
    if not isinstance(started, (int, float)):
        return False
    return time.time() - started < float(current_app.config.get("ADMIN_SESSION_SECONDS", 8 * 3600))


def main() -> None:  # pragma: no cover - interactive helper
    import getpass

    password = getpass.getpass("admin password: ")
    if password != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ")
    print(hash_password(password))


if __name__ == "__main__":  # pragma: no cover
    main()
