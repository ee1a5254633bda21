"""Warp renders before and after a change: the mouth interior (docs/img/warp-mouth-before-after.png) or,
with ``--whole``, the whole face in every emotion (docs/img/warp-before-after.png).

    PYTHONPATH=. .venv/bin/python bench/warp_mouth_figure.py --before 22999bb --out docs/img/warp-mouth-before-after.png
    PYTHONPATH=. .venv/bin/python bench/warp_mouth_figure.py --whole --before 22999bb --out docs/img/warp-before-after.png

Renders, with the code of this tree and with that of ``--before`` (a git revision, exported with ``git archive``
into a temporary folder and run there in a child process), the two shipped faces speaking the CREMA-D sentence
"That is exactly what happened" (the project's espeak-ng voice, each emotion's prosody) in neutral, happiness,
fear and disgust, and shows the mouth (3x, bicubic) at the frame of widest rendered opening; the left column is
the photo's own mouth. ``--whole`` shows the whole 128x128 frame of all six emotions at 60 % of the clip (the
expression fully formed, mid-sentence), the left column the aligned photo.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EMOTIONS = ("neutral", "happiness", "fear", "disgust")
ALL_EMOTIONS = ("neutral", "anger", "disgust", "fear", "happiness", "sadness")
FACES = ("astronaut", "hopper")
BOX = (slice(70, 118), slice(34, 94))  # the mouth in the 128x128 aligned frame
WHOLE = (slice(0, 128), slice(0, 128))


def crops(whole: bool = False) -> np.ndarray:
    """(faces, 1 + emotions, h, w, 3) uint8: the photo's mouth, then each emotion's widest opening."""
    from generator.align import shipped_faces
    from generator.audio import MODEL_RATE, normalise, resample
    from generator.data.tts import synthesize_emotion
    from generator.produce.demo_assets import SENTENCES
    from generator.warp.cavity import inner_gap
    from generator.warp.renderer import WarpRenderer

    d = dict(shipped_faces())
    faces = {"astronaut": d["skimage:astronaut"], "hopper": d["matplotlib:grace_hopper.jpg"]}
    r = WarpRenderer(policy="largest")
    try:  # the aligned photo as it is (a renderer at rest may close a smiling photo's mouth before it warps)
        photo = WarpRenderer(policy="largest", rest="photo")
    except TypeError:  # a revision before the face at rest
        photo = r
    box = WHOLE if whole else BOX
    out = []
    for name in FACES:
        row = [photo.prepare(faces[name]).image[box]]
        for emo in (ALL_EMOTIONS if whole else EMOTIONS):
            x, rate = synthesize_emotion(SENTENCES["TIE"] + ".", emo)
            x = normalise(resample(x, rate, MODEL_RATE))
            anim = r.animate(faces[name], x, emo, 3)
            if whole:
                t = int(0.6 * (len(anim.landmarks) - 1))
            else:
                t = int(np.argmax([inner_gap(lm) for lm in anim.landmarks]))
            row.append(r.render(faces[name], x, emo, 3).frames[t][box])
        out.append(np.stack(row))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=False, help="git revision of the 'before' row")
    ap.add_argument("--out", default="docs/img/warp-mouth-before-after.png")
    ap.add_argument("--whole", action="store_true", help="whole faces, all six emotions")
    ap.add_argument("--npy", help=argparse.SUPPRESS)  # child mode: write this tree's crops here
    a = ap.parse_args()
    if a.npy:
        np.save(a.npy, crops(a.whole))
        return
    rows, labels = [], []
    if a.before:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(f"git archive {a.before} | tar -x -C {tmp}", shell=True, check=True)
            npy = Path(tmp) / "before.npy"
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--npy", str(npy)]
                           + (["--whole"] if a.whole else []), cwd=tmp, check=True,
                           env={**__import__("os").environ, "PYTHONPATH": tmp})
            rows.append(np.load(npy))
            labels.append(f"before ({a.before})")
    rows.append(crops(a.whole))
    labels.append("after")
    shown = ALL_EMOTIONS if a.whole else EMOTIONS
    zoom = 1.5 if a.whole else 3

    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_faces, n_cols = rows[0].shape[:2]
    face_names = ("astronaut", "Hopper")
    if a.whole:  # one row per face and version, one column per emotion
        fig, axes = plt.subplots(n_faces * len(rows), n_cols, figsize=(1.45 * n_cols, 1.5 * n_faces * len(rows)),
                                 squeeze=False)
        for f in range(n_faces):
            for i, (crop, label) in enumerate(zip(rows, labels)):
                row = axes[f * len(rows) + i]
                for c in range(n_cols):
                    row[c].imshow(cv2.resize(crop[f, c], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC))
                    row[c].set_xticks([]), row[c].set_yticks([])
                    if f == 0 and i == 0:
                        row[c].set_title("photo" if c == 0 else shown[c - 1], fontsize=8)
                row[0].set_ylabel(f"{face_names[f]}\n{label}", fontsize=7)
    else:
        fig, axes = plt.subplots(len(rows), n_faces * n_cols, figsize=(2.0 * n_faces * n_cols * 0.62, 1.5 * len(rows)),
                                 squeeze=False)
        titles = [f"{face_names[f]}: photo" if c == 0 else shown[c - 1] for f in range(n_faces) for c in range(n_cols)]
        for i, (crop, label) in enumerate(zip(rows, labels)):
            for f in range(n_faces):
                for c in range(n_cols):
                    ax = axes[i][f * n_cols + c]
                    ax.imshow(cv2.resize(crop[f, c], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC))
                    ax.set_xticks([]), ax.set_yticks([])
                    if i == 0:
                        ax.set_title(titles[f * n_cols + c], fontsize=8)
            axes[i][0].set_ylabel(label, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(a.out, dpi=100)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
