"""Objective evaluation of generated videos against ground truth (paper IV-C, Table I).

Metrics (each per frame, then averaged over the frames of a video; videos are the unit of the
aggregate and of its 95% confidence interval):

PSNR
    ``10 log10(255^2 / MSE)`` over all pixels and the three channels of a uint8 frame. A frame equal
    to its ground truth has infinite PSNR; we cap every frame at ``PSNR_CAP_DB`` (100 dB) so that
    averages stay finite, and say so in the table's notes.
SSIM
    Wang, Bovik, Sheikh, Simoncelli (2004), "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4): Gaussian window (sigma 1.5, truncated at 3.5 sigma, i.e.
    11x11), K1 = 0.01, K2 = 0.03, L = 255, population (biased) local statistics, the mean of the SSIM
    map over the pixels whose window lies inside the image, computed per channel and averaged over the
    three channels. This matches ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)`` (a test checks it).
NLMD (normalised landmark distance)
    The paper (IV-C) uses the NLMD of Eskimez, Maddox, Xu, Duan, "End-to-end generation of talking
    faces from noisy speech", ICASSP 2020, which compares landmark sets after removing position and
    scale. We could not check that paper's exact normalising constant, so this is the definition WE
    implement: for one frame, with 68 landmarks ``p_i`` (generated) and ``q_i`` (ground truth),

    ``n(x)_i = (x_i - mean_j x_j) / sqrt(mean_j ||x_j - mean_k x_k||^2)``   (centroid at 0, RMS radius 1)

    ``NLMD_frame = mean_i || n(p)_i - n(q)_i ||_2``   (i over the 68 points),

    and the NLMD of a video is the mean over its frames (frames where either face was not found are
    left out and counted). It is zero for identical sets and invariant to translating or scaling
    either set. It is not rotation-invariant (a tilted head counts as an error), like an LMD on
    aligned frames.
Mouth LMD
    The unnormalised landmark distance used in the field (Chen, Li, Maddox, Duan, Xu, "Lip movements
    generation at a glance", ECCV 2018): ``mean_i ||p_i - q_i||`` over the 20 mouth points (48..67),
    in pixels of the aligned frames, averaged over frames.

Alignment (paper IV-C): each video is aligned onto the same template and crop (``generator.align``)
with the transform of its own first frame, then compared frame by frame at 25 fps; landmarks are
detected on the aligned frames.
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from generator.align import align_clip
from generator.data.prepare import _init_worker, read_video_at_fps
from generator.errors import DataError, GeneratorError, InputError, NoFaceError
from generator.faces import detect_landmarks
from stimuli.crema import parse_crema_name
from stimuli.errors import StimuliError
from stimuli.manifest import atomic_write_bytes, load_manifest

PSNR_CAP_DB = 100.0
MOUTH = tuple(range(48, 68))
METRICS = ("psnr", "ssim", "nlmd", "mouth_lmd")
_SSIM_K1, _SSIM_K2, _SSIM_SIGMA, _SSIM_TRUNCATE = 0.01, 0.03, 1.5, 3.5


# ---------------------------------------------------------------------------------------------- metrics

def _frames(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None, ..., None]
    elif x.ndim == 3:
        x = x[None] if x.shape[-1] in (1, 3) else x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{name}: expected frames (T, H, W, C), (H, W, C) or (H, W), got {x.shape}")
    return x


def psnr_frames(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Per-frame PSNR (dB) of two equally shaped frame stacks, capped at ``PSNR_CAP_DB``."""
    a, b = _frames(a, "a"), _frames(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs equal shapes, got {a.shape} and {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = (diff ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(data_range ** 2 / mse)
    return np.minimum(out, PSNR_CAP_DB)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean over frames of the per-frame PSNR (dB)."""
    return float(psnr_frames(a, b, data_range).mean())


def _ssim_map_channel(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    from scipy.ndimage import gaussian_filter  # optional heavy dependency: imported only when used

    def blur(z):
        return gaussian_filter(z, sigma=_SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect")

    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)  # window radius (5): mean over windows inside the image
    if s.shape[0] <= 2 * r or s.shape[1] <= 2 * r:
        raise ValueError(f"SSIM needs frames larger than {2 * r + 1}x{2 * r + 1}, got {x.shape}")
    return float(s[r:-r, r:-r].mean())


def ssim_frames(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Per-frame SSIM (module docstring for the exact definition)."""
    a, b = _frames(a, "a"), _frames(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {a.shape} and {b.shape}")
    out = np.empty(len(a))
    for t in range(len(a)):
        out[t] = np.mean([_ssim_map_channel(a[t, ..., c].astype(np.float64), b[t, ..., c].astype(np.float64),
                                            data_range) for c in range(a.shape[-1])])
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean over frames of the per-frame SSIM."""
    return float(ssim_frames(a, b, data_range).mean())


def normalise_landmarks(lm: np.ndarray) -> np.ndarray:
    """Landmarks (..., K, 2) with the centroid moved to 0 and the RMS distance to it scaled to 1."""
    x = np.asarray(lm, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 2:
        raise ValueError(f"landmarks must be (..., K, 2), got {x.shape}")
    c = x - x.mean(axis=-2, keepdims=True)
    scale = np.sqrt((c ** 2).sum(axis=-1).mean(axis=-1))[..., None, None]
    if np.any(scale < 1e-9):
        raise ValueError("a landmark set has all points at one place; it cannot be normalised")
    return c / scale


def nlmd_frames(gen: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame NLMD of (T, 68, 2) landmark sets (NaN where either frame has NaN landmarks)."""
    g, t = np.asarray(gen, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if g.shape != t.shape or g.shape[-1] != 2:
        raise ValueError(f"NLMD needs two equal (T, K, 2) landmark arrays, got {g.shape} and {t.shape}")
    if g.ndim == 2:
        g, t = g[None], t[None]
    out = np.full(len(g), np.nan)
    ok = np.isfinite(g).all(axis=(1, 2)) & np.isfinite(t).all(axis=(1, 2))
    if ok.any():
        out[ok] = np.linalg.norm(normalise_landmarks(g[ok]) - normalise_landmarks(t[ok]), axis=-1).mean(axis=-1)
    return out


def nlmd(gen: np.ndarray, gt: np.ndarray) -> float:
    """Mean NLMD over the frames with landmarks on both sides (NaN if there is none)."""
    v = nlmd_frames(gen, gt)
    return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan


def mouth_lmd_frames(gen: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame mean distance (pixels) of the 20 mouth landmarks 48..67 (NaN where missing)."""
    g, t = np.asarray(gen, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if g.shape != t.shape or g.shape[-2:] != (68, 2):
        raise ValueError(f"mouth LMD needs two equal (T, 68, 2) landmark arrays, got {g.shape} and {t.shape}")
    if g.ndim == 2:
        g, t = g[None], t[None]
    return np.linalg.norm(g[:, list(MOUTH)] - t[:, list(MOUTH)], axis=-1).mean(axis=-1)


def mouth_lmd(gen: np.ndarray, gt: np.ndarray) -> float:
    v = mouth_lmd_frames(gen, gt)
    return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan


def mean_ci95(values: Iterable[float]) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) with a t-based 95% CI over the finite values (NaN bounds when n < 2)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n < 2:
        return m, math.nan, math.nan, 1
    from scipy.stats import t  # optional heavy dependency: imported only when used

    half = float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return m, m - half, m + half, n


# ---------------------------------------------------------------------------------- videos and pairs

@dataclass(frozen=True)
class VideoRef:
    key: str  # what pairs it with its ground truth (manifest id or file stem)
    path: Path


@dataclass
class VideoScore:
    method: str
    key: str
    generated: str
    ground_truth: str
    n_frames: int = 0
    psnr: float = math.nan
    ssim: float = math.nan
    nlmd: float = math.nan
    mouth_lmd: float = math.nan
    frames_without_landmarks: int = 0
    error: str = ""


VIDEO_EXTENSIONS = (".mp4", ".flv", ".avi", ".mov", ".mkv", ".webm")
MATCH_MODES = ("id", "labels")


def _label_key(identity: str, sentence: str, emotion: str | None, intensity: str | None) -> str:
    return f"{identity}|{sentence}|{emotion or '-'}|{intensity or '-'}"


def list_videos(source: str | os.PathLike, *, source_label: str | None = None, match: str = "id",
                size_variant: str | None = None) -> list[VideoRef]:
    """Videos of a folder or of a stimulus set (``manifest.json``), each with its pairing key.

    ``match="id"``: the key is the stimulus_id (manifest) or the file stem (folder).
    ``match="labels"``: identity|sentence|visual_emotion|intensity (manifest), or for a folder the
    actor|sentence|emotion|intensity of a CREMA-D file name; this pairs a generated set with its
    ground truth when the ids differ (generated ids are hashes). ``source_label`` keeps only the
    manifest rows whose ``source`` is that label (e.g. OURS, BL, GT) when the set has such rows.
    ``size_variant`` (e.g. ``128x128``): when those rows hold the same clips in several size variants
    (``emostudy generate --with-gt``), keep the ones of that variant.
    """
    if match not in MATCH_MODES:
        raise ValueError(f"match must be one of {', '.join(MATCH_MODES)}, got {match!r}")
    p = Path(source)
    if p.is_file() and p.suffix == ".json" or (p.is_dir() and (p / "manifest.json").is_file()):
        mpath = p if p.is_file() else p / "manifest.json"
        manifest = load_manifest(mpath, check_media=False)
        rows = list(manifest)
        if source_label is not None and any(s.source == source_label for s in rows):
            rows = [s for s in rows if s.source == source_label]
        if size_variant is not None and len({s.size_variant for s in rows}) > 1 \
                and any(s.size_variant == size_variant for s in rows):
            rows = [s for s in rows if s.size_variant == size_variant]
        refs = [VideoRef(s.stimulus_id if match == "id" else
                         _label_key(s.identity, s.sentence, s.visual_emotion, s.intensity),
                         manifest.media_path(s)) for s in rows]
    elif p.is_dir():
        files = [f for f in sorted(p.iterdir()) if f.suffix.lower() in VIDEO_EXTENSIONS]
        if not files:
            raise InputError(f"{p}: no videos ({', '.join(VIDEO_EXTENSIONS)}) and no manifest.json")
        refs = [VideoRef(f.stem if match == "id" else _crema_label_key(f), f) for f in files]
    else:
        raise InputError(f"{p}: not found; give a folder of videos or a stimulus set (manifest.json)")
    seen: dict[str, Path] = {}
    for r in refs:
        if r.key in seen:
            raise InputError(f"{source}: two videos share the pairing key {r.key!r} ({seen[r.key].name}, "
                             f"{r.path.name}); pair them with --pairs CSV or match by id")
        seen[r.key] = r.path
    return refs


def _crema_label_key(path: Path) -> str:
    try:
        n = parse_crema_name(path.name)
    except StimuliError as exc:
        raise InputError(f"{path}: matching by labels needs CREMA-D file names ({exc})") from None
    return _label_key(n.actor, n.sentence, n.emotion, n.intensity)


def read_pairs_csv(path: str | os.PathLike) -> dict[str, str]:
    """A CSV with columns ``generated,ground_truth`` (keys: manifest ids or file stems)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: pairs file not found")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"generated", "ground_truth"} <= set(reader.fieldnames):
            raise InputError(f"{p}: needs the header columns generated,ground_truth; found {reader.fieldnames}")
        out = {}
        for i, row in enumerate(reader, start=2):
            g, t = (row["generated"] or "").strip(), (row["ground_truth"] or "").strip()
            if not g or not t:
                raise InputError(f"{p}: line {i}: empty generated or ground_truth")
            out[g] = t
    return out


def pair_videos(generated: list[VideoRef], ground_truth: list[VideoRef], pairs: dict[str, str] | None = None
                ) -> tuple[list[tuple[VideoRef, VideoRef]], list[str]]:
    """Match by key (identical ids/stems, or ``pairs`` generated -> ground-truth). Returns (pairs, unmatched)."""
    gt = {r.key: r for r in ground_truth}
    out, unmatched = [], []
    for g in generated:
        target = pairs.get(g.key) if pairs is not None else g.key
        if target is not None and target in gt:
            out.append((g, gt[target]))
        else:
            unmatched.append(g.key)
    return out, unmatched


def load_aligned(path: Path, size: tuple[int, int], *, align: bool = True, fps: float = 25.0,
                 max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a video at ``fps``, align it with its first frame's transform: ((T,H,W,3) RGB, (T,68,2) landmarks)."""
    frames = read_video_at_fps(path, fps, max_frames=max_frames)
    if align:
        lm0 = detect_landmarks(frames[0], where=f"{path} frame 0")
        frames, _ = align_clip(frames, lm0, size)
    elif (frames.shape[2], frames.shape[1]) != tuple(size):
        raise InputError(f"{path}: frames are {frames.shape[2]}x{frames.shape[1]}, not {size[0]}x{size[1]}; "
                         "let evaluate align them (drop --no-align)")
    lms = np.full((len(frames), 68, 2), np.nan, dtype=np.float64)
    for i, f in enumerate(frames):
        try:
            lms[i] = detect_landmarks(f, where=f"{path} aligned frame {i}")
        except NoFaceError:
            pass  # counted by the caller as a frame without landmarks (NaN)
    return frames, lms


def score_pair(method: str, gen: VideoRef, gt: VideoRef, size: tuple[int, int] = (128, 128), *,
               align: bool = True, max_frames: int | None = None) -> VideoScore:
    """All metrics of one generated video against its ground truth (errors end up in ``error``)."""
    score = VideoScore(method=method, key=gen.key, generated=str(gen.path), ground_truth=str(gt.path))
    try:
        fg, lg = load_aligned(gen.path, size, align=align, max_frames=max_frames)
        ft, lt = load_aligned(gt.path, size, align=align, max_frames=max_frames)
    except (GeneratorError, ValueError) as exc:  # one bad video is reported, not fatal
        score.error = str(exc)
        return score
    n = min(len(fg), len(ft))
    fg, ft, lg, lt = fg[:n], ft[:n], lg[:n], lt[:n]
    score.n_frames = n
    score.psnr = psnr(fg, ft)
    score.ssim = ssim(fg, ft)
    missing = ~(np.isfinite(lg).all(axis=(1, 2)) & np.isfinite(lt).all(axis=(1, 2)))
    score.frames_without_landmarks = int(missing.sum())
    score.nlmd = nlmd(lg, lt)
    score.mouth_lmd = mouth_lmd(lg, lt)
    return score


@dataclass
class EvaluationResult:
    scores: list[VideoScore]
    table: list[dict]  # one row per method
    unmatched: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def aggregate(scores: list[VideoScore]) -> list[dict]:
    """One row per method: mean and 95% CI of each metric over the scored videos."""
    rows = []
    for method in dict.fromkeys(s.method for s in scores):
        ok = [s for s in scores if s.method == method and not s.error]
        row: dict = {"method": method, "n_videos": len(ok),
                     "n_failed": sum(1 for s in scores if s.method == method and s.error),
                     "n_frames": sum(s.n_frames for s in ok)}
        for m in METRICS:
            mean, lo, hi, _ = mean_ci95(getattr(s, m) for s in ok)
            row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = mean, lo, hi
        rows.append(row)
    return rows


def _fmt(v: float, digits: int) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def table_markdown(rows: list[dict]) -> str:
    """Table I layout: Method | PSNR | SSIM | NLMD | mouth LMD (mean [95% CI])."""
    digits = {"psnr": 2, "ssim": 3, "nlmd": 4, "mouth_lmd": 2}
    head = "| Method | PSNR (dB) | SSIM | NLMD | Mouth LMD (px) | videos |\n|---|---|---|---|---|---|\n"
    body = ""
    for r in rows:
        cells = [f"{_fmt(r[m], digits[m])} [{_fmt(r[m + '_ci_low'], digits[m])}, {_fmt(r[m + '_ci_high'], digits[m])}]"
                 for m in METRICS]
        body += f"| {r['method']} | " + " | ".join(cells) + f" | {r['n_videos']} |\n"
    notes = ("\nMean over videos [95% t-interval]. Higher PSNR/SSIM and lower NLMD/LMD are better. "
             f"PSNR per frame capped at {PSNR_CAP_DB:.0f} dB. NLMD and LMD definitions: generator/evaluate/metrics.py.\n")
    return head + body + notes


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _score_all(todo, size, align, max_frames, workers, progress) -> list[VideoScore]:
    if workers == 1 or len(todo) <= 1:
        scores = []
        for i, (method, g, t) in enumerate(todo):
            scores.append(score_pair(method, g, t, size, align=align, max_frames=max_frames))
            if progress is not None:
                progress(i + 1, len(todo))
        return scores
    out: list[VideoScore | None] = [None] * len(todo)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = {pool.submit(score_pair, m, g, t, size, align=align, max_frames=max_frames): k
                   for k, (m, g, t) in enumerate(todo)}
        for i, fut in enumerate(as_completed(futures)):
            out[futures[fut]] = fut.result()  # score_pair reports per-video errors in the score itself
            if progress is not None:
                progress(i + 1, len(todo))
    return [s for s in out if s is not None]


def evaluate(generated: dict[str, str | os.PathLike], ground_truth: str | os.PathLike, out: str | os.PathLike, *,
             size: tuple[int, int] = (128, 128), align: bool = True, pairs_csv: str | os.PathLike | None = None,
             max_frames: int | None = None, match: str = "id", gt_source: str | None = None, workers: int = 1,
             progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
    """Score every generated set (``{method label: folder or manifest}``) against the ground truth.

    Pairs by ``match`` (:func:`list_videos`) or by ``pairs_csv``; in a stimulus set holding several
    conditions, each method label keeps the rows whose ``source`` is that label, and ``gt_source``
    those of the ground truth. ``workers`` > 1 scores pairs in that many processes. Writes ``per_video.csv``, ``table1.csv`` and ``table1.md`` into ``out``. A video that cannot be
    read or has no face in its first frame is listed with its error and left out of the aggregate.
    """
    variant = f"{size[0]}x{size[1]}"
    gt_refs = list_videos(ground_truth, source_label=gt_source, match=match, size_variant=variant)
    pairs = read_pairs_csv(pairs_csv) if pairs_csv is not None else None
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    todo: list[tuple[str, VideoRef, VideoRef]] = []
    unmatched: dict[str, list[str]] = {}
    for method, src in generated.items():
        matched, miss = pair_videos(list_videos(src, source_label=method, match=match, size_variant=variant),
                                    gt_refs, pairs)
        if not matched:
            raise InputError(f"{src}: none of its {len(miss)} videos matches a ground-truth video in {ground_truth} "
                             "by id/file name; give --pairs CSV (columns generated,ground_truth)")
        unmatched[method] = miss
        todo.extend((method, g, t) for g, t in matched)
    scores = _score_all(todo, size, align, max_frames, workers, progress)
    rows = aggregate(scores)
    if not any(r["n_videos"] for r in rows):
        first = next((s.error for s in scores if s.error), "")
        raise DataError(f"no video pair could be scored (first error: {first})")
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    files = {"per_video": outdir / "per_video.csv", "table_csv": outdir / "table1.csv",
             "table_md": outdir / "table1.md"}
    _write_csv(files["per_video"], [asdict(s) for s in scores])
    _write_csv(files["table_csv"], rows)
    atomic_write_bytes(files["table_md"], table_markdown(rows).encode("utf-8"))
    return EvaluationResult(scores=scores, table=rows, unmatched=unmatched, files=files)
