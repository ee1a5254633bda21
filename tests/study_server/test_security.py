"""Security headers, cookie flags and the participant API's rate limiter.

Most tests use a bare Flask app with ``security.init_app`` (so they pin this module's behaviour alone);
``test_real_app_*`` check that the study server's ``create_app`` installs it.
"""

from __future__ import annotations

import re

import pytest
from flask import Blueprint, Flask, jsonify, render_template_string, session

from study_server import security


def _app(**config) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", **config)
    api = Blueprint("api", __name__, url_prefix="/api")

    @api.post("/assignments/<token>/answers")
    def answer(token):
        return jsonify(ok=True, token=token)

    @api.get("/ping")
    def ping():
        return jsonify(ok=True)

    app.register_blueprint(api)

    @app.get("/page")
    def page():
        session["seen"] = True
        return render_template_string('<script nonce="{{ csp_nonce() }}">var x = 1;</script>')

    security.init_app(app)
    return app


def _csp(response) -> dict[str, str]:
    parts = [p.strip() for p in response.headers["Content-Security-Policy"].split(";")]
    return {p.split(" ", 1)[0]: (p.split(" ", 1)[1] if " " in p else "") for p in parts}


def test_headers_and_nonce():
    client = _app().test_client()
    first = client.get("/page")
    csp = _csp(first)
    nonce = re.search(r'nonce="([^"]+)"', first.get_data(as_text=True)).group(1)
    assert csp["script-src"] == f"'self' 'nonce-{nonce}'"  # no 'unsafe-inline' for scripts
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["frame-ancestors"] == "'self' https://*.mturk.com https://*.amazon.com https://app.prolific.com"
    assert csp["object-src"] == "'none'"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["Referrer-Policy"] == "same-origin"
    assert "X-Frame-Options" not in first.headers  # it cannot express a list; frame-ancestors does
    second = client.get("/page")
    assert _csp(second)["script-src"] != csp["script-src"]  # a fresh nonce per response
    assert "Strict-Transport-Security" not in first.headers  # plain HTTP
    assert "Strict-Transport-Security" in client.get("/page", base_url="https://example.org").headers


def test_frame_ancestors_and_media_configurable():
    app = _app(FRAME_ANCESTORS="'self'", CSP_MEDIA_SRC="https://bucket.s3.amazonaws.com")
    response = app.test_client().get("/api/ping")
    csp = _csp(response)
    assert csp["frame-ancestors"] == "'self'"
    assert csp["media-src"] == "'self' blob: https://bucket.s3.amazonaws.com"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def _set_cookie(response) -> str:
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie"]
    assert len(cookies) == 1, cookies
    return cookies[0]


def test_cookie_flags_production_and_debug():
    cookie = _set_cookie(_app().test_client().get("/page"))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    debug_app = _app(DEBUG=True)
    cookie = _set_cookie(debug_app.test_client().get("/page"))
    assert "HttpOnly" in cookie and "Secure" not in cookie and "SameSite=Lax" in cookie
    cookie = _set_cookie(_app(COOKIE_SECURE=False).test_client().get("/page"))
    assert "Secure" not in cookie


def test_samesite_none_requires_secure():
    with pytest.raises(security.SecurityConfigError, match="Secure"):
        _app(SESSION_COOKIE_SAMESITE="None", COOKIE_SECURE=False)
    cookie = _set_cookie(_app(SESSION_COOKIE_SAMESITE="None").test_client().get("/page"))
    assert "SameSite=None" in cookie and "Secure" in cookie


def test_bad_limit_fails_at_startup():
    with pytest.raises(security.SecurityConfigError, match="RATE_LIMIT_PER_IP"):
        _app(RATE_LIMIT_PER_IP="lots")


def test_rate_limit_per_assignment_429_json():
    client = _app(RATE_LIMIT_PER_ASSIGNMENT="3/60", RATE_LIMIT_PER_IP="100/60").test_client()
    codes = [client.post("/api/assignments/A1/answers", json={}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = client.post("/api/assignments/A1/answers", json={})
    assert refused.is_json and refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # another assignment from the same address is not affected
    assert client.post("/api/assignments/A2/answers", json={}).status_code == 200
    # pages outside the participant API are never limited
    assert all(client.get("/page").status_code == 200 for _ in range(10))


def test_rate_limit_per_ip():
    client = _app(RATE_LIMIT_PER_IP="4/60").test_client()
    codes = [client.get("/api/ping", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for _ in range(6)]
    assert codes == [200] * 4 + [429] * 2
    assert client.get("/api/ping", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200


def test_rate_limit_can_be_disabled():
    client = _app(RATE_LIMIT_PER_IP="1/60", RATE_LIMIT_ENABLED=False).test_client()
    assert [client.get("/api/ping").status_code for _ in range(3)] == [200, 200, 200]


def test_sliding_window_frees_after_the_window():
    now = [100.0]
    limiter = security.RateLimiter(clock=lambda: now[0])
    limit = security.Limit(2, 10)
    assert [limiter.hit(("ip", "a"), limit) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.hit(("ip", "a"), limit) == pytest.approx(10.0)
    now[0] += 10.5
    assert limiter.hit(("ip", "a"), limit) == 0.0
