"""Expression photos vs the warp's own expression, and recombined recordings: rater agreement, identity and
lip sync measured by `emostudy check` (docs/benchmarks.md, "Expression photos and recombined recordings").

    PYTHONPATH=. .venv/bin/python bench/bench_expression_photos.py --out /tmp/bench-photos

The "posed photos" here are stills of the warp's expressions on the two shipped faces (no licensed photo set
ships with the project): the benchmark measures what the photo route keeps of a photo's expression once
speech moves its mouth, against the warp route that builds the expression over the clip. With real posed
photos (KDEF, RaFD) run the same two commands on them.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np


def run(argv: list[str]) -> None:
    print("$", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def summary(set_dir: Path) -> dict:
    qc = json.loads((set_dir / "qc" / "qc.json").read_text())
    recs = [r for r in qc["records"] if not r.get("error")]
    agree = [r["rater"]["top"] == r["rater"]["intended"] for r in recs if r["rater"]["intended"]]
    ident = [r["identity_check"]["distance_max"] for r in recs if r["identity_check"]["distance_max"] is not None]
    sync = [r["lipsync"]["corr"] for r in recs if r["lipsync"]["corr"] is not None]
    per = {}
    for r in recs:
        per.setdefault(r["visual_emotion"], []).append(r["rater"]["top"] == r["rater"]["intended"])
    return {"clips": len(recs), "rater_agrees": int(sum(agree)), "of": len(agree),
            "per_emotion": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(per.items())},
            "identity_distance_mean": round(float(np.mean(ident)), 3) if ident else None,
            "lipsync_r_mean": round(float(np.mean(sync)), 3) if sync else None}


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def main(out: Path) -> None:
    from generator.produce.demo_assets import demo_faces, make_face_pool, make_speech_pool
    from generator.warp.renderer import FACE_SIZE, WarpRenderer
    from PIL import Image
    from stimuli.emotions import EMOTIONS

    emo = [sys.executable, "-m", "emostudy"]
    faces, speech, photos = out / "faces", out / "speech", out / "photos"
    make_face_pool(faces)
    make_speech_pool(speech, sentences=["IEO"])
    photos.mkdir(parents=True, exist_ok=True)
    renderer = WarpRenderer(components=("expression",))
    rows = []
    for name, img in demo_faces():
        for e in EMOTIONS:
            still = renderer.render(img, np.full(8000, 0.01, np.float32), e, 0, size=FACE_SIZE).frames[-1]
            path = photos / f"{name}_{e}.png"
            Image.fromarray(still).save(path)
            rows.append({"file": path.name, "identity": name, "emotion": e})
    with open(out / "photos.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "identity", "emotion"])
        w.writeheader()
        w.writerows(rows)
    common = ["--design", "matched", "--speech", str(speech), "--size", "128", "--workers", "1"]
    run([*emo, "generate", *common, "--faces", str(faces), "--out", str(out / "warp")])
    run([*emo, "generate", *common, "--faces", str(photos), "--face-labels", str(out / "photos.csv"),
         "--out", str(out / "photo")])
    for s in ("warp", "photo"):
        run([*emo, "check", str(out / s), "--faces", str(faces), "--faces", str(photos), "--jobs", "1"])
    result = {s: summary(out / s) for s in ("warp", "photo")}
    print(json.dumps(result, indent=1))
    (out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
