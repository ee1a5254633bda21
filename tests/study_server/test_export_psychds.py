"""`emostudy export --format psych-ds` (issue 19): a Psych-DS dataset with an R script.

The required-field check is written out here from the Psych-DS specification (https://psych-ds.github.io/:
dataset_description.json with "@context" schema.org, "@type" "Dataset", "name", "description",
"variableMeasured"; data files under data/ named by keyword-value pairs ending in _data.csv, every column
in variableMeasured), independently of study_server.export.psychds.psychds_problems, which is tested against
broken datasets below."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from adminkit import add_assignment, batch_positions, plan_of

KEYWORD_FILE = re.compile(r"([a-z]+-[a-zA-Z0-9]+)(_[a-z]+-[a-zA-Z0-9]+)*_data\.csv")


def _export(app, study, out, **kw):
    from study_server.export.tables import export_study
    from study_server.store.extensions import db

    with app.app_context():
        return export_study(db.session, study, out, **kw)


@pytest.fixture
def psychds_export(app, task1_study, tmp_path):
    plan = plan_of(app, task1_study)
    add_assignment(app, task1_study, "b01", worker="w1", status="completed", verdict="valid",
                   answers={p: {"emotion": "anger", "realness": "not-sure", "aspects": ["none"]}
                            for p in batch_positions(plan, "b01")})
    add_assignment(app, task1_study, "b02", worker="w2", status="started",
                   answers={0: {"emotion": "fear", "realness": "definitely-real", "aspects": ["lip-sync"]}})
    _export(app, task1_study, tmp_path / "plain")
    _export(app, task1_study, tmp_path / "pds", format="psych-ds")
    return tmp_path / "plain", tmp_path / "pds"


def test_required_fields_and_keyword_files(psychds_export):
    plain, pds = psychds_export
    desc = json.loads((pds / "dataset_description.json").read_text(encoding="utf-8"))
    assert desc["@context"] in ("https://schema.org/", "https://schema.org")
    assert desc["@type"] == "Dataset"
    assert isinstance(desc["name"], str) and desc["name"].strip()
    assert isinstance(desc["description"], str) and desc["description"].strip()
    described = {v["name"]: v for v in desc["variableMeasured"]}
    assert all(v["@type"] == "PropertyValue" and v["description"] for v in described.values())
    data_files = sorted(p.name for p in (pds / "data").iterdir())
    assert len(data_files) == 2 and all(KEYWORD_FILE.fullmatch(n) for n in data_files)
    assert all(pair.split("-")[0] in {"study", "task", "description"} for n in data_files
               for pair in n[: -len("_data.csv")].split("_"))
    for name in data_files:
        header = next(csv.reader(io.StringIO((pds / "data" / name).read_text(encoding="utf-8"))))
        assert len(set(header)) == len(header)
        assert set(header) <= set(described), set(header) - set(described)
    # the same data bytes as the plain export, and the codebook, plan and manifest in documentation/
    answers = next(n for n in data_files if "description-" not in n)
    assert (pds / "data" / answers).read_bytes() == (plain / "answers.csv").read_bytes()
    people = next(n for n in data_files if "description-participants" in n)
    assert (pds / "data" / people).read_bytes() == (plain / "participants.csv").read_bytes()
    for name in ("codebook.md", "plan.json", "manifest.json"):
        assert (pds / "documentation" / name).read_bytes() == (plain / name).read_bytes()
    # every column of both files is described with the codebook's text
    from study_server.export.tables import ANSWER_CODEBOOK, PARTICIPANT_CODEBOOK

    assert set(described) == set(ANSWER_CODEBOOK) | set(PARTICIPANT_CODEBOOK)
    assert ANSWER_CODEBOOK["rt_ms"] in described["rt_ms"]["description"]
    assert "realness" in described["answer"]["description"]


def test_r_script_formulas_equal_ours(psychds_export):
    from stimuli.model_formulas import CORRECTNESS_MIXED_LOGIT, REALNESS_ORDINAL

    _, pds = psychds_export
    script = (pds / "analysis" / "analysis.R").read_text(encoding="utf-8")
    glmer = re.search(r"lme4::glmer\(([^,]+), data = em, family = binomial\)", script)
    clm = re.search(r"ordinal::clm\(([^,]+), data = re, link = \"logit\"\)", script)
    assert glmer and clm
    assert glmer.group(1) == CORRECTNESS_MIXED_LOGIT.formula == "correct ~ source + (1 | participant) + (1 | stimulus_id)"
    assert clm.group(1) == REALNESS_ORDINAL.formula == "score ~ source"
    # chance = 1 / options of the plan's emotion question (six emotions), as emostudy analyze uses
    assert script.count(f"p = {1 / 6!r}, alternative = \"greater\"") == 2
    # the data file names the script loads are the ones written
    loaded = re.findall(r'read_data\("([^"]+)"\)', script)
    assert sorted(loaded) == sorted(p.name for p in (pds / "data").iterdir())


def test_formulas_are_the_ones_analysis_fits():
    # The analysis reports the shared formula text; the R script above writes the same objects.
    import numpy as np
    import pandas as pd

    from analysis.models import correctness_mixed_logit, realness_ordinal
    from stimuli.model_formulas import CORRECTNESS_MIXED_LOGIT, REALNESS_ORDINAL

    rng = np.random.default_rng(0)
    rows = []
    for p in range(12):
        for k in range(6):
            src = ["GT", "BL", "OURS"][k % 3]
            rows.append({"participant": f"p{p}", "stimulus_id": f"s{k}", "source": src, "question": "emotion",
                         "visual_emotion": "anger", "answer": "anger" if rng.random() < 0.6 else "fear"})
            rows.append({"participant": f"p{p}", "stimulus_id": f"s{k}", "source": src, "question": "realness",
                         "visual_emotion": "anger", "answer": "x", "score": int(rng.integers(1, 6))})
    df = pd.DataFrame(rows)
    assert correctness_mixed_logit(df)["formula"] == CORRECTNESS_MIXED_LOGIT.formula
    assert realness_ordinal(df)["formula"] == REALNESS_ORDINAL.formula


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed (Rscript)")
def test_r_script_runs(psychds_export):
    _, pds = psychds_export
    proc = subprocess.run(["Rscript", str(pds / "analysis" / "analysis.R")], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_validator_reports_broken_datasets(psychds_export):
    from study_server.export.psychds import psychds_problems

    _, pds = psychds_export
    good = {p.relative_to(pds).as_posix(): p.read_bytes() for p in pds.rglob("*") if p.is_file()}
    assert psychds_problems(good) == [] and psychds_problems(pds) == []
    desc = json.loads(good["dataset_description.json"])
    for key in ("@context", "@type", "name", "description", "variableMeasured"):
        broken = dict(good, **{"dataset_description.json": json.dumps({k: v for k, v in desc.items() if k != key}).encode()})
        assert any(repr(key) in p for p in psychds_problems(broken)), key
    wrong_type = dict(good, **{"dataset_description.json": json.dumps({**desc, "@type": "Thing"}).encode()})
    assert any("must be 'Dataset'" in p for p in psychds_problems(wrong_type))
    fewer = dict(good, **{"dataset_description.json": json.dumps(
        {**desc, "variableMeasured": [v for v in desc["variableMeasured"] if v["name"] != "rt_ms"]}).encode()})
    assert any("['rt_ms']" in p and "variableMeasured" in p for p in psychds_problems(fewer))
    answers = next(k for k in good if k.startswith("data/") and "description-" not in k)
    renamed = {("data/answers.csv" if k == answers else k): v for k, v in good.items()}
    assert any("data/answers.csv" in p for p in psychds_problems(renamed))
    ragged = dict(good, **{answers: good[answers] + b"only,three,cells\n"})
    assert any("cells for" in p for p in psychds_problems(ragged))
    assert any("missing" in p for p in psychds_problems({k: v for k, v in good.items()
                                                          if k != "dataset_description.json"}))


def test_cli_format_option_and_bad_format(app, task1_study, tmp_path):
    from study_server.core.errors import StudyServerError

    with pytest.raises(StudyServerError, match="export format 'spss'"):
        _export(app, task1_study, tmp_path / "x", format="spss")
    from study_server.commands.server import export_command

    result = CliRunner().invoke(export_command, ["--help"])
    assert result.exit_code == 0 and "psych-ds" in result.output
