"""Recruiting platforms: who arrives (from the query string) and how a finished participant is sent back.

Arrival URLs (``/s/<study>?...``):

- MTurk ExternalQuestion: ``assignmentId, hitId, workerId, turkSubmitTo``. While a worker previews the
  HIT, ``assignmentId`` is ``ASSIGNMENT_ID_NOT_AVAILABLE``: we show the ad and store nothing.
- Prolific: ``PROLIFIC_PID, STUDY_ID, SESSION_ID``.
- Lab link: ``?lab=TOKEN`` (the token identifies the participant, e.g. a printed card).
- Plain link: anything else; a fresh random id per arrival.

Completion: MTurk gets an auto-submitted form POSTing ``assignmentId`` and a non-empty answer field to
``turkSubmitTo + '/mturk/externalSubmit'`` (only MTurk's own hosts are accepted as ``turkSubmitTo``);
Prolific a redirect to ``https://app.prolific.com/submissions/complete?cc=CODE``; otherwise a code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

from study_server.core.errors import ApiError

MTURK, PROLIFIC, LAB, LINK = "mturk", "prolific", "lab", "link"
PLATFORMS = (MTURK, PROLIFIC, LAB, LINK)
MTURK_PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
_ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,255}")  # fullmatch


@dataclass(frozen=True)
class Arrival:
    """A participant's arrival as the platform described it."""

    platform: str
    worker_id: str | None  # None only for an MTurk preview
    preview: bool = False
    hit_id: str | None = None
    external_assignment_id: str | None = None
    turk_submit_to: str | None = None
    prolific_study_id: str | None = None
    prolific_session_id: str | None = None

    def query(self) -> dict[str, str]:
        """The query string that reproduces this arrival (for links kept in the page)."""
        if self.platform == MTURK:
            return {k: v for k, v in (("assignmentId", self.external_assignment_id), ("hitId", self.hit_id),
                                      ("workerId", self.worker_id), ("turkSubmitTo", self.turk_submit_to))
                    if v}
        if self.platform == PROLIFIC:
            return {k: v for k, v in (("PROLIFIC_PID", self.worker_id), ("STUDY_ID", self.prolific_study_id),
                                      ("SESSION_ID", self.prolific_session_id)) if v}
        if self.platform == LAB:
            return {"lab": self.worker_id or ""}
        return {}


def _clean_id(params: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = params.get(key)
    if value in (None, ""):
        if required:
            raise ApiError("bad_arrival", f"the link is missing the parameter {key!r}; open the study from the "
                           "recruiting platform again", status=400)
        return None
    value = str(value).strip()
    if not _ID_RE.fullmatch(value):
        raise ApiError("bad_arrival", f"parameter {key!r} has an unexpected value; open the study from the "
                       "recruiting platform again", status=400)
    return value


def parse_arrival(params: Mapping[str, Any], *, mturk_submit_hosts: tuple[str, ...] = (
        "www.mturk.com", "workersandbox.mturk.com")) -> Arrival:
    """Read the platform's parameters. Raises ``ApiError('bad_arrival')`` naming a missing/odd parameter."""
    if "assignmentId" in params or "hitId" in params or "turkSubmitTo" in params:
        assignment_id = _clean_id(params, "assignmentId")
        if assignment_id == MTURK_PREVIEW_ID:
            return Arrival(platform=MTURK, worker_id=None, preview=True, hit_id=_clean_id(params, "hitId", required=False),
                           external_assignment_id=None)
        submit_to = str(params.get("turkSubmitTo") or "").rstrip("/")
        parts = urlsplit(submit_to)
        if parts.scheme != "https" or parts.hostname not in mturk_submit_hosts or parts.path not in ("", "/"):
            raise ApiError("bad_arrival", f"turkSubmitTo {submit_to!r} is not an MTurk submission host "
                           f"({', '.join(mturk_submit_hosts)}); open the HIT from MTurk again", status=400)
        return Arrival(platform=MTURK, worker_id=_clean_id(params, "workerId"), hit_id=_clean_id(params, "hitId"),
                       external_assignment_id=assignment_id, turk_submit_to=f"https://{parts.hostname}")
    if "PROLIFIC_PID" in params:
        return Arrival(platform=PROLIFIC, worker_id=_clean_id(params, "PROLIFIC_PID"),
                       prolific_study_id=_clean_id(params, "STUDY_ID", required=False),
                       prolific_session_id=_clean_id(params, "SESSION_ID", required=False))
    if "lab" in params:
        return Arrival(platform=LAB, worker_id=_clean_id(params, "lab"))
    return Arrival(platform=LINK, worker_id="link-" + secrets.token_hex(12))


def pseudonym(secret_key: str, platform: str, worker_id: str) -> str:
    """Export id of a participant: HMAC-SHA256(server secret, ``platform:worker_id``), 16 hex characters."""
    return hmac.new(secret_key.encode(), f"{platform}:{worker_id}".encode(), hashlib.sha256).hexdigest()[:16]


def new_completion_code() -> str:
    # No 0/O or 1/I: people type these codes.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def completion_action(platform: str, *, code: str, external_assignment_id: str | None = None,
                      turk_submit_to: str | None = None,
                      prolific_url: str = "https://app.prolific.com/submissions/complete") -> dict[str, Any]:
    """What the completion page does. JSON-ready:

    - ``{"kind": "mturk_form", "action": URL, "fields": {"assignmentId": ..., "completion_code": ...}}``
    - ``{"kind": "redirect", "url": URL}`` (Prolific)
    - ``{"kind": "code", "code": CODE}``
    """
    if platform == MTURK and turk_submit_to and external_assignment_id:
        return {"kind": "mturk_form", "action": turk_submit_to.rstrip("/") + "/mturk/externalSubmit",
                "fields": {"assignmentId": external_assignment_id, "completion_code": code}, "code": code}
    if platform == PROLIFIC:
        return {"kind": "redirect", "url": f"{prolific_url}?{urlencode({'cc': code})}", "code": code}
    return {"kind": "code", "code": code}
