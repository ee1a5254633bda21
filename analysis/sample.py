"""The sample description sentence of the report, from the demographic columns of participants.csv
(``demo_*``, written when the study's spec asks ``[demographics]``; docs/data-dictionary.md).

``sample_description(participants, assignments)`` -> e.g. "40 participants (M age = 27.4 years, SD = 6.1,
n = 38 who gave it; 21 women, 17 men, 1 non-binary, 1 in their own words, 0 preferred not to say)"; None
when the export has no demographic columns. Age bands are counted per band instead of a mean.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from stimuli.demographics import AGE_BANDS, PREFER_NOT

_GENDER_WORDS = (("woman", "women"), ("man", "men"), ("non_binary", "non-binary"))


def sample_description(participants: pd.DataFrame | None, assignments: Iterable[str]) -> str | None:
    """The sentence for the participants of ``assignments`` (the analysed sample), or None without demographics."""
    if participants is None or not any(str(c).startswith("demo_") for c in participants.columns):
        return None
    keep = {str(a) for a in assignments}
    p = participants[participants["assignment"].astype(str).isin(keep)]
    n = len(p)
    parts: list[str] = []
    if "demo_age" in p.columns:
        ages = p["demo_age"].astype(str)
        years = pd.to_numeric(ages, errors="coerce").dropna()
        if len(years):
            sd = f"{years.std(ddof=1):.1f}" if len(years) > 1 else "n/a"
            parts.append(f"M age = {years.mean():.1f} years, SD = {sd}, n = {len(years)} who gave it")
        bands = [f"{(ages == b).sum()} aged {b}" for b in AGE_BANDS if (ages == b).any()]
        if bands:
            parts.append(", ".join(bands))
        if (ages == PREFER_NOT).any():
            parts.append(f"{(ages == PREFER_NOT).sum()} preferred not to give their age")
    if "demo_gender" in p.columns:
        g = p["demo_gender"].astype(str)
        words = [f"{(g == value).sum()} {word}" for value, word in _GENDER_WORDS]
        words.append(f"{g.str.startswith('self:').sum()} in their own words")
        words.append(f"{(g == PREFER_NOT).sum()} preferred not to say")
        parts.append(", ".join(words))
    return f"{n} participants" + (f" ({'; '.join(parts)})" if parts else "")
