"""R parity: the Psych-DS export's analysis/analysis.R, run unedited with Rscript, computes the same numbers as
the Python report (binomial tests, Wilcoxon incl. Pratt with exact ties, Task 2 dominance, the ordinal model's
two standard errors and the mixed logit), within the tolerances of tests/analysis/r_parity.py.

The studies are simulated by analysis.simulate at the demo's size (24 participants per task); the Psych-DS
folder is built by the export's own code (study_server.export.tables.psychds_files). tests/test_demo.py runs the
same comparison on the demo's exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from r_parity import compare, python_results, run_r

from analysis.simulate import make_plan, simulate_answers, write_export


def _psychds(export: Path, out: Path, name: str) -> Path:
    from study_server.export.tables import psychds_files

    plan = json.loads((export / "plan.json").read_text(encoding="utf-8"))
    files = {n: (export / n).read_bytes() for n in ("answers.csv", "participants.csv", "plan.json", "manifest.json")}
    files["codebook.md"] = b"# codebook\n"
    n_ans = (export / "answers.csv").read_bytes().count(b"\n") - 1
    n_part = (export / "participants.csv").read_bytes().count(b"\n") - 1
    study = SimpleNamespace(name=name, task=plan["study"]["task"], id=1)
    for rel, data in psychds_files(study, plan, files, n_ans, n_part).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out


@pytest.mark.parametrize("task,seed", [("emotion-realness", 3), ("av-mismatch", 4)])
def test_exported_r_script_computes_the_python_numbers(task, seed, rscript, tmp_path):
    plan, stimuli = make_plan(task, n_batches=6, random_state=seed)
    rows, parts = simulate_answers(plan, stimuli, participants_per_batch=4, random_state=seed)
    export = write_export(tmp_path / "export", plan, stimuli, rows, parts)
    dataset = _psychds(export, tmp_path / "psychds", f"sim-{task}")
    r = run_r(rscript, dataset, tmp_path / "r.csv")
    results, wilcox_dom = python_results(export, tmp_path / "report")
    done = compare(r, results, wilcox_dom)
    # Every number R wrote was compared (nothing computed on one side only slips through).
    assert set(r) <= set(done) | {"realness.no_test", "dominance.no_test"}, sorted(set(r) - set(done))
    if task == "emotion-realness":
        assert {"mixed_logit.sourceBL.z", "ordinal.sourceOURS.se_cluster", "realness.pratt.z",
                "accuracy.GT.binom_p_holm"} <= set(done)
    else:
        assert {"dominance.wilcox.V", "dominance.pratt.z"} <= set(done)


def test_the_simulated_realness_differences_need_the_tie_rule():
    # The Task 1 study above has differences of participant means that float arithmetic splits (R's tapply
    # means): without the shared tie rule R would rank more distinct |d| than exact arithmetic has.
    import numpy as np
    import pandas as pd

    from analysis.stats import snap_ties

    plan, stimuli = make_plan("emotion-realness", n_batches=6, random_state=3)
    rows, _ = simulate_answers(plan, stimuli, participants_per_batch=4, random_state=3)
    d = pd.DataFrame(rows)
    d = d[(d["question"] == "realness") & (d["verdict"] == "valid") & (d["is_repeat"].astype(str) == "0")
          & d["score"].astype(str).ne("")]
    m = d.assign(score=d["score"].astype(float)).pivot_table(index="participant", columns="source", values="score",
                                                            aggfunc="mean")
    diff = np.abs((m["OURS"] - m["BL"]).dropna().to_numpy())
    assert len(np.unique(snap_ties(diff))) < len(np.unique(diff))
