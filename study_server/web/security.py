"""HTTP security for every response: headers, cookie flags and the participant API's rate limiter.

``init_app(app)`` installs:

- a Content-Security-Policy with a fresh nonce per request (``csp_nonce()`` in templates: the only way
  an inline ``<script>`` runs); ``frame-ancestors`` limited to the recruiting platforms so that the study
  can sit in an MTurk/Prolific iframe and nowhere else;
- ``X-Content-Type-Options``, ``Referrer-Policy``, ``Permissions-Policy`` and, over HTTPS, HSTS;
- session cookies HTTP-only, SameSite and Secure (Secure unless the app runs in debug mode or
  ``COOKIE_SECURE`` says otherwise);
- an in-process sliding-window rate limiter on the participant API, keyed by client IP and by
  assignment; over the limit a request gets ``429`` with a JSON error and a ``Retry-After`` header.

Configuration (``app.config``; ``EMOSTUDY_``-prefixed environment variables override them in
``study_server.core.config``):

===========================  ==================================================================
FRAME_ANCESTORS              space-separated CSP sources (default: 'self' + MTurk, Amazon, Prolific)
CSP_MEDIA_SRC                extra media sources, e.g. an S3 bucket origin for presigned media URLs
CSP_FORM_ACTION              where forms may post (MTurk's externalSubmit is a form post)
COOKIE_SECURE                True/False; None (default) = Secure unless debug
RATE_LIMIT_ENABLED           default True
RATE_LIMIT_PER_IP            "N/SECONDS", default "1200/60" (labs share one NAT address)
RATE_LIMIT_PER_ASSIGNMENT    "N/SECONDS", default "240/60" (a participant saves ~1 answer per 3 s)
RATE_LIMIT_BLUEPRINTS        blueprints the limiter guards, default ("api",)
TRUSTED_PROXIES              reverse proxies in front of the app (default 0): with N > 0 the client
                             address and scheme come from the last N X-Forwarded-For/-Proto entries
                             (werkzeug's ProxyFix); also read from EMOSTUDY_TRUSTED_PROXIES
===========================  ==================================================================

Behind nginx or a load balancer, set TRUSTED_PROXIES: otherwise every participant has the proxy's address
and the per-IP limit is shared by all of them. Never set it higher than the number of proxies you run
(a client could then choose its own address).

The limiter counts per worker process: with gunicorn's N workers the effective limit is up to N times
the configured one. That is enough to stop a runaway client; a shared limit belongs in the proxy.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix

from study_server.core.errors import NotFound
from study_server.web.bodies import peek_json

DEFAULT_FRAME_ANCESTORS = "'self' https://*.mturk.com https://*.amazon.com https://app.prolific.com"
DEFAULT_FORM_ACTION = "'self' https://*.mturk.com https://app.prolific.com"
# Keys under which an assignment may appear in the participant API's URLs or JSON bodies.
_ASSIGNMENT_KEYS = ("assignment_id", "assignment", "token", "assignment_token")
# Set on the WSGI environ of a request that study_server.participant.fastpath counted in the limiter before handing it on.
RATE_LIMIT_COUNTED = "emostudy.rate_limit_counted"


class SecurityConfigError(ValueError):
    """A security setting in the configuration cannot be understood."""


@dataclass(frozen=True)
class Limit:
    """At most ``count`` requests in any window of ``seconds``."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str | "Limit", name: str) -> "Limit":
        if isinstance(text, Limit):
            return text
        try:
            count_text, seconds_text = str(text).split("/")
            limit = cls(int(count_text), float(seconds_text))
        except ValueError:
            raise SecurityConfigError(
                f"{name}={text!r} is not a rate limit; write it as N/SECONDS, e.g. '240/60'") from None
        if limit.count < 1 or limit.seconds <= 0:
            raise SecurityConfigError(f"{name}={text!r}: both N and SECONDS must be positive")
        return limit


class RateLimiter:
    """Sliding-window request counter per key, thread-safe, in this process only."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def hit(self, key: tuple[str, str], limit: Limit) -> float:
        """Count one request for ``key``; return 0 when allowed, else seconds until one is allowed."""
        now = self._clock()
        with self._lock:
            if now - self._last_sweep > 60:
                self._sweep(now, limit.seconds)
            window = self._hits.setdefault(key, deque())
            while window and window[0] <= now - limit.seconds:
                window.popleft()
            if len(window) >= limit.count:
                return max(window[0] + limit.seconds - now, 0.001)
            window.append(now)
            return 0.0

    def _sweep(self, now: float, seconds: float) -> None:
        # Drop keys idle for longer than a window so that memory stays bounded by the active clients.
        stale = [key for key, window in self._hits.items() if not window or window[-1] <= now - seconds]
        for key in stale:
            del self._hits[key]
        self._last_sweep = now

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


def csp_nonce() -> str:
    """The nonce of this request's CSP (use as ``<script nonce="{{ csp_nonce() }}">``)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def content_security_policy(nonce: str, config) -> str:
    media = " ".join(["'self'", "blob:", *str(config.get("CSP_MEDIA_SRC", "") or "").split()])
    directives = [
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        # Inline style attributes are harmless next to a script nonce and keep templates simple.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        f"media-src {media}",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        f"form-action {config.get('CSP_FORM_ACTION') or DEFAULT_FORM_ACTION}",
        f"frame-ancestors {config.get('FRAME_ANCESTORS') or DEFAULT_FRAME_ANCESTORS}",
    ]
    return "; ".join(directives)


@dataclass(frozen=True)
class _Headers:
    """The response headers, built once per app from its config (only the CSP nonce changes per request)."""

    csp_head: str
    csp_tail: str
    static: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, config) -> "_Headers":
        csp = content_security_policy("\0", config)
        head, tail = csp.split("\0")
        static = [("X-Content-Type-Options", "nosniff"),
                  # Signed media URLs must not travel to other sites in a Referer.
                  ("Referrer-Policy", "same-origin"),
                  ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
                  ("Cross-Origin-Resource-Policy", "same-origin")]
        if (config.get("FRAME_ANCESTORS") or DEFAULT_FRAME_ANCESTORS).strip() == "'self'":
            static.append(("X-Frame-Options", "SAMEORIGIN"))  # old browsers without frame-ancestors
        return cls(head, tail, tuple(static))


def response_headers(app: Flask, *, secure: bool, nonce: str | None = None) -> list[tuple[str, str]]:
    """The security headers of every response (Flask's, and the replies ``study_server.participant.fastpath`` writes);
    a fresh CSP nonce unless ``nonce`` is given."""
    built: _Headers = app.extensions["emostudy_security_headers"]
    headers = [("Content-Security-Policy", built.csp_head + (nonce or secrets.token_urlsafe(16)) + built.csp_tail),
               *built.static]
    if secure:
        headers.append(("Strict-Transport-Security", "max-age=31536000"))
    return headers


def _set_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in response_headers(current_app, secure=request.is_secure, nonce=csp_nonce()):
        if name not in headers:
            headers[name] = value
    if request.blueprint == "admin":
        headers.setdefault("Cache-Control", "no-store")
        _never_framed(headers)
    return response


def _never_framed(headers) -> None:  # noqa: ANN001 - werkzeug Headers
    """Admin pages are framed by nobody (issue 29): only participant pages need the platforms' frames."""
    csp = headers.get("Content-Security-Policy")
    if csp:
        kept = [d for d in csp.split("; ") if not d.startswith("frame-ancestors ")]
        headers["Content-Security-Policy"] = "; ".join([*kept, "frame-ancestors 'none'"])
    headers["X-Frame-Options"] = "DENY"


def _assignment_key() -> str | None:
    for key in _ASSIGNMENT_KEYS:
        value = (request.view_args or {}).get(key)
        if value:
            return str(value)
    header = request.headers.get("X-Assignment-Token") or request.headers.get("X-Assignment")
    if header:
        return header
    if request.is_json:
        body = peek_json()  # a refused body is refused by the route, with its code
        if isinstance(body, dict):
            for key in _ASSIGNMENT_KEYS:
                value = body.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


_PARSED_LIMITS: dict[tuple[str, object], Limit] = {}


def _limit(config, name: str, default: str) -> Limit:
    """``Limit.parse`` of a setting, memoized per text (the config may change at run time, e.g. in tests)."""
    text = config.get(name, default)
    key = (name, text)
    limit = _PARSED_LIMITS.get(key)
    if limit is None:
        limit = Limit.parse(text, name)
        if len(_PARSED_LIMITS) < 256:
            _PARSED_LIMITS[key] = limit
    return limit


def check_rate_limits(app: Flask, remote_addr: str, assignment: str | None) -> tuple[dict, int] | None:
    """Count one participant API request; None when allowed, else (JSON error body, Retry-After seconds)."""
    config = app.config
    limiter: RateLimiter = app.extensions["emostudy_rate_limiter"]
    checks = [(("ip", remote_addr), _limit(config, "RATE_LIMIT_PER_IP", "1200/60"))]
    if assignment:
        checks.append((("assignment", assignment), _limit(config, "RATE_LIMIT_PER_ASSIGNMENT", "240/60")))
    for key, limit in checks:
        wait = limiter.hit(key, limit)
        if wait:
            return {"error": {
                "code": "rate_limited",
                "message": f"too many requests from this {key[0]}: at most {limit.count} per "
                           f"{limit.seconds:g} s; retry in {math.ceil(wait)} s"}}, math.ceil(wait)
    return None


# Every name in a URL path (study, token, media slot and signature) is a slug: anything else names nothing,
# and must not reach the database (PostgreSQL refuses NUL bytes in text with an error, not "not found").
_PATH_VALUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


# The refusal of each, with the code the route itself gives for an unknown value.
_PATH_VALUE_ERRORS = {
    "study": ("study_not_found", "there is no study at this address; check the link you were given"),
    "token": ("assignment_not_found", "this study link is not valid; open the study again from the page that "
              "sent you here"),
    "slot": ("media_not_found", "this media link is not valid; reload the study page"),
    "sig": ("media_not_found", "this media link is not valid; reload the study page"),
}


def _refuse_odd_path_values():
    if request.endpoint in ("static", "participant.static"):
        return None
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and not _PATH_VALUE_RE.fullmatch(value):
            code, message = _PATH_VALUE_ERRORS.get(name, ("not_found", "nothing is at this address"))
            raise NotFound(code, message)
    return None


def _rate_limit():
    config = current_app.config
    if not config.get("RATE_LIMIT_ENABLED", True):
        return None
    if request.blueprint not in tuple(config.get("RATE_LIMIT_BLUEPRINTS", ("api",))):
        return None
    if request.environ.get(RATE_LIMIT_COUNTED):
        return None  # the answer fast path counted this request before handing it on
    refusal = check_rate_limits(current_app, request.remote_addr or "?", _assignment_key())
    if refusal is None:
        return None
    body, retry_after = refusal
    response = jsonify(body)
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response


def _configure_cookies(app: Flask) -> None:
    secure = app.config.get("COOKIE_SECURE")
    if secure is None:
        secure = not app.debug
    app.config["SESSION_COOKIE_SECURE"] = bool(secure)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    samesite = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    if samesite not in ("Lax", "Strict", "None"):
        raise SecurityConfigError(f"SESSION_COOKIE_SAMESITE={samesite!r}: use Lax, Strict or None")
    if samesite == "None" and not secure:
        raise SecurityConfigError("SESSION_COOKIE_SAMESITE=None needs Secure cookies (COOKIE_SECURE=1): "
                                  "browsers drop SameSite=None cookies that are not Secure")
    app.config["SESSION_COOKIE_SAMESITE"] = samesite


def _trusted_proxies(app: Flask) -> int:
    raw = app.config.get("TRUSTED_PROXIES")
    if raw is None:
        raw = os.environ.get("EMOSTUDY_TRUSTED_PROXIES", "0")
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise SecurityConfigError(f"TRUSTED_PROXIES={raw!r}: give the number of reverse proxies in front of "
                                  "the app (0 when clients connect directly)") from None
    if n < 0:
        raise SecurityConfigError(f"TRUSTED_PROXIES={raw!r} must be 0 or more")
    return n


def init_app(app: Flask) -> None:
    """Install the security headers, cookie flags and rate limiter on ``app``."""
    proxies = _trusted_proxies(app)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    for name, default in (("RATE_LIMIT_PER_IP", "1200/60"), ("RATE_LIMIT_PER_ASSIGNMENT", "240/60")):
        Limit.parse(app.config.get(name, default), name)  # fail at start-up, not on the first request
    _configure_cookies(app)
    app.extensions["emostudy_rate_limiter"] = RateLimiter()
    app.extensions["emostudy_security_headers"] = _Headers.build(app.config)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.before_request(_refuse_odd_path_values)
    app.before_request(_rate_limit)
    app.after_request(_set_headers)
