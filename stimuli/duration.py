"""The expected duration of a study for one participant, computed once from the plan and the clips' lengths.

One number for every place that states it: the consent page, the recruiting post (Prolific's
estimated completion time and its minimum-pay check) and the admin page, where it is set beside the
measured median. The parts, for the longest batch (a participant takes one batch):

- reading: the consent text and the instructions at ``READING_WPM`` words a minute, plus ``PAGE_S`` a page;
- listening checks: the volume calibration, each headphone-screen trial, the spoken-word check;
- examples: each example clip's length plus ``PER_CLIP_S`` (loading, pressing Play);
- trials: each clip's length plus ``PER_CLIP_S``, plus ``PER_ANSWER_S`` per question.

The constants are estimates (stated here, not measured); the admin page shows how the real median compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

READING_WPM = 200
PAGE_S = 10.0
PER_CLIP_S = 3.0
PER_ANSWER_S = 5.0
CALIBRATION_S = 30.0
SCREEN_TRIAL_S = 10.0
WORD_CHECK_S = 20.0
UNKNOWN_CLIP_S = 4.0  # a clip whose length the set does not give


@dataclass(frozen=True)
class Duration:
    reading_s: float
    checks_s: float
    examples_s: float
    trials_s: float

    @property
    def total_s(self) -> float:
        return self.reading_s + self.checks_s + self.examples_s + self.trials_s

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.total_s / 60.0))


def _words(text: str) -> int:
    return len(text.split())


def expected_duration(plan: dict[str, Any], clip_seconds: Mapping[str, float | None]) -> Duration:
    """The expected time of one participant (the longest batch). ``clip_seconds``: stimulus id -> length."""
    def clip(sid: str) -> float:
        v = clip_seconds.get(sid)
        return float(v) if v else UNKNOWN_CLIP_S

    part = plan.get("participant") or {}
    text = " ".join([part.get("intro", ""), part.get("instructions", ""),
                     (part.get("consent") or {}).get("text", ""),
                     *((part.get("consent") or {}).get("statements", []))])
    reading = 3 * PAGE_S + _words(text) / READING_WPM * 60.0
    ac = plan.get("audio_check") or {}
    checks = 0.0
    if ac.get("enabled"):
        kind = ac.get("kind", "words")
        if kind != "words":
            checks += CALIBRATION_S + SCREEN_TRIAL_S * int(ac.get("trials", 6))
        if kind in ("words", "huggins+words"):
            checks += WORD_CHECK_S
    examples = sum(clip(e["stimulus_id"]) + PER_CLIP_S for e in plan.get("examples", []))
    n_questions = len(plan.get("questions", []))
    trials = max((sum(clip(i["stimulus_id"]) + PER_CLIP_S + n_questions * PER_ANSWER_S for i in b["items"])
                  for b in plan.get("batches", [])), default=0.0)
    return Duration(reading_s=reading, checks_s=checks, examples_s=examples, trials_s=trials)


__all__ = ["Duration", "expected_duration", "READING_WPM", "PER_ANSWER_S", "PER_CLIP_S"]
