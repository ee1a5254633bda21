"""The report's sample sentence from participants.csv's demographic columns (issue 28). Values by hand."""

from __future__ import annotations

import pandas as pd

from analysis.sample import sample_description


def _parts(rows):
    return pd.DataFrame(rows, columns=["assignment", "demo_age", "demo_gender"]).astype(str)


def test_mean_sd_and_counts_of_the_analysed_sample_only():
    parts = _parts([("1", "20", "woman"), ("2", "30", "man"), ("3", "prefer_not", "self:agender"),
                    ("4", "40", "woman"), ("5", "99", "man")])  # 5 is not in the analysed sample
    text = sample_description(parts, ["1", "2", "3", "4"])
    # ages 20, 30, 40: mean 30, SD sqrt(((-10)^2 + 0 + 10^2) / 2) = 10
    assert text == ("4 participants (M age = 30.0 years, SD = 10.0, n = 3 who gave it; 1 preferred not to give "
                    "their age; 2 women, 1 men, 0 non-binary, 1 in their own words, 0 preferred not to say)")


def test_bands_and_no_demographics():
    parts = _parts([("1", "18-24", "prefer_not"), ("2", "18-24", "non_binary"), ("3", "65+", "woman")])
    assert sample_description(parts, ["1", "2", "3"]) == (
        "3 participants (2 aged 18-24, 1 aged 65+; 1 women, 0 men, 1 non-binary, 0 in their own words, "
        "1 preferred not to say)")
    assert sample_description(pd.DataFrame({"assignment": ["1"]}), ["1"]) is None
    assert sample_description(None, []) is None
