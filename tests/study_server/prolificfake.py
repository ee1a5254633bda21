"""Prolific's API as a local HTTP server (127.0.0.1, a free port): shared by the Prolific tests and the
two-process concurrency tests (the children call it over HTTP like the real one)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeProlific:
    """Enough of Prolific's API, written from its reference: studies (create, list, get, patch, transition),
    submissions (list, get with ``bonus_payments``, approve/reject transitions allowed only from AWAITING
    REVIEW, request-return), bulk bonuses (set up, then pay: the pay call is not idempotent and each call
    pays again), the account's currency (``/users/me/``).

    Faults: ``pay_fault`` = "lost-after" (paid, then the connection drops), "lost-before" (the connection
    drops before Prolific pays), "502-after" (paid, then a 502), "400-after" / "408-after" (paid, then that
    4xx, as a proxy may answer).

    Timing: ``records_delay_s`` - a paid bonus shows in the submission's ``bonus_payments`` only that many
    seconds after the pay call (Prolific pays bulk bonuses asynchronously); ``pay_delay_s`` and
    ``list_delay_s`` hold the pay call / the submissions list that long (two processes overlap).
    ``raw_replies``: path -> (status, body bytes) answered as they are (malformed replies)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.submissions: list[dict] = []
        self.studies: dict[str, dict] = {}
        self.places = 0
        self.currency = "USD"
        self.pay_fault: str | None = None
        self.bulks: dict[str, str] = {}
        self.pay_calls = 0
        self.records_delay_s = 0.0
        self.pay_delay_s = 0.0
        self.list_delay_s = 0.0
        self.raw_replies: dict[str, tuple[int, bytes]] = {}
        self.pending: list[tuple[float, str, int]] = []  # (visible at, participant, minor) not yet in the records
        self.lock = threading.Lock()
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
                if p in fake.raw_replies:
                    code, data = fake.raw_replies[p]
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                fake.settle_records()
                subs = {s["id"]: s for s in fake.submissions}
                if method == "GET" and p == "/api/v1/users/me/":
                    return self._reply(200, {"id": "R1", "currency_code": fake.currency})
                if method == "POST" and p == "/api/v1/studies/":
                    fake.places = body["total_available_places"]
                    sid = f"STUDY{len(fake.studies) + 1}"
                    fake.studies[sid] = {"id": sid, "status": "UNPUBLISHED", **body}
                    return self._reply(201, fake.studies[sid])
                if method == "GET" and p == "/api/v1/studies/":
                    return self._reply(200, {"results": list(fake.studies.values())})
                if method == "GET" and p == "/api/v1/studies/STUDY1/":
                    status = fake.studies.get("STUDY1", {}).get("status", "ACTIVE")
                    return self._reply(200, {"id": "STUDY1", "status": status, "total_available_places": fake.places,
                                             "places_taken": len(fake.submissions)})
                if method == "PATCH" and p == "/api/v1/studies/STUDY1/":
                    fake.places = body["total_available_places"]
                    return self._reply(200, {"id": "STUDY1"})
                if method == "GET" and p == "/api/v1/studies/STUDY1/submissions/":
                    time.sleep(fake.list_delay_s)
                    return self._reply(200, {"results": fake.submissions, "_links": {"next": {"href": None}}})
                if method == "GET" and p.startswith("/api/v1/submissions/") and p.count("/") == 5:
                    sub = subs.get(p.split("/")[4])
                    if sub is None:
                        return self._reply(404, {"error": "no submission"})
                    return self._reply(200, {"bonus_payments": [], **sub})  # always listed, [] when none
                if method == "POST" and p.startswith("/api/v1/submissions/") and p.endswith("/request-return/"):
                    subs[p.split("/")[4]]["return_requested"] = True
                    return self._reply(200, {"id": p.split("/")[4], "status": "AWAITING REVIEW"})
                if method == "POST" and p.startswith("/api/v1/submissions/") and p.endswith("/transition/"):
                    sub = subs.get(p.split("/")[4])
                    if sub is not None:
                        if sub["status"] != "AWAITING REVIEW":
                            return self._reply(400, {"error": f"cannot {body['action']} a {sub['status']} submission"})
                        sub["status"] = {"APPROVE": "APPROVED", "REJECT": "REJECTED"}[body["action"]]
                    return self._reply(200, {"status": body["action"]})
                if method == "POST" and p == "/api/v1/submissions/bonus-payments/":
                    bulk = f"BULK{len(fake.bulks) + 1}"
                    fake.bulks[bulk] = body["csv_bonuses"]
                    return self._reply(201, {"id": bulk})
                if method == "POST" and p.startswith("/api/v1/bulk-bonus-payments/"):
                    if fake.pay_fault == "lost-before":
                        fake.pay_fault = None
                        raise ConnectionAbortedError
                    time.sleep(fake.pay_delay_s)
                    with fake.lock:
                        fake.pay_calls += 1
                        for line in fake.bulks[p.split("/")[4]].strip().splitlines():
                            pid, amount = line.split(",")
                            whole, _, frac = amount.partition(".")
                            assert len(frac) == 2, f"bonus amount {amount!r} is not in whole minor units"
                            fake.pending.append((time.monotonic() + fake.records_delay_s, pid,
                                                 int(whole) * 100 + int(frac)))
                    fake.settle_records()
                    fault, fake.pay_fault = fake.pay_fault, None
                    if fault == "lost-after":
                        raise ConnectionAbortedError  # paid, but the reply never arrives
                    if fault == "502-after":
                        return self._reply(502, {"error": "bad gateway"})
                    if fault in ("400-after", "408-after"):
                        return self._reply(int(fault[:3]), {"error": "request failed"})
                    return self._reply(202, {})
                if method == "POST" and p.startswith("/api/v1/studies/") and p.endswith("/transition/"):
                    study = fake.studies.get(p.split("/")[4])
                    if study is not None:
                        study["status"] = {"PUBLISH": "ACTIVE", "STOP": "COMPLETED"}.get(body.get("action"),
                                                                                         study["status"])
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

    def settle_records(self) -> None:
        """Bonuses whose delay has passed appear in their submission's ``bonus_payments``."""
        with self.lock:
            now = time.monotonic()
            due = [x for x in self.pending if x[0] <= now]
            self.pending = [x for x in self.pending if x[0] > now]
            for _, pid, minor in due:
                for sub in self.submissions:
                    if sub["participant_id"] == pid:
                        sub.setdefault("bonus_payments", []).append(minor)

    def paid_to(self, pid: str) -> list[int]:
        """Every bonus paid to a participant (visible in the records or not yet), in minor units."""
        with self.lock:
            seen = [m for s in self.submissions if s["participant_id"] == pid for m in s.get("bonus_payments", [])]
            return seen + [m for _, p, m in self.pending if p == pid]

    def calls(self, method=None, prefix=""):
        return [(m, p, b) for m, p, b in self.requests if (method is None or m == method) and p.startswith(prefix)]
