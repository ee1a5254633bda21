"""The recruiter interface and the settings shared by every platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from study_server.recruit.money import fmt, to_minor


@dataclass(frozen=True)
class PostSettings:
    """What a recruitment post says and pays. Built from the study's plan plus command-line options."""

    title: str
    description: str
    study_url: str  # the participant entry URL, https://HOST/s/<study>
    reward_usd: float
    keywords: str = "emotion, video, perception, survey"
    assignment_duration_s: int = 3600
    lifetime_s: int = 7 * 24 * 3600
    auto_approval_delay_s: int = 3 * 24 * 3600
    estimated_minutes: int = 15
    frame_height: int = 0  # MTurk ExternalQuestion FrameHeight; 0 = full window


@dataclass(frozen=True)
class Submission:
    """A finished piece of work as the platform reports it."""

    platform: str
    external_id: str  # MTurk assignment id / Prolific submission (session) id / our token for lab
    worker_id: str
    status: str  # the platform's status word
    post_id: str | None = None  # HIT id / Prolific study id
    raw: dict[str, Any] = field(default_factory=dict)


class Recruiter(Protocol):
    """The verbs every platform implements. ``dry_run`` recruiters print calls instead of making them."""

    platform: str

    def open(self, settings: PostSettings, places: int) -> list[str]:
        """Post ``places`` places; return the platform ids of the new posts."""
    def extend(self, settings: PostSettings, places: int) -> list[str]:
        """Add ``places`` more places (new HITs on MTurk, more places on Prolific)."""

    def status(self) -> list[dict[str, Any]]:
        """One dict per post: id, status, places posted, available, pending, completed."""
    def review(self) -> list[Submission]:
        """Submissions waiting for approval or rejection."""

    def approve(self, sub: Submission, feedback: str | None = None) -> None: ...

    def reject(self, sub: Submission, feedback: str, category: str | None = None) -> None:
        """``category``: our reason key, mapped to the platform's rejection categories where it has them."""
    def bonus(self, worker_id: str, external_id: str, amount_minor: int, reason: str, token: str) -> dict[str, Any]:
        """Pay ``amount_minor`` whole minor units of the platform's currency (the ledger row's amount)."""

    def bonuses_paid(self, external_id: str) -> list[dict[str, Any]]:
        """What the platform's own records say was paid on this piece of work: dicts with ``minor`` (whole
        minor units, None when unreadable) and ``currency``; read before any payment whose outcome is unknown
        is retried. A reply without its list raises PlatformError (never read as "nothing paid")."""

    def exclude(self, worker_ids: list[str]) -> None:
        """Keep these workers out of later studies of the same family."""
    def close(self) -> None:
        """Stop recruiting (expire HITs / stop the study)."""


def usd(amount: float) -> str:
    """MTurk's money strings: "0.45", exact; an amount that is not whole cents is refused (money.to_minor)."""
    return fmt(to_minor(amount, "amount in USD"))
