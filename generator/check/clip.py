"""One clip, measured: decode video and audio, find the face in every frame, and compute every measure
of ``generator.check.measures`` plus the emotion rater and the identity distance.

``ClipChecker`` holds the models (dlib detector, 68-point predictor, face-descriptor network, emotion
rater), loaded once per process; ``ClipChecker.check(job)`` returns the clip's record (a JSON-ready dict,
documented in docs/running-a-study.md) and the per-frame curves for its contact sheet.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from generator.audio import read_audio
from generator.check import measures as M
from generator.check.rater import FER_CLASSES, EmotionRater, face_crop
from generator.check.weights import descriptor_path
from generator.errors import InputError, NoFaceError
from generator.faces import _models, load_image
from generator.mediaio import read_video

# Our six emotions -> the rater's class names (the rater also has "surprise", which none of ours is).
EMOTION_TO_FER = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
                  "neutral": "neutral", "sadness": "sad"}


@dataclass(frozen=True)
class MeasureSettings:
    """What changes the measurements (a record is re-measured when these change; thresholds do not)."""

    identity_frames: int = 3  # frames per clip whose face descriptor is compared with the reference
    max_lag: int = 12  # lip-sync lags searched, +-frames
    sheet_frames: int = 8  # frames on the contact sheet
    # The rater reads every face crop and its mirror image and averages the two. On 128 px renders a one-pixel
    # shift of the detected box flips the single-crop reading of many clips (Grace Hopper, fear, one sentence,
    # 12 seeds that differ only in sub-pixel head motion and blink timing: fear 4, neutral 8; neutral: angry 5,
    # neutral 7); the mirrored average is steadier (fear 5 / neutral 7; neutral: angry 2, neutral 10) for one
    # more pass of the rater (~1 ms per frame). A face's expression is near-symmetric, so the mirror is a
    # second look at the same face, not a different one.
    rater_mirror: bool = True

    def key(self) -> str:
        mirror = "-mirror" if self.rater_mirror else ""
        return f"id{self.identity_frames}-lag{self.max_lag}-sheet{self.sheet_frames}{mirror}-v3"


@dataclass
class ClipJob:
    stimulus_id: str
    media: Path
    sha256: str  # of the media file as read now
    reference: str  # "photo" or "first_frame"
    reference_image: Path | None  # the source photo when reference == "photo"
    lipsync_expected: bool
    intended: str | None  # visual emotion
    sheet: Path  # contact-sheet PNG to write
    title: str = ""
    expression_expected: bool = True  # rendered with the expression (not LIPS/STILL): the rater may flag it
    extra: dict[str, Any] = field(default_factory=dict)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


class ClipChecker:
    def __init__(self, settings: MeasureSettings = MeasureSettings(), *, rater_weights: Path | None = None):
        import dlib  # optional heavy dependency: imported only when used

        self.settings = settings
        self.detector, self.predictor = _models()
        self.descriptor = dlib.face_recognition_model_v1(str(descriptor_path()))
        self.rater = EmotionRater(rater_weights)
        self._dlib = dlib
        self._ref_cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ faces
    def _detect(self, img: np.ndarray):
        """(dlib rectangle, box) of the largest face, or None. No upsampling first, then 2x (small faces)."""
        for upsample in (0, 1):
            rects, _, _ = self.detector.run(img, upsample, 0.0)
            if len(rects):
                r = max(rects, key=lambda r: r.width() * r.height())
                return r, (int(r.left()), int(r.top()), int(r.right()), int(r.bottom()))
        return None

    def _landmarks(self, img: np.ndarray, rect) -> np.ndarray:
        return np.array([[p.x, p.y] for p in self.predictor(img, rect).parts()], dtype=np.float64)

    def _descriptor(self, img: np.ndarray, lm: np.ndarray) -> np.ndarray:
        dlib = self._dlib
        pts = [dlib.point(int(round(x)), int(round(y))) for x, y in lm]
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1), pts)
        return np.asarray(self.descriptor.compute_face_descriptor(img, shape), dtype=np.float64)

    def rate(self, crops: np.ndarray) -> np.ndarray:
        """(N, 7) rater probabilities of (N, 64, 64) face crops (with their mirror images: MeasureSettings)."""
        probs = self.rater.predict(crops).astype(np.float64)
        if self.settings.rater_mirror:
            probs = 0.5 * (probs + self.rater.predict(np.ascontiguousarray(crops[:, :, ::-1])))
        return probs

    def reference_of(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks, descriptor) of the face in a photo (cached per process)."""
        if path not in self._ref_cache:
            img = load_image(path)
            found = self._detect(img)
            if found is None:
                raise NoFaceError(f"{path}: no face found in the source photo")
            lm = self._landmarks(img, found[0])
            self._ref_cache[path] = (lm, self._descriptor(img, lm))
        return self._ref_cache[path]

    # ------------------------------------------------------------------ one clip
    def check(self, job: ClipJob) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        cpu = {}  # CPU seconds of each stage in this process (bench/bench_check.py reports them per frame)
        tick = [time.process_time()]

        def lap(stage: str) -> None:
            now = time.process_time()
            cpu[stage] = cpu.get(stage, 0.0) + now - tick[0]
            tick[0] = now

        frames, fps = read_video(job.media)  # InputError names the file when it cannot be decoded
        try:
            audio, rate = read_audio(job.media)
        except InputError:
            audio, rate = None, None  # a silent clip: no lip sync
        lap("decode")
        T = len(frames)
        lms = np.full((T, 68, 2), np.nan)
        boxes: list[tuple[int, int, int, int] | None] = [None] * T
        ok_plausible = 0
        prev = None
        for t, img in enumerate(frames):
            found = self._detect(img)
            if found is None:
                prev = None
                continue
            rect, box = found
            lm = self._landmarks(img, rect)
            lms[t], boxes[t] = lm, box
            ok_plausible += M.plausible(lm, box, prev)
            prev = lm
        found_idx = [t for t in range(T) if boxes[t] is not None]
        lap("faces_landmarks")
        rec: dict[str, Any] = {"n_frames": T, "fps": fps, "face_fraction": len(found_idx) / T,
                               "landmark_plausible_fraction": ok_plausible / T}

        # Identity and the face at rest.
        ident: dict[str, Any] = {"reference": job.reference, "distance_mean": None, "distance_max": None,
                                 "frames": []}
        rest_lm = None
        ref_desc = None
        if job.reference == "photo" and job.reference_image is not None:
            rest_lm, ref_desc = self.reference_of(job.reference_image)
        elif found_idx:
            t0 = found_idx[0]
            rest_lm = lms[t0]
            ref_desc = self._descriptor(frames[t0], lms[t0])
        if ref_desc is not None and found_idx:
            pick = np.unique(np.linspace(0, len(found_idx) - 1, self.settings.identity_frames).round().astype(int))
            ts = [found_idx[i] for i in pick]
            dists = [float(np.linalg.norm(self._descriptor(frames[t], lms[t]) - ref_desc)) for t in ts]
            ident.update(distance_mean=float(np.mean(dists)), distance_max=float(np.max(dists)), frames=ts)
        rec["identity_check"] = ident
        lap("identity")

        # Expression measures relative to rest: per clip, the mean over the frames with a face.
        expr = M.expression_measures(lms, rest_lm) if rest_lm is not None else {}
        rec["expression"] = {k: _finite(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in expr.items()}

        # Lip sync.
        mouth = M.mouth_opening(lms) if found_idx else np.full(T, np.nan)
        env = M.speech_envelope(audio, rate, fps, T) if audio is not None else np.zeros(T)
        ls = M.lip_sync(mouth, env, self.settings.max_lag) if audio is not None and found_idx else \
            {"corr": None, "lag_frames": None, "corr_at_zero": None}
        ls["expected"] = bool(job.lipsync_expected and audio is not None)
        ls["mouth_motion"] = _finite(np.nanstd(mouth)) if found_idx else None
        rec["lipsync"] = ls
        lap("expression_lipsync")

        # The emotion rater on every frame with a face.
        if found_idx:
            crops = np.stack([face_crop(frames[t], boxes[t]) for t in found_idx])
            probs = self.rate(crops)
            mean = probs.mean(axis=0)
            rec["rater"] = {"probs": {c: float(p) for c, p in zip(FER_CLASSES, mean)},
                            "top": FER_CLASSES[int(mean.argmax())],
                            "intended": EMOTION_TO_FER.get(job.intended or ""),
                            "intended_prob": float(mean[FER_CLASSES.index(EMOTION_TO_FER[job.intended])])
                            if job.intended in EMOTION_TO_FER else None}
        else:
            rec["rater"] = {"probs": None, "top": None, "intended": EMOTION_TO_FER.get(job.intended or ""),
                            "intended_prob": None}
        lap("rater")
        rec["cpu_s"] = {k: round(v, 4) for k, v in cpu.items()}
        rec["rater"]["expected"] = bool(job.expression_expected and job.intended is not None)
        curves = {"mouth": mouth, "envelope": env, "frames": frames, "fps": np.float64(fps)}
        return rec, curves


SHEET_FRAME_PX = 136  # width of one frame on a contact sheet (readable: at least 128 px)


def contact_sheet(path: Path, frames: np.ndarray, mouth: np.ndarray, envelope: np.ndarray, fps: float, *,
                  n: int = 8, title: str = "", lag: int | None = None) -> None:
    """A PNG: ``n`` evenly spaced frames over the mouth-opening and speech-envelope curves."""
    import matplotlib  # optional heavy dependency: imported only when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional heavy dependency: imported only when used

    T = len(frames)
    idx = np.unique(np.linspace(0, T - 1, n).round().astype(int))
    # One montage image, not one axes per frame: a third of the drawing time.
    strip = np.concatenate([frames[t] for t in idx], axis=1)
    h, w = frames.shape[1:3]
    # Readable frames: at least SHEET_FRAME_PX pixels wide each (the strip fills the figure's width).
    dpi = 80
    width_px = len(idx) * SHEET_FRAME_PX / 0.94
    strip_h_px = SHEET_FRAME_PX * h / w
    curve_px, gap_px, foot_px, head_px = 110.0, 60.0, 40.0, 40.0  # the curves, between, the axis labels, the title
    height_px = head_px + strip_h_px + gap_px + curve_px + foot_px
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    # Axes placed in pixels: the strip's axes are exactly as wide as the frames need (imshow keeps the aspect).
    top = fig.add_axes((0.03, (foot_px + curve_px + gap_px) / height_px, 0.94, strip_h_px / height_px))
    top.imshow(strip, interpolation="nearest")
    top.set_axis_off()
    for j, t in enumerate(idx):
        top.text((j + 0.5) * w, -2, f"{t / fps:.2f} s", ha="center", va="bottom", fontsize=7)
    ax = fig.add_axes((0.03, foot_px / height_px, 0.94, curve_px / height_px))
    time = np.arange(T) / fps
    m = np.asarray(mouth, np.float64)
    e = np.asarray(envelope, np.float64)
    scale = lambda x: (x - np.nanmin(x)) / (np.nanmax(x) - np.nanmin(x)) if np.nanmax(x) > np.nanmin(x) else x * 0  # noqa: E731
    if np.isfinite(m).any():
        ax.plot(time, scale(m), color="tab:red", lw=1.2, label="mouth opening")
    ax.plot(time, scale(e), color="tab:blue", lw=1.0, alpha=0.8, label="speech envelope")
    ax.set_yticks([])
    ax.set_xlim(0, max(time[-1], 1e-3))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("s" + (f"   (best lag {lag:+d} frames)" if lag is not None else ""), fontsize=7)
    ax.legend(fontsize=6, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False, borderaxespad=0.1)
    fig.suptitle(title, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
