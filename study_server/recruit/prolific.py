"""Prolific through its HTTP API (``Authorization: Token ...``, token from the environment).

Used calls: create a draft study (``POST /api/v1/studies/``), publish / stop it
(``POST /studies/{id}/transition/``), change its places (``PATCH /studies/{id}/``), list submissions
(``GET /studies/{id}/submissions/``), approve / reject one (``POST /submissions/{id}/transition/``),
bonuses (``POST /submissions/bonus-payments/`` sets a bulk bonus up, ``POST /bulk-bonus-payments/{id}/pay/``
pays it). The pay call is not idempotent, so ``service.pay_bonuses`` guards it with our ledger.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from study_server.recruit import PlatformError
from study_server.recruit.base import PostSettings, Submission

DEFAULT_BASE_URL = "https://api.prolific.com/api/v1"
TOKEN_ENV = ("EMOSTUDY_PROLIFIC_API_TOKEN", "PROLIFIC_API_TOKEN")
URL_PARAMS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def token_from_env() -> str:
    for name in TOKEN_ENV:
        if os.environ.get(name):
            return os.environ[name]
    raise PlatformError(f"no Prolific API token: set {TOKEN_ENV[0]} (Prolific: Settings > Go to API token page)")


class ProlificRecruiter:
    platform = "prolific"

    def __init__(self, *, token: str, study_id: str | None = None, base_url: str = DEFAULT_BASE_URL,
                 completion_code: str = "", http: Any = None, timeout_s: float = 30.0,
                 log: Callable[[str, dict[str, Any]], None] | None = None):
        import requests

        self.http = http or requests.Session()
        self.http.headers.update({"Authorization": f"Token {token}", "Content-Type": "application/json"})
        self.base_url = base_url.rstrip("/")
        self.study_id = study_id
        self.completion_code = completion_code
        self.timeout_s = timeout_s
        self.log = log or (lambda action, details: None)

    def _req(self, method: str, path: str, json: Any = None) -> Any:
        resp = self.http.request(method, f"{self.base_url}{path}", json=json, timeout=self.timeout_s)
        if resp.status_code >= 400:
            raise PlatformError(f"Prolific {method} {path} failed: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def _study(self) -> str:
        if not self.study_id:
            raise PlatformError("no Prolific study yet: run `emostudy recruit open --platform prolific` first")
        return self.study_id

    def open(self, settings: PostSettings, places: int, *, publish: bool = False) -> list[str]:
        sep = "&" if "?" in settings.study_url else "?"
        body = {
            "name": settings.title,
            "internal_name": settings.title,
            "description": settings.description,
            "external_study_url": f"{settings.study_url}{sep}{URL_PARAMS}",
            "prolific_id_option": "url_parameters",
            "completion_codes": [{"code": self.completion_code, "code_type": "COMPLETED",
                                  "actions": [{"action": "MANUALLY_REVIEW"}]}],
            "total_available_places": int(places),
            "estimated_completion_time": int(settings.estimated_minutes),
            "reward": int(round(settings.reward_usd * 100)),
            "device_compatibility": ["desktop", "tablet", "mobile"],
        }
        study = self._req("POST", "/studies/", body)
        self.study_id = study["id"]
        if publish:
            self.publish()
        return [self.study_id]

    def publish(self) -> None:
        """Draft -> active: Prolific starts showing the study to participants."""
        self._req("POST", f"/studies/{self._study()}/transition/", {"action": "PUBLISH"})

    def extend(self, settings: PostSettings, places: int) -> list[str]:
        study = self._req("GET", f"/studies/{self._study()}/")
        total = int(study.get("total_available_places", 0)) + int(places)
        self._req("PATCH", f"/studies/{self._study()}/", {"total_available_places": total})
        return [self._study()]

    def status(self) -> list[dict[str, Any]]:
        study = self._req("GET", f"/studies/{self._study()}/")
        return [{"id": self._study(), "status": study.get("status"), "places": study.get("total_available_places"),
                 "available": study.get("places_taken") is not None
                 and int(study.get("total_available_places", 0)) - int(study.get("places_taken", 0)),
                 "pending": None, "completed": study.get("number_of_submissions")}]

    def review(self) -> list[Submission]:
        out: list[Submission] = []
        path: str | None = f"/studies/{self._study()}/submissions/"
        while path:
            page = self._req("GET", path)
            for s in page.get("results", []):
                if s.get("status") == "AWAITING REVIEW":
                    out.append(Submission(platform="prolific", external_id=s["id"], worker_id=s["participant_id"],
                                          status=s["status"], post_id=self._study(), raw=s))
            nxt = (page.get("_links", {}).get("next") or {}).get("href")
            path = nxt[len(self.base_url):] if nxt and nxt.startswith(self.base_url) else None
        return out

    def approve(self, sub: Submission, feedback: str | None = None) -> None:
        self._req("POST", f"/submissions/{sub.external_id}/transition/", {"action": "APPROVE"})

    def reject(self, sub: Submission, feedback: str) -> None:
        # Prolific asks for a message of at least 100 characters and a category.
        message = feedback if len(feedback) >= 100 else (feedback + " " + "-" * 100)[:100]
        self._req("POST", f"/submissions/{sub.external_id}/transition/",
                  {"action": "REJECT", "message": message, "rejection_category": "FAILED_CHECK"})

    def setup_bonuses(self, rows: list[tuple[str, float]]) -> str:
        """Set up (not pay) one bulk bonus: rows of (participant id, USD). Returns its id."""
        csv = "".join(f"{pid},{amount:.2f}\n" for pid, amount in rows)
        resp = self._req("POST", "/submissions/bonus-payments/", {"study_id": self._study(), "csv_bonuses": csv})
        return resp["id"]

    def pay_bonuses(self, bulk_id: str) -> dict[str, Any]:
        return self._req("POST", f"/bulk-bonus-payments/{bulk_id}/pay/") or {}

    def bonus(self, worker_id: str, external_id: str, amount_usd: float, reason: str, token: str) -> dict[str, Any]:
        bulk = self.setup_bonuses([(worker_id, amount_usd)])
        return {"bulk_id": bulk, **self.pay_bonuses(bulk)}

    def exclude(self, worker_ids: list[str]) -> None:
        # Prolific excludes through "previous studies" blocklists set in the study's filters; our database
        # check at arrival (the plan's exclude_studies) covers workers of earlier emostudy studies.
        return None

    def close(self) -> None:
        self._req("POST", f"/studies/{self._study()}/transition/", {"action": "STOP"})
