"""Simulated exports: a plausible study (plan + manifest + answers + participants) for tests, benchmarks
and the demo.

:func:`make_plan` builds a plan-like dict (the fields of docs/contracts.md section 3 the analysis reads)
and the manifest rows for the paper's Task 1 (GT/BL/OURS, emotion + realness + aspects) or Task 2
(mismatched audio/visual emotions, primary + secondary label). :func:`simulate_export` makes answers
for any plan-like dict (a real compiled plan too) and writes an export folder in the format of
docs/contracts.md section 4. The simulated server's verdicts are computed here, independently of
``analysis.cleaning`` (a deliberately separate, loop-based implementation of the same rules).

Everything is a pure function of the arguments and ``random_state``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from stimuli.emotions import EMOTIONS
from stimuli.manifest import atomic_write_bytes

TASK1_QUESTIONS: list[dict[str, Any]] = [
    {"id": "emotion", "type": "single", "prompt": "Which emotion is primarily expressed by the person?",
     "options": [{"value": e, "label": e.capitalize(), "score": None, "exclusive": False} for e in EMOTIONS],
     "required": True},
    {"id": "realness", "type": "scale", "prompt": "How realistic is the video?",
     "options": [{"value": v, "label": lab, "score": s, "exclusive": False} for v, lab, s in (
         ("definitely_real", "Definitely real", 5), ("somewhat_real", "Somewhat real", 4),
         ("neutral", "Neutral", 3), ("somewhat_unreal", "Somewhat unreal", 2),
         ("definitely_unreal", "Definitely unreal", 1))],
     "required": True},
    {"id": "aspects", "type": "multi", "prompt": "Which aspect(s) can be improved to make the video more real?",
     "options": [{"value": v, "label": lab, "score": None, "exclusive": v == "none"} for v, lab in (
         ("none", "None"), ("image_quality", "Image quality"), ("lip_sync", "Lip synchronization"),
         ("head_movement", "Head movement"), ("other", "Other"))],
     "required": True},
]
TASK2_QUESTIONS: list[dict[str, Any]] = [
    {"id": "primary", "type": "single", "prompt": "Which is the primary emotion expressed by the person?",
     "options": [{"value": e, "label": e.capitalize(), "score": None, "exclusive": False} for e in EMOTIONS],
     "required": True},
    {"id": "secondary", "type": "single", "prompt": "Which is the secondary emotion expressed by the person?",
     "options": [{"value": e, "label": e.capitalize(), "score": None, "exclusive": False} for e in EMOTIONS]
     + [{"value": "none", "label": "None", "score": None, "exclusive": True}],
     "required": True},
]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stimulus(sid: str, source: str, visual: str, audio: str, identity: str, sentence: str,
              size_variant: str | None = None) -> dict[str, Any]:
    return {"stimulus_id": sid, "media": f"media/{sid}.mp4", "sha256": _sha(sid), "duration_s": 2.5,
            "fps": 25.0, "width": 96 if size_variant == "96x128" else 128, "height": 128, "audio_rate": 8000,
            "source": source, "visual_emotion": visual, "audio_emotion": audio, "identity": identity,
            "sentence": sentence, "intensity": "XX", "size_variant": size_variant,
            "provenance": {"backend": "recording" if source == "GT" else "simulated"}}


def make_plan(task: str = "emotion-realness", *, n_batches: int = 6, random_state: int = 0,
              sources: Sequence[str] = ("GT", "BL", "OURS"), per_source: int = 5,
              n_pairs_repeated: int = 2) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A plan-like dict and its manifest rows, shaped like the paper's study.

    Task 1 (``emotion-realness``): per batch ``per_source`` items of each source and one repeat per
    source (the paper: 5 GT + 5 BL + 5 OURS + 3 repeats = 18). Task 2 (``av-mismatch``): 2 videos of
    each of the 36 (visual, audio) pairs split evenly over the batches, ``n_pairs_repeated`` repeats per batch.
    """
    rng = np.random.default_rng(random_state)
    stimuli: list[dict[str, Any]] = []
    batches = []
    if task == "emotion-realness":
        questions = TASK1_QUESTIONS
        consistency = {"max_inconsistent": 5, "rules": [
            {"question": "emotion", "kind": "equal", "tolerance": 0},
            {"question": "realness", "kind": "max_abs_diff", "tolerance": 1},
            {"question": "aspects", "kind": "max_set_diff", "tolerance": 1}]}
        for b in range(n_batches):
            chosen = []
            for s in sources:
                for k in range(per_source):
                    emo = EMOTIONS[(b * per_source + k) % len(EMOTIONS)]
                    ident, sent = f"id{(b * 7 + k) % 12:02d}", f"S{(b + 3 * k) % 10:02d}"
                    size = (("128x128", "96x128")[k % 2]) if s == "GT" else ("96x128" if s == "BL" else "128x128")
                    sid = f"{s.lower()}-{b:02d}-{k}"
                    stimuli.append(_stimulus(sid, s, emo, emo, ident, sent, size))
                    chosen.append(sid)
            order = list(rng.permutation(len(chosen)))
            items = [{"position": p, "stimulus_id": chosen[i], "repeat_of": None} for p, i in enumerate(order)]
            for s_i, s in enumerate(sources):
                first = next(it for it in items if it["stimulus_id"].startswith(f"{s.lower()}-"))
                items.append({"position": len(items), "stimulus_id": first["stimulus_id"],
                              "repeat_of": first["position"]})
            batches.append({"batch_id": f"b{b + 1:02d}", "index": b, "items": items})
    elif task == "av-mismatch":
        questions = TASK2_QUESTIONS
        consistency = {"max_inconsistent": 2, "rules": [
            {"question": "primary", "kind": "equal", "tolerance": 0},
            {"question": "secondary", "kind": "equal", "tolerance": 0}]}
        pairs = [(v, a, r) for v in EMOTIONS for a in EMOTIONS for r in range(2)]
        for v, a, r in pairs:
            stimuli.append(_stimulus(f"ours-{v[:3]}-{a[:3]}-{r}", "OURS", v, a, f"id{r:02d}", f"S{len(stimuli) % 10:02d}"))
        order = rng.permutation(len(stimuli))
        per = len(stimuli) // n_batches
        if per == 0:
            raise ValueError(f"{len(stimuli)} videos cannot fill {n_batches} batches; use at most {len(stimuli)}")
        for b in range(n_batches):
            chosen = [stimuli[i]["stimulus_id"] for i in order[b * per:(b + 1) * per]]
            items = [{"position": p, "stimulus_id": sid, "repeat_of": None} for p, sid in enumerate(chosen)]
            for k in range(min(n_pairs_repeated, len(items))):
                items.append({"position": len(items), "stimulus_id": items[k]["stimulus_id"], "repeat_of": k})
            batches.append({"batch_id": f"b{b + 1:02d}", "index": b, "items": items})
    else:
        raise ValueError(f"unknown task {task!r}: use emotion-realness or av-mismatch")
    plan = {"schema_version": 1,
            "study": {"name": f"sim-{task}", "title": f"Simulated {task}", "task": task, "description": "",
                      "instructions": "", "exclude_studies": []},
            "design": {"n_batches": n_batches},
            "questions": questions, "consistency": consistency, "quota_per_batch": 10,
            "payment": {"reward_usd": 1.0, "bonus": {"rule": "none"}}, "audio_check": {"enabled": False},
            "examples": [], "batches": batches, "seed": random_state,
            "spec_sha256": _sha("spec"), "manifest_sha256": _sha("manifest"), "set_name": f"sim-{task}"}
    return plan, stimuli


@dataclass
class Behaviour:
    """How simulated participants answer.

    accuracy: probability of the true (visual) emotion per source in Task 1; errors go to ``neutral``
    with probability ``neutral_bias`` (the paper's baseline pattern), otherwise uniformly.
    realness_mean: mean realness score (1..5) per source. visual_weight/audio_weight: Task 2 probabilities
    that the primary label is the visual/audio emotion. consistency: probability that a valid participant
    repeats an answer. careless: fraction of participants who answer at random (most get rejected);
    dropout: fraction who stop half way (incomplete).
    """

    accuracy: Mapping[str, float] = field(default_factory=lambda: {"GT": 0.59, "BL": 0.29, "OURS": 0.55})
    neutral_bias: Mapping[str, float] = field(default_factory=lambda: {"GT": 0.2, "BL": 0.6, "OURS": 0.2})
    realness_mean: Mapping[str, float] = field(default_factory=lambda: {"GT": 3.94, "BL": 3.71, "OURS": 3.81})
    visual_weight: float = 0.35
    audio_weight: float = 0.25
    secondary_rate: float = 0.5
    consistency: float = 0.9
    careless: float = 0.08
    dropout: float = 0.03
    participant_sd: float = 0.5


def _score_probs(mean: float) -> np.ndarray:
    """A discrete distribution on 1..5 with the given mean (a discretised, clipped normal, sd 1)."""
    grid = np.arange(1, 6, dtype=float)
    best = None
    for centre in np.linspace(-1, 7, 321):
        w = np.exp(-0.5 * (grid - centre) ** 2)
        w /= w.sum()
        err = abs(float((w * grid).sum()) - mean)
        if best is None or err < best[0]:
            best = (err, w)
    return best[1]


def _server_verdict(answers: dict[tuple[int, str], str], items: list[dict[str, Any]], plan: Mapping[str, Any],
                    scores: dict[str, dict[str, float]], complete: bool) -> tuple[str, int, int]:
    """The simulated server's verdict: loops over repeats and rules (independent of analysis.cleaning)."""
    if not complete:
        return "incomplete", 0, 0
    n_bad = n_all = 0
    for it in items:
        if it["repeat_of"] is None:
            continue
        for rule in plan["consistency"]["rules"]:
            q = rule["question"]
            a, b = answers.get((it["position"], q), ""), answers.get((it["repeat_of"], q), "")
            n_all += 1
            if rule["kind"] == "equal":
                bad = a != b
            elif rule["kind"] == "max_abs_diff":
                bad = abs(scores[q][a] - scores[q][b]) > rule["tolerance"]
            else:
                sa = set(a.split(";")) if a else set()
                sb = set(b.split(";")) if b else set()
                bad = len(sa ^ sb) > rule["tolerance"]
            n_bad += bad
    verdict = "rejected" if n_bad > plan["consistency"]["max_inconsistent"] else "valid"
    return verdict, n_bad, n_all


def simulate_answers(plan: Mapping[str, Any], stimuli: Sequence[Mapping[str, Any]], *,
                     participants_per_batch: int = 10, behaviour: Behaviour | None = None,
                     random_state: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of answers.csv and participants.csv for ``participants_per_batch`` surveys per batch (plus the
    careless and dropped-out ones, who are extra surveys as on a crowd-sourcing platform)."""
    beh = behaviour or Behaviour()
    rng = np.random.default_rng(random_state)
    by_id = {s["stimulus_id"]: s for s in stimuli}
    questions = {q["id"]: q for q in plan["questions"]}
    scores = {qid: {o["value"]: o["score"] for o in q["options"]} for qid, q in questions.items()
              if q["type"] == "scale"}
    task = plan["study"]["task"]
    answer_rows: list[dict[str, Any]] = []
    part_rows: list[dict[str, Any]] = []
    n_answer = 0
    probs_cache: dict[str, np.ndarray] = {}
    t0 = np.datetime64("2026-01-05T12:00:00")
    for batch in plan["batches"]:
        n_surveys = participants_per_batch + int(round(participants_per_batch * (beh.careless + beh.dropout))) + 1
        for k in range(n_surveys):
            u = rng.random()
            kind = "careless" if u < beh.careless else ("dropout" if u < beh.careless + beh.dropout else "ok")
            worker = f"{batch['batch_id']}-w{k}-{random_state}"
            participant = hashlib.sha256(worker.encode()).hexdigest()[:16]
            assignment = f"a-{batch['batch_id']}-{k}"
            ability = rng.normal(0, beh.participant_sd)
            items = batch["items"]
            n_items = len(items) if kind != "dropout" else len(items) // 2
            given: dict[tuple[int, str], str] = {}
            for it in items[:n_items]:
                stim = by_id[it["stimulus_id"]]
                source = stim["source"]
                orig = it["repeat_of"]
                for qid, q in questions.items():
                    if orig is not None and (orig, qid) in given and (kind == "ok" and rng.random() < beh.consistency):
                        value = given[(orig, qid)]
                    else:
                        value = _answer(rng, task, qid, q, stim, source, beh, ability, kind, probs_cache, given,
                                        it["position"])
                    given[(it["position"], qid)] = value
                    score = scores[qid][value] if qid in scores else ""
                    n_answer += 1
                    answer_rows.append({
                        "answer_id": f"ans-{random_state}-{assignment}-{it['position']}",
                        "study": plan["study"]["name"], "task": task,
                        "batch_id": batch["batch_id"], "participant": participant, "assignment": assignment,
                        "position": it["position"], "is_repeat": int(orig is not None),
                        "repeat_of": "" if orig is None else orig, "stimulus_id": stim["stimulus_id"],
                        "source": source, "visual_emotion": stim["visual_emotion"] or "",
                        "audio_emotion": stim["audio_emotion"] or "", "identity": stim["identity"],
                        "sentence": stim["sentence"], "intensity": stim.get("intensity") or "",
                        "size_variant": stim.get("size_variant") or "", "question": qid, "answer": value,
                        "score": score, "rt_ms": int(rng.gamma(4.0, 600.0)),
                        "played_fraction": 1.0,
                        "answered_at": str(t0 + np.timedelta64(n_answer * 7, "s")) + "Z", "verdict": ""})
            complete = n_items == len(items)
            verdict, n_bad, n_all = _server_verdict(given, items, plan, scores, complete)
            for row in answer_rows[len(answer_rows) - n_items * len(questions):]:
                row["verdict"] = verdict
            part_rows.append({
                "participant": participant, "assignment": assignment, "batch_id": batch["batch_id"],
                "platform": "lab", "status": "completed" if complete else "abandoned",
                "allocated_at": str(t0) + "Z", "started_at": str(t0) + "Z",
                "completed_at": str(t0) + "Z" if complete else "", "verdict": verdict,
                "n_inconsistent": n_bad, "n_repeat_answers": n_all, "audio_check_passed": "",
                "n_answers": n_items * len(questions)})
    return answer_rows, part_rows


def _answer(rng, task, qid, q, stim, source, beh: Behaviour, ability, kind, cache, given, position) -> str:
    values = [o["value"] for o in q["options"]]
    if kind == "careless":
        if q["type"] == "multi":
            picks = [v for v in values if v != "none" and rng.random() < 0.3]
            return ";".join(picks) if picks else "none"
        return values[int(rng.integers(len(values)))]
    if task == "norming":  # the model is stimuli.norming's, shared with the server's simulated participants
        from stimuli.norming import simulated_rating

        return simulated_rating(q, stim, uniform=rng.random, normal=rng.normal, ability=ability)
    if task == "emotion-realness":
        if qid == "emotion":
            p = float(np.clip(beh.accuracy.get(source, 0.4) + 0.1 * ability, 0.02, 0.98))
            truth = stim["visual_emotion"]
            if rng.random() < p:
                return truth
            if truth != "neutral" and rng.random() < beh.neutral_bias.get(source, 0.2):
                return "neutral"
            others = [e for e in EMOTIONS if e != truth]
            return others[int(rng.integers(len(others)))]
        if qid == "realness":
            mean = float(np.clip(beh.realness_mean.get(source, 3.5) + 0.3 * ability, 1.2, 4.8))
            key = f"{mean:.2f}"
            if key not in cache:
                cache[key] = _score_probs(mean)
            score = int(rng.choice(np.arange(1, 6), p=cache[key]))
            by_score = {o["score"]: o["value"] for o in q["options"]}
            return by_score[score]
        if qid == "aspects":
            realness = given.get((position, "realness"), "neutral")
            p_none = {"definitely_real": 0.7, "somewhat_real": 0.45}.get(realness, 0.15)
            if rng.random() < p_none:
                return "none"
            weights = {"image_quality": 0.5, "lip_sync": 0.35 if source == "BL" else 0.25,
                       "head_movement": 0.3, "other": 0.1}
            picks = [v for v in values if v in weights and rng.random() < weights[v]]
            return ";".join(picks) if picks else "image_quality"
    else:
        if qid == "primary":
            u = rng.random()
            if u < beh.visual_weight:
                return stim["visual_emotion"]
            if u < beh.visual_weight + beh.audio_weight:
                return stim["audio_emotion"]
            return EMOTIONS[int(rng.integers(len(EMOTIONS)))]
        if qid == "secondary":
            if rng.random() >= beh.secondary_rate:
                return "none"
            primary = given.get((position, "primary"))
            other = stim["audio_emotion"] if primary == stim["visual_emotion"] else stim["visual_emotion"]
            if rng.random() < 0.5:
                return other
            return EMOTIONS[int(rng.integers(len(EMOTIONS)))]
    return values[int(rng.integers(len(values)))]


def _csv_bytes(rows: list[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode()


def write_export(out_dir: str | Path, plan: Mapping[str, Any], stimuli: Sequence[Mapping[str, Any]],
                 answer_rows: list[dict[str, Any]], participant_rows: list[dict[str, Any]]) -> Path:
    """Write an export folder (answers.csv, participants.csv, plan.json, manifest.json)."""
    from analysis.io import ANSWER_COLUMNS, PARTICIPANT_COLUMNS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "answers.csv", _csv_bytes(answer_rows, ANSWER_COLUMNS))
    atomic_write_bytes(out / "participants.csv", _csv_bytes(participant_rows, PARTICIPANT_COLUMNS))
    atomic_write_bytes(out / "plan.json", (json.dumps(plan, indent=1, sort_keys=True) + "\n").encode())
    manifest = {"schema_version": 1, "name": plan.get("set_name", "sim"), "description": "simulated",
                "stimuli": list(stimuli)}
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return out


def simulate_export(out_dir: str | Path, task: str = "emotion-realness", *, plan: Mapping[str, Any] | None = None,
                    stimuli: Sequence[Mapping[str, Any]] | None = None, n_batches: int = 6,
                    participants_per_batch: int = 10, behaviour: Behaviour | None = None,
                    random_state: int = 0) -> Path:
    """Write a simulated export folder; with ``plan``/``stimuli`` given (a real compiled plan and its
    manifest rows), answers are simulated for that plan.

    Examples
    --------
    >>> path = simulate_export("/tmp/sim-export", "emotion-realness", participants_per_batch=3)  # doctest: +SKIP
    """
    if plan is None or stimuli is None:
        plan, stimuli = make_plan(task, n_batches=n_batches, random_state=random_state)
    rows, parts = simulate_answers(plan, stimuli, participants_per_batch=participants_per_batch,
                                   behaviour=behaviour, random_state=random_state)
    return write_export(out_dir, plan, stimuli, rows, parts)
