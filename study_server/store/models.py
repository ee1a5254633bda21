"""Database models (SQLAlchemy 2.0, typed). Only Alembic migrations (``migrations/``) change the schema.

    Study ─┬─ Batch ─── Item ──> StudyStimulus
           ├─ StudyStimulus (a row of the set's manifest, labels kept for export)
           ├─ MediaCopy (what is served for an item or an example: the file + padding, made at import)
           └─ Assignment ──> Participant (platform + raw worker id; pseudonym for export)
                 ├─ Answer (append-only: one row per answered item)
                 ├─ ListeningCheck, ScreenTrial (volume calibration, headphone screen)
                 └─ Verdict (consistency check at completion)
    AuditLog (admin actions), AdminDecision (a researcher's decisions, with their reasons)

Assignment lifecycle (``Assignment.status``)::

    allocated -> started -> completed -> submitted -> approved | rejected
         \\--> declined (did not consent; frees the slot)
         \\           \\
          +-----------+--> returned (participant left) | abandoned (gave up, e.g. audio check)
                      +--> expired (no request for ASSIGNMENT_TIMEOUT_S; frees the slot)

A batch's occupancy = active assignments (allocated, started) + completed ones whose verdict is valid
(``OCCUPYING`` below); rejected verdicts, returns and expiries free their slot.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Assignment statuses, in lifecycle order.
ALLOCATED, STARTED, COMPLETED, SUBMITTED, APPROVED, REJECTED = (
    "allocated", "started", "completed", "submitted", "approved", "rejected")
RETURNED, ABANDONED, EXPIRED = "returned", "abandoned", "expired"
DECLINED = "declined"  # the participant read the consent text and did not consent
STATUSES = (ALLOCATED, STARTED, COMPLETED, SUBMITTED, APPROVED, REJECTED, RETURNED, ABANDONED, EXPIRED, DECLINED)
ACTIVE = (ALLOCATED, STARTED)
FINISHED = (COMPLETED, SUBMITTED, APPROVED)  # count when their verdict is valid
VALID, INVALID = "valid", "rejected"  # Verdict.verdict
# Verdict.verdict of a session ended because too many clips would not load (the assignment is abandoned:
# place freed, never counted, never approved automatically; a person or a return request decides).
TECHNICAL_FAILURE = "technical_failure"

STUDY_OPEN, STUDY_PAUSED, STUDY_CLOSED = "open", "paused", "closed"

# Assignment.kind: who took the session. A preview (the researcher's "Preview as participant") never counts
# in quotas, verdicts, exports or reports; a simulated participant (`emostudy simulate`) is left out of
# exports unless asked (``--include-simulated``).
REAL, PREVIEW, SIMULATED = "real", "preview", "simulated"
KINDS = (REAL, PREVIEW, SIMULATED)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC times (models.utcnow())")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # slug from the plan: study.name
    title: Mapped[str] = mapped_column(String(300))
    task: Mapped[str] = mapped_column(String(40))  # emotion-realness | av-mismatch
    status: Mapped[str] = mapped_column(String(16), default=STUDY_OPEN)
    # The two documents are loaded only when used (deferred): arrivals read the study row on every request.
    plan_json: Mapped[str] = mapped_column(Text, deferred=True)  # the plan file's exact text
    plan_sha256: Mapped[str] = mapped_column(String(64))
    manifest_json: Mapped[str] = mapped_column(Text, deferred=True)  # the set's manifest (export writes it)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    set_root: Mapped[str] = mapped_column(Text)  # absolute path of the stimulus set folder
    quota_per_batch: Mapped[int] = mapped_column(Integer)
    completion_code: Mapped[str] = mapped_column(String(40))  # Prolific's study-wide code
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    batches: Mapped[list[Batch]] = relationship(back_populates="study", order_by="Batch.index",
                                                cascade="all, delete-orphan")
    stimuli: Mapped[list[StudyStimulus]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("study_id", "key"), UniqueConstraint("study_id", "index"))

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(16))  # "b01"
    index: Mapped[int] = mapped_column(Integer)
    quota: Mapped[int] = mapped_column(Integer)  # valid participants wanted

    study: Mapped[Study] = relationship(back_populates="batches")
    items: Mapped[list[Item]] = relationship(back_populates="batch", order_by="Item.position",
                                             cascade="all, delete-orphan")


class StudyStimulus(Base):
    """A manifest row of the study's set (``labels`` = the whole row, for export and analysis)."""

    __tablename__ = "stimuli"
    __table_args__ = (UniqueConstraint("study_id", "stimulus_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    stimulus_id: Mapped[str] = mapped_column(String(128))
    media: Mapped[str] = mapped_column(Text)  # relative to Study.set_root
    sha256: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)

    study: Mapped[Study] = relationship(back_populates="stimuli")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0-based order shown
    stimulus_pk: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"), index=True)
    repeat_of: Mapped[int | None] = mapped_column(Integer)  # position of the original, for repeats

    batch: Mapped[Batch] = relationship(back_populates="items")
    stimulus: Mapped[StudyStimulus] = relationship()


class MediaCopy(Base):
    """The bytes served for one item of a batch or one familiarisation example (``study_server.study.media``).

    The stimulus' file followed by a padding box (``container``: an mp4 ``free`` box or a WebM ``Void``
    element) of pseudo-random bytes drawn from ``pad_key``, so that every copy of a study has the same
    ``size`` and no two copies (a repeat and its original among them) have the same bytes. ``sha256`` is of
    the served bytes (the S3 key). Made by ``emostudy study import``; never changed.
    """

    __tablename__ = "media_copies"
    __table_args__ = (UniqueConstraint("study_id", "example_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    example_index: Mapped[int | None] = mapped_column(Integer)  # position in the plan's examples
    stimulus_pk: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"), index=True)
    container: Mapped[str] = mapped_column(String(8))  # isobmff | ebml
    size: Mapped[int] = mapped_column(Integer)  # bytes served: the same for every copy of the study
    sha256: Mapped[str] = mapped_column(String(64))  # of the served bytes
    pad_key: Mapped[str] = mapped_column(String(32))  # hex; seeds the padding bytes


class Participant(Base):
    """A person as a platform knows them. ``worker_id`` stays here (payments); exports use ``pseudonym``."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("platform", "worker_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))  # mturk | prolific | lab | link
    worker_id: Mapped[str] = mapped_column(String(255))
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)  # HMAC-SHA256(secret, platform:id)[:16]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("study_id", "participant_id"),
                      Index("ix_assignments_study_id_status", "study_id", "status"),
                      Index("ix_assignments_batch_id_status", "batch_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # opaque, random; in the participant's URL
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ALLOCATED)
    allocated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None]
    submitted_at: Mapped[dt.datetime | None]
    reviewed_at: Mapped[dt.datetime | None]  # approved/rejected on the platform
    ended_at: Mapped[dt.datetime | None]  # returned/abandoned/expired
    hold_until: Mapped[dt.datetime | None]  # an arrival hold extended by the researcher lapses then, not before
    # Platform ids: MTurk hitId/assignmentId/turkSubmitTo; Prolific STUDY_ID/SESSION_ID; lab token.
    hit_id: Mapped[str | None] = mapped_column(String(255))
    external_assignment_id: Mapped[str | None] = mapped_column(String(255))
    turk_submit_to: Mapped[str | None] = mapped_column(String(255))
    prolific_study_id: Mapped[str | None] = mapped_column(String(255))
    prolific_session_id: Mapped[str | None] = mapped_column(String(255))
    audio_check_passed: Mapped[bool | None] = mapped_column(Boolean)
    audio_check_attempts: Mapped[int] = mapped_column(Integer, default=0)
    completion_code: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    # The last progress of a started session (an answer, a listening-check step, media bytes served): what
    # keeps its place once consent is given (study_server.study.progress; pings do not count).
    progress_at: Mapped[dt.datetime | None]
    arrival_net: Mapped[str | None] = mapped_column(String(64))  # the arriving address or its IPv6 /64
    kind: Mapped[str] = mapped_column(String(16), default=REAL, server_default=REAL)  # KINDS

    study: Mapped[Study] = relationship()
    batch: Mapped[Batch] = relationship()
    participant: Mapped[Participant] = relationship()
    verdict: Mapped[Verdict | None] = relationship(back_populates="assignment", uselist=False)


class Answer(Base):
    """One answered item. Append-only: never updated, never deleted by the app."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("assignment_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(64), unique=True)  # made by the client, for idempotency
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)  # {question_id: "value" | ["v1", "v2"]}
    rt_ms: Mapped[int | None] = mapped_column(Integer)  # from the end of the video to the answer
    played_fraction: Mapped[float | None] = mapped_column(Float)  # of the video, before answering
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Server-side evidence of watching (study_server.study.watching): None, "never_fetched" or "too_fast".
    watch_flag: Mapped[str | None] = mapped_column(String(16))
    # watched: the server served the clip's bytes and its duration passed since the first byte (issue 29);
    # paced: the answers so far could have been given after their clips played one after another.
    watched: Mapped[bool | None] = mapped_column(Boolean)
    paced: Mapped[bool | None] = mapped_column(Boolean)


class MediaFetch(Base):
    """When a trial's media was first requested and how many bytes were served (one row per trial)."""

    __tablename__ = "media_fetches"
    __table_args__ = (UniqueConstraint("assignment_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # the trial's position in the batch
    first_requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    n_requests: Mapped[int] = mapped_column(Integer, default=1)
    bytes_served: Mapped[int] = mapped_column(BigInteger, default=0)  # body bytes answered (Range parts summed)
    first_byte_at: Mapped[dt.datetime | None]  # the first request that served bytes (HEAD, 304, empty: none)
    n_gets: Mapped[int | None] = mapped_column(Integer)  # GET requests (served or failed); HEAD is not one


class MediaFailure(Base):
    """A trial whose clip would not load (the participant went on after three failures): not an answer."""

    __tablename__ = "media_failures"
    __table_args__ = (UniqueConstraint("assignment_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    n_failures: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(100))  # the browser's media error, e.g. "MEDIA_ERR_NETWORK"
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AdminSession(Base):
    """A server-side admin login: the cookie names it; logout ends it; a new password ends them all."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the random id in the cookie
    password_tag: Mapped[str] = mapped_column(String(64))  # HMAC of the password hash at login
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]  # logout


class Verdict(Base):
    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    verdict: Mapped[str] = mapped_column(String(24))  # valid | rejected | technical_failure
    n_inconsistent: Mapped[int] = mapped_column(Integer)
    n_repeat_answers: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    assignment: Mapped[Assignment] = relationship(back_populates="verdict")


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AdminDecision(Base):
    """A researcher's decision from the admin pages (issue 32): a verdict overridden, a hold released, a
    queued submission approved, paid by hand or asked to return. Append-only; exported as decisions.csv."""

    __tablename__ = "admin_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # verdict | hold | review
    action: Mapped[str] = mapped_column(String(40))  # e.g. "valid -> rejected", "release", "approve"
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ListeningCheck(Base):
    """The volume calibration and headphone screen of one assignment (``study_server.participant.listening``)."""

    __tablename__ = "listening_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    calibrated_at: Mapped[dt.datetime | None]  # the participant set the volume on the calibration noise
    attempts_used: Mapped[int] = mapped_column(Integer, default=0)  # screen blocks finished
    n_correct: Mapped[int | None] = mapped_column(Integer)  # of the last finished block
    passed: Mapped[bool | None] = mapped_column(Boolean)  # None while undecided


class Demographics(Base):
    """A participant's answers to the spec's ``[demographics]`` items (``study_server.participant.demographics``):
    ``{item: value}``, "prefer_not" where the participant preferred not to say. One row per assignment."""

    __tablename__ = "demographics"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScreenTrial(Base):
    """One answered headphone-screen trial. Append-only."""

    __tablename__ = "screen_trials"
    __table_args__ = (UniqueConstraint("assignment_id", "kind", "attempt", "trial"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # huggins | antiphase
    attempt: Mapped[int] = mapped_column(Integer)
    trial: Mapped[int] = mapped_column(Integer)
    answer: Mapped[int] = mapped_column(Integer)  # 1-3, the interval chosen
    correct: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

Stimulus = StudyStimulus  # the name used in the docs; the table is "stimuli"
