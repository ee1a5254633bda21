"""Amazon Mechanical Turk through boto3: HIT types, HITs with an ExternalQuestion, qualifications,
review, bonuses. Sandbox unless live is asked for explicitly.

Facts used (MTurk API): a HIT with fewer than 10 assignments cannot be extended to 10 or more, and
HITs of 10+ assignments cost a higher fee, so we post at most 9 assignments per HIT and add HITs as
needed. System qualification ids: locale 00000000000000000071, approval rate 000000000000000000L0,
number of approved HITs 00000000000000000040 (the approval rate reads 100% for new workers, hence a
minimum of approved HITs). ``UniqueRequestToken`` (at most 64 characters) makes ``SendBonus`` and
``CreateHITWithHITType`` idempotent for 24 hours; our ledger guards bonuses beyond that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable
from xml.sax.saxutils import escape

from study_server.recruit import LiveModeRefused, PlatformError
from study_server.recruit.base import PostSettings, Submission, usd

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
LIVE_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
QUAL_LOCALE = "00000000000000000071"
QUAL_APPROVAL_RATE = "000000000000000000L0"
QUAL_NUMBER_APPROVED = "00000000000000000040"
MAX_ASSIGNMENTS_PER_HIT = 9
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
    import boto3

    maker = session or boto3
    return maker.client("mturk", region_name="us-east-1", endpoint_url=LIVE_ENDPOINT if live else SANDBOX_ENDPOINT)


def _call(client: Any, op: str, **params: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return getattr(client, op)(**params)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise PlatformError(f"MTurk {op} failed: {err.get('Code', '?')}: {err.get('Message', exc)}") from None


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
    def ensure_hit_type(self, s: PostSettings) -> str:
        if self.hit_type_id is None:
            resp = _call(self.client, "create_hit_type",
                         AutoApprovalDelayInSeconds=int(s.auto_approval_delay_s),
                         AssignmentDurationInSeconds=int(s.assignment_duration_s),
                         Reward=usd(s.reward_usd), Title=s.title[:128], Keywords=s.keywords[:1000],
                         Description=s.description[:2000],
                         QualificationRequirements=self.qualifications.requirements())
            self.hit_type_id = resp["HITTypeId"]
        return self.hit_type_id

    def open(self, settings: PostSettings, places: int) -> list[str]:
        return self.extend(settings, places)

    def extend(self, settings: PostSettings, places: int) -> list[str]:
        """New HITs of at most 9 assignments each, until ``places`` assignments are posted."""
        question = external_question(settings.study_url, settings.frame_height)
        type_id = self.ensure_hit_type(settings)
        new: list[str] = []
        for n in hit_sizes(places):
            token = f"{self.request_token_prefix}hit{len(self.hit_ids) + 1}"[:64]
            self.log("mturk.create_hit", {"assignments": n, "token": token})
            resp = _call(self.client, "create_hit_with_hit_type", HITTypeId=type_id, MaxAssignments=n,
                         LifetimeInSeconds=int(settings.lifetime_s), Question=question,
                         RequesterAnnotation=self.request_token_prefix[:255], UniqueRequestToken=token)
            hit_id = resp["HIT"]["HITId"]
            self.hit_ids.append(hit_id)
            new.append(hit_id)
        return new

    # -- reading --------------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        out = []
        for hit_id in self.hit_ids:
            hit = _call(self.client, "get_hit", HITId=hit_id)["HIT"]
            out.append({"id": hit_id, "status": hit.get("HITStatus"), "places": hit.get("MaxAssignments"),
                        "available": hit.get("NumberOfAssignmentsAvailable", 0),
                        "pending": hit.get("NumberOfAssignmentsPending", 0),
                        "completed": hit.get("NumberOfAssignmentsCompleted", 0)})
        return out

    def review(self) -> list[Submission]:
        subs: list[Submission] = []
        for hit_id in self.hit_ids:
            token = None
            while True:
                params: dict[str, Any] = {"HITId": hit_id, "AssignmentStatuses": ["Submitted"], "MaxResults": 100}
                if token:
                    params["NextToken"] = token
                resp = _call(self.client, "list_assignments_for_hit", **params)
                for a in resp.get("Assignments", []):
                    subs.append(Submission(platform="mturk", external_id=a["AssignmentId"], worker_id=a["WorkerId"],
                                           status=a.get("AssignmentStatus", "Submitted"), post_id=hit_id))
                token = resp.get("NextToken")
                if not token or not resp.get("Assignments"):
                    break
        return subs

    # -- money and standing (the caller writes the audit log first) ------------------------------
    def approve(self, sub: Submission, feedback: str | None = None) -> None:
        params: dict[str, Any] = {"AssignmentId": sub.external_id}
        if feedback:
            params["RequesterFeedback"] = feedback[:1024]
        _call(self.client, "approve_assignment", **params)

    def reject(self, sub: Submission, feedback: str) -> None:
        if not feedback:
            raise PlatformError("MTurk needs feedback text to reject an assignment")
        _call(self.client, "reject_assignment", AssignmentId=sub.external_id, RequesterFeedback=feedback[:1024])

    def bonus(self, worker_id: str, external_id: str, amount_usd: float, reason: str, token: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            self.client.send_bonus(WorkerId=worker_id, BonusAmount=usd(amount_usd), AssignmentId=external_id,
                                   Reason=reason[:1024], UniqueRequestToken=token[:64])
        except ClientError as exc:
            err = exc.response.get("Error", {})
            # A retry with a token MTurk has already processed: the bonus was paid by the first call.
            if "UniqueRequestToken" in str(err.get("Message", "")) and "already" in str(err.get("Message", "")):
                return {"duplicate": True, "message": err.get("Message")}
            raise PlatformError(f"MTurk send_bonus failed: {err.get('Code', '?')}: {err.get('Message', exc)}") from None
        return {"duplicate": False}

    def create_exclusion_qualification(self, family: str) -> str:
        resp = _call(self.client, "create_qualification_type", Name=f"emostudy took part: {family}"[:128],
                     Keywords="emostudy,exclusion", QualificationTypeStatus="Active",
                     Description=(f"Granted to workers who took part in the emostudy study family {family!r}; "
                                  "later studies of the family exclude them.")[:2000])
        return resp["QualificationType"]["QualificationTypeId"]

    def grant(self, qualification_type_id: str, worker_id: str) -> None:
        _call(self.client, "associate_qualification_with_worker", QualificationTypeId=qualification_type_id,
              WorkerId=worker_id, IntegerValue=1, SendNotification=False)

    def exclude(self, worker_ids: list[str], qualification_type_id: str | None = None) -> None:
        if qualification_type_id is None:
            raise PlatformError("MTurk exclusion needs the study family's qualification type")
        for w in worker_ids:
            self.grant(qualification_type_id, w)

    def close(self) -> None:
        """Expire every HIT now (MTurk: set the expiration to a time in the past)."""
        past = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)
        for hit_id in self.hit_ids:
            _call(self.client, "update_expiration_for_hit", HITId=hit_id, ExpireAt=past)
