"""Task 2 of the paper (Section IV-D): primary/secondary labels of videos whose visual and audio emotions
may differ. Which modality do people follow?

Inputs are the long-form answers of :func:`analysis.cleaning.clean`; the functions first pivot them to
one row per response (participant x video) with a ``primary`` and a ``secondary`` column. The secondary
answer ``none`` means a single label; a secondary equal to the primary adds no second label (it is
counted once, and reported in ``n_secondary_equal_primary``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.cleaning import responses
from analysis.confusion import confusion_matrix
from analysis.stats import Alternative, ZeroMethod, wilcoxon_signed_rank
from stimuli.emotions import EMOTIONS

MODALITIES = {"visual": "visual_emotion", "audio": "audio_emotion"}


def label_responses(answers: pd.DataFrame, *, primary: str = "primary",
                    secondary: str | None = "secondary") -> pd.DataFrame:
    """One row per response with columns primary, secondary, mismatched (visual != audio), and for each
    modality m in (visual, audio): primary_match_m, either_match_m (primary or secondary matches).
    ``secondary`` None: a study with one label per video (the secondary column is empty)."""
    if secondary is None:
        r = responses(answers, [primary]).rename(columns={primary: "primary"})
        r["secondary"] = ""
    else:
        r = responses(answers, [primary, secondary]).rename(columns={primary: "primary", secondary: "secondary"})
    r = r[r["primary"] != ""].copy()
    r["mismatched"] = r["visual_emotion"] != r["audio_emotion"]
    sec = r["secondary"].where(~r["secondary"].isin(["", "none"]), "")
    r["two_labels"] = (sec != "") & (sec != r["primary"])
    for m, col in MODALITIES.items():
        r[f"primary_match_{m}"] = r["primary"] == r[col]
        r[f"either_match_{m}"] = r[f"primary_match_{m}"] | ((sec != "") & (sec == r[col]))
    return r.reset_index(drop=True)


def primary_confusions(resp: pd.DataFrame, labels: list[str] | None = None) -> pd.DataFrame:
    """Primary label against the visual emotion and against the audio emotion (Fig. 8): the tidy
    confusion matrices with a ``reference`` column (visual / audio), over ``labels`` (the emotions the
    question offered; default the six)."""
    frames = []
    for m, col in MODALITIES.items():
        cm = confusion_matrix(resp, truth=col, answer="primary", labels=list(labels or EMOTIONS))
        cm.insert(0, "reference", m)
        frames.append(cm)
    return pd.concat(frames, ignore_index=True)


def match_fractions(resp: pd.DataFrame) -> pd.DataFrame:
    """Fractions of responses whose label matches the visual / the audio emotion.

    Rows for subset in (all, mismatched) x counting in (primary, primary_or_secondary, all_labels) x
    modality in (visual, audio). ``primary``: the primary label matches; ``primary_or_secondary``: the
    primary or the secondary label matches (per response); ``all_labels``: every label given (primary plus
    a distinct non-none secondary) is one trial, the fraction of labels that match.
    Columns subset, counting, modality, n, n_match, fraction.
    """
    rows = []
    for subset, sel in (("all", np.ones(len(resp), dtype=bool)), ("mismatched", resp["mismatched"].to_numpy())):
        s = resp[sel]
        for m, col in MODALITIES.items():
            n = int(len(s))
            k1 = int(s[f"primary_match_{m}"].sum())
            k2 = int(s[f"either_match_{m}"].sum())
            n_labels = n + int(s["two_labels"].sum())
            k3 = k1 + int((s["two_labels"] & (s["secondary"] == s[col])).sum())
            for counting, nn, kk in (("primary", n, k1), ("primary_or_secondary", n, k2), ("all_labels", n_labels, k3)):
                rows.append({"subset": subset, "counting": counting, "modality": m, "n": nn, "n_match": kk,
                             "fraction": kk / nn if nn else float("nan")})
    return pd.DataFrame(rows, columns=["subset", "counting", "modality", "n", "n_match", "fraction"])


def label_counts(resp: pd.DataFrame) -> dict[str, int]:
    """How many responses got two labels (the paper: 426 of 840), and the special cases."""
    sec = resp["secondary"]
    return {"n_responses": int(len(resp)), "n_two_labels": int(resp["two_labels"].sum()),
            "n_secondary_none": int((sec == "none").sum()),
            "n_secondary_equal_primary": int((sec == resp["primary"]).sum()),
            "n_mismatched": int(resp["mismatched"].sum())}


def dominance_per_participant(resp: pd.DataFrame, *, subset: str = "mismatched",
                              counting: str = "primary") -> pd.DataFrame:
    """Per participant: the fraction of responses matching the visual and the audio emotion and their
    difference (visual - audio). Columns participant, n, visual, audio, diff."""
    s = resp[resp["mismatched"]] if subset == "mismatched" else resp
    key = "primary_match" if counting == "primary" else "either_match"
    g = s.groupby("participant")
    n = g.size()
    k_visual = g[f"{key}_visual"].sum().astype(np.int64)
    k_audio = g[f"{key}_audio"].sum().astype(np.int64)
    out = pd.DataFrame({"n": n, "visual": k_visual / n, "audio": k_audio / n})
    # (k_v - k_a) / n: exact integers and one correctly rounded division, so equal fractions are equal floats
    # (visual - audio as floats would split ties in the signed-rank test by rounding noise).
    out["diff"] = (k_visual - k_audio) / n
    return out.reset_index()


def dominance_test(resp: pd.DataFrame, *, subset: str = "mismatched", counting: str = "primary",
                   zero_method: ZeroMethod = "pratt", alternative: Alternative = "two-sided",
                   correction: bool = False, method: str = "approx") -> pd.DataFrame:
    """Paired test of visual vs audio dominance, the participant as the pairing unit: Wilcoxon
    signed-rank of the per-participant differences (visual - audio match fraction). One row with subset,
    counting, mean_visual, mean_audio and the Wilcoxon columns."""
    per = dominance_per_participant(resp, subset=subset, counting=counting)
    res = wilcoxon_signed_rank(per["diff"].to_numpy(), zero_method=zero_method, alternative=alternative,
                               correction=correction, method=method)
    return pd.DataFrame([{"subset": subset, "counting": counting, "unit": "participant",
                          "mean_visual": float(per["visual"].mean()) if len(per) else float("nan"),
                          "mean_audio": float(per["audio"].mean()) if len(per) else float("nan"), **res}])


def fractions_vs_chance(frac: pd.DataFrame, chance: float) -> pd.DataFrame:
    """The ``primary`` match fractions (all and mismatched videos, visual and audio) with an exact one-sided
    binomial test against ``chance`` (1/k for k emotions offered). Columns subset, modality, n, n_match,
    fraction, chance, p (greater than chance)."""
    from analysis.stats import binomial_test

    f = frac[frac["counting"] == "primary"]
    rows = [{"subset": r.subset, "modality": r.modality, "n": int(r.n), "n_match": int(r.n_match),
             "fraction": float(r.fraction), "chance": float(chance),
             "p": binomial_test(int(r.n_match), int(r.n), chance, "greater") if r.n else float("nan")}
            for r in f.itertuples(index=False)]
    return pd.DataFrame(rows, columns=["subset", "modality", "n", "n_match", "fraction", "chance", "p"])
