"""Simulated participants that take a study through the real HTTP API (the demo's `--simulate N`).

A simulated participant arrives on a lab link, consents, passes the audio check, watches (downloads) each
video and answers by a response model. It recognises which stimulus it was shown the way a person does:
by the video it received - the served copy without its padding box (``study_server.study.media.strip_padding``),
whose sha256 is looked up in the set's manifest - never from the page or the headers, which carry no
labels. The audio-check word is computed from the server secret, which the simulation
knows because it runs beside the server it tests (``study_server.study.audio_check.expected_word``).

Response model (``ResponseModel``): in Task 2 the primary label is the visual emotion with probability
``p_visual``, the audio emotion with ``p_audio``, otherwise a uniformly random emotion; the secondary label
is "none" with probability ``p_secondary_none``, else the audio emotion (when the primary was the visual
one) or a random other emotion. In a norming study every answer is ``stimuli.norming.simulated_rating``'s.
In Task 1 the emotion is correct with a per-source probability, the
realness score is a rounded normal per source, and improvement aspects follow the realness. A careless
participant (probability ``careless``) answers uniformly at random and so fails the consistency check; an
attentive one answers a repeated video as before with probability ``repeat_agreement``.
"""

from __future__ import annotations

import hashlib
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from stimuli.emotions import EMOTIONS
from stimuli.norming import simulated_rating
from study_server.participant.listening import expected_answers
from study_server.study.audio_check import expected_word
from study_server.study.media import strip_padding
from study_server.study.preview import simulation_signature

SPEEDS = ("fast", "real")


def _watch(seconds: float) -> None:
    """A simulated person watching a clip and thinking (``speed="real"``)."""
    time.sleep(seconds)


@dataclass(frozen=True)
class ResponseModel:
    p_visual: float = 0.62
    p_audio: float = 0.22
    p_secondary_none: float = 0.45
    accuracy: tuple[tuple[str, float], ...] = (("GT", 0.72), ("FULL", 0.55), ("OURS", 0.55), ("WARP", 0.55),
                                               ("BL", 0.35), ("LIPS", 0.30), ("STILL", 0.28))
    realness: tuple[tuple[str, float], ...] = (("GT", 4.3), ("FULL", 3.2), ("OURS", 3.2), ("WARP", 3.2),
                                               ("BL", 2.6), ("LIPS", 2.9), ("STILL", 2.2))
    default_accuracy: float = 0.45
    default_realness: float = 3.0
    careless: float = 0.15
    repeat_agreement: float = 0.92

    def source_accuracy(self, source: str) -> float:
        return dict(self.accuracy).get(source, self.default_accuracy)

    def source_realness(self, source: str) -> float:
        return dict(self.realness).get(source, self.default_realness)


@dataclass
class SimulationReport:
    participants: int = 0
    completed: int = 0
    careless: int = 0
    answers_acknowledged: int = 0
    refused: list[str] = field(default_factory=list)


class _Http:
    """A tiny JSON client with retries (network errors, 429, 5xx), like the participant page's."""

    def __init__(self, base_url: str, timeout_s: float = 30.0):
        import requests  # optional heavy dependency: loaded only when the platform is called

        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout_s

    def call(self, method: str, path: str, json: Any = None, *, raw: bool = False) -> Any:
        import requests  # optional heavy dependency: loaded only when the platform is called

        for attempt in range(6):
            try:
                resp = self.session.request(method, self.base + path, json=json, timeout=self.timeout)
            except requests.ConnectionError:
                time.sleep(0.2 * 2 ** attempt)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                time.sleep(float(resp.headers.get("Retry-After", 0.2 * 2 ** attempt)))
                continue
            if raw:
                resp.raise_for_status()
                return resp.content
            body = resp.json() if resp.content else {}
            if resp.status_code >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status_code}: {body}")
            return body
        raise RuntimeError(f"{method} {path}: no answer after retries")


def _option(question: dict[str, Any], value: str) -> str:
    values = [o["value"] for o in question["options"]]
    return value if value in values else values[0]


def _answer_task2(q: dict[str, Any], labels: dict[str, Any], rng: random.Random, m: ResponseModel,
                  primary: str | None) -> str:
    visual, audio = labels.get("visual_emotion"), labels.get("audio_emotion")
    offered = [o["value"] for o in q["options"] if o["value"] in EMOTIONS] or list(EMOTIONS)  # a guess among them
    if primary is None:  # the primary question
        u = rng.random()
        pick = visual if u < m.p_visual else audio if u < m.p_visual + m.p_audio else rng.choice(offered)
        return _option(q, pick or rng.choice(offered))
    if rng.random() < m.p_secondary_none:
        return _option(q, "none")
    if primary == visual and audio and audio != visual:
        return _option(q, audio)
    return _option(q, rng.choice([e for e in offered if e != primary] or offered))


def _answer_task1(questions: list[dict[str, Any]], labels: dict[str, Any], rng: random.Random,
                  m: ResponseModel) -> dict[str, Any]:
    source = labels.get("source", "")
    truth = labels.get("visual_emotion") or labels.get("audio_emotion")
    out: dict[str, Any] = {}
    score = min(5, max(1, round(rng.gauss(m.source_realness(source), 0.9))))
    for q in questions:
        opts = q["options"]
        if q["type"] == "scale":
            scored = [o for o in opts if o.get("score") is not None]
            out[q["id"]] = min(scored, key=lambda o: abs(o["score"] - score))["value"] if scored else opts[0]["value"]
        elif q["type"] == "multi":
            exclusive = [o["value"] for o in opts if o.get("exclusive")]
            others = [o["value"] for o in opts if not o.get("exclusive")]
            if score >= 4 and exclusive:
                out[q["id"]] = exclusive[:1]
            else:
                k = 1 if score >= 3 else 2
                out[q["id"]] = sorted(rng.sample(others, min(k, len(others))), key=others.index)
        else:
            if truth and rng.random() < m.source_accuracy(source):
                out[q["id"]] = _option(q, truth)
            else:
                out[q["id"]] = _option(q, rng.choice([e for e in EMOTIONS if e != truth]))
    return out


def _careless(questions: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in questions:
        values = [o["value"] for o in q["options"] if not o.get("exclusive")]
        out[q["id"]] = [rng.choice(values)] if q["type"] == "multi" else rng.choice(values)
    return out


def _pass_screen(http: "_Http", token: str, listening: dict[str, Any], secret_key: str) -> None:
    """Calibrate, fetch each screen sound as a browser would, and answer it right (the simulation knows the
    secret; study_server.participant.listening.expected_answers)."""

    listening = http.call("POST", f"/api/v1/a/{token}/listening/calibrated", {})["listening"]
    screen = listening["screen"]
    right = expected_answers(secret_key, token, screen["kind"], 0, screen["trials"])  # a first block
    while screen["next_trial"] is not None:
        http.call("GET", screen["media_url"], raw=True)
        reply = http.call("POST", f"/api/v1/a/{token}/listening/answer",
                          {"trial": screen["next_trial"], "answer": right[screen["next_trial"]]})
        screen = reply["listening"]["screen"]
    if screen["passed"] is not True:
        raise RuntimeError(f"simulated participant {token[:6]}: headphone screen not passed")


def _consent_body(_state: dict[str, Any], n_statements: int) -> dict[str, Any] | None:
    return {"agree": list(range(n_statements))} if n_statements else None


def _demographics(http: "_Http", token: str, state: dict[str, Any], items: list[dict[str, Any]],
                  rng: random.Random) -> None:
    """Answer the study's questions about the participant: a simulated person prefers not to say."""
    if state.get("demographics") and not state["demographics"]["done"]:
        http.call("POST", f"/api/v1/a/{token}/demographics", {"values": {i["id"]: "prefer_not" for i in items}})


def run_participant(http: _Http, study: str, index: int, *, by_sha: dict[str, dict[str, Any]], secret_key: str,
                    model: ResponseModel, seed: int, task: str, plan_questions: list[dict[str, Any]] | None = None,
                    speed: str = "fast", plan: dict[str, Any] | None = None) -> tuple[int, bool, bool]:
    """One whole session of ``task`` (the plan's study.task; the page does not name it). Returns (answers
    acknowledged, completed, careless).

    The session is marked ``simulated`` right after arrival (signed with the server secret), so exports leave
    it out unless asked. ``speed``: ``real`` waits, after fetching each video, as long as the video lasts plus
    a few seconds per question before answering (the server's evidence of watching then sees a person's
    pace); ``fast`` answers at once, and the server honestly flags those answers ``too_fast``."""

    rng = random.Random(f"{seed}:{study}:{index}")
    # One simulated person per study: the same id in two studies would be excluded as the paper excluded
    # Task 1 workers from Task 2.
    careless = rng.random() < model.careless
    arrival = http.call("POST", f"/api/v1/studies/{study}/arrive", {"query": {"lab": f"sim{seed}-{study}-{index:04d}"}})
    token = arrival["token"]
    http.call("POST", f"/api/v1/a/{token}/simulated", {"signature": simulation_signature(secret_key, token)})
    part = (plan or {}).get("participant") or {}
    n_statements = len((part.get("consent") or {}).get("statements", []))
    http.call("POST", f"/api/v1/a/{token}/start", _consent_body({}, n_statements))
    state = http.call("GET", f"/api/v1/a/{token}")
    demo_items = ((plan or {}).get("demographics") or {}).get("items", [])
    if (state.get("demographics") or {}).get("when") == "after_consent":
        _demographics(http, token, state, demo_items, rng)
    listening = state.get("listening")
    if listening and listening["screen"]["passed"] is None:
        _pass_screen(http, token, listening, secret_key)
    check = state.get("audio_check") or {}
    if check.get("enabled") and not check.get("passed") and (not listening or listening["words"]):
        res = http.call("POST", f"/api/v1/a/{token}/audio-check", {"answer": expected_word(secret_key, token, 0)})
        if not res.get("passed"):
            raise RuntimeError(f"simulated participant {index}: audio check refused")
    questions = state["questions"]
    if plan_questions:  # the plan knows the realness scores, which the page does not send
        by_id = {q["id"]: q for q in plan_questions}
        questions = [by_id.get(q["id"], q) for q in questions]
    seen: dict[str, dict[str, Any]] = {}
    acked = 0
    for item in state["items"]:
        if item["position"] in state.get("answered", []):
            continue
        media = http.call("GET", item["media_url"], raw=True)
        sha = hashlib.sha256(strip_padding(media)).hexdigest()  # the video inside, as a person sees it
        labels = by_sha.get(sha, {})
        rt_ms = int(rng.uniform(800, 4000))
        if speed == "real":  # watch the whole clip, then answer at a person's pace
            _watch(float(labels.get("duration_s") or 2.0) + rt_ms / 1000.0)
        if careless:
            values = _careless(questions, rng)
        elif sha in seen and rng.random() < model.repeat_agreement:
            values = seen[sha]
        elif task == "norming":  # every question of a norming study (stimuli.norming's simulated raters)
            values = {q["id"]: simulated_rating(q, labels, uniform=rng.random, normal=rng.gauss) for q in questions}
        elif task == "av-mismatch" or (task == "factorial" and labels.get("visual_emotion")
                                       and labels.get("audio_emotion")):
            # A factorial study of face and voice: the emotion questions follow visual or audio as in Task 2,
            # the others (scales, choices) are answered as in Task 1.
            values = _answer_task1(questions, labels, rng, model) if task == "factorial" else {}
            primary = None
            for q in questions:
                if task == "factorial" and (q["type"] != "single" or not any(o["value"] in EMOTIONS
                                                                             for o in q["options"])):
                    continue
                values[q["id"]] = _answer_task2(q, labels, rng, model, primary)
                primary = values[q["id"]] if primary is None else primary
        else:
            values = _answer_task1(questions, labels, rng, model)
        seen.setdefault(sha, values)
        http.call("POST", f"/api/v1/a/{token}/answers", {
            "answer_id": f"sim-{token[:24]}-{item['position']:03d}", "position": item["position"],
            "values": values, "rt_ms": rt_ms, "played_fraction": 1.0})
        acked += 1
    if (state.get("demographics") or {}).get("when") == "end":
        _demographics(http, token, state, demo_items, rng)
    done = http.call("POST", f"/api/v1/a/{token}/complete")
    return acked, done.get("status") == "completed", careless


def simulate(base_url: str, study: str, n: int, *, manifest_rows: list[dict[str, Any]], secret_key: str,
             task: str, plan_questions: list[dict[str, Any]] | None = None,
             model: ResponseModel = ResponseModel(), seed: int = 0, workers: int = 4,
             on_done: Callable[[], None] | None = None, speed: str = "fast",
             plan: dict[str, Any] | None = None) -> SimulationReport:
    """Send ``n`` simulated participants through ``study`` (of ``task``: emotion-realness or av-mismatch) on
    the server at ``base_url``.

    ``plan_questions`` (the plan's ``questions``) give the realness scores of the options; without them a
    scale answer falls back to the first option. ``plan`` (the whole plan) lets the participant agree to every
    consent statement and answer the demographic items; ``speed``: see ``run_participant``."""
    if speed not in SPEEDS:
        raise ValueError(f"speed {speed!r}: use one of {', '.join(SPEEDS)}")
    by_sha = {r["sha256"]: r for r in manifest_rows}
    http = _Http(base_url)
    report = SimulationReport()

    def one(i: int) -> tuple[int, bool, bool] | str:
        try:
            return run_participant(http, study, i, by_sha=by_sha, secret_key=secret_key, model=model, seed=seed,
                                   task=task, plan_questions=plan_questions, speed=speed, plan=plan)
        except RuntimeError as exc:
            return str(exc)
        finally:
            if on_done is not None:
                on_done()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(one, range(n)):
            report.participants += 1
            if isinstance(result, str):
                report.refused.append(result)
                continue
            acked, completed, careless = result
            report.answers_acknowledged += acked
            report.completed += int(completed)
            report.careless += int(careless)
    return report
