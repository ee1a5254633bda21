"""The admin's login (one hashed password) and the CSRF token of every admin form.

The password comes from the environment only: ``EMOSTUDY_ADMIN_PASSWORD_HASH`` (a werkzeug hash, see
``hash_password``) or, for development, ``EMOSTUDY_ADMIN_PASSWORD`` (hashed once in memory). The app
config keys ``ADMIN_PASSWORD_HASH`` / ``ADMIN_PASSWORD`` (what ``study_server.core.config`` reads from those
variables) are looked at first. Without either, nobody can log in and the login page says why.

The session (Flask's signed cookie) holds the login time, a random CSRF token and a random session id;
a login starts a new session (no fixation) and expires after ``ADMIN_SESSION_SECONDS`` (default 8 hours).
The server keeps every login (``admin_sessions``: the id's sha256 and a keyed hash of the password setting
at login) and checks it on every admin request, so a signed cookie alone is not enough:

- logout ends the login on the server: the old cookie, replayed, gets the login page;
- a new password (``EMOSTUDY_ADMIN_PASSWORD_HASH`` / ``EMOSTUDY_ADMIN_PASSWORD`` changed, server
  restarted) ends every login made under the old one.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import secrets
import time

from flask import current_app, request, session
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from study_server.store.extensions import db
from study_server.store.models import AdminSession, utcnow

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_KEY = "admin_login_at"
_SID_KEY = "admin_sid"
_CHECKED = "emostudy.admin_logged_in"


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
            "`python -m study_server.admin.auth` (or EMOSTUDY_ADMIN_PASSWORD for development) and restart")
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


def password_tag() -> str:
    """A keyed hash of the password setting (never the password): changes when the password does."""
    config = current_app.config
    setting = (config.get("ADMIN_PASSWORD_HASH") or os.environ.get("EMOSTUDY_ADMIN_PASSWORD_HASH")
               or "plain:" + str(config.get("ADMIN_PASSWORD") or os.environ.get("EMOSTUDY_ADMIN_PASSWORD") or ""))
    return hmac.new(str(config["SECRET_KEY"]).encode(), f"admin-password:{setting}".encode(),
                    hashlib.sha256).hexdigest()


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def log_in() -> None:
    """Start a new session (cookie and server-side record); the caller commits with its audit row."""
    session.clear()  # a new session at login: an old cookie (and its token) cannot ride along
    sid = secrets.token_urlsafe(32)
    db.session.add(AdminSession(sid_sha256=_sid_hash(sid), password_tag=password_tag(), created_at=utcnow()))
    db.session.commit()
    session[_SESSION_KEY] = time.time()
    session[_SID_KEY] = sid
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    request.environ[_CHECKED] = True


def log_out() -> None:
    """End this login on the server too: its cookie, replayed later, is refused."""
    sid = session.get(_SID_KEY)
    if isinstance(sid, str):
        db.session.execute(update(AdminSession).where(AdminSession.sid_sha256 == _sid_hash(sid),
                                                      AdminSession.ended_at.is_(None)).values(ended_at=utcnow()))
        db.session.commit()
    session.clear()
    request.environ[_CHECKED] = False


def logged_in() -> bool:
    """A live login: the cookie is recent, and the server's record of it is open and made under the
    current password (checked once per request)."""
    known = request.environ.get(_CHECKED)  # per request (an app context's g may span several)
    if known is not None:
        return known
    started, sid = session.get(_SESSION_KEY), session.get(_SID_KEY)
    ok = (isinstance(started, (int, float)) and isinstance(sid, str)
          and time.time() - started < float(current_app.config.get("ADMIN_SESSION_SECONDS", 8 * 3600)))
    if ok:
        row = db.session.execute(select(AdminSession.password_tag, AdminSession.ended_at)
                                 .where(AdminSession.sid_sha256 == _sid_hash(sid))).first()
        ok = row is not None and row.ended_at is None and hmac.compare_digest(row.password_tag, password_tag())
    request.environ[_CHECKED] = ok
    return ok


def main() -> None:  # pragma: no cover - interactive helper

    password = getpass.getpass("admin password: ")
    if password != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ")
    print(hash_password(password))


if __name__ == "__main__":  # pragma: no cover
    main()
