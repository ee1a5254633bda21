"""Recruitment and payment: Amazon Mechanical Turk (boto3), Prolific (HTTP API) and lab links.

Every recruiter offers the same verbs (``open``, ``extend``, ``status``, ``review``, ``approve``,
``reject``, ``bonus``, ``exclude``, ``close``; see ``base.Recruiter``). What to approve, whom to reject
and how much bonus to pay is decided from our own database (``service.py``), never by the platform.

Money and standing: every call that moves money or changes a worker's standing is written to the audit
log *before* it is made; bonuses go through our ledger (``BonusPayment``) with a deterministic
idempotency token per assignment and rule, and a payment whose outcome is not known is never made again
before the platform's own records of what was paid (MTurk ListBonusPayments, Prolific's bonus records of
the submission) have been read. Every platform object is recorded the moment it is created and found
again by its annotation after a crash. Nobody is rejected automatically for an unknown, duplicate or
partial submission: those go to the review queue (``ReviewItem``).

Exceptions::

    RecruitError
    +-- LiveModeRefused   live MTurk asked for without the explicit flag and confirmation
    +-- PlatformError     the platform refused a call (carries the platform's message)
    |   +-- OutcomeUnknown    the reply was lost (timeout, dropped connection, 5xx): the call may have worked
    +-- LedgerError       a bonus payment's outcome is unknown and needs a person to check
    +-- PayRefused        the minimum-pay check or the account balance says no
    +-- AnotherRun        another `sync` or `open` of the same study is running (nothing was changed)
"""


class RecruitError(Exception):
    """Base class of recruitment errors."""


class LiveModeRefused(RecruitError):
    """Live (real-money) MTurk was asked for without ``--live`` and a confirmation."""


class PlatformError(RecruitError):
    """A recruiting platform refused a call."""


class LedgerError(RecruitError):
    """The bonus ledger holds a payment whose outcome is unknown."""


class OutcomeUnknown(PlatformError):
    """The call's reply was lost: it may or may not have taken effect. Read the platform's state first."""


class PayRefused(RecruitError):
    """Below the platform's minimum hourly pay, or the account balance cannot cover the cost."""


class AnotherRun(RecruitError):
    """Another ``sync`` or ``open`` of the same study holds its lock; this run changed nothing."""
