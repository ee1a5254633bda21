"""Amazon Mechanical Turk through boto3: HIT types, HITs with an ExternalQuestion, qualifications,
review, bonuses. Sandbox unless live is asked for explicitly.

Facts used (MTurk API): a HIT with fewer than 10 assignments cannot be extended to 10 or more, and
HITs of 10+ assignments cost a higher fee, so we post at most 9 assignments per HIT and add HITs as
needed. System qualification ids: locale 00000000000000000071, approval rate 000000000000000000L0,
number of approved HITs 00000000000000000040 (the approval rate reads 100% for new workers, hence a
minimum of approved HITs). ``UniqueRequestToken`` (at most 64 characters) makes ``SendBonus`` and
``CreateHITWithHITType`` idempotent for 24 hours; a repeat inside that window is refused with
``The idempotency token "..." has already been processed.``; our ledger and ``ListBonusPayments`` /
``ListHITs`` (by ``RequesterAnnotation``) guard beyond that. Fees: 20% on rewards and bonuses for HITs of
fewer than 10 assignments. ``ThrottlingException`` is retried by botocore (standard retry mode).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable
from xml.sax.saxutils import escape

from study_server.recruit import LiveModeRefused, OutcomeUnknown, PlatformError
from study_server.recruit.base import PostSettings, Submission, usd
from study_server.recruit.money import fmt, parse_minor

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
LIVE_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
QUAL_LOCALE = "00000000000000000071"
QUAL_APPROVAL_RATE = "000000000000000000L0"
QUAL_NUMBER_APPROVED = "00000000000000000040"
MAX_ASSIGNMENTS_PER_HIT = 9
FEE = 0.20  # MTurk's commission on rewards and bonuses (HITs of fewer than 10 assignments)
MAX_ATTEMPTS = 6  # botocore standard retry mode: throttling and transient errors, with exponential backoff
THROTTLE_CODES = ("ThrottlingException", "Throttling", "TooManyRequestsException")
_EXTERNAL_QUESTION_NS = ("http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
                         "2006-07-14/ExternalQuestion.xsd")


@dataclass(frozen=True)
class Qualifications:
    """Who may work on the HITs (the paper: US workers with a lifetime approval rate above 95%)."""

    countries: tuple[str, ...] = ("US",)
    min_approval_rate: int | None = 95
    min_approved_hits: int | None = 100
    exclude_qualification_ids: tuple[str, ...] = ()  # study families whose workers must not take part

    def requirements(self) -> list[dict[str, Any]]:
        req: list[dict[str, Any]] = []
        if self.countries:
            req.append({"QualificationTypeId": QUAL_LOCALE, "Comparator": "In",
                        "LocaleValues": [{"Country": c} for c in self.countries],
                        "ActionsGuarded": "DiscoverPreviewAndAccept"})
        if self.min_approval_rate is not None:
            req.append({"QualificationTypeId": QUAL_APPROVAL_RATE, "Comparator": "GreaterThanOrEqualTo",
                        "IntegerValues": [int(self.min_approval_rate)], "ActionsGuarded": "DiscoverPreviewAndAccept"})
        if self.min_approved_hits is not None:
            req.append({"QualificationTypeId": QUAL_NUMBER_APPROVED, "Comparator": "GreaterThanOrEqualTo",
                        "IntegerValues": [int(self.min_approved_hits)], "ActionsGuarded": "DiscoverPreviewAndAccept"})
        for qid in self.exclude_qualification_ids:
            req.append({"QualificationTypeId": qid, "Comparator": "DoesNotExist",
                        "ActionsGuarded": "DiscoverPreviewAndAccept"})
        return req


def hit_sizes(places: int) -> list[int]:
    """Assignments per HIT for ``places`` places: HITs of 9, then the rest (20 -> [9, 9, 2])."""
    full, rest = divmod(max(0, int(places)), MAX_ASSIGNMENTS_PER_HIT)
    return [MAX_ASSIGNMENTS_PER_HIT] * full + ([rest] if rest else [])


def external_question(url: str, frame_height: int = 0) -> str:
    """The ExternalQuestion XML. MTurk shows the URL in a frame and needs HTTPS."""
    if not url.startswith("https://"):
        raise PlatformError(f"MTurk shows the study in a frame and needs an https:// URL; got {url!r}. "
                            "Serve the study over HTTPS (see docs/deployment.md) and pass --base-url https://...")
    return (f'<ExternalQuestion xmlns="{_EXTERNAL_QUESTION_NS}">'
            f"<ExternalURL>{escape(url)}</ExternalURL><FrameHeight>{int(frame_height)}</FrameHeight>"
            "</ExternalQuestion>")


def make_client(*, live: bool = False, confirmed: bool = False, session: Any = None):
    """A boto3 MTurk client. Live (real money) needs both ``live`` and ``confirmed``; credentials come
    from the standard AWS sources (environment, ~/.aws, instance role), never from our config."""
    if live and not confirmed:
        raise LiveModeRefused("live MTurk pays real money: pass --live and confirm (type 'live' or --yes)")
    import boto3  # optional heavy dependency: boto3 loads only for MTurk/S3 work

    maker = session or boto3
    return maker.client("mturk", region_name="us-east-1", endpoint_url=LIVE_ENDPOINT if live else SANDBOX_ENDPOINT,
                        config=retry_config())


def retry_config(max_attempts: int = MAX_ATTEMPTS):
    """botocore's standard retry mode: retries throttling and transient errors with jittered exponential
    backoff (throttling: up to 20 s between tries)."""
    from botocore.config import Config  # optional heavy dependency: with boto3, only for MTurk/S3 work

    return Config(retries={"mode": "standard", "total_max_attempts": int(max_attempts)})  # tries, first included


def already_processed(err: dict[str, Any]) -> bool:
    """MTurk's answer to a repeated UniqueRequestToken: 'The idempotency token "..." has already been
    processed.' (older wording names UniqueRequestToken)."""
    msg = str(err.get("Message", "")).lower()
    return "already" in msg and ("idempotency token" in msg or "uniquerequesttoken" in msg)


def _call(client: Any, op: str, **params: Any) -> dict[str, Any]:
    """One MTurk call. A refusal raises PlatformError; a lost reply (timeout, dropped connection, 5xx after
    botocore's retries) raises OutcomeUnknown; throttling that outlasts the retries says so plainly."""
    # optional heavy dependency: imported only when the platform is called
    from botocore.exceptions import ClientError, HTTPClientError

    # optional heavy dependency: imported only when the platform is called
    from botocore.exceptions import ConnectionError as BotoConnectionError

    # optional heavy dependency: imported only when the platform is called
    from botocore.parsers import ResponseParserError

    try:
        resp = getattr(client, op)(**params)
        if not isinstance(resp, dict):
            raise OutcomeUnknown(f"MTurk {op}: the reply was not an MTurk answer; the call may or may not have "
                                 "taken effect")
        return resp
    except ResponseParserError as exc:
        raise OutcomeUnknown(f"MTurk {op}: the reply could not be read ({str(exc).splitlines()[0][:200]}); the "
                             "call may or may not have taken effect") from None
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = err.get("Code", "?")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        if code in THROTTLE_CODES:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            raise PlatformError(f"MTurk kept refusing {op} for too many requests (ThrottlingException, {attempts} "
                                "tries with backoff). Nothing was lost: wait a few minutes and run the same "
                                "command again.") from None
        if status >= 500 or code in ("ServiceFault", "ServiceUnavailable", "InternalError"):
            raise OutcomeUnknown(f"MTurk {op}: the service failed ({code}: {err.get('Message', '')}); the call "
                                 "may or may not have taken effect") from None
        exc_out = PlatformError(f"MTurk {op} failed: {code}: {err.get('Message', exc)}")
        exc_out.error = err  # type: ignore[attr-defined]
        raise exc_out from None
    except (BotoConnectionError, HTTPClientError) as exc:
        raise OutcomeUnknown(f"MTurk {op}: no reply ({type(exc).__name__}: {exc}); the call may or may not have "
                             "taken effect") from None


def _field(resp: dict[str, Any], key: str, op: str, *, changed: bool) -> Any:
    """``resp[key]``, or a plain error instead of KeyError: OutcomeUnknown when the call may have changed
    something on MTurk (``changed``), PlatformError for a read."""
    if key in resp and resp[key] is not None:
        return resp[key]
    msg = f"MTurk {op}: the reply has no {key} (keys: {sorted(resp)[:8]})"
    if changed:
        raise OutcomeUnknown(msg + "; the call may or may not have taken effect: run the command again, it "
                             "finds what was made")
    raise PlatformError(msg + "; run the command again later")


def _pages(client: Any, op: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged MTurk list. An empty page with a NextToken is not the end: only a missing
    NextToken is."""
    out: list[dict[str, Any]] = []
    token = None
    seen: set[str] = set()
    while True:
        resp = _call(client, op, **params, **({"NextToken": token} if token else {}))
        items = resp.get(key)
        if not isinstance(items, list):  # a reply without its list is an error, never "nothing there"
            raise PlatformError(f"MTurk {op}: the reply has no {key} list (keys: {sorted(resp)[:8]}); nothing was "
                                "read, so nothing is assumed. Run the command again later.")
        out.extend(items)
        token = resp.get("NextToken")
        if not token:
            return out
        if token in seen:  # a service that hands the same token back would loop forever
            raise PlatformError(f"MTurk {op} returned the page token {token!r} twice; paging stopped")
        seen.add(token)


class MTurkRecruiter:
    """The recruiter interface on MTurk. ``hit_ids`` are this study's HITs (from our database)."""

    platform = "mturk"

    def __init__(self, client: Any, *, hit_ids: list[str] | None = None, hit_type_id: str | None = None,
                 qualifications: Qualifications = Qualifications(), request_token_prefix: str = "",
                 log: Callable[[str, dict[str, Any]], None] | None = None):
        self.client = client
        self.hit_ids = list(hit_ids or [])
        self.hit_type_id = hit_type_id
        self.qualifications = qualifications
        self.request_token_prefix = request_token_prefix
        self.log = log or (lambda action, details: None)

    # -- posting ------------------------------------------------------------------------------
    def ensure_hit_type(self, s: PostSettings, requirements: list[dict[str, Any]] | None = None) -> str:
        """The HIT type (CreateHITType is idempotent: the same settings give the same id)."""
        if self.hit_type_id is None:
            resp = _call(self.client, "create_hit_type",
                         AutoApprovalDelayInSeconds=int(s.auto_approval_delay_s),
                         AssignmentDurationInSeconds=int(s.assignment_duration_s),
                         Reward=usd(s.reward_usd), Title=s.title[:128], Keywords=s.keywords[:1000],
                         Description=s.description[:2000],
                         QualificationRequirements=(requirements if requirements is not None
                                                    else self.qualifications.requirements()))
            self.hit_type_id = _field(resp, "HITTypeId", "CreateHITType", changed=True)
        return self.hit_type_id

    def create_hit(self, settings: PostSettings, assignments: int, token: str) -> dict[str, Any]:
        """One HIT; ``token`` is both its UniqueRequestToken and its RequesterAnnotation, so a HIT whose reply
        was lost is found again by ``find_hits`` (after the token's 24 hours too)."""
        if len(token) > 64:
            raise ValueError(f"request token {token!r} is longer than MTurk's 64 characters")
        question = external_question(settings.study_url, settings.frame_height)
        try:
            resp = _call(self.client, "create_hit_with_hit_type", HITTypeId=self.hit_type_id, MaxAssignments=assignments,
                         LifetimeInSeconds=int(settings.lifetime_s), Question=question,
                         RequesterAnnotation=token, UniqueRequestToken=token)
        except PlatformError as exc:
            if not already_processed(getattr(exc, "error", {})):
                raise
            found = [h for h in self.find_hits(token) if h.get("RequesterAnnotation") == token]
            if not found:
                raise OutcomeUnknown(f"MTurk says HIT token {token!r} was used, but ListHITs does not show the HIT "
                                     "yet; run the command again in a minute") from None
            return found[0]
        hit = _field(resp, "HIT", "CreateHITWithHITType", changed=True)
        _field(hit, "HITId", "CreateHITWithHITType", changed=True)
        self.hit_ids.append(hit["HITId"])
        return hit

    def find_hits(self, annotation_prefix: str) -> list[dict[str, Any]]:
        """Our HITs on MTurk, found by their RequesterAnnotation (ListHITs, every page)."""
        hits = [h for h in _pages(self.client, "list_hits", "HITs", MaxResults=100)
                if str(h.get("RequesterAnnotation") or "").startswith(annotation_prefix)]
        if any(not h.get("HITId") for h in hits):
            raise PlatformError("MTurk ListHITs: a HIT of this study without a HITId; nothing was recorded. Run the "
                                "command again later.")
        return hits

    def open(self, settings: PostSettings, places: int) -> list[str]:
        return self.extend(settings, places)

    def extend(self, settings: PostSettings, places: int) -> list[str]:
        """New HITs of at most 9 assignments each (the service records each one as it is made)."""
        self.ensure_hit_type(settings)
        start = len(self.hit_ids)
        return [self.create_hit(settings, n, f"{self.request_token_prefix}{start + k + 1}")["HITId"]
                for k, n in enumerate(hit_sizes(places))]

    # -- reading --------------------------------------------------------------------------------
    def hit(self, hit_id: str) -> dict[str, Any]:
        return _field(_call(self.client, "get_hit", HITId=hit_id), "HIT", "GetHIT", changed=False)

    def status(self) -> list[dict[str, Any]]:
        out = []
        for hit_id in self.hit_ids:
            hit = self.hit(hit_id)
            out.append({"id": hit_id, "status": hit.get("HITStatus"), "places": hit.get("MaxAssignments"),
                        "available": hit.get("NumberOfAssignmentsAvailable", 0),
                        "pending": hit.get("NumberOfAssignmentsPending", 0),
                        "completed": hit.get("NumberOfAssignmentsCompleted", 0)})
        return out

    def assignments(self, hit_id: str, statuses: tuple[str, ...] = ("Submitted",)) -> list[Submission]:
        items = _pages(self.client, "list_assignments_for_hit", "Assignments", HITId=hit_id,
                       AssignmentStatuses=list(statuses), MaxResults=100)
        if any(not a.get("AssignmentId") or not a.get("WorkerId") for a in items):
            raise PlatformError(f"MTurk ListAssignmentsForHIT {hit_id}: an assignment without AssignmentId or "
                                "WorkerId; nothing was decided. Run the command again later.")
        return [Submission(platform="mturk", external_id=a["AssignmentId"], worker_id=a["WorkerId"],
                           status=a.get("AssignmentStatus", "Submitted"), post_id=hit_id, raw=a) for a in items]

    def review(self, statuses: tuple[str, ...] = ("Submitted",)) -> list[Submission]:
        subs: list[Submission] = []
        for hit_id in self.hit_ids:
            subs.extend(self.assignments(hit_id, statuses))
        return subs

    def balance(self) -> float:
        """The requester's available balance in USD (the sandbox shows a fixed play balance)."""
        return float(_call(self.client, "get_account_balance").get("AvailableBalance") or 0)

    # -- money and standing (the caller writes the audit log first) ------------------------------
    def _settled(self, sub: Submission, wanted: str) -> bool:
        """After a refused approve/reject: is the assignment already in the wanted state (a retry of a call
        whose reply was lost)?"""
        a = _call(self.client, "get_assignment", AssignmentId=sub.external_id).get("Assignment", {})
        return a.get("AssignmentStatus") == wanted

    def approve(self, sub: Submission, feedback: str | None = None) -> None:
        params: dict[str, Any] = {"AssignmentId": sub.external_id}
        if feedback:
            params["RequesterFeedback"] = feedback[:1024]
        try:
            _call(self.client, "approve_assignment", **params)
        except OutcomeUnknown:
            raise
        except PlatformError:
            if not self._settled(sub, "Approved"):
                raise

    def reject(self, sub: Submission, feedback: str, category: str | None = None) -> None:
        if not feedback:
            raise PlatformError("MTurk needs feedback text to reject an assignment")
        try:
            _call(self.client, "reject_assignment", AssignmentId=sub.external_id, RequesterFeedback=feedback[:1024])
        except OutcomeUnknown:
            raise
        except PlatformError:
            if not self._settled(sub, "Rejected"):
                raise

    def bonus(self, worker_id: str, external_id: str, amount_minor: int, reason: str, token: str) -> dict[str, Any]:
        """SendBonus of ``amount_minor`` US cents (sent as the exact string "0.45")."""
        try:
            _call(self.client, "send_bonus", WorkerId=worker_id, BonusAmount=fmt(amount_minor), AssignmentId=external_id,
                  Reason=reason[:1024], UniqueRequestToken=token[:64])
        except PlatformError as exc:
            # A retry with a token MTurk has already processed: the bonus was paid by the first call.
            if already_processed(getattr(exc, "error", {})):
                return {"duplicate": True, "message": exc.error.get("Message")}  # type: ignore[attr-defined]
            raise
        return {"duplicate": False}

    def bonuses_paid(self, external_id: str) -> list[dict[str, Any]]:
        """What MTurk paid on this assignment (ListBonusPayments, every page): dicts with amount_cents."""
        return [{"minor": parse_minor(b.get("BonusAmount")), "currency": "USD", "worker_id": b.get("WorkerId"),
                 "reason": b.get("Reason"), "at": str(b.get("GrantTime") or "")}
                for b in _pages(self.client, "list_bonus_payments", "BonusPayments", AssignmentId=external_id,
                                MaxResults=100)]

    def create_exclusion_qualification(self, family: str) -> str:
        """The family's qualification type. MTurk refuses a second type of the same name, so one made by a
        run whose reply was lost is found by name (ListQualificationTypes) instead of failing."""
        name = f"emostudy took part: {family}"[:128]
        try:
            resp = _call(self.client, "create_qualification_type", Name=name,
                         Keywords="emostudy,exclusion", QualificationTypeStatus="Active",
                         Description=(f"Granted to workers who took part in the emostudy study family {family!r}; "
                                      "later studies of the family exclude them.")[:2000])
        except PlatformError as exc:
            if "already" not in str(exc).lower():
                raise
            found = [q for q in _pages(self.client, "list_qualification_types", "QualificationTypes", Query=name,
                                       MustBeRequestable=False, MustBeOwnedByCaller=True, MaxResults=100)
                     if q.get("Name") == name]
            if not found:
                raise
            return found[0]["QualificationTypeId"]
        qual = _field(resp, "QualificationType", "CreateQualificationType", changed=True)
        return _field(qual, "QualificationTypeId", "CreateQualificationType", changed=True)

    def grant(self, qualification_type_id: str, worker_id: str) -> None:
        _call(self.client, "associate_qualification_with_worker", QualificationTypeId=qualification_type_id,
              WorkerId=worker_id, IntegerValue=1, SendNotification=False)

    def exclude(self, worker_ids: list[str], qualification_type_id: str | None = None) -> None:
        if qualification_type_id is None:
            raise PlatformError("MTurk exclusion needs the study family's qualification type")
        for w in worker_ids:
            self.grant(qualification_type_id, w)

    def notify(self, worker_ids: list[str], subject: str, message: str) -> list[dict[str, Any]]:
        """NotifyWorkers, 100 workers a call; returns MTurk's per-worker failures."""
        failures: list[dict[str, Any]] = []
        for i in range(0, len(worker_ids), 100):
            resp = _call(self.client, "notify_workers", Subject=subject[:200], MessageText=message[:4096],
                         WorkerIds=list(worker_ids[i:i + 100]))
            failures.extend(resp.get("NotifyWorkersFailureStatuses", []))
        return failures

    def block(self, worker_id: str, reason: str) -> None:
        """CreateWorkerBlock: the worker no longer sees any of this requester's HITs."""
        if not reason.strip():
            raise PlatformError("MTurk needs a reason to block a worker")
        _call(self.client, "create_worker_block", WorkerId=worker_id, Reason=reason[:1024])

    def close(self) -> None:
        """Expire every HIT now (MTurk: set the expiration to a time in the past)."""
        past = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)
        for hit_id in self.hit_ids:
            _call(self.client, "update_expiration_for_hit", HITId=hit_id, ExpireAt=past)
