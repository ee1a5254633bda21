"""Prolific and lab links: the Prolific API is played by a local fake HTTP server that records requests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from studykit import TASK1, arrive, complete_session, import_study, make_plan

from study_server.extensions import db
from study_server.models import Assignment, AuditLog
from study_server.recruit import LedgerError
from study_server.recruit import lab, service
from study_server.recruit.models import BONUS_COMMITTED, BonusPayment
from study_server.recruit.prolific import ProlificRecruiter

BASE = "https://study.example.org"


class FakeProlific:
    """Just enough of Prolific's API: studies, submissions, transitions, bulk bonuses."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.submissions: list[dict] = []
        self.places = 0
        self.fail_pay = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}") if n else {}
                if self.headers.get("Authorization") != "Token secret-token":
                    return self._reply(401, {"error": "bad token"})
                fake.requests.append((method, self.path, body))
                p = self.path
                if method == "POST" and p == "/api/v1/studies/":
                    fake.places = body["total_available_places"]
                    return self._reply(201, {"id": "STUDY1", **body})
                if method == "GET" and p == "/api/v1/studies/STUDY1/":
                    return self._reply(200, {"id": "STUDY1", "status": "ACTIVE", "total_available_places": fake.places,
                                             "places_taken": len(fake.submissions)})
                if method == "PATCH" and p == "/api/v1/studies/STUDY1/":
                    fake.places = body["total_available_places"]
                    return self._reply(200, {"id": "STUDY1"})
                if method == "GET" and p == "/api/v1/studies/STUDY1/submissions/":
                    return self._reply(200, {"results": fake.submissions, "_links": {"next": {"href": None}}})
                if method == "POST" and p.startswith("/api/v1/submissions/") and p.endswith("/transition/"):
                    return self._reply(200, {"status": body["action"]})
                if method == "POST" and p == "/api/v1/submissions/bonus-payments/":
                    return self._reply(201, {"id": f"BULK{len(fake.requests)}"})
                if method == "POST" and p.startswith("/api/v1/bulk-bonus-payments/"):
                    if fake.fail_pay:
                        raise ConnectionAbortedError  # the connection drops: the outcome is unknown
                    return self._reply(202, {})
                if method == "POST" and p.endswith("/transition/"):
                    return self._reply(200, {})
                return self._reply(404, {"error": p})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def calls(self, method=None, prefix=""):
        return [(m, p, b) for m, p, b in self.requests if (method is None or m == method) and p.startswith(prefix)]


@pytest.fixture
def fake():
    f = FakeProlific()
    f.thread.start()
    yield f
    f.server.shutdown()
    f.server.server_close()


@pytest.fixture
def study(app, media_set, tmp_path):
    path = make_plan(media_set, TASK1, name="prolific-t1", out=tmp_path / "plan.json")
    plan = json.loads(path.read_text())
    plan["payment"] = {"reward_usd": 2.0, "bonus": {"rule": "per_correct", "question": "emotion",
                                                    "truth": "visual_emotion", "amount_usd": 0.05, "max_usd": None}}
    path.write_text(json.dumps(plan))
    name = import_study(app, path, media_set)
    with app.app_context():
        yield service.find_study(db.session, name)


def _recruiter(fake, study, study_id=None):
    return ProlificRecruiter(token="secret-token", base_url=fake.url, study_id=study_id,
                             completion_code=study.completion_code)


def test_open_creates_a_draft_with_url_parameters_and_completion_code(app, study, fake):
    rec = _recruiter(fake, study)
    ids = service.open_posts(db.session, study, rec, service.post_settings(study, BASE), sandbox=False)
    assert ids == ["STUDY1"]
    (method, path, body), = fake.calls("POST", "/api/v1/studies/")
    assert body["external_study_url"] == (f"{BASE}/s/{study.name}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
                                          "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")
    assert body["prolific_id_option"] == "url_parameters"
    assert body["completion_codes"][0]["code"] == study.completion_code
    assert body["reward"] == 200 and body["total_available_places"] == 4
    assert not fake.calls("POST", "/api/v1/studies/STUDY1/transition/")  # a draft: not published


def test_sync_approves_rejects_and_adds_places(app, study, fake):
    web = app.test_client()
    good = arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    complete_session(web, good)
    bad = arrive(web, study.name, PROLIFIC_PID="P2", STUDY_ID="STUDY1", SESSION_ID="S2")
    complete_session(web, bad, variant_for=lambda pos: 1 if pos >= 6 else 0)
    fake.places = 4
    fake.submissions = [{"id": "S1", "participant_id": "P1", "status": "AWAITING REVIEW"},
                        {"id": "S2", "participant_id": "P2", "status": "AWAITING REVIEW"},
                        {"id": "S0", "participant_id": "P0", "status": "APPROVED"}]
    rec = _recruiter(fake, study, "STUDY1")
    r = service.sync(db.session, study, rec, settings=service.post_settings(study, BASE))
    assert r.approved == ["S1"] and r.rejected == ["S2"]
    transitions = {p: b for m, p, b in fake.calls("POST", "/api/v1/submissions/")}
    assert transitions["/api/v1/submissions/S1/transition/"] == {"action": "APPROVE"}
    rej = transitions["/api/v1/submissions/S2/transition/"]
    assert rej["action"] == "REJECT" and len(rej["message"]) >= 100 and rej["rejection_category"]
    # 4 wanted, 1 valid -> 3 needed; the study shows 4 places with 3 taken (3 submissions) -> 1 open;
    # 2 more places are added (4 + 2 = 6).
    assert r.needed == 3 and r.open_places == 1
    (_, _, patch), = fake.calls("PATCH")
    assert patch == {"total_available_places": 6}


def test_bonus_guarded_by_ledger_when_the_pay_call_is_lost(app, study, fake):
    web = app.test_client()
    token = arrive(web, study.name, PROLIFIC_PID="P1", STUDY_ID="STUDY1", SESSION_ID="S1")
    complete_session(web, token)
    a = db.session.scalar(select(Assignment).where(Assignment.token == token))
    a.status = "approved"
    db.session.commit()
    (pb,) = service.plan_bonuses(db.session, study)
    fake.fail_pay = True
    import requests

    with pytest.raises(requests.ConnectionError):
        service.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    row = db.session.scalar(select(BonusPayment))
    assert row.status == BONUS_COMMITTED
    fake.fail_pay = False
    n_pay_calls = len(fake.calls("POST", "/api/v1/bulk-bonus-payments/"))
    with pytest.raises(LedgerError, match="check them on prolific"):
        service.pay_bonuses(db.session, study, _recruiter(fake, study, "STUDY1"))
    assert len(fake.calls("POST", "/api/v1/bulk-bonus-payments/")) == n_pay_calls  # not paid again
    setup = [b for m, p, b in fake.calls("POST", "/api/v1/submissions/bonus-payments/")]
    assert setup[0]["csv_bonuses"] == f"P1,{pb.amount_cents / 100:.2f}\n"


def test_lab_tokens_are_one_time_links_without_payments(app, study):
    rec = lab.LabRecruiter(db.session, study)
    ids = service.open_posts(db.session, study, rec, service.post_settings(study, BASE), places=3)
    assert len(ids) == 1 and len(rec.links) == 3
    assert all(link.startswith(f"{BASE}/s/{study.name}?lab=") for link in rec.links)
    token = rec.links[0].split("lab=")[1]
    assert lab.check_token(db.session, study.id, token)
    assert not lab.check_token(db.session, study.id, "forged-token")
    status = rec.status()[0]
    assert status["places"] == 3 and status["completed"] == 1
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "recruit.open.lab")) == 1
