"""Recruitment and payment: Amazon Mechanical Turk (boto3), Prolific (HTTP API) and lab links.

Every recruiter offers the same verbs (``open``, ``extend``, ``status``, ``review``, ``approve``,
``reject``, ``bonus``, ``exclude``, ``close``; see ``base.Recruiter``). What to approve, whom to reject
and how much bonus to pay is decided from our own database (``service.py``), never by the platform.

Money and standing: every call that moves money or changes a worker's standing is written to the audit
log *before* it is made; bonuses go through our ledger (``BonusPayment``) with a deterministic
idempotency token per assignment and rule, so re-running, or crashing half-way and re-running, never pays
anyone twice.

Exceptions::

    RecruitError
    +-- LiveModeRefused   live MTurk asked for without the explicit flag and confirmation
    +-- PlatformError     the platform refused a call (carries the platform's message)
    +-- LedgerError       a bonus payment's outcome is unknown and needs a person to check
"""


class RecruitError(Exception):
    """Base class of recruitment errors."""


class LiveModeRefused(RecruitError):
    """Live (real-money) MTurk was asked for without ``--live`` and a confirmation."""


class PlatformError(RecruitError):
    """A recruiting platform refused a call."""


class LedgerError(RecruitError):
    """The bonus ledger holds a payment whose outcome is unknown."""
