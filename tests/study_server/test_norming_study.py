"""A norming study (stimuli/specs/norming.toml) through the real server: compiled from the ready-made spec,
imported, taken by simulated raters over HTTP (study_server.participant.simulate -> stimuli.norming.simulated_rating),
exported, and read by `emostudy norms` (analysis.norms)."""

from __future__ import annotations

import json

from studykit import build_media_set, import_study, serve_in_thread


def test_a_norming_study_runs_end_to_end_through_the_server(app, tmp_path):
    from analysis.io import load_export
    from analysis.norms import compute_norms
    from stimuli.manifest import load_manifest
    from stimuli.plan import compile_plan, write_plan
    from stimuli.spec import parse_spec, resolve_spec
    from study_server.store.extensions import db
    from study_server.export.tables import export_study
    from study_server.participant.simulate import ResponseModel, simulate

    set_dir = build_media_set(tmp_path / "set")
    manifest = load_manifest(set_dir)
    where, raw = resolve_spec("norming")
    text = (raw.decode().replace("clips_per_batch = 24", "clips_per_batch = 6")
            .replace("quota_per_batch = 20", "quota_per_batch = 3")
            .replace("[consistency]\n", '[consistency]\nwatch_flags = "ignore"\n', 1))
    plan = compile_plan(parse_spec(text, where=where), manifest, 4)
    assert len(plan["batches"]) == 2 and all(len(b["items"]) == 8 for b in plan["batches"])
    plan_path = write_plan(plan, tmp_path / "plan.json")
    study = import_study(app, plan_path, set_dir)
    rows = [s.to_dict() for s in manifest.stimuli]
    with serve_in_thread(app) as base:
        rep = simulate(base, study, 8, manifest_rows=rows, secret_key=app.config["SECRET_KEY"], task="norming",
                       plan_questions=plan["questions"], model=ResponseModel(careless=0.0), seed=3, workers=2)
    assert rep.completed == 6 and len(rep.refused) == 2, rep  # two batches x quota 3; then the study is full
    with app.app_context():
        export_study(db.session, study, tmp_path / "export", include_simulated=True)
    export = load_export(tmp_path / "export")
    assert set(export.answers["question"]) == {"emotion", "intensity", "genuineness", "valence", "arousal"}
    norms = compute_norms(export, n_splits=5)
    assert norms.summary["n_participants_valid"] == 6
    per = norms.stimuli.set_index("stimulus_id")
    assert set(per.index) == {s.stimulus_id for s in manifest.stimuli}
    assert (per["n_ratings"] == 3).all() and (per["valence_n"] == 3).all()
    # the answers are the simulated raters' (valid options), the labels the manifest's
    emotion = json.loads((tmp_path / "export" / "plan.json").read_text())["questions"][0]
    options = {o["value"] for o in emotion["options"]}
    assert options == {"anger", "disgust", "fear", "happiness", "neutral", "sadness", "other"}
    assert set(export.answers.loc[export.answers["question"] == "emotion", "answer"]) <= options
