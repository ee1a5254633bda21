"""Prolific through its HTTP API (``Authorization: Token ...``, token from the environment).

Used calls: create a draft study (``POST /api/v1/studies/``), publish / stop it
(``POST /studies/{id}/transition/``), change its places (``PATCH /studies/{id}/``), list submissions
(``GET /studies/{id}/submissions/``), approve / reject one (``POST /submissions/{id}/transition/``),
bonuses (``POST /submissions/bonus-payments/`` sets a bulk bonus up, ``POST /bulk-bonus-payments/{id}/pay/``
pays it), one submission (``GET /submissions/{id}/``: its status and ``bonus_payments``, the amounts
already paid on it in minor units), a return request (``POST /submissions/{id}/request-return/`` with
``request_return_reasons``), the account (``GET /users/me/``: ``currency_code``). The pay call is not
idempotent, so ``ledger.pay_bonuses`` guards it with our ledger and reads the submission's bonus records
before any retry.

Amounts: ``reward`` and bonuses are in the study currency (the workspace's: GBP or USD), ``reward`` in its
minor unit (pence / cents). Plans state USD; a GBP workspace needs an explicit ``usd_rate``. Prolific's
minimum pay (``MIN_HOURLY``) is checked from the estimated minutes before a study is created.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Callable

from study_server.recruit import OutcomeUnknown, PayRefused, PlatformError, money
from study_server.recruit.base import PostSettings, Submission

DEFAULT_BASE_URL = "https://api.prolific.com/api/v1"
TOKEN_ENV = ("EMOSTUDY_PROLIFIC_API_TOKEN", "PROLIFIC_API_TOKEN")
MIN_HOURLY = {"GBP": 6.00, "USD": 8.00}  # Prolific's minimum hourly pay per study currency
# Our rejection reasons -> Prolific's rejection categories.
REJECTION_CATEGORIES = {"inconsistent": "FAILED_CHECK", "incomplete": "NO_DATA", "no_code": "NO_CODE",
                        "too_quick": "TOO_QUICKLY", "instructions": "FAILED_INSTRUCTIONS", "other": "OTHER"}
RETURN_REASON = "Didn't finish the study"
# Prolific submission statuses read back into our database; AWAITING REVIEW is what ``review`` decides on.
FINAL_STATUSES = ("APPROVED", "REJECTED", "RETURNED", "TIMED-OUT", "SCREENED OUT", "PARTIALLY APPROVED")
MIN_REJECTION_MESSAGE = 100  # Prolific refuses a rejection with a shorter message
URL_PARAMS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def screen_out_code(completion_code: str) -> str:
    """The study's screen-out completion code: fixed by its completion code, different from it."""
    return "SO" + hashlib.sha256(f"emostudy-screen-out|{completion_code}".encode()).hexdigest()[:8].upper()


def token_from_env() -> str:
    for name in TOKEN_ENV:
        if os.environ.get(name):
            return os.environ[name]
    raise PlatformError(f"no Prolific API token: set {TOKEN_ENV[0]} (Prolific: Settings > Go to API token page)")




def to_minor(amount_usd: Any, currency: str, usd_rate: float | None) -> int:
    """USD from the plan (whole cents, else refused) -> the study currency's minor unit (cents / pence),
    rounded half up once."""
    cents = money.to_minor(amount_usd, "amount in USD")
    if currency != "USD" and not usd_rate:
        raise PayRefused(f"the Prolific workspace pays in {currency} but the plan's amounts are in USD: pass "
                         f"--usd-rate (how many {currency} one USD is worth today) so rewards and bonuses are "
                         "converted, not sent as if they were USD")
    return money.convert(cents, currency, usd_rate)


def check_min_pay(reward_minor: int, currency: str, minutes: int, allow_low_pay: str | None = None) -> float:
    """The hourly rate in the study currency; refuses below Prolific's floor unless a reason is given."""
    if minutes <= 0:
        raise PayRefused(f"the estimated completion time must be positive minutes; got {minutes}")
    hourly = reward_minor / 100 * 60 / minutes
    floor = MIN_HOURLY.get(currency)
    if floor is not None and hourly + 1e-9 < floor and not (allow_low_pay or "").strip():
        need = int(-(-floor * minutes * 100 // 60))
        raise PayRefused(f"{reward_minor / 100:.2f} {currency} for {minutes} minutes is {hourly:.2f} {currency}/h, "
                         f"below Prolific's minimum of {floor:.2f} {currency}/h; pay at least {need / 100:.2f} "
                         f"{currency} (plan payment.reward_usd or --reward), or pass --allow-low-pay REASON")
    return hourly

class ProlificRecruiter:
    platform = "prolific"

    def __init__(self, *, token: str, study_id: str | None = None, base_url: str = DEFAULT_BASE_URL,
                 completion_code: str = "", http: Any = None, timeout_s: float = 30.0,
                 log: Callable[[str, dict[str, Any]], None] | None = None, max_attempts: int = 5,
                 sleep: Callable[[float], None] = time.sleep, usd_rate: float | None = None):
        import requests  # optional heavy dependency: loaded only when the platform is called

        self.http = http or requests.Session()
        self.http.headers.update({"Authorization": f"Token {token}", "Content-Type": "application/json"})
        self.base_url = base_url.rstrip("/")
        self.study_id = study_id
        self.completion_code = completion_code
        self.timeout_s = timeout_s
        self.log = log or (lambda action, details: None)
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.usd_rate = usd_rate
        self._currency: str | None = None
        # Set by the service before ``open``: filters (blocklist, screeners), audio, allow-low-pay reason.
        # ``screen_out_usd``: a fixed payment for a participant who fails the headphone screen (Prolific's
        # SCREENED_OUT completion code with FIXED_SCREEN_OUT_PAYMENT) instead of a return request.
        self.screen_out_usd: float | None = None
        self.filters: list[dict[str, Any]] = []
        self.peripheral_requirements: list[str] = []
        self.allow_low_pay: str | None = None

    def _req(self, method: str, path: str, json: Any = None, *, pay: bool = False) -> Any:
        """One call. 429 is retried with exponential backoff; a lost reply or a 5xx raises OutcomeUnknown; so
        does any reply to a pay call (``pay``) that is not a clear success (every 4xx too: a proxy's 408, a 400
        after Prolific paid), and a reply to a change that is not JSON. A GET whose reply cannot be read raises
        PlatformError (nothing changed)."""
        import requests  # optional heavy dependency: imported only when the platform is called

        changes = method != "GET"
        for attempt in range(self.max_attempts):
            try:
                resp = self.http.request(method, f"{self.base_url}{path}", json=json, timeout=self.timeout_s)
            except requests.RequestException as exc:
                raise OutcomeUnknown(f"Prolific {method} {path}: no reply ({type(exc).__name__}); the call may or "
                                     "may not have taken effect") from None
            if pay and resp.status_code >= 400:
                raise OutcomeUnknown(f"Prolific {method} {path}: HTTP {resp.status_code} ({resp.text[:200]!r}) to a pay "
                                     "call: Prolific may have paid (bonus records appear minutes later)")
            if resp.status_code == 429 and attempt + 1 < self.max_attempts:
                self.sleep(min(30.0, 0.5 * 2 ** attempt))
                continue
            if resp.status_code == 429:
                raise PlatformError(f"Prolific kept refusing {method} {path} for too many requests ({self.max_attempts} "
                                    "tries with backoff). Nothing was lost: wait a few minutes and run it again.")
            if resp.status_code >= 500 or (changes and resp.status_code == 408):
                raise OutcomeUnknown(f"Prolific {method} {path}: HTTP {resp.status_code}; the call may or may not "
                                     "have taken effect")
            if resp.status_code >= 400:
                raise PlatformError(f"Prolific {method} {path} failed: HTTP {resp.status_code}: {resp.text[:500]}")
            if not resp.content:
                return {}
            try:
                body = resp.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                msg = (f"Prolific {method} {path}: HTTP {resp.status_code} but the reply is not a JSON object "
                       f"({resp.text[:120]!r})")
                if changes:
                    raise OutcomeUnknown(msg + "; the call may or may not have taken effect")
                raise PlatformError(msg + "; nothing was read, run the command again later")
            return body
        raise AssertionError("unreachable")

    def _study(self) -> str:
        if not self.study_id:
            raise PlatformError("no Prolific study yet: run `emostudy recruit open --platform prolific` first")
        return self.study_id

    def currency(self) -> str:
        """The study currency: the account's (``GET /users/me/`` ``currency_code``), USD when not stated."""
        if self._currency is None:
            self._currency = str(self._req("GET", "/users/me/").get("currency_code") or "USD").upper()
        return self._currency

    def minor(self, amount_usd: float) -> int:
        return to_minor(amount_usd, self.currency(), self.usd_rate)

    def check_pay(self, settings: PostSettings) -> float:
        """The hourly pay in the study currency; PayRefused below Prolific's floor without allow_low_pay."""
        return check_min_pay(self.minor(settings.reward_usd), self.currency(), int(settings.estimated_minutes),
                             self.allow_low_pay)

    def study_body(self, settings: PostSettings, places: int, annotation: str = "") -> dict[str, Any]:
        sep = "&" if "?" in settings.study_url else "?"
        reward = self.minor(settings.reward_usd)
        self.check_pay(settings)
        body = {
            "name": settings.title,
            # Our annotation: a study whose creation reply was lost is found again by it (``find_studies``).
            "internal_name": f"{settings.title} [{annotation}]" if annotation else settings.title,
            "description": settings.description,
            "external_study_url": f"{settings.study_url}{sep}{URL_PARAMS}",
            "prolific_id_option": "url_parameters",
            "completion_codes": [{"code": self.completion_code, "code_type": "COMPLETED",
                                  "actions": [{"action": "MANUALLY_REVIEW"}]}] + self.screen_out_codes(reward, places),
            "total_available_places": int(places),
            "estimated_completion_time": int(settings.estimated_minutes),
            "reward": reward,
            "device_compatibility": ["desktop", "tablet", "mobile"],
        }
        if self.filters:
            body["filters"] = list(self.filters)
        if self.peripheral_requirements:
            body["peripheral_requirements"] = list(self.peripheral_requirements)
        return body

    def screen_out_codes(self, reward_minor: int, places: int) -> list[dict[str, Any]]:
        """The SCREENED_OUT completion code (at most one per study on Prolific), when a screen-out payment is
        set: less than the reward, in the study currency's minor unit, for up to ``places`` participants."""
        if self.screen_out_usd is None:
            return []
        minor = self.minor(self.screen_out_usd)
        if not 0 < minor < reward_minor:
            raise PayRefused(f"the screen-out payment ({money.fmt(minor)} {self.currency()}) must be more than 0 and "
                             f"less than the reward ({money.fmt(reward_minor)} {self.currency()}); change --screen-out-pay")
        return [{"code": screen_out_code(self.completion_code), "code_type": "SCREENED_OUT",
                 "actions": [{"action": "FIXED_SCREEN_OUT_PAYMENT", "fixed_screen_out_reward": minor,
                              "slots": int(places)}]}]

    def open(self, settings: PostSettings, places: int, *, publish: bool = False, annotation: str = "") -> list[str]:
        study = self._req("POST", "/studies/", self.study_body(settings, places, annotation))
        if not study.get("id"):
            raise OutcomeUnknown("Prolific POST /studies/: the reply has no study id; the study may have been made: "
                                 "run the command again, it finds the study by its internal name")
        self.study_id = study["id"]
        if publish:
            self.publish()
        return [self.study_id]

    def _all(self, path: str | None) -> list[dict[str, Any]]:
        """Every result of a paged list (following ``_links.next``)."""
        out: list[dict[str, Any]] = []
        while path:
            page = self._req("GET", path)
            results = page.get("results")
            if not isinstance(results, list):  # a list without its key is an error, never "nothing there"
                raise PlatformError(f"Prolific GET {path}: the reply has no results list (keys: {sorted(page)[:8]}); "
                                    "nothing was read, so nothing is assumed. Run the command again later.")
            out.extend(results)
            nxt = (page.get("_links", {}).get("next") or {}).get("href")
            path = nxt[len(self.base_url):] if nxt and nxt.startswith(self.base_url) else None
        return out

    def find_studies(self, annotation: str) -> list[dict[str, Any]]:
        """Our studies on Prolific, found by the annotation in their internal name (``GET /studies/``)."""
        return [s for s in self._all("/studies/") if f"[{annotation}]" in str(s.get("internal_name") or "")]

    def study_state(self) -> dict[str, Any]:
        """The study as Prolific shows it (``status``: UNPUBLISHED, ACTIVE, ...)."""
        return self._req("GET", f"/studies/{self._study()}/")

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

    def submissions(self) -> list[Submission]:
        """Every submission of the study, whatever its status (all pages)."""
        subs = self._all(f"/studies/{self._study()}/submissions/")
        bad = [s for s in subs if not isinstance(s, dict) or not s.get("id") or not s.get("participant_id")]
        if bad:
            raise PlatformError(f"Prolific listed {len(bad)} submission(s) without an id or participant_id (e.g. "
                                f"{str(bad[0])[:120]}); nothing was decided. Run the command again later.")
        return [Submission(platform="prolific", external_id=s["id"], worker_id=s["participant_id"],
                           status=s.get("status", ""), post_id=self._study(), raw=s) for s in subs]

    def review(self) -> list[Submission]:
        return [s for s in self.submissions() if s.status == "AWAITING REVIEW"]

    def submission(self, external_id: str) -> dict[str, Any]:
        return self._req("GET", f"/submissions/{external_id}/")

    def _transition(self, sub: Submission, body: dict[str, Any], wanted: str) -> None:
        try:
            self._req("POST", f"/submissions/{sub.external_id}/transition/", body)
        except OutcomeUnknown:
            raise
        except PlatformError:
            if self.submission(sub.external_id).get("status") != wanted:  # a retry of a call that worked
                raise

    def approve(self, sub: Submission, feedback: str | None = None) -> None:
        self._transition(sub, {"action": "APPROVE"}, "APPROVED")

    def reject(self, sub: Submission, feedback: str, category: str | None = None) -> None:
        """Prolific needs a message of at least 100 characters (the participant reads it: never padded) and
        one of its rejection categories; both are checked before the call."""
        message = (feedback or "").strip()
        if len(message) < MIN_REJECTION_MESSAGE:
            raise PlatformError(f"a Prolific rejection needs a message of at least {MIN_REJECTION_MESSAGE} "
                                f"characters (the participant reads it); this one has {len(message)}: write more "
                                "with --feedback")
        if category not in REJECTION_CATEGORIES:
            raise PlatformError(f"a Prolific rejection needs a category: one of {', '.join(REJECTION_CATEGORIES)} "
                                f"(--category), not {category!r}")
        self._transition(sub, {"action": "REJECT", "message": message,
                               "rejection_category": REJECTION_CATEGORIES[category]}, "REJECTED")

    def request_return(self, sub: Submission, reasons: list[str] | None = None) -> None:
        """Ask a participant who could not finish to return the submission (no rejection on their record)."""
        self._req("POST", f"/submissions/{sub.external_id}/request-return/",
                  {"request_return_reasons": list(reasons or [RETURN_REASON])})

    def setup_bonuses(self, rows: list[tuple[str, int]]) -> str:
        """Set up (not pay) one bulk bonus: rows of (participant id, minor units). Returns its id. Nothing is
        paid by this call: a lost reply or a refusal here means nothing happened (PlatformError)."""
        csv = "".join(f"{pid},{money.fmt(minor)}\n" for pid, minor in rows)
        try:
            resp = self._req("POST", "/submissions/bonus-payments/", {"study_id": self._study(), "csv_bonuses": csv})
        except OutcomeUnknown as exc:
            raise PlatformError(f"{exc} (only a set-up: nothing is paid until its pay call)") from None
        if not resp.get("id"):
            raise PlatformError("Prolific set up a bonus but its reply has no id; nothing was paid")
        return resp["id"]

    def pay_bonuses(self, bulk_id: str) -> dict[str, Any]:
        """The second step: pay a set-up bulk bonus. Not idempotent: any reply but a clear success is unknown."""
        return self._req("POST", f"/bulk-bonus-payments/{bulk_id}/pay/", pay=True) or {}

    def bonus(self, worker_id: str, external_id: str, amount_minor: int, reason: str, token: str) -> dict[str, Any]:
        """Pay ``amount_minor`` pence / cents of the study currency: set up, then pay."""
        bulk = self.setup_bonuses([(worker_id, int(amount_minor))])
        return {"bulk_id": bulk, **self.pay_bonuses(bulk)}

    def bonuses_paid(self, external_id: str) -> list[dict[str, Any]]:
        """Bonuses already paid on this submission (its ``bonus_payments``), in whole minor units of the
        study currency, exactly as the ledger holds them (never converted back)."""
        sub = self.submission(external_id)
        if not isinstance(sub.get("bonus_payments"), list):
            raise PlatformError(f"Prolific GET /submissions/{external_id}/: the reply has no bonus_payments list; "
                                "nothing is assumed paid or unpaid")
        currency = self.currency()
        out = []
        for amount in sub["bonus_payments"]:
            value = amount.get("amount") if isinstance(amount, dict) else amount
            minor = int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else None
            out.append({"minor": minor, "currency": currency})
        return out

    def exclude(self, worker_ids: list[str]) -> None:
        # Prolific excludes through the "previous studies" blocklist filter set when the study is created
        # (service.open_posts); a study's own participants cannot take it twice.
        return None

    def close(self) -> None:
        self._req("POST", f"/studies/{self._study()}/transition/", {"action": "STOP"})
