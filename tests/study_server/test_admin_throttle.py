"""Issue 29: admin login is throttled per account as well as per address (an attack spread over many
addresses), and admin pages are never framed."""

from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config():
    return {"ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}


def _login(client, addr, password, user="admin"):
    html = client.get("/admin/login", environ_base={"REMOTE_ADDR": addr}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return client.post("/admin/login", data={"user": user, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr})


def test_login_is_throttled_per_account_across_addresses(app):
    codes = []
    for i in range(31):  # one guess from each of 31 addresses: under every address's limit
        codes.append(_login(app.test_client(), f"198.51.100.{i + 1}", f"guess {i}").status_code)
    assert codes == [401] * 30 + [429]
    assert _login(app.test_client(), "203.0.113.1", PASSWORD).status_code == 429  # the account waits
    # another account name is not held up by it (and fails as a wrong user)
    assert _login(app.test_client(), "203.0.113.2", PASSWORD, user="someone").status_code == 401


def test_the_login_page_cannot_be_framed(app):
    r = app.test_client().get("/admin/login")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
