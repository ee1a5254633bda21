"""CREMA-D preparation: recordings -> the prepared-clip corpus of ``generator.data.corpus`` (paper IV-A).

Input: the CREMA-D layout, ``ROOT/VideoFlash/<name>.flv`` (480x360, 30 fps) and ``ROOT/AudioWAV/<name>.wav``
(44.1 kHz), ``<name>`` = ``ActorID_Sentence_Emotion_Intensity`` (``stimuli.crema.parse_crema_name``).

Per clip (:func:`prepare_clip`):

1. **Video to 25 fps by timestamps**: output frame k shows the source frame whose presentation time is
   nearest to k / 25 s (times counted from the first frame; ties go to the earlier frame), for
   k = 0 .. N-1 with N = round(duration x 25), the duration running to the end of the last source frame.
   This is what ffmpeg's ``fps`` filter does with its default rounding; no frames are blended.
2. **Audio** with ``generator.audio.load_speech``: mono, 8 kHz, mean removed, peak-normalised. It is
   cut (or zero-padded by ``write_clip``) to N x 320 samples for N video frames, so N = ceil(L / 320).
3. **Alignment** (``generator.align``): 68 landmarks on the FIRST frame (``generator.faces``, face policy
   "largest" by default), its 3-point similarity transform onto the template, applied to every frame.
4. **Landmarks on the aligned frames**: by default detected again on every aligned frame
   (``landmarks="aligned"``, what the reference code stores). ``landmarks="transform"`` instead
   detects on the original frames and maps the points with the clip's transform (sharper input to the
   predictor; identical geometry). A frame where no face is found takes the landmarks of the nearest
   frame that has them; a clip where more than ``max_missing`` (20%) of the frames have no face fails.
5. Stored with ``generator.data.corpus.write_clip``: video (N, H, W, 3) uint8 **BGR**, landmarks (N, 68, 2),
   audio; labels actor, sentence, emotion, intensity and the split.

The run (:func:`prepare_crema`) is parallel over clips (processes; ``jobs``), resumable (a clip whose
``clips/<id>.npz`` exists is not prepared again; its record is rebuilt from its name and file), shows a
rich progress bar, and ends with ``index.jsonl`` plus ``prepare_report.json`` listing every failed clip
and why. A failed clip never stops the run: errors are reported per clip, and with ``jobs`` >= 2 even a
worker process that dies (e.g. inside a decoder) costs only its clip. ``jobs=1`` runs in this process
(no process start-up; no protection against such a crash).

Splits are speaker-independent: actors, not clips, are split 70/15/15 into train/val/test, by a seeded
permutation of the sorted actor ids (deterministic for a seed), or as a given split file says (a CSV
with the columns ``actor,split`` or ``clip_id,split``; split in train|val|test).
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from generator.align import align_clip, transform_points
from generator.audio import SAMPLES_PER_FRAME, load_speech
from generator.data.corpus import CLIPS_DIR, SPLITS, ClipInfo, clip_path, write_clip, write_index
from generator.errors import GeneratorError, InputError, NoFaceError
from generator.faces import detect_landmarks
from stimuli.crema import parse_crema_name
from stimuli.errors import StimuliError
from stimuli.manifest import atomic_write_bytes

REPORT_NAME = "prepare_report.json"
LANDMARK_MODES = ("aligned", "transform")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)


# ------------------------------------------------------------------------------------------ video in

def read_video_at_fps(path: str | os.PathLike, fps: float = 25.0, *, max_frames: int | None = None) -> np.ndarray:
    """Decode a video and resample it to ``fps`` by timestamps (module docstring): (N, H, W, 3) uint8 RGB."""
    import av  # optional heavy dependency: imported only when used

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: video file not found")
    frames, times = [], []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise InputError(f"{p}: has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time
                if t is None:  # no timestamps at all: fall back to the nominal rate
                    t = i / float(rate) if rate else i / 25.0
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(t))
                if max_frames is not None and (times[-1] - times[0]) * fps >= max_frames:
                    break
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise InputError(f"{p}: cannot be decoded as video ({exc})") from None
    if not frames:
        raise InputError(f"{p}: the video has no frames")
    idx = select_frames_by_time(np.asarray(times), fps, src_rate=float(rate) if rate else None)
    if max_frames is not None:
        idx = idx[:max_frames]
    return np.stack([frames[i] for i in idx])


def select_frames_by_time(times: np.ndarray, fps: float, *, src_rate: float | None = None) -> np.ndarray:
    """Indices of the source frames shown at k / fps (nearest presentation time; ties to the earlier).

    ``times`` are the source presentation times in seconds (any origin; sorted here). The clip lasts
    until the last frame's time plus one source frame duration (``1 / src_rate``, else the median gap).
    """
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    ts = t[order] - t[order][0]
    if len(ts) == 1:
        return order[:1]
    step = 1.0 / src_rate if src_rate else float(np.median(np.diff(ts)))
    duration = ts[-1] + step
    # N = round(duration x fps): container timestamps are quantised (FLV: 1 ms), so a ceil would add
    # a frame for a 0.6003 s clip at 25 fps.
    n_out = max(1, int(math.floor(duration * fps + 0.5)))
    targets = np.arange(n_out) / fps
    right = np.clip(np.searchsorted(ts, targets, side="left"), 0, len(ts) - 1)
    left = np.clip(right - 1, 0, len(ts) - 1)
    # nearest; on a tie (equal distance) the earlier frame
    pick = np.where(np.abs(ts[left] - targets) <= np.abs(ts[right] - targets), left, right)
    return order[pick]


# ------------------------------------------------------------------------------------------ one clip

@dataclass(frozen=True)
class PrepareOptions:
    size: tuple[int, int] = (128, 128)  # (width, height) of the aligned frames
    fps: float = 25.0  # paper IV-A
    landmarks: str = "aligned"  # "aligned" | "transform" (module docstring, step 4)
    max_missing: float = 0.2  # fraction of frames allowed without a face
    face_policy: str = "largest"  # generator.faces policy for the first frame

    def __post_init__(self) -> None:
        if self.landmarks not in LANDMARK_MODES:
            raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_MODES)}, got {self.landmarks!r}")
        if not 0.0 <= self.max_missing <= 1.0:
            raise ValueError(f"max_missing must be in [0, 1], got {self.max_missing}")


@dataclass(frozen=True)
class ClipSource:
    clip_id: str
    video: Path
    audio: Path
    actor: str
    sentence: str
    emotion: str
    intensity: str


def _fill_missing(lms: list[np.ndarray | None], where: str, max_missing: float) -> tuple[np.ndarray, int]:
    have = [i for i, x in enumerate(lms) if x is not None]
    missing = len(lms) - len(have)
    if not have or missing > max_missing * len(lms):
        raise InputError(f"{where}: no face found in {missing} of {len(lms)} frames (more than "
                         f"{max_missing:.0%}); the clip is left out")
    out = np.empty((len(lms), 68, 2), dtype=np.float32)
    have_arr = np.asarray(have)
    for i, x in enumerate(lms):
        if x is None:
            j = have_arr[np.argmin(np.abs(have_arr - i))]  # nearest frame with a face (earlier on ties)
            x = lms[int(j)]
        out[i] = x
    return out, missing


def prepare_clip(src: ClipSource, out: str | os.PathLike, split: str, options: PrepareOptions = PrepareOptions()
                 ) -> ClipInfo:
    """Prepare one clip into ``out`` (module docstring). Raises GeneratorError naming the file."""
    frames = read_video_at_fps(src.video, options.fps)
    if not src.audio.is_file():
        raise InputError(f"{src.audio}: audio file not found (expected beside VideoFlash/{src.video.name} "
                         "in AudioWAV/)")
    audio = load_speech(src.audio)
    lm0 = detect_landmarks(frames[0], policy=options.face_policy, where=f"{src.video} frame 0")
    aligned, M = align_clip(frames, lm0, options.size)
    per_frame: list[np.ndarray | None] = []
    for i in range(len(frames)):
        try:
            if options.landmarks == "aligned":
                per_frame.append(detect_landmarks(aligned[i], where=f"{src.video} aligned frame {i}"))
            else:
                lm = lm0 if i == 0 else detect_landmarks(frames[i], where=f"{src.video} frame {i}")
                per_frame.append(transform_points(np.asarray(lm, dtype=np.float32), M))
        except NoFaceError:
            per_frame.append(None)
    landmarks, _ = _fill_missing(per_frame, str(src.video), options.max_missing)
    n = len(aligned)
    audio = audio[: n * SAMPLES_PER_FRAME]
    info = ClipInfo(clip_id=src.clip_id, actor=src.actor, sentence=src.sentence, emotion=src.emotion,
                    intensity=src.intensity, split=split, n_frames=n, source="crema-d")
    bgr = np.ascontiguousarray(aligned[..., ::-1])
    write_clip(out, info, bgr, landmarks, audio)
    return info


# ------------------------------------------------------------------------------------------ the run

def discover_crema(root: str | os.PathLike) -> tuple[list[ClipSource], list[tuple[str, str]]]:
    """The clips of a CREMA-D tree: (sources, [(file, why) for names that are not CREMA-D names])."""
    r = Path(root)
    vdir, adir = r / "VideoFlash", r / "AudioWAV"
    if not vdir.is_dir():
        raise InputError(f"{r}: no VideoFlash/ folder; give the CREMA-D root (with VideoFlash/ and AudioWAV/)")
    sources, bad = [], []
    for v in sorted(vdir.iterdir()):
        if v.suffix.lower() != ".flv" or v.name.startswith("."):
            continue
        try:
            name = parse_crema_name(v.name)
        except StimuliError as exc:
            bad.append((str(v), str(exc)))
            continue
        sources.append(ClipSource(clip_id=name.stem, video=v, audio=adir / f"{v.stem}.wav", actor=name.actor,
                                  sentence=name.sentence, emotion=name.emotion, intensity=name.intensity))
    if not sources and not bad:
        raise InputError(f"{vdir}: no .flv clips found")
    return sources, bad


def assign_splits(actors: list[str], seed: int = 0, ratios: tuple[float, float, float] = DEFAULT_RATIOS
                  ) -> dict[str, str]:
    """Actor -> split: a seeded permutation of the sorted actors cut 70/15/15 (at least one actor in val
    and test once there are three actors)."""
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-9 or min(ratios) < 0:
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    uniq = sorted(set(actors))
    n = len(uniq)
    n_val, n_test = round(ratios[1] * n), round(ratios[2] * n)
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = n - n_val - n_test
    perm = np.random.default_rng(seed).permutation(n)
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return {uniq[int(i)]: labels[k] for k, i in enumerate(perm)}


def read_split_file(path: str | os.PathLike) -> tuple[str, dict[str, str]]:
    """A split CSV: returns ("actor" | "clip_id", {key: split})."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: split file not found")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        kind = "clip_id" if "clip_id" in cols else "actor" if "actor" in cols else None
        if kind is None or "split" not in cols:
            raise InputError(f"{p}: needs the header columns actor,split or clip_id,split; found {reader.fieldnames}")
        out = {}
        for lineno, row in enumerate(reader, start=2):
            key, split = (row[kind] or "").strip(), (row["split"] or "").strip().lower()
            if split not in SPLITS:
                raise InputError(f"{p}: line {lineno}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
            if key in out and out[key] != split:
                raise InputError(f"{p}: line {lineno}: {kind} {key} is given two splits ({out[key]}, {split})")
            out[key] = split
    return kind, out


@dataclass
class PrepareResult:
    prepared: list[ClipInfo] = field(default_factory=list)  # prepared by this run
    skipped: list[ClipInfo] = field(default_factory=list)  # already done before
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file or clip id, why)
    index_path: Path | None = None
    report_path: Path | None = None

    @property
    def clips(self) -> list[ClipInfo]:
        return sorted(self.prepared + self.skipped, key=lambda c: c.clip_id)


def _done_info(out: Path, src: ClipSource, split: str) -> ClipInfo | None:
    path = clip_path(out, src.clip_id)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            n = int(z["landmarks"].shape[0])
    except (OSError, ValueError, KeyError, EOFError):
        return None  # an unreadable file is prepared again (write_clip replaces it atomically)
    return ClipInfo(clip_id=src.clip_id, actor=src.actor, sentence=src.sentence, emotion=src.emotion,
                    intensity=src.intensity, split=split, n_frames=n, source="crema-d")


def _check_same_options(out: Path, options: PrepareOptions, done_clip: str) -> None:
    """A resumed corpus must keep its format: refuse other --size/--landmarks/fps than the clips already there."""
    fix = "give a new --out folder for these options, or run with the options the corpus was made with"
    w, h = options.size
    with np.load(clip_path(out, done_clip)) as z:
        shape = tuple(z["video"].shape[1:3])
    if shape != (h, w):
        raise InputError(f"{clip_path(out, done_clip)}: clips already in {out} are {shape[1]}x{shape[0]}, this run "
                         f"asks for --size {w}x{h}; {fix}")
    report = out / REPORT_NAME
    if report.is_file():
        try:
            before = json.loads(report.read_text(encoding="utf-8")).get("options", {})
        except (OSError, ValueError):
            return
        for key in ("fps", "landmarks"):
            if key in before and before[key] != getattr(options, key):
                raise InputError(f"{report}: the corpus was prepared with {key} = {before[key]!r}, this run asks "
                                 f"for {getattr(options, key)!r}; {fix}")


def _init_worker() -> None:
    import cv2  # optional heavy dependency: imported only when used

    cv2.setNumThreads(1)  # one process per core; no oversubscription


def _worker(src: ClipSource, out: str, split: str, options: PrepareOptions) -> tuple[ClipInfo | None, str]:
    """Runs in a worker: (info, "") or (None, why). Every failure of a clip is reported, never raised,
    so that one bad clip cannot stop the run."""
    try:
        return prepare_clip(src, out, split, options), ""
    except GeneratorError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - reported per clip in the summary and the report file
        return None, f"{type(exc).__name__}: {exc}"


def prepare_crema(root: str | os.PathLike, out: str | os.PathLike, *, jobs: int = 2,
                  split_file: str | os.PathLike | None = None, seed: int = 0,
                  options: PrepareOptions = PrepareOptions(), limit: int | None = None,
                  console=None, show_progress: bool = True) -> PrepareResult:
    """Prepare a CREMA-D tree into a corpus folder (module docstring). Returns what happened."""
    from rich.console import Console  # optional heavy dependency: imported only when used
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,  # optional heavy dependency: imported only when used
    )
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    console = console or Console(stderr=True)
    outdir = Path(out)
    sources, bad_names = discover_crema(root)
    if limit is not None:
        sources = sources[:limit]
    if split_file is not None:
        kind, table = read_split_file(split_file)
        missing = sorted({getattr(s, kind) for s in sources} - set(table))
        if missing:
            raise InputError(f"{split_file}: no split for {len(missing)} {kind}(s), e.g. {', '.join(missing[:5])}; "
                             f"add rows '{kind},split' for them")
        split_of = {s.clip_id: table[getattr(s, kind)] for s in sources}
    else:
        by_actor = assign_splits([s.actor for s in sources], seed)
        split_of = {s.clip_id: by_actor[s.actor] for s in sources}

    result = PrepareResult(failed=list(bad_names))
    todo = []
    for s in sources:
        done = _done_info(outdir, s, split_of[s.clip_id])
        if done is not None:
            result.skipped.append(done)
        else:
            todo.append(s)
    if result.skipped:
        _check_same_options(outdir, options, result.skipped[0].clip_id)
    (outdir / CLIPS_DIR).mkdir(parents=True, exist_ok=True)

    columns = (TextColumn("[bold]prepare[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not show_progress) as progress:
        task = progress.add_task(f"{len(todo)} clips ({len(result.skipped)} already done)", total=len(todo))

        def record(src: ClipSource, info: ClipInfo | None, why: str) -> None:
            if info is not None:
                result.prepared.append(info)
            else:
                result.failed.append((str(src.video), why))
            progress.advance(task)

        if jobs == 1 or len(todo) <= 1:
            _init_worker()
            for s in todo:
                record(s, *_worker(s, str(outdir), split_of[s.clip_id], options))
        else:
            _run_pool(todo, outdir, split_of, options, jobs, multiprocessing.get_context("spawn"), record)

    result.index_path = write_index(outdir, result.clips)
    report = {
        "root": str(Path(root).resolve()), "n_clips": len(sources), "prepared": len(result.prepared),
        "skipped_already_done": len(result.skipped), "failed": [{"file": f, "reason": r} for f, r in result.failed],
        "options": {**asdict(options), "size": list(options.size)}, "seed": seed,
        "split_file": str(split_file) if split_file is not None else None,
        "splits": {sp: sorted({c.actor for c in result.clips if c.split == sp}) for sp in SPLITS},
    }
    result.report_path = outdir / REPORT_NAME
    atomic_write_bytes(result.report_path, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    _print_summary(console, result)
    return result


def _run_pool(todo, outdir, split_of, options, jobs, ctx, record, worker=_worker) -> None:
    """Run clips in worker processes, at most 2 x jobs submitted at a time. If a worker dies (a crash
    inside a decoder), the pool breaks and fails the clips then in flight: they are set aside, a fresh
    pool takes the rest, and each set-aside clip is then run alone once; one that kills its solo
    worker too is reported as failed."""
    queue = list(reversed(todo))
    suspects: list[ClipSource] = []
    while queue:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
            inflight: dict[Future, ClipSource] = {}
            broken = False
            while (queue or inflight) and not broken:
                while queue and len(inflight) < 2 * jobs:
                    s = queue.pop()
                    inflight[pool.submit(worker, s, str(outdir), split_of[s.clip_id], options)] = s
                finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in finished:
                    s = inflight.pop(fut)
                    try:
                        info, why = fut.result()
                    except BrokenProcessPool:
                        suspects.append(s)
                        broken = True
                        continue
                    record(s, info, why)
            if broken:
                wait(list(inflight))
                for fut, s in inflight.items():
                    try:
                        info, why = fut.result()
                    except BrokenProcessPool:
                        suspects.append(s)
                        continue
                    record(s, info, why)
    for s in suspects:
        _single_in_pool(s, outdir, split_of, options, ctx, record, worker)


def _single_in_pool(src, outdir, split_of, options, ctx, record, worker=_worker) -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker) as pool:
        fut = pool.submit(worker, src, str(outdir), split_of[src.clip_id], options)
        try:
            info, why = fut.result()
        except BrokenProcessPool:
            info, why = None, "the worker process crashed while preparing this clip (run alone, it crashed again)"
    record(src, info, why)


def _print_summary(console, result: PrepareResult) -> None:
    from rich.table import Table  # optional heavy dependency: imported only when used

    counts = {sp: sum(1 for c in result.clips if c.split == sp) for sp in SPLITS}
    console.print(f"prepared {len(result.prepared)} clips, {len(result.skipped)} already done, "
                  f"{len(result.failed)} failed; corpus: {counts['train']} train / {counts['val']} val / "
                  f"{counts['test']} test clips -> {result.index_path}")
    if result.failed:
        table = Table(title=f"{len(result.failed)} clips failed (see {result.report_path})")
        table.add_column("clip")
        table.add_column("why")
        for f, why in result.failed:
            table.add_row(Path(f).name, why)
        console.print(table)
