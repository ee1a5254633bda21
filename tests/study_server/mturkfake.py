"""An in-memory MTurk behind a real boto3 client, for fault injection.

It answers at botocore's ``before-send`` event, so each request has been built and validated against the
real MTurk API model, and each reply goes through botocore's JSON parser and its retry handler (throttling
and lost replies are retried as in production). Written from the MTurk API reference: HITs, assignments
and their statuses, idempotency tokens valid for 24 hours (a repeat is refused with 'The idempotency token
"..." has already been processed.'), ListBonusPayments, paging by NextToken, system and custom
qualifications, GetAccountBalance, NotifyWorkers, CreateWorkerBlock.

Faults: ``fake.fail(op, when, times=1)`` with ``when`` one of
  "before"   the process dies before the call reaches MTurk (nothing happens there)
  "after"    MTurk does the work and replies, then the process dies before it records anything
  "lost"     MTurk does the work, the reply is lost (ReadTimeoutError; botocore may retry)
  "throttle" MTurk answers ThrottlingException without doing anything
  "nokey"    MTurk does the work and answers 200 with an empty JSON object (a body without its list or HIT)
  "html"     MTurk does the work and answers 200 with an HTML page (a proxy's), not JSON
``refuse_grant``: worker ids AssociateQualificationWithWorker refuses (a visitor's ``workerId=test-user``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from study_server.recruit import mturk


class Crash(Exception):
    """The process died (kill -9, power cut) at this point."""


class _Raw:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


@dataclass
class FakeMTurk:
    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc))
    balance: float = 10000.0
    page_size: int = 100
    empty_page_first: bool = False  # every list starts with an empty page that carries a NextToken
    hits: dict[str, dict[str, Any]] = field(default_factory=dict)
    hit_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    bonuses: list[dict[str, Any]] = field(default_factory=list)
    quals: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: set[tuple[str, str]] = field(default_factory=set)
    blocks: dict[str, str] = field(default_factory=dict)
    notified: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # every request that reached MTurk
    tokens: dict[str, tuple[dt.datetime, Any]] = field(default_factory=dict)
    faults: list[list[Any]] = field(default_factory=list)  # [op, when, times]
    refuse_grant: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # -- wiring ---------------------------------------------------------------------------------
    def client(self, max_attempts: int = 1):
        """A boto3 MTurk client whose requests this fake answers (botocore retries: ``max_attempts``)."""
        c = boto3.client("mturk", region_name="us-east-1", endpoint_url=mturk.SANDBOX_ENDPOINT,
                         aws_access_key_id="test", aws_secret_access_key="test",
                         config=mturk.retry_config(max_attempts))
        c.meta.events.register("before-send.mturk", self._on_send)
        return c

    def fail(self, op: str, when: str, times: int = 1) -> None:
        self.faults.append([op, when, times])

    def advance(self, hours: float) -> None:
        self.now += dt.timedelta(hours=hours)

    def ops(self, op: str | None = None) -> list[str]:
        return [o for o, _ in self.calls if op is None or o == op]

    def _fault(self, op: str) -> str | None:
        for f in self.faults:
            if f[0] == op and f[2] > 0:
                f[2] -= 1
                return f[1]
        return None

    def _on_send(self, request, **kwargs):
        op = request.headers["X-Amz-Target"].decode().split(".")[-1] if isinstance(
            request.headers["X-Amz-Target"], bytes) else request.headers["X-Amz-Target"].split(".")[-1]
        params = json.loads(request.body or b"{}")
        fault = self._fault(op)
        if fault == "before":
            raise Crash(f"died before {op}")
        if fault == "throttle":
            return self._reply(400, {"__type": "ThrottlingException", "Message": "Rate exceeded"})
        self.calls.append((op, params))
        status, body = self._handle(op, params)
        if fault == "after":
            raise Crash(f"died after {op}")
        if fault == "lost":
            raise ReadTimeoutError(endpoint_url=request.url)
        if fault == "nokey":
            return self._reply(200, {})
        if fault == "html":
            return AWSResponse(mturk.SANDBOX_ENDPOINT, 200, {"Content-Type": "text/html"},
                               _Raw(b"<html><body>Service temporarily rerouted</body></html>"))
        return self._reply(status, body)

    @staticmethod
    def _reply(status: int, body: dict[str, Any]) -> AWSResponse:
        data = json.dumps(body, default=str).encode()
        return AWSResponse(mturk.SANDBOX_ENDPOINT, status, {"Content-Type": "application/x-amz-json-1.1",
                                                            "x-amzn-RequestId": "fake"}, _Raw(data))

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    # -- the service -----------------------------------------------------------------------------
    def _handle(self, op: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        token = p.get("UniqueRequestToken")
        if token:
            seen = self.tokens.get(token)
            if seen and self.now - seen[0] < dt.timedelta(hours=24):
                return 400, {"__type": "RequestError",
                             "Message": f'The idempotency token "{token}" has already been processed.'}
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise NotImplementedError(op)
        status, body = handler(p)
        if token and status == 200:
            self.tokens[token] = (self.now, body)
        return status, body

    def _error(self, msg: str) -> tuple[int, dict[str, Any]]:
        return 400, {"__type": "RequestError", "Message": msg}

    def _page(self, items: list[dict[str, Any]], p: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
        start = int(p.get("NextToken") or "0")
        if self.empty_page_first and start == 0 and not p.get("NextToken"):
            return 200, {key: [], "NumResults": 0, "NextToken": "0000"}
        size = min(int(p.get("MaxResults") or 100), self.page_size)
        page = items[start:start + size]
        body: dict[str, Any] = {key: page, "NumResults": len(page)}
        if start + size < len(items):
            body["NextToken"] = f"{start + size:04d}"
        return 200, body

    def _op_GetAccountBalance(self, p):
        return 200, {"AvailableBalance": f"{self.balance:.2f}"}

    def _op_CreateQualificationType(self, p):
        if any(q["Name"] == p["Name"] for q in self.quals.values()):
            return self._error(f"You have already created a QualificationType with this name: {p['Name']}")
        qid = self._id("Q")
        self.quals[qid] = {"QualificationTypeId": qid, "Name": p["Name"]}
        return 200, {"QualificationType": self.quals[qid]}

    def _op_ListQualificationTypes(self, p):
        items = [q for q in self.quals.values() if p.get("Query", "") in q["Name"]]
        return self._page(items, p, "QualificationTypes")

    def _op_AssociateQualificationWithWorker(self, p):
        if p["WorkerId"] in self.refuse_grant:
            return self._error(f"Worker {p['WorkerId']} does not exist.")
        self.grants.add((p["QualificationTypeId"], p["WorkerId"]))
        return 200, {}

    def _op_CreateHITType(self, p):
        key = json.dumps(p, sort_keys=True)  # the same settings give the same HIT type
        for tid, t in self.hit_types.items():
            if t["key"] == key:
                return 200, {"HITTypeId": tid}
        tid = self._id("TYPE")
        self.hit_types[tid] = {"key": key, **p}
        return 200, {"HITTypeId": tid}

    def _op_CreateHITWithHITType(self, p):
        if p["HITTypeId"] not in self.hit_types:
            return self._error(f"HITType {p['HITTypeId']} does not exist")
        cost = float(self.hit_types[p["HITTypeId"]]["Reward"]) * p["MaxAssignments"] * 1.2
        if cost > self.balance:
            return self._error("You do not have enough funds to create this HIT.")
        hid = self._id("HIT")
        self.hits[hid] = {"HITId": hid, "HITTypeId": p["HITTypeId"], "MaxAssignments": p["MaxAssignments"],
                          "RequesterAnnotation": p.get("RequesterAnnotation", ""), "HITStatus": "Assignable",
                          "Expiration": (self.now + dt.timedelta(seconds=p["LifetimeInSeconds"])).timestamp(),
                          "QualificationRequirements": self.hit_types[p["HITTypeId"]]["QualificationRequirements"]}
        return 200, {"HIT": self._hit_view(hid)}

    def _hit_view(self, hid: str) -> dict[str, Any]:
        h = self.hits[hid]
        mine = [a for a in self.assignments.values() if a["HITId"] == hid]
        pending = sum(1 for a in mine if a["AssignmentStatus"] == "Accepted")
        done = sum(1 for a in mine if a["AssignmentStatus"] in ("Submitted", "Approved", "Rejected"))
        expired = h["Expiration"] <= self.now.timestamp()
        view = {k: v for k, v in h.items() if k != "QualificationRequirements"}
        view.update(NumberOfAssignmentsPending=pending, NumberOfAssignmentsCompleted=done,
                    NumberOfAssignmentsAvailable=0 if expired else h["MaxAssignments"] - pending - done,
                    HITStatus="Reviewable" if expired else "Assignable")
        return view

    def _op_GetHIT(self, p):
        if p["HITId"] not in self.hits:
            return self._error(f"Hit {p['HITId']} does not exist.")
        return 200, {"HIT": self._hit_view(p["HITId"])}

    def _op_ListHITs(self, p):
        return self._page([self._hit_view(h) for h in self.hits], p, "HITs")

    def _op_UpdateExpirationForHIT(self, p):
        self.hits[p["HITId"]]["Expiration"] = float(p["ExpireAt"])
        return 200, {}

    def _op_ListAssignmentsForHIT(self, p):
        wanted = p.get("AssignmentStatuses") or ["Submitted", "Approved", "Rejected"]
        items = [dict(a) for a in self.assignments.values()
                 if a["HITId"] == p["HITId"] and a["AssignmentStatus"] in wanted]
        return self._page(items, p, "Assignments")

    def _op_GetAssignment(self, p):
        a = self.assignments.get(p["AssignmentId"])
        if a is None:
            return self._error(f"Assignment {p['AssignmentId']} does not exist.")
        return 200, {"Assignment": dict(a), "HIT": self._hit_view(a["HITId"])}

    def _decide(self, p, status):
        a = self.assignments.get(p["AssignmentId"])
        if a is None or a["AssignmentStatus"] != "Submitted":
            return self._error("This operation can be called with a status of: Submitted")
        a["AssignmentStatus"] = status
        a["RequesterFeedback"] = p.get("RequesterFeedback")
        return 200, {}

    def _op_ApproveAssignment(self, p):
        return self._decide(p, "Approved")

    def _op_RejectAssignment(self, p):
        return self._decide(p, "Rejected")

    def _op_SendBonus(self, p):
        a = self.assignments.get(p["AssignmentId"])
        if a is None or a["WorkerId"] != p["WorkerId"]:
            return self._error("The assignment does not belong to this worker.")
        amount = float(p["BonusAmount"])
        if amount * 1.2 > self.balance:
            return self._error("You do not have enough funds to pay this bonus.")
        self.balance -= amount * 1.2
        self.bonuses.append({"WorkerId": p["WorkerId"], "BonusAmount": p["BonusAmount"],
                             "AssignmentId": p["AssignmentId"], "Reason": p["Reason"],
                             "GrantTime": self.now.timestamp()})
        return 200, {}

    def _op_ListBonusPayments(self, p):
        items = [b for b in self.bonuses if b["AssignmentId"] == p.get("AssignmentId")
                 or (p.get("HITId") and self.assignments[b["AssignmentId"]]["HITId"] == p["HITId"])]
        return self._page(items, p, "BonusPayments")

    def _op_NotifyWorkers(self, p):
        self.notified.append(p)
        return 200, {"NotifyWorkersFailureStatuses": []}

    def _op_CreateWorkerBlock(self, p):
        self.blocks[p["WorkerId"]] = p["Reason"]
        return 200, {}

    # -- workers (what happens on the worker's side) -------------------------------------------------
    def accept(self, hit_id: str, worker_id: str) -> str:
        aid = self._id("ASG")
        self.assignments[aid] = {"AssignmentId": aid, "WorkerId": worker_id, "HITId": hit_id,
                                 "AssignmentStatus": "Accepted"}
        return aid

    def submit(self, aid: str) -> None:
        self.assignments[aid]["AssignmentStatus"] = "Submitted"

    def return_(self, aid: str) -> None:
        del self.assignments[aid]  # a returned assignment is no longer listed; its place is free again

    def status_of(self, aid: str) -> str:
        return self.assignments[aid]["AssignmentStatus"]

    def bonuses_on(self, aid: str) -> list[dict[str, Any]]:
        return [b for b in self.bonuses if b["AssignmentId"] == aid]
