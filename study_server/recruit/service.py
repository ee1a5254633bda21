"""Recruitment decisions from our database, carried out through a recruiter.

``sync`` is safe to run at any time (cron) and after any crash: it first finds every platform object of
the study (by the annotation each carries) and records those a crash left unrecorded, reads back what the
platform already decided, grants the exclusion qualification to workers who took part, approves valid
submissions, rejects inconsistent ones (or approves them without a bonus, by policy), puts unknown,
duplicate and partial submissions in the review queue (Prolific: asks those who could not finish to
return), expires idle assignments and, unless the campaign is closed, posts more places until every
batch can reach its quota. Bonuses are computed and paid by ``ledger.py``.

Money and standing, always in this order: audit record (committed) -> platform call -> database row
(committed). A crash between the call and the row is repaired by reading the platform on the next run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from study_server.recruit import OutcomeUnknown, PayRefused, PlatformError, RecruitError, money
from study_server.recruit.base import PostSettings, Submission
from study_server.recruit.locks import study_lock
from study_server.recruit.mturk import FEE, hit_sizes
from study_server.recruit.prolific import screen_out_code
from study_server.store.models import (
    ACTIVE,
    APPROVED,
    EXPIRED,
    FINISHED,
    REJECTED,
    RETURNED,
    TECHNICAL_FAILURE,
    VALID,
    Answer,
    Assignment,
    AuditLog,
    Batch,
    Participant,
    Study,
    utcnow,
)
from study_server.store.recruitment import (
    CAMPAIGN_CLOSED,
    CAMPAIGN_OPEN,
    REVIEW_APPROVED,
    REVIEW_DISMISSED,
    REVIEW_OPEN,
    REVIEW_REJECTED,
    REVIEW_RETURN,
    Campaign,
    ExclusionQualification,
    QualificationGrant,
    RecruitPost,
    ReviewItem,
)
from study_server.study.assignment import expire_stale, occupancy
from study_server.study.duration import study_minutes
from study_server.study.platform_ids import assignment_for_external_id, ids_of, remember
from study_server.study.studies import participant_text

REJECT_POLICY, APPROVE_POLICY = "reject", "approve-without-bonus"
FEEDBACK_INCOMPLETE = ("Thank you for your time. We could not accept this assignment because the survey was not "
                       "completed (some videos were not answered), as stated in the instructions.")
FEEDBACK_INCONSISTENT = ("Thank you for your time. We could not accept this assignment because too many answers to "
                         "the repeated videos contradicted each other, which the instructions said would be checked.")
# Review queue reasons.
UNKNOWN, DUPLICATE, PARTIAL = "unknown", "duplicate", "partial"
REFUSED = "platform-refused"  # the platform refused our approve / reject of a submission
GRANT_REFUSED = "grant-refused"  # MTurk refused a worker's exclusion grant (a bad worker id): a person looks
TECHNICAL = "technical_failure"  # too many videos would not load (study_server.study.technical)
APPROVED_WORDS = ("Approved", "APPROVED")


def find_study(session: Session, ref: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == ref))
    if study is None and ref.isdigit():
        study = session.get(Study, int(ref))
    if study is None:
        names = ", ".join(session.scalars(select(Study.name).order_by(Study.id))) or "none imported yet"
        raise RecruitError(f"no study {ref!r} in the database (studies: {names}); import one with "
                           "`emostudy study import PLAN --set SET`")
    return study


def plan_of(study: Study) -> dict[str, Any]:
    return json.loads(study.plan_json)


def post_settings(study: Study, base_url: str, **overrides: Any) -> PostSettings:
    """Title, description and reward from the plan (the participant's title and intro, never the
    researcher's description); the participant URL from ``base_url``."""
    plan = plan_of(study)
    text = participant_text(plan)
    reward = float((plan.get("payment") or {}).get("reward_usd", 0) or 0)
    url = base_url.rstrip("/") + f"/s/{study.name}"
    values: dict[str, Any] = {"title": text["title"], "study_url": url, "reward_usd": reward,
                              "description": (text["intro"] or text["title"])[:2000]}
    session = object_session(study)
    if session is not None:  # the one duration of the consent page (study_server.study.duration), unless --minutes
        values["estimated_minutes"] = study_minutes(session, study.id, study.plan_sha256, plan)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return PostSettings(**values)


def idle(session: Session) -> None:
    """End the current transaction before a platform call: none is held while the platform answers (on
    SQLite every transaction takes the write lock, which would stop participants' answers and other runs)."""
    session.commit()


def audit(session: Session, actor: str, action: str, target: str | None, details: dict[str, Any]) -> None:
    """Write the audit record and commit it, before the call it announces is made."""
    session.add(AuditLog(actor=actor, action=action, target=target, details=details))
    session.commit()


# -- campaigns and posts -----------------------------------------------------------------------------
def campaign_key(study: Study, platform: str, sandbox: bool) -> str:
    """Unique per study (name, id and plan) and platform: the prefix of every request token and the
    RequesterAnnotation / internal-name tag of every post. 26 characters, so ``key-N`` fits in 64."""
    digest = hashlib.sha256(f"{study.id}|{study.name}|{study.plan_sha256}|{platform}|{sandbox}".encode()).hexdigest()
    return f"es{digest[:24]}"


def norm_sandbox(platform: str, sandbox: bool | None) -> bool | None:
    """Only MTurk has a sandbox: Prolific and lab campaigns are always 'live'."""
    return sandbox if platform == "mturk" or sandbox is None else False


def get_campaign(session: Session, study: Study, platform: str, sandbox: bool | None = None) -> Campaign | None:
    """The study's campaign on ``platform`` (MTurk: the sandbox one or the live one; None: the latest)."""
    q = select(Campaign).where(Campaign.study_id == study.id, Campaign.platform == platform)
    sandbox = norm_sandbox(platform, sandbox)
    if sandbox is not None:
        q = q.where(Campaign.sandbox == sandbox)
    return session.scalar(q.order_by(Campaign.id.desc()).limit(1))


def ensure_campaign(session: Session, study: Study, platform: str, sandbox: bool) -> Campaign:
    sandbox = bool(norm_sandbox(platform, sandbox))
    c = get_campaign(session, study, platform, sandbox)
    if c is None:
        c = Campaign(study_id=study.id, platform=platform, sandbox=sandbox, status=CAMPAIGN_OPEN,
                     key=campaign_key(study, platform, sandbox), settings={})
        session.add(c)
        session.commit()
    return c


def _set(c: Campaign, **values: Any) -> None:
    c.settings = {**(c.settings or {}), **values}  # a new dict: the JSON column notices the change


def posts(session: Session, study: Study, platform: str, *, open_only: bool = True,
          sandbox: bool | None = None) -> list[RecruitPost]:
    """The study's posts on ``platform`` (``sandbox``: MTurk's sandbox or live ones only)."""
    q = select(RecruitPost).where(RecruitPost.study_id == study.id, RecruitPost.platform == platform)
    sandbox = norm_sandbox(platform, sandbox)
    if sandbox is not None:
        q = q.where(RecruitPost.sandbox == sandbox)
    if open_only:
        q = q.where(RecruitPost.status == "open")
    return list(session.scalars(q.order_by(RecruitPost.id)))


def record_post(session: Session, study: Study, c: Campaign, external_id: str, places: int, *, seq: int,
                type_id: str | None = None, found: bool = False) -> RecruitPost:
    """Record one platform object and commit at once (called right after the call that made it)."""
    row = session.scalar(select(RecruitPost).where(RecruitPost.platform == c.platform,
                                                   RecruitPost.external_id == external_id))
    if row is None:
        row = RecruitPost(study_id=study.id, platform=c.platform, sandbox=c.sandbox, external_id=external_id,
                          type_id=type_id, places=int(places), status="open",
                          details={"seq": seq, "token": f"{c.key}-{seq}", "family": (c.settings or {}).get("family"),
                                   "reward_usd": (c.settings or {}).get("reward_usd"),
                                   **({"found_by_reconcile": True} if found else {})})
        session.add(row)
        session.commit()
    return row


def _next_seq(session: Session, study: Study, c: Campaign) -> int:
    seqs = [int((p.details or {}).get("seq") or 0)
            for p in posts(session, study, c.platform, open_only=False, sandbox=c.sandbox)]
    return max(seqs, default=0) + 1


def reconcile_posts(session: Session, study: Study, recruiter: Any, c: Campaign) -> list[str]:
    """Record the platform objects of this campaign that the database does not know (a crash or a lost
    reply after the create call). Found by annotation: MTurk ListHITs / Prolific's study list."""
    found: list[str] = []
    if c.platform == "mturk":
        for hit in recruiter.find_hits(c.key + "-"):
            seq = str(hit.get("RequesterAnnotation", "")).rsplit("-", 1)[-1]
            if session.scalar(select(RecruitPost.id).where(RecruitPost.platform == "mturk",
                                                           RecruitPost.external_id == hit["HITId"])) is None:
                record_post(session, study, c, hit["HITId"], int(hit.get("MaxAssignments") or 0),
                            seq=int(seq) if seq.isdigit() else 0, type_id=hit.get("HITTypeId"), found=True)
                found.append(hit["HITId"])
    elif c.platform == "prolific":
        for st in recruiter.find_studies(c.key):
            if session.scalar(select(RecruitPost.id).where(RecruitPost.platform == "prolific",
                                                           RecruitPost.external_id == st["id"])) is None:
                record_post(session, study, c, st["id"], int(st.get("total_available_places") or 0), seq=1, found=True)
                found.append(st["id"])
    if found:
        audit(session, "reconcile", f"recruit.reconcile.{c.platform}", study.name, {"recorded": found})
    return found


def _load_posts(session: Session, study: Study, recruiter: Any, sandbox: bool | None) -> None:
    """Point the recruiter at the study's posts (all of them: closed posts can still hold submitted work)."""
    known = posts(session, study, recruiter.platform, open_only=False, sandbox=sandbox)
    if recruiter.platform == "mturk":
        recruiter.hit_ids = [p.external_id for p in known]
    elif recruiter.platform == "prolific" and known:
        recruiter.study_id = known[-1].external_id


def check_balance(recruiter: Any, cost_usd: float, what: str) -> None:
    """MTurk: refuse before posting or paying when GetAccountBalance cannot cover the cost plus fees."""
    if recruiter.platform != "mturk" or cost_usd <= 0:
        return

    need = round(cost_usd * (1 + FEE), 2)
    have = recruiter.balance()
    if have + 1e-9 < need:
        raise PayRefused(f"MTurk balance ${have:.2f} cannot cover {what}: ${need:.2f} with MTurk's {int(FEE * 100)}% fee; "
                         "add funds (requester.mturk.com > My Account) and run the command again")


def _post(session: Session, study: Study, recruiter: Any, c: Campaign, settings: PostSettings, places: int,
          actor: str) -> list[str]:
    """Post ``places`` places, recording every object the moment it exists."""
    if places <= 0:
        return []
    if recruiter.platform == "lab":
        ids = recruiter.open(settings, places)
        for pid in ids:
            record_post(session, study, c, pid, places, seq=_next_seq(session, study, c))
        return ids
    if recruiter.platform == "prolific":
        if posts(session, study, "prolific", open_only=False, sandbox=c.sandbox):
            audit(session, actor, "recruit.extend.prolific", study.name, {"places": places})
            return recruiter.extend(settings, places)  # more places on the one study: no new object
        audit(session, actor, "recruit.create_study.prolific", study.name, {"places": places, "annotation": c.key})
        ids = recruiter.open(settings, places, annotation=c.key)
        record_post(session, study, c, ids[0], places, seq=1)
        return ids

    check_balance(recruiter, settings.reward_usd * places, f"{places} places at ${settings.reward_usd:.2f}")
    recruiter.hit_type_id = (c.settings or {}).get("hit_type_id")  # the campaign's, with its requirements
    if not recruiter.hit_type_id:
        recruiter.ensure_hit_type(settings, (c.settings or {}).get("requirements"))
        _set(c, hit_type_id=recruiter.hit_type_id)
        session.commit()
    new: list[str] = []
    for n in hit_sizes(places):
        seq = _next_seq(session, study, c)
        token = f"{c.key}-{seq}"
        audit(session, actor, "recruit.create_hit", study.name, {"assignments": n, "token": token})
        hit = recruiter.create_hit(settings, n, token)
        record_post(session, study, c, hit["HITId"], n, seq=seq, type_id=hit.get("HITTypeId") or recruiter.hit_type_id)
        new.append(hit["HITId"])
    return new


def places_needed(session: Session, study: Study) -> int:
    """Places still to fill: per batch, quota minus (valid finished + active), never below zero."""
    occ = occupancy(session, study.id)
    quotas = dict(session.execute(select(Batch.id, Batch.quota).where(Batch.study_id == study.id)).all())
    return sum(max(0, quotas[b] - occ.get(b, 0)) for b in quotas)


def refill_count(needed: int, available: int) -> int:
    """Places to post. ``needed`` already counts workers in progress (active assignments = MTurk's pending
    ones) as taken, so only the places still available on the platform are subtracted: needed 7, available
    4, pending 1 -> post 3."""
    return max(0, int(needed) - int(available))


def exclusion_qualification(session: Session, recruiter: Any, family: str, sandbox: bool, *,
                            create: bool) -> ExclusionQualification | None:
    row = session.scalar(select(ExclusionQualification).where(ExclusionQualification.family == family,
                                                              ExclusionQualification.sandbox == sandbox))
    if row is None and create:
        qid = recruiter.create_exclusion_qualification(family)
        row = ExclusionQualification(family=family, sandbox=sandbox, qualification_type_id=qid)
        session.add(row)
        session.commit()
    return row


def prolific_filters(session: Session, study: Study) -> tuple[list[dict[str, Any]], list[str]]:
    """Prolific study filters and peripheral requirements from the plan: the previous-studies blocklist
    (the Prolific studies of the plan's ``exclude_studies``), the plan's screeners, AUDIO when the study
    checks sound."""
    plan = plan_of(study)
    info = plan.get("study", {})
    blocked: list[str] = []
    for name in info.get("exclude_studies") or []:
        other = session.scalar(select(Study).where(Study.name == name))
        if other is not None:
            blocked.extend(p.external_id for p in posts(session, other, "prolific", open_only=False))
    filters: list[dict[str, Any]] = []
    if blocked:
        filters.append({"filter_id": "previous_studies", "selected_values": sorted(set(blocked))})
    rec = info.get("recruitment") or {}  # the spec's [recruitment] table
    for sc in list(rec.get("screeners") or []) + list(info.get("screeners") or []):
        filters.append(dict(sc))
    audio = bool((plan.get("audio_check") or {}).get("enabled")) or bool(rec.get("requires_audio"))
    return filters, (["AUDIO"] if audio else [])


def open_posts(session: Session, study: Study, recruiter: Any, settings: PostSettings, *, places: int | None = None,
               sandbox: bool = True, actor: str = "cli", family: str | None = None, publish: bool = False) -> list[str]:
    """Post the study (one `open` or `sync` of a study at a time: ``locks.study_lock``); ``publish``: Prolific
    studies are published too, also one a lost reply left unpublished and the re-run adopted."""

    with study_lock(session, study, "open"):
        try:
            ids = _open_posts(session, study, recruiter, settings, places=places, sandbox=sandbox, actor=actor,
                              family=family)
        except AlreadyPosted:
            if not (publish and recruiter.platform == "prolific"):
                raise
            if not publish_prolific(session, study, recruiter, actor):
                raise
            return [recruiter.study_id]
        if publish and recruiter.platform == "prolific":
            publish_prolific(session, study, recruiter, actor)
        return ids


class AlreadyPosted(RecruitError):
    """The study is posted in full on this platform already."""


def publish_prolific(session: Session, study: Study, recruiter: Any, actor: str = "cli") -> bool:
    """Publish the study's Prolific study unless Prolific already shows it published (a re-run after a lost
    create or publish reply). Returns whether the publish call was made."""
    known = posts(session, study, "prolific", open_only=False)
    if not known:
        raise RecruitError(f"study {study.name!r} has no Prolific study to publish; run `emostudy recruit open "
                           "--platform prolific` first")
    recruiter.study_id = known[-1].external_id
    state = str(recruiter.study_state().get("status") or "")
    if state != "UNPUBLISHED":
        return False
    audit(session, actor, "recruit.publish.prolific", study.name, {"study": recruiter.study_id})
    recruiter.publish()
    return True


def _open_posts(session: Session, study: Study, recruiter: Any, settings: PostSettings, *, places: int | None = None,
                sandbox: bool = True, actor: str = "cli", family: str | None = None) -> list[str]:
    """Post the study. Re-running after a crash finishes the interrupted open (never posts it twice).

    MTurk: exclusion qualifications first (excluded families and this study's own, which its HITs require
    as DoesNotExist); the qualification requirements are stored with the campaign and reused by every
    re-post. Prolific: blocklist, screeners and audio from the plan; minimum pay checked."""
    sandbox = bool(norm_sandbox(recruiter.platform, sandbox))
    money.to_minor(settings.reward_usd, "the reward (plan payment.reward_usd or --reward)")  # whole cents, or no
    c = ensure_campaign(session, study, recruiter.platform, sandbox)
    idle(session)
    found = reconcile_posts(session, study, recruiter, c) if recruiter.platform in ("mturk", "prolific") else []
    open_target = (c.settings or {}).get("open_target")
    posted = sum(p.places for p in posts(session, study, recruiter.platform, sandbox=sandbox))
    if open_target is not None and recruiter.platform != "lab":
        if posted >= open_target and c.status == CAMPAIGN_OPEN and found:
            return found  # the interrupted open had posted everything; its posts are recorded now
        if posted >= open_target and c.status == CAMPAIGN_OPEN:
            raise AlreadyPosted(f"study {study.name!r} is already posted on {recruiter.platform} ({posted} places); "
                               "`emostudy recruit sync` refills it, `emostudy recruit close` stops it")
        if c.status == CAMPAIGN_OPEN:  # an interrupted open: post what it did not
            places = open_target - posted
    places = places_needed(session, study) if places is None else int(places)
    if places <= 0:
        raise RecruitError(f"study {study.name!r} needs no more participants (every batch is at its quota)")
    details: dict[str, Any] = {"places": places, "sandbox": sandbox, "reward_usd": settings.reward_usd,
                               "campaign": c.key}
    if recruiter.platform == "mturk":
        exclude_ids = []
        for other in plan_of(study).get("study", {}).get("exclude_studies") or []:
            q = exclusion_qualification(session, recruiter, other, sandbox, create=True)
            exclude_ids.append(q.qualification_type_id)
        family = family or (c.settings or {}).get("family") or study.name
        own = exclusion_qualification(session, recruiter, family, sandbox, create=True)
        exclude_ids.append(own.qualification_type_id)  # nobody takes two HITs of the study
        recruiter.qualifications = type(recruiter.qualifications)(
            **{**recruiter.qualifications.__dict__, "exclude_qualification_ids": tuple(dict.fromkeys(exclude_ids))})
        requirements = recruiter.qualifications.requirements()
        if requirements != (c.settings or {}).get("requirements"):
            _set(c, hit_type_id=None)  # new requirements need a new HIT type
        _set(c, requirements=requirements, family=family)
        details.update(family=family, exclude_qualifications=exclude_ids)
    elif recruiter.platform == "prolific":
        hourly = recruiter.check_pay(settings)  # before anything is recorded or posted
        recruiter.filters, recruiter.peripheral_requirements = prolific_filters(session, study)
        details.update(filters=recruiter.filters, peripheral_requirements=recruiter.peripheral_requirements,
                       allow_low_pay=recruiter.allow_low_pay, hourly=round(hourly, 2),
                       currency=recruiter.currency())
        if recruiter.screen_out_usd is not None:
            recruiter.screen_out_codes(recruiter.minor(settings.reward_usd), places)  # refused before any call
            _set(c, screen_out={"code": screen_out_code(study.completion_code), "usd": recruiter.screen_out_usd})
            details.update(screen_out_usd=recruiter.screen_out_usd)
    _set(c, open_target=posted + places, reward_usd=settings.reward_usd, settings=_settings_dict(settings))
    c.status, c.closed_at = CAMPAIGN_OPEN, None
    session.commit()
    audit(session, actor, f"recruit.open.{recruiter.platform}", study.name, details)
    return _post(session, study, recruiter, c, settings, places, actor)


def _settings_dict(s: PostSettings) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("title", "description", "study_url", "reward_usd", "keywords",
                                       "assignment_duration_s", "lifetime_s", "auto_approval_delay_s",
                                       "estimated_minutes", "frame_height")}


def stored_settings(session: Session, study: Study, platform: str, sandbox: bool | None = None) -> PostSettings | None:
    """The settings the campaign was opened with (re-posts use them, not defaults)."""
    c = get_campaign(session, study, platform, sandbox)
    values = ((c.settings or {}).get("settings") if c else None) or None
    return PostSettings(**values) if values else None


# -- review -----------------------------------------------------------------------------------------
@dataclass
class SyncReport:
    granted: int = 0
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    approved_without_bonus: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)  # sent to the review queue
    return_requested: list[str] = field(default_factory=list)
    read_back: list[str] = field(default_factory=list)  # platform decisions copied into our database
    unknown: list[str] = field(default_factory=list)  # calls whose reply was lost (the next run reads them)
    recorded: list[str] = field(default_factory=list)  # posts found on the platform and recorded
    expired: int = 0
    needed: int = 0
    open_places: int = 0
    posted: list[str] = field(default_factory=list)
    closed: bool = False
    planned_calls: list[str] = field(default_factory=list)  # dry run: what would be done


def _assignment_for(session: Session, study: Study, sub: Submission) -> Assignment | None:
    if sub.platform in ("mturk", "prolific"):
        a = assignment_for_external_id(session, study.id, sub.platform, sub.external_id)
        if a is not None or sub.platform == "mturk":
            return a
        # Prolific: a participant takes a study once; find them by participant id when the session id is new.
        q = select(Assignment).join(Participant).where(Assignment.study_id == study.id,
                                                       Participant.platform == "prolific",
                                                       Participant.worker_id == sub.worker_id)
        return session.scalar(q.limit(1))
    q = select(Assignment).join(Participant).where(Assignment.study_id == study.id,
                                                   Participant.platform == sub.platform,
                                                   Assignment.token == sub.external_id)
    return session.scalar(q.limit(1))


def decide(assignment: Assignment | None, policy: str = REJECT_POLICY, *,
           other_ids: dict[str, str | None] | None = None, external_id: str | None = None) -> tuple[str, str | None]:
    """What to do with a submission: ('approve' | 'reject' | 'approve-without-bonus' | 'queue' | 'return',
    feedback or the queue reason).

    Nobody is rejected for what may be our gap: no record (unknown), a second submission by a worker whose
    other one is approved or pending (duplicate) and an unfinished survey (partial) go to a person."""
    if assignment is None:
        return ("queue", UNKNOWN)
    others = {k: v for k, v in (other_ids or {}).items() if k != external_id}
    if any(v in APPROVED_WORDS or v in ("Submitted", "AWAITING REVIEW") for v in others.values()):
        return ("queue", DUPLICATE)
    verdict = assignment.verdict.verdict if assignment.verdict is not None else None
    if assignment.status in FINISHED and verdict == VALID:
        return ("approve", None)
    if verdict is None:
        return ("queue", PARTIAL)
    if verdict == TECHNICAL_FAILURE:  # clips would not load: never approved or rejected without a person
        return ("queue", TECHNICAL)
    return ("approve-without-bonus", FEEDBACK_INCONSISTENT) if policy == APPROVE_POLICY else ("reject", FEEDBACK_INCONSISTENT)


def _queue(session: Session, study: Study, sub: Submission, reason: str, a: Assignment | None,
           status: str = REVIEW_OPEN) -> ReviewItem:
    item = session.scalar(select(ReviewItem).where(ReviewItem.platform == sub.platform,
                                                   ReviewItem.external_id == sub.external_id))
    if item is None:
        evidence: dict[str, Any] = {"platform_status": sub.status, "post": sub.post_id}
        if a is not None:
            evidence.update(assignment=a.id, assignment_status=a.status,
                            verdict=a.verdict.verdict if a.verdict is not None else None,
                            answers=session.query(Answer).filter(Answer.assignment_id == a.id).count(),
                            other_ids=ids_of(session, a, sub.platform))
        item = ReviewItem(study_id=study.id, platform=sub.platform, external_id=sub.external_id,
                          worker_id=sub.worker_id, post_id=sub.post_id, reason=reason, evidence=evidence,
                          status=status, resolution={})
        session.add(item)
        session.commit()
    return item


_READ_BACK = {"Approved": APPROVED, "APPROVED": APPROVED, "Rejected": REJECTED, "REJECTED": REJECTED,
              "RETURNED": RETURNED, "TIMED-OUT": EXPIRED,
              # Prolific: part of the reward paid (a decision: the work counts as approved); screened out by a
              # completion code with a screen-out payment (the session ended, its place is free again).
              "PARTIALLY APPROVED": APPROVED, "PARTIALLY_APPROVED": APPROVED,
              "SCREENED OUT": RETURNED, "SCREENED_OUT": RETURNED}


def _read_back(session: Session, study: Study, sub: Submission, report: SyncReport) -> None:
    """Copy a platform decision (ours whose reply was lost, a person's on the website, auto-approval, a
    return or time-out) into our database."""
    a = _assignment_for(session, study, sub)
    if a is None:
        return
    remember(session, a.id, sub.platform, sub.external_id, sub.post_id, sub.status)
    ours = _READ_BACK.get(sub.status)
    if ours in (APPROVED, REJECTED) and a.status in FINISHED + ACTIVE and a.status != ours:
        a.status = ours
        a.reviewed_at = a.reviewed_at or utcnow()
        report.read_back.append(sub.external_id)
    elif ours in (RETURNED, EXPIRED) and a.status in ACTIVE and _describes_current(a, sub):
        a.status, a.ended_at = ours, utcnow()
        report.read_back.append(sub.external_id)
    session.commit()


def _describes_current(a: Assignment, sub: Submission) -> bool:
    """Does the platform record describe the assignment's current session? A participant who returned a
    Prolific session (or an MTurk HIT) and came back with a new one is live under the new id: the old id's
    RETURNED / TIMED-OUT must not close it."""
    current = a.external_assignment_id if sub.platform == "mturk" else a.prolific_session_id
    return current is None or current == sub.external_id


def _platform_submissions(recruiter: Any) -> tuple[list[Submission], list[Submission]]:
    """(to decide, already decided on the platform)."""
    if recruiter.platform == "mturk":
        subs = recruiter.review(("Submitted", "Approved", "Rejected"))
        return [s for s in subs if s.status == "Submitted"], [s for s in subs if s.status != "Submitted"]
    if recruiter.platform == "prolific":
        if not recruiter.study_id:
            return [], []
        subs = recruiter.submissions()
        return ([s for s in subs if s.status == "AWAITING REVIEW"],
                [s for s in subs if s.status in _READ_BACK])
    return recruiter.review(), []


def sync(session: Session, study: Study, recruiter: Any, *, settings: PostSettings | None = None,
         policy: str = REJECT_POLICY, sandbox: bool = True, dry_run: bool = False, actor: str = "cli",
         timeout_s: float = 1800, family: str | None = None) -> SyncReport:
    """Review, pay-relevant decisions and refill (see the module docstring). One `sync` or `open` of a study at
    a time: a second one stops at once with "another sync is running since ..." (``locks.AnotherRun``)."""

    if dry_run:
        return _sync(session, study, recruiter, settings=settings, policy=policy, sandbox=sandbox, dry_run=True,
                     actor=actor, timeout_s=timeout_s, family=family)
    with study_lock(session, study, "sync"):
        return _sync(session, study, recruiter, settings=settings, policy=policy, sandbox=sandbox, dry_run=False,
                     actor=actor, timeout_s=timeout_s, family=family)


def _sync(session: Session, study: Study, recruiter: Any, *, settings: PostSettings | None,
          policy: str, sandbox: bool, dry_run: bool, actor: str, timeout_s: float,
          family: str | None) -> SyncReport:

    report = SyncReport()
    sandbox = bool(norm_sandbox(recruiter.platform, sandbox))
    c = get_campaign(session, study, recruiter.platform, sandbox)
    if c is not None and recruiter.platform in ("mturk", "prolific") and not dry_run:
        idle(session)
        report.recorded = reconcile_posts(session, study, recruiter, c)
    elif c is None and not dry_run and recruiter.platform != "lab" and posts(session, study, recruiter.platform,
                                                                              sandbox=sandbox):
        c = _adopt(session, study, recruiter.platform, sandbox)
    _load_posts(session, study, recruiter, sandbox)
    if recruiter.platform == "mturk":
        family = family or ((c.settings or {}).get("family") if c else None) or _posted_family(session, study) or study.name
        report.granted = _grant_exclusions(session, study, recruiter, family, sandbox, dry_run, report, actor)
    idle(session)
    to_decide, decided = _platform_submissions(recruiter)
    if not dry_run:
        for sub in decided:
            _read_back(session, study, sub, report)
    for sub in to_decide:
        _decide_one(session, study, recruiter, sub, policy, dry_run, actor, report)
    if not dry_run:
        report.expired = expire_stale(session, study.id, timeout_s)
        session.commit()
    report.needed = places_needed(session, study)
    report.closed = c is not None and c.status == CAMPAIGN_CLOSED
    open_posts_ = posts(session, study, recruiter.platform, sandbox=sandbox)
    if recruiter.platform == "mturk":
        recruiter.hit_ids = [p.external_id for p in open_posts_]
    idle(session)
    statuses = recruiter.status() if recruiter.platform != "lab" and open_posts_ else []
    report.open_places = sum(int(s.get("available") or 0) for s in statuses)
    shortfall = refill_count(report.needed, report.open_places)
    settings = settings or stored_settings(session, study, recruiter.platform, sandbox)
    if report.closed or c is None:
        return report  # closed (or never opened here): review and pay, never post
    if shortfall > 0 and settings is not None and recruiter.platform != "lab":
        if dry_run:
            report.planned_calls.append(f"post {shortfall} more places on {recruiter.platform}")
        else:
            _restore_qualifications(recruiter, c)
            _set(c, open_target=sum(p.places for p in open_posts_) + shortfall)
            session.commit()
            audit(session, actor, f"recruit.extend.{recruiter.platform}", study.name, {"places": shortfall})
            report.posted = _post(session, study, recruiter, c, settings, shortfall, actor)
    return report


def _adopt(session: Session, study: Study, platform: str, sandbox: bool) -> Campaign:
    """A study posted before campaigns existed: its campaign keeps the last post's HIT type (so its
    qualifications) and exclusion family."""
    known = posts(session, study, platform, open_only=False, sandbox=sandbox)
    c = ensure_campaign(session, study, platform, sandbox)
    _set(c, hit_type_id=known[-1].type_id, family=(known[-1].details or {}).get("family"),
         open_target=sum(p.places for p in known if p.status == "open"))
    session.commit()
    return c


def _restore_qualifications(recruiter: Any, c: Campaign) -> None:
    """A re-post uses the HIT type (and so the qualification requirements) the campaign was opened with."""
    if recruiter.platform == "mturk":
        recruiter.hit_type_id = (c.settings or {}).get("hit_type_id")


def _decide_one(session: Session, study: Study, recruiter: Any, sub: Submission, policy: str, dry_run: bool,
                actor: str, report: SyncReport) -> None:
    a = _assignment_for(session, study, sub)
    others = ids_of(session, a, sub.platform) if a is not None else {}
    action, info = decide(a, policy, other_ids=others, external_id=sub.external_id)
    if action == "queue" and info in (PARTIAL, TECHNICAL) and sub.platform == "prolific":
        action = "return"  # Prolific: ask who could not finish to return, never reject them
    target = f"{sub.platform}:{sub.external_id}"
    if dry_run:
        report.planned_calls.append(f"{action} {target}" + (f" ({info[:40]}...)" if info else ""))
        return
    if action == "queue":
        if session.scalar(select(ReviewItem.id).where(ReviewItem.platform == sub.platform,
                                                      ReviewItem.external_id == sub.external_id)) is None:
            audit(session, actor, "recruit.review_queue", target, {"study": study.name, "reason": info,
                                                                    "worker": sub.worker_id})
        _queue(session, study, sub, info or UNKNOWN, a)
        if a is not None:
            remember(session, a.id, sub.platform, sub.external_id, sub.post_id, sub.status)
            session.commit()
        report.queued.append(sub.external_id)
        return
    if action == "return":
        item = session.scalar(select(ReviewItem).where(ReviewItem.platform == sub.platform,
                                                       ReviewItem.external_id == sub.external_id))
        if item is not None:
            return  # asked already: the participant decides; a person can still approve it from the queue
        audit(session, actor, "recruit.request_return", target, {"study": study.name, "worker": sub.worker_id})
        try:
            recruiter.request_return(sub)
        except OutcomeUnknown:
            report.unknown.append(sub.external_id)
            return
        _queue(session, study, sub, info or PARTIAL, a, status=REVIEW_RETURN)
        report.return_requested.append(sub.external_id)
        return
    audit(session, actor, f"recruit.{action}", target, {"study": study.name, "worker": sub.worker_id,
                                                          "feedback": info})
    try:
        if action == "reject":
            recruiter.reject(sub, info or FEEDBACK_INCONSISTENT, "inconsistent")
        else:
            recruiter.approve(sub, None)
    except OutcomeUnknown:
        report.unknown.append(sub.external_id)  # the next sync reads what the platform did
        return
    except PlatformError as exc:
        # The platform refused this one decision: a person looks at it; everyone else's run goes on.
        item = _queue(session, study, sub, REFUSED, a)
        item.evidence = {**(item.evidence or {}), "action": action, "error": str(exc)}
        session.commit()
        report.queued.append(sub.external_id)
        return
    (report.rejected if action == "reject" else
     report.approved if action == "approve" else report.approved_without_bonus).append(sub.external_id)
    assert a is not None
    a.status = REJECTED if action == "reject" else APPROVED
    a.submitted_at = a.submitted_at or utcnow()
    a.reviewed_at = utcnow()
    remember(session, a.id, sub.platform, sub.external_id, sub.post_id,
             ("Rejected" if action == "reject" else "Approved") if sub.platform == "mturk"
             else ("REJECTED" if action == "reject" else "APPROVED"))
    session.commit()


def _posted_family(session: Session, study: Study) -> str | None:
    """The exclusion family chosen when the study was posted on MTurk."""
    for post in reversed(posts(session, study, "mturk", open_only=False)):
        if (post.details or {}).get("family"):
            return post.details["family"]
    return None


def _grant_exclusions(session: Session, study: Study, recruiter: Any, family: str, sandbox: bool, dry_run: bool,
                      report: SyncReport, actor: str) -> int:
    qual = exclusion_qualification(session, recruiter, family, sandbox, create=not dry_run)
    workers = sorted(set(session.scalars(
        select(Participant.worker_id).join(Assignment, Assignment.participant_id == Participant.id)
        .where(Assignment.study_id == study.id, Participant.platform == "mturk"))))
    if qual is None:
        report.planned_calls.extend(f"grant exclusion of family {family!r} to {w}" for w in workers)
        return 0
    done = set(session.scalars(select(QualificationGrant.worker_id)
                               .where(QualificationGrant.qualification_id == qual.id)))
    refused = set(session.scalars(select(ReviewItem.worker_id).where(
        ReviewItem.study_id == study.id, ReviewItem.platform == "mturk", ReviewItem.reason == GRANT_REFUSED)))
    n = 0
    for w in workers:
        if w in done or w in refused:
            continue
        if dry_run:
            report.planned_calls.append(f"grant exclusion of family {family!r} to {w}")
            continue
        audit(session, actor, "recruit.grant_exclusion", f"mturk:{w}", {"family": family})
        qid = qual.qualification_type_id
        idle(session)
        try:
            recruiter.grant(qid, w)  # idempotent on MTurk: a repeat grant changes nothing
        except OutcomeUnknown:
            report.unknown.append(f"exclusion grant to {w}")  # the next sync grants again (idempotent)
            continue
        except PlatformError as exc:
            # One bad worker id (a visitor's workerId=test-user) or one refused grant must not stop everyone's
            # approvals and pay: the worker goes to the review queue and the run goes on.
            _queue_worker(session, study, w, GRANT_REFUSED, {"family": family, "error": str(exc)})
            report.queued.append(f"exclusion grant to {w}")
            continue
        session.add(QualificationGrant(qualification_id=qual.id, worker_id=w))
        session.commit()
        n += 1
    return n


def _queue_worker(session: Session, study: Study, worker_id: str, reason: str, evidence: dict[str, Any]) -> ReviewItem:
    """A worker (not a submission) a person must look at: e.g. MTurk refused their exclusion grant."""
    key = f"{reason}:{study.id}:{worker_id}"[:255]
    item = session.scalar(select(ReviewItem).where(ReviewItem.platform == "mturk", ReviewItem.external_id == key))
    if item is None:
        audit(session, "sync", "recruit.review_queue", f"mturk:{worker_id}", {"study": study.name, "reason": reason,
                                                                             **evidence})
        item = ReviewItem(study_id=study.id, platform="mturk", external_id=key, worker_id=worker_id, post_id=None,
                          reason=reason, evidence=evidence, status=REVIEW_OPEN, resolution={})
        session.add(item)
        session.commit()
    return item


# -- the review queue -----------------------------------------------------------------------------
def review_queue(session: Session, study: Study, *, open_only: bool = True) -> list[ReviewItem]:
    q = select(ReviewItem).where(ReviewItem.study_id == study.id)
    if open_only:
        q = q.where(ReviewItem.status == REVIEW_OPEN)
    return list(session.scalars(q.order_by(ReviewItem.id)))


def resolve_review(session: Session, study: Study, recruiter: Any, item_id: int, decision: str, *,
                   feedback: str | None = None, category: str | None = None, actor: str = "cli") -> ReviewItem:
    """A person's decision on a queued submission: approve | reject (feedback and a category needed) |
    return (Prolific) | dismiss (no platform call; e.g. handled on the website)."""
    item = session.get(ReviewItem, item_id)
    if item is None or item.study_id != study.id:
        raise RecruitError(f"no review item {item_id} in study {study.name!r}; list them with "
                           "`emostudy recruit review --study ...`")
    if item.status not in (REVIEW_OPEN, REVIEW_RETURN):
        raise RecruitError(f"review item {item_id} is already resolved ({item.status})")
    if item.reason == GRANT_REFUSED and decision != "dismiss":
        raise RecruitError(f"review item {item_id} is a refused exclusion grant, not a submission: grant or block "
                           "the worker on MTurk if needed, then --dismiss it")
    if item.platform != recruiter.platform and decision != "dismiss":
        raise RecruitError(f"review item {item_id} is on {item.platform}; run with --platform {item.platform}")
    if decision == "reject" and not (feedback or "").strip():
        raise RecruitError("a rejection needs --feedback: the worker reads it and it stays on their record")
    sub = Submission(platform=item.platform, external_id=item.external_id, worker_id=item.worker_id,
                     status="", post_id=item.post_id)
    audit(session, actor, f"recruit.review.{decision}", f"{item.platform}:{item.external_id}",
          {"study": study.name, "item": item.id, "reason": item.reason, "feedback": feedback, "category": category})
    a = _assignment_for(session, study, sub)
    if decision == "approve":
        recruiter.approve(sub, feedback)
        item.status = REVIEW_APPROVED
        if a is not None:
            a.status, a.reviewed_at = APPROVED, utcnow()
            remember(session, a.id, sub.platform, sub.external_id, sub.post_id,
                     "Approved" if sub.platform == "mturk" else "APPROVED")
    elif decision == "reject":
        recruiter.reject(sub, feedback or "", category or "other")
        item.status = REVIEW_REJECTED
        if a is not None:
            remember(session, a.id, sub.platform, sub.external_id, sub.post_id,
                     "Rejected" if sub.platform == "mturk" else "REJECTED")
    elif decision == "return":
        if item.platform != "prolific":
            raise RecruitError("return requests exist on Prolific only; on MTurk approve or reject")
        recruiter.request_return(sub)
        item.status = REVIEW_RETURN
    elif decision == "dismiss":
        item.status = REVIEW_DISMISSED
    else:
        raise RecruitError(f"unknown decision {decision!r} (approve, reject, return, dismiss)")
    item.resolved_at = utcnow()
    item.resolution = {"decision": decision, "by": actor, "feedback": feedback, "category": category}
    session.commit()
    return item


def close(session: Session, study: Study, recruiter: Any, *, actor: str = "cli", dry_run: bool = False,
          sandbox: bool | None = None) -> list[str]:
    """Stop recruiting: expire the posts and mark the campaign closed, so ``sync`` never posts again."""
    sandbox = norm_sandbox(recruiter.platform, sandbox)
    open_ = posts(session, study, recruiter.platform, sandbox=sandbox)
    if dry_run:
        return [f"close {recruiter.platform}:{p.external_id}" for p in open_]
    c = get_campaign(session, study, recruiter.platform, sandbox)
    if c is None:
        c = ensure_campaign(session, study, recruiter.platform, bool(open_[0].sandbox) if open_ else
                            (True if sandbox is None else sandbox))
    c.status, c.closed_at = CAMPAIGN_CLOSED, utcnow()  # first: a crash below still stops the cron sync
    session.commit()
    audit(session, actor, f"recruit.close.{recruiter.platform}", study.name, {"posts": [p.external_id for p in open_]})
    if recruiter.platform == "mturk":
        recruiter.hit_ids = [p.external_id for p in open_]
    if open_ or recruiter.platform != "mturk":
        recruiter.close()
    for p in open_:
        p.status = "closed"
    session.commit()
    return [p.external_id for p in open_]


def notify(session: Session, study: Study, recruiter: Any, worker_ids: list[str], subject: str, message: str, *,
           actor: str = "cli") -> list[dict[str, Any]]:
    """MTurk NotifyWorkers (bonus or approval messages), only by an explicit command. Audited."""
    if recruiter.platform != "mturk":
        raise RecruitError("notify is for MTurk (Prolific: message participants on the website)")
    audit(session, actor, "recruit.notify", study.name, {"workers": worker_ids, "subject": subject})
    return recruiter.notify(worker_ids, subject, message)


def block(session: Session, study: Study, recruiter: Any, worker_id: str, reason: str, *, actor: str = "cli") -> None:
    """MTurk CreateWorkerBlock, only by an explicit command with a reason. Audited."""
    if recruiter.platform != "mturk":
        raise RecruitError("block is for MTurk")
    if not reason.strip():
        raise RecruitError("blocking a worker needs --reason (MTurk keeps it; it affects the worker's standing)")
    audit(session, actor, "recruit.block", f"mturk:{worker_id}", {"study": study.name, "reason": reason})
    recruiter.block(worker_id, reason)

