"""Security headers, cookie flags and the participant API's rate limiter.

Most tests use a bare Flask app with ``security.init_app`` (so they pin this module's behaviour alone);
``test_real_app_*`` check that the study server's ``create_app`` installs it.
"""

from __future__ import annotations

import re

import pytest
from flask import Blueprint, Flask, jsonify, render_template_string, session

from study_server.web import security


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


def test_trusted_proxy_gives_each_client_its_own_limit(monkeypatch):
    monkeypatch.delenv("EMOSTUDY_TRUSTED_PROXIES", raising=False)
    # without a trusted proxy, X-Forwarded-For is ignored: everyone shares the proxy's address
    client = _app(RATE_LIMIT_PER_IP="2/60").test_client()
    codes = [client.get("/api/ping", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
    assert codes == [200, 200, 429]
    client = _app(RATE_LIMIT_PER_IP="2/60", TRUSTED_PROXIES=1).test_client()
    codes = [client.get("/api/ping", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
    assert codes == [200, 200, 200]
    forged = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}  # the client's own first entry is not trusted
    assert [client.get("/api/ping", headers=forged).status_code for _ in range(3)] == [200, 200, 429]
    https = client.get("/api/ping", headers={"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in https.headers
    monkeypatch.setenv("EMOSTUDY_TRUSTED_PROXIES", "many")
    with pytest.raises(security.SecurityConfigError, match="TRUSTED_PROXIES"):
        _app()


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


# ------------------------------------------------------------------------------- the real app

@pytest.fixture
def app_config():
    return {"RATE_LIMIT_ENABLED": True, "RATE_LIMIT_PER_ASSIGNMENT": "5/60", "RATE_LIMIT_PER_IP": "1000/60"}


def test_real_app_pages_carry_the_policy_and_a_matching_nonce(app, client, task1_study):
    from studykit import arrive

    token = arrive(client, task1_study, lab="sec-1")
    page = client.get(f"/a/{token}")
    assert page.status_code == 200
    csp = _csp(page)
    html = page.get_data(as_text=True)
    nonces = set(re.findall(r'<script[^>]*nonce="([^"]+)"', html))
    assert nonces and all(f"'nonce-{n}'" in csp["script-src"] for n in nonces)
    # every script element is nonce'd (no inline handler attributes either)
    assert len(re.findall(r"<script", html)) == len(re.findall(r'<script[^>]*nonce="', html))
    assert not re.search(r"\son[a-z]+=\"", html)
    assert csp["frame-ancestors"].startswith("'self' https://*.mturk.com")
    for path in (f"/api/v1/a/{token}", "/admin/login", "/api/v1/health"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response.headers


def test_real_app_rate_limits_the_participant_api_per_assignment(app, client, task1_study):
    from studykit import arrive

    token = arrive(client, task1_study, lab="sec-2")
    codes = [client.post(f"/api/v1/a/{token}/ping").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    refused = client.get(f"/api/v1/a/{token}")
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    other = arrive(client, task1_study, lab="sec-3")
    assert client.get(f"/api/v1/a/{other}").status_code == 200
    # pages and media are outside the limiter
    assert client.get(f"/a/{token}").status_code == 200


def test_real_app_cookie_flags_production_vs_development(tmp_path, monkeypatch):
    from study_server.app import create_app

    monkeypatch.delenv("EMOSTUDY_COOKIE_SECURE", raising=False)
    monkeypatch.setenv("EMOSTUDY_ADMIN_PASSWORD_HASH", "pbkdf2:sha256:1000$x$y")
    for env, secure in (("production", True), ("development", False)):
        app = create_app({"ENV_NAME": env, "SECRET_KEY": "k" * 32, "INSTANCE_PATH": str(tmp_path / env),
                          "DATABASE_URL": f"sqlite:///{tmp_path / (env + '.sqlite3')}"})
        assert app.debug is (not secure)
        cookie = _set_cookie(app.test_client().get("/admin/login"))  # the CSRF token lives in the session
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure, (env, cookie)


def test_admin_pages_are_never_framed_participant_pages_may_be(app, client):
    """Issue 29: frame-ancestors 'none' on admin pages (the login page included); the participant pages keep
    the recruiting platforms' origins."""
    admin = client.get("/admin/login")
    csp = admin.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and csp.count("frame-ancestors") == 1
    assert admin.headers["X-Frame-Options"] == "DENY"
    health = client.get("/api/v1/health")
    assert "frame-ancestors 'none'" not in health.headers["Content-Security-Policy"]
