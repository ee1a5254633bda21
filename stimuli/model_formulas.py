"""The regression models of the analysis, written once: ``analysis.models`` fits them from these
definitions (response, fixed terms, random-intercept grouping columns) and ``emostudy export --format
psych-ds`` writes the same formulas into the export's ``analysis/analysis.R`` (lme4 / ordinal), so the two
can never drift apart. Column names are those of the export's answers file (docs/contracts.md, section 4).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFormula:
    """``response ~ fixed + (1 | random[0]) + ...`` in the syntax shared by lme4, ordinal and our report.

    response: a column the analysis derives (``correct``) or reads (``score``); fixed: columns entered as
    treatment-coded factors (reference level chosen by the analysis); random: grouping columns, each with a
    random intercept (crossed, not nested).
    """

    name: str
    response: str
    fixed: tuple[str, ...]
    random: tuple[str, ...] = ()

    @property
    def formula(self) -> str:
        """The formula text, e.g. ``correct ~ source + (1 | participant) + (1 | stimulus_id)``."""
        terms = list(self.fixed) + [f"(1 | {g})" for g in self.random]
        return f"{self.response} ~ {' + '.join(terms) if terms else '1'}"


CORRECTNESS_MIXED_LOGIT = ModelFormula("correctness_mixed_logit", "correct", ("source",),
                                       ("participant", "stimulus_id"))
"""Mixed-effects logistic regression of correctness (answer == shown emotion) on source (binomial, logit)."""

REALNESS_ORDINAL = ModelFormula("realness_ordinal", "score", ("source",))
"""Proportional-odds (cumulative logit) model of the realness score on source."""

MODELS = (CORRECTNESS_MIXED_LOGIT, REALNESS_ORDINAL)

TIE_RTOL = 1e-10
"""The tie rule of the signed-rank tests, shared by ``analysis.stats.snap_ties`` and the export's
``analysis/analysis.R`` (which writes the same function in R with this value): two |d| whose gap is at most
``TIE_RTOL`` times the larger are one value, and |d| <= ``TIE_RTOL`` * max|d| is a zero. Float noise of a
few operations is ~1e-16 relative; two distinct ratios of integers below 10^5 differ by more than 1e-10, so
no real difference is merged."""


def design_scale_formula(question: str, factors: tuple[str, ...]) -> ModelFormula:
    """The mixed model of a scale question in a design of one's own: the score on the design's crossed
    factors and all their interactions (treatment coded), crossed random intercepts for participant and item
    (``stimulus_id``). ``factors`` are answer columns (source, visual_emotion, audio_emotion, identity, ...)."""
    from itertools import combinations

    fixed = tuple(":".join(c) for k in range(1, len(factors) + 1) for c in combinations(factors, k))
    return ModelFormula(f"scale_mixed_{question}", "score", fixed, ("participant", "stimulus_id"))
