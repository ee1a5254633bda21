"""Simulated raters of a norming study (``emostudy plan --spec norming``), for tests and the demo.

Each clip has a *clarity* in [0.3, 0.95], a pure function of its sha256, so that some clips are recognised
and some are not: a rater picks the intended emotion with probability clarity (plus a rater effect), else
``other`` with probability ``p_other`` when offered, else another offered emotion at random. Intensity rises
with clarity; genuineness is centred at 4; valence and arousal have a typical mean per emotion (our
round numbers, in the spirit of published SAM norms: happiness pleasant, sadness calm and unpleasant, anger
and fear excited). Scale answers are rounded normals clipped to the question's scores.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import numpy as np

VALENCE = {"anger": 2.8, "disgust": 3.0, "fear": 3.0, "happiness": 7.2, "neutral": 5.0, "sadness": 2.6}
AROUSAL = {"anger": 7.0, "disgust": 5.0, "fear": 6.6, "happiness": 6.0, "neutral": 3.0, "sadness": 3.2}
P_OTHER = 0.3


def clarity(stimulus: Mapping[str, Any]) -> float:
    """How recognisable a simulated clip is: 0.3 .. 0.95, from its sha256 (the same clip, the same clarity)."""
    u = int(hashlib.sha256(str(stimulus["sha256"]).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 0.3 + 0.65 * u


def rate(rng: np.random.Generator, question: Mapping[str, Any], stimulus: Mapping[str, Any], ability: float) -> str:
    """One attentive rater's answer (an option value) to one question about one clip."""
    values = [o["value"] for o in question["options"]]
    truth = stimulus.get("visual_emotion") or stimulus.get("audio_emotion")
    c = clarity(stimulus)
    if question["type"] != "scale":
        if truth in values and rng.random() < float(np.clip(c + 0.1 * ability, 0.02, 0.98)):
            return truth
        if "other" in values and rng.random() < P_OTHER:
            return "other"
        wrong = [v for v in values if v not in (truth, "other")]
        return wrong[int(rng.integers(len(wrong)))] if wrong else values[0]
    scored = {o["score"]: o["value"] for o in question["options"]}
    lo, hi = min(scored), max(scored)
    qid = question["id"]
    if qid == "valence":
        mean = VALENCE.get(truth, (lo + hi) / 2)
    elif qid == "arousal":
        mean = AROUSAL.get(truth, (lo + hi) / 2)
    elif qid == "intensity":
        mean = lo + (hi - lo) * (c - 0.1)
    else:
        mean = (lo + hi) / 2 + 0.5 * ability
    score = int(np.clip(round(rng.normal(mean, 1.1)), lo, hi))
    return scored.get(score, scored[min(scored, key=lambda s: abs(s - score))])
