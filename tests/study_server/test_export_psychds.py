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
from adminkit import add_assignment, batch_positions, plan_of
from click.testing import CliRunner

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
    data_files = sorted(p.name for p in (pds / "data").iterdir() if p.suffix == ".csv")
    assert len(data_files) == 2 and all(KEYWORD_FILE.fullmatch(n) for n in data_files)
    # each data file has its sidecar (same name, .json) and nothing else is in data/
    assert sorted(p.name for p in (pds / "data").iterdir() if p.suffix != ".csv") == \
        sorted(n[: -len(".csv")] + ".json" for n in data_files)
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
    assert sorted(loaded) == sorted(p.name for p in (pds / "data").iterdir() if p.suffix == ".csv")


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
    # without the sidecars (which replace it per file), the top-level variableMeasured must list every column
    no_sidecars = {k: v for k, v in good.items() if not (k.startswith("data/") and k.endswith(".json"))}
    assert psychds_problems(no_sidecars) == []
    fewer = dict(no_sidecars, **{"dataset_description.json": json.dumps(
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


HUGGINS = {"enabled": True, "kind": "huggins", "trials": 6, "pass_at": 5, "attempts": 1}
DATASET_KEYS = {"authors": ["A. Researcher", "B. Researcher"], "license": "CC-BY-4.0",
                "citation": "Researcher, A. (2026). Emotion in talking faces.", "url": "https://example.org/data"}


@pytest.fixture
def screen_export(app, client, media_set, tmp_path):
    """A Task 2 study with a headphone screen (three data files), its plan carrying the spec's dataset keys."""
    from studykit import TASK2, arrive, complete_session, import_study, make_plan

    path = make_plan(media_set, TASK2, name="screened", audio_check=HUGGINS, out=tmp_path / "plan.json")
    plan = json.loads(path.read_text())
    plan["study"]["dataset"] = DATASET_KEYS
    path.write_text(json.dumps(plan))
    study = import_study(app, path, media_set)
    assert complete_session(client, arrive(client, study, lab="hp1"))["status"] == "completed"
    _export(app, study, tmp_path / "pds", format="psych-ds")
    return tmp_path / "pds"


def test_every_data_file_is_described_and_answer_per_file(screen_export):
    from study_server.export.psychds import psychds_problems, psychds_warnings

    pds = screen_export
    csvs = sorted(p.name for p in (pds / "data").glob("*.csv"))
    assert len(csvs) == 3 and any("description-headphonescreen" in n for n in csvs)
    desc = json.loads((pds / "dataset_description.json").read_text(encoding="utf-8"))
    assert desc["schemaVersion"] == "Psych-DS 1.5.1"
    assert sorted(d["name"] for d in desc["distribution"]) == csvs
    readme = (pds / "README.md").read_text(encoding="utf-8")
    for name in csvs:
        assert f"data/{name}" in readme and f"data/{name[:-4]}.json" in readme
    # each file's sidecar describes exactly its columns, with its own meaning of `answer`
    meanings = {}
    for name in csvs:
        header = next(csv.reader(io.StringIO((pds / "data" / name).read_text(encoding="utf-8"))))
        side = json.loads((pds / "data" / (name[:-4] + ".json")).read_text(encoding="utf-8"))
        cols = {v["name"]: v["description"] for v in side["variableMeasured"]}
        assert list(cols) == header
        meanings[name] = cols["answer"] if "answer" in cols else None
    screen = next(n for n in csvs if "headphonescreen" in n)
    answers = next(n for n in csvs if "description-" not in n)
    assert "interval chosen, 1-3" in meanings[screen] and "interval" not in meanings[answers]
    assert "primary" in meanings[answers]  # the questions and their options, only in the answers file
    top = {v["name"]: v["description"] for v in desc["variableMeasured"]}
    assert "sidecar" in top["answer"] and "[" not in top["answer"]
    # recommended keys from the spec, CHANGES, materials; nothing the specification recommends is missing
    assert [a["name"] for a in desc["author"]] == DATASET_KEYS["authors"]
    assert (desc["license"], desc["citation"], desc["url"]) == (DATASET_KEYS["license"], DATASET_KEYS["citation"],
                                                                DATASET_KEYS["url"])
    assert (pds / "CHANGES.md").read_text().startswith("# Changes")
    assert "instructions" in (pds / "materials" / "participant-texts.md").read_text().lower()
    assert json.loads((pds / "materials" / "plan.json").read_text())["study"]["name"] == "screened"
    assert psychds_problems(pds) == [] and psychds_warnings(pds) == []


def test_validator_checks_each_file_against_its_sidecar(screen_export):
    from study_server.export.psychds import psychds_problems, psychds_warnings

    pds = screen_export
    good = {p.relative_to(pds).as_posix(): p.read_bytes() for p in pds.rglob("*") if p.is_file()}
    side = next(k for k in good if "headphonescreen" in k and k.endswith(".json"))
    meta = json.loads(good[side])
    fewer = dict(good, **{side: json.dumps({**meta, "variableMeasured": [
        v for v in meta["variableMeasured"] if v["name"] != "correct"]}).encode()})
    assert any("['correct']" in p and "headphonescreen" in p for p in psychds_problems(fewer))
    assert any(side in p and "JSON" in p for p in psychds_problems(dict(good, **{side: b"{not json"})))
    # a directory-level file_metadata.json applies too (and its variableMeasured replaces the top one's)
    del good[side]
    bad_dir = dict(good, **{"data/file_metadata.json": json.dumps({"variableMeasured": ["participant"]}).encode()})
    assert any("headphonescreen" in p and "'answer'" in p for p in psychds_problems(bad_dir))
    # what is only recommended: warnings, not problems
    desc = json.loads(good["dataset_description.json"])
    plain = {k: v for k, v in good.items() if k not in ("CHANGES.md", ".psychds-ignore")}
    plain["dataset_description.json"] = json.dumps({k: v for k, v in desc.items() if k != "license"}).encode()
    warnings = psychds_warnings(plain)
    assert any("CHANGES" in w for w in warnings) and any(".psychds-ignore" in w for w in warnings)
    assert any("'license'" in w for w in warnings)
    assert psychds_problems(plain) == []


def test_spec_goes_into_materials_only_when_it_is_the_planned_one(app, task1_study, tmp_path):
    from study_server.core.errors import StudyServerError

    with pytest.raises(StudyServerError, match="not the one study"):
        _export(app, task1_study, tmp_path / "x", format="psych-ds", spec_text=b"[study]\nname = 'other'\n")
    _export(app, task1_study, tmp_path / "y", format="psych-ds")
    assert "spec_sha256" in (tmp_path / "y" / "materials" / "spec.md").read_text()
