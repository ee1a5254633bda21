"""The Wilcoxon statistics of a fixed simulated export (issue 19: ties broken by float noise).

    .venv/bin/python bench/wilcoxon_ties.py [--seed 3]

Simulates the paper-sized Task 1 export (6 batches x 10 participants, analysis.simulate, seeded) and the
small Task 2 export, cleans them and prints one JSON line with the realness test (OURS vs BL, participant
means, Pratt zeros, two-sided, normal approximation and exact p) and the Task 2 dominance test, plus how
many tie groups of |d| exist in exact arithmetic. Run it on two versions of the code to compare them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from fractions import Fraction
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    from analysis import task1, task2
    from analysis.cleaning import clean
    from analysis.io import load_export
    from analysis.simulate import simulate_export

    out = {"seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="emostudy-ties-") as tmp:
        ans = clean(load_export(simulate_export(Path(tmp) / "t1", "emotion-realness", participants_per_batch=10,
                                                random_state=args.seed))).answers
        re = ans[ans["question"] == "realness"]
        groups = re[re["source"].isin(["OURS", "BL"])].groupby(["participant", "source"])["score"]
        sums, counts = groups.sum().unstack(), groups.size().unstack()
        exact = [Fraction(int(sums.loc[p, "OURS"]), int(counts.loc[p, "OURS"]))
                 - Fraction(int(sums.loc[p, "BL"]), int(counts.loc[p, "BL"])) for p in sums.dropna().index]
        out["realness_distinct_abs_d_exact"] = len({abs(x) for x in exact if x != 0})
        from analysis.stats import paired_differences
        d_used = paired_differences(re, dv="score", within="source", a="OURS", b="BL")["diff"].to_numpy()
        out["realness_distinct_abs_d_as_ranked"] = len({abs(float(x)) for x in d_used if x != 0})
        # An independent route: scipy on the exact differences (float(Fraction) is correctly rounded, so equal
        # fractions are equal floats), Pratt zeros, normal approximation without continuity correction.
        from scipy import stats as sps

        ref = sps.wilcoxon([float(x) for x in exact], zero_method="pratt", method="asymptotic", correction=False)
        out["realness_scipy_on_exact_differences"] = {"z": round(abs(float(ref.zstatistic)), 6),
                                                      "p": round(float(ref.pvalue), 6)}
        for method in ("approx", "exact"):
            w = task1.realness_wilcoxon(ans, "OURS", "BL", method=method).iloc[0]
            out[f"realness_{method}"] = {k: (round(float(w[k]), 6) if k != "n" else int(w[k]))
                                         for k in ("n", "r_plus", "var_h0", "z", "p")}
        ans2 = clean(load_export(simulate_export(Path(tmp) / "t2", "av-mismatch", participants_per_batch=4,
                                                 random_state=args.seed))).answers
        resp = task2.label_responses(ans2)
        per = task2.dominance_per_participant(resp)
        out["dominance_distinct_abs_d_exact"] = len({abs(Fraction(int(round(v * n)) - int(round(a * n)), int(n)))
                                                     for v, a, n in zip(per["visual"], per["audio"], per["n"])} - {0})
        out["dominance_distinct_abs_d_as_ranked"] = len({abs(float(x)) for x in per["diff"]} - {0.0})
        d = task2.dominance_test(resp).iloc[0]
        out["dominance_approx"] = {k: (round(float(d[k]), 6) if k != "n" else int(d[k]))
                                   for k in ("n", "r_plus", "var_h0", "z", "p")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
