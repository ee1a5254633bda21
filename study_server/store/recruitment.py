"""Recruitment records: platform posts (HITs, Prolific studies), the bonus ledger, lab tokens and
exclusion qualifications. Same metadata as ``study_server.store.models`` (migration ``0002_recruitment``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from study_server.store.models import Base, utcnow

# BonusPayment.status lifecycle::
#
#   planned --(claim: conditional update, one process wins)--> paying (the pay call is being made)
#   paying -> sent | failed | unknown
#   paying of a dead process | committed (older releases) | unknown
#       --(the platform's own payment records are read)--> sent | planned (MTurk: pay again, same token) | unknown
#   unknown that the records cannot settle --(a person: `recruit bonus --mark-sent/--mark-failed ID`)--> sent | failed
#
# "failed" means the platform clearly refused the call (nothing was paid); "unknown" means anything else
# (lost reply, 5xx, a Prolific 4xx on the pay call, a malformed reply). Every status change is a conditional
# update from the status it was read in, so two processes never both act on one row.
BONUS_PLANNED, BONUS_COMMITTED, BONUS_SENT, BONUS_FAILED = "planned", "committed", "sent", "failed"
BONUS_UNKNOWN, BONUS_PAYING = "unknown", "paying"

# ReviewItem.status: open until a person decides (`emostudy recruit review`, the admin page).
REVIEW_OPEN, REVIEW_APPROVED, REVIEW_REJECTED, REVIEW_RETURN, REVIEW_DISMISSED = (
    "open", "approved", "rejected", "return-requested", "dismissed")
# Campaign.status: `close` sets it; `sync` then reviews and pays but never posts again.
CAMPAIGN_OPEN, CAMPAIGN_CLOSED = "open", "closed"


class RecruitPost(Base):
    """One thing posted on a platform: an MTurk HIT, a Prolific study, or a batch of lab links."""

    __tablename__ = "recruit_posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=True)
    external_id: Mapped[str] = mapped_column(String(255))  # HIT id / Prolific study id / "lab"
    type_id: Mapped[str | None] = mapped_column(String(255))  # MTurk HIT type id
    places: Mapped[int] = mapped_column(Integer)  # assignments / places posted
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (UniqueConstraint("platform", "external_id"),)


class BonusPayment(Base):
    """The bonus ledger: one row per (assignment, rule), with the idempotency token sent to the platform."""

    __tablename__ = "bonus_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="RESTRICT"), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(20))
    worker_id: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=BONUS_PLANNED)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The platform's id of the work the bonus is for (MTurk assignment id / Prolific submission id),
    # fixed when the row is planned: the id that was approved, not the worker's latest one.
    external_id: Mapped[str | None] = mapped_column(String(255))
    committed_at: Mapped[dt.datetime | None]  # when the pay call was last started
    # The claim (status ``paying``): "host:pid" of the process making the pay call, and since when. Taken by a
    # conditional update from ``planned``, so of two payers only one ever makes the call.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime | None]
    # What is sent to the platform and matched against its records: the platform currency (USD, GBP) and the
    # whole number of its minor unit (cents, pence). ``amount_cents`` stays the plan's USD cents.
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_minor: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("assignment_id", "rule"),)


class PlatformAssignmentId(Base):
    """Every platform id of work one of our assignments ever arrived with (never overwritten).

    MTurk hands a worker a new assignment id each time they accept a HIT; ``Assignment`` keeps the latest,
    this table keeps them all, so a submission made under an earlier id is still recognised."""

    __tablename__ = "recruit_assignment_ids"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(255))  # MTurk assignment id / Prolific session id
    post_id: Mapped[str | None] = mapped_column(String(255))  # HIT id / Prolific study id
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The platform's word for this piece of work as we last set or read it (Submitted, Approved, ...).
    platform_status: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (UniqueConstraint("platform", "external_id"),)


class ReviewItem(Base):
    """A submission nobody should be rejected for automatically: a person looks at the evidence."""

    __tablename__ = "recruit_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(255))
    worker_id: Mapped[str] = mapped_column(String(255))
    post_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))  # unknown | duplicate | partial
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=REVIEW_OPEN)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolution: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (UniqueConstraint("platform", "external_id"),)


class Campaign(Base):
    """A study's recruitment on one platform (MTurk: sandbox and live apart): the settings every (re-)post
    uses, and whether it is closed."""

    __tablename__ = "recruit_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=CAMPAIGN_OPEN)
    key: Mapped[str] = mapped_column(String(40), unique=True)  # token prefix + RequesterAnnotation of its posts
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # qualifications, family, type id ...
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]

    __table_args__ = (UniqueConstraint("study_id", "platform", "sandbox"),)


class LabToken(Base):
    """A one-time lab link. Only the token's sha256 is stored; the link is shown once when made."""

    __tablename__ = "lab_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]


class ExclusionQualification(Base):
    """The MTurk qualification type of a study family, granted to everyone who accepted one of its HITs."""

    __tablename__ = "recruit_qualifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    family: Mapped[str] = mapped_column(String(100))
    sandbox: Mapped[bool] = mapped_column(Boolean)
    qualification_type_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("family", "sandbox"),)


class QualificationGrant(Base):
    __tablename__ = "recruit_qualification_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    qualification_id: Mapped[int] = mapped_column(ForeignKey("recruit_qualifications.id", ondelete="CASCADE"))
    worker_id: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("qualification_id", "worker_id"),)
