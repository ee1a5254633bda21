"""Made the pins of tests/pinned (run once at commit a6b1e9d, before issue 27 changed any design code):
the paper specs plans (digest per plan section) and their analysis numbers. Kept to show how they were made;
rerunning it now would pin the new code against itself."""
import hashlib, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, "tests/stimuli")
from stimuli_factories import task1_rows, task2_rows
from stimuli.manifest import build_manifest
from stimuli.plan import compile_plan, plan_to_bytes
from stimuli.spec import load_spec
from analysis.simulate import simulate_export
from analysis.io import load_export
from analysis.report import compute, AnalysisOptions, results_json_bytes

m1 = build_manifest("/nonexistent/t1", task1_rows(), name="t1")
m2 = build_manifest("/nonexistent/t2", task2_rows(), name="t2")
out = {"plans": {}, "analysis": {}}
def sha(x): return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()
for name, m in (("paper-task1", m1), ("paper-task2", m2)):
    for seed in (0, 1, 42):
        plan = compile_plan(load_spec(name), m, seed)
        out["plans"][f"{name}/seed{seed}"] = {"bytes": hashlib.sha256(plan_to_bytes(plan)).hexdigest(),
            "sections": {k: sha(v) for k, v in sorted(plan.items())}}
        if seed == 42:
            Path(f"tests/pinned/{name}-seed42.plan.json").write_bytes(plan_to_bytes(plan))
    plan = compile_plan(load_spec(name), m, 42)
    with tempfile.TemporaryDirectory() as d:
        p = simulate_export(Path(d) / "x", plan=plan, stimuli=[s.to_dict() for s in m], participants_per_batch=6, random_state=3)
        res = compute(load_export(p), AnalysisOptions(mixed_models=False, n_boot=200)).results
    keep = {k: res[k] for k in ("task1", "task2", "cleaning", "flow") if k in res}
    out["analysis"][name] = json.loads(results_json_bytes(keep))
Path("tests/pinned/paper_pins.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
print({k: v["bytes"][:12] for k, v in out["plans"].items()}, list(out["analysis"]["paper-task1"]))
