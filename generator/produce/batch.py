"""Batch production of stimulus sets: a design -> jobs -> browser-playable mp4 files + a manifest.

Designs (matched, mismatched, factorial, continuum, jobs): see :mod:`generator.produce.jobs`.

Reliability (``produce``): a stimulus id is a hash of everything that makes the clip (input file
contents, labels, emotion, intensity, repeat, renderer and its options, run seed); the per-item seed
derives from the run seed and the job. Files are made in a per-job temporary folder and renamed into
``media/``; each finished item is appended to a journal (``journal.jsonl``) and the manifest is
rewritten atomically every few seconds and at the end, so a killed run loses nothing and a re-run
skips every item whose media match their recorded sha256. A failed item is written to
``failures.jsonl`` with its reason and the others go on. Nothing in the output folder is deleted: a
media file that no record vouches for is renamed aside (``*.unverified-N``) before it is remade.
``--shard i/N`` writes ``manifest.shard-i-of-N.json`` (and journal/failures of the shard) into the same
folder; ``merge_shards`` joins them (and other folders) deterministically, rows sorted by id.

Participants must not read emotions from file names: media are ``media/<stimulus_id>.mp4`` with a
poster ``media/<stimulus_id>.png``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from generator.align import align_clip
from generator.audio import MIN_DURATION_S, MODEL_RATE, load_speech, normalise, read_audio, resample
from generator.errors import GeneratorError, InputError, NoFaceError
from generator.faces import as_rgb, detect_landmarks, load_image
from generator.mediaio import read_first_frame, read_video, write_mp4
from generator.produce import recombine

# The job planning lives in generator.produce.jobs; its public names are re-exported here (one import for users).
from generator.produce.jobs import (  # noqa: F401
    AUDIO_EXTS,
    DESIGNS,
    IMAGE_EXTS,
    SYNTHETIC_ACTOR_PREFIX,
    VIDEO_EXTS,
    DesignOptions,
    FaceItem,
    Job,
    ProduceError,
    SpeechItem,
    blend_vector,
    collect_files,
    label_speech,
    one_hot,
    parse_crema_like,
    plan_jobs,
    read_jobs_csv,
    read_labels_csv,
)
from generator.renderers import get_renderer
from stimuli.errors import StimuliError
from stimuli.manifest import MANIFEST_NAME, atomic_write_bytes, build_manifest, save_manifest, sha256_file
from stimuli.media import probe

FPS = 25
MEDIA_DIR = "media"
JOURNAL = "journal.jsonl"
FAILURES = "failures.jsonl"
RUNS_DIR = "runs"
TMP_DIR = ".tmp"
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", os.uname().nodename if hasattr(os, "uname") else "host")
ID_LENGTH = 20  # hex characters of the stimulus id (80 bits)
FORMAT_VERSION = 1  # bump when the same job would make different files (it changes every id)

# -------------------------------------------------------------------------------------- ids and seeds

class _Hashes:
    """sha256 of input files, computed once per path; a missing file hashes as its name."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if path not in self._cache:
            p = Path(path)
            self._cache[path] = sha256_file(p) if p.is_file() else f"missing:{p.name}"
        return self._cache[path]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def job_key(job: Job, hashes: _Hashes) -> dict[str, Any]:
    """Everything about a job that makes its clip, with files by content (not by path)."""
    d = dataclasses.asdict(job)
    d["face"], d["speech"] = hashes(job.face), hashes(job.speech)
    d["visual"] = None if job.visual is None else [round(w, 6) for w in job.visual]
    d.pop("design")  # the same clip made by two designs is the same stimulus
    if d.get("visual_origin") == "render":
        d.pop("visual_origin")  # the default: ids made before the field existed stay the same
    return d


def item_seed(run_seed: int, key: dict[str, Any]) -> int:
    """The per-item seed: 31 bits of sha256(run seed, job key)."""
    return int(_digest({"seed": run_seed, "job": key})[:8], 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class RendererSpec:
    """Which renderer makes the clips, as plain data (it travels to worker processes)."""

    backend: str = "warp"
    options: dict[str, Any] = field(default_factory=dict)
    size: int = 128
    source: str | None = None  # the manifest's condition label; default from the backend

    def source_label(self) -> str:
        if self.source:
            return self.source
        if self.backend == "neural":
            return "OURS"
        if self.backend == "warp":
            comps = self.options.get("components")
            if comps is not None:
                comps = tuple(comps)
                if comps == ():
                    return "STILL"
                if "expression" not in comps:
                    return "LIPS"
            return "WARP"
        return self.backend.upper()

    def identity(self) -> dict[str, Any]:
        opts = {}
        for k, v in sorted(self.options.items()):
            if k == "device":
                continue  # where it runs does not change what it makes
            if k == "checkpoint" and v is not None:
                opts["checkpoint_sha256"] = sha256_file(v) if Path(v).is_file() else f"missing:{Path(v).name}"
            else:
                opts[k] = list(v) if isinstance(v, (tuple, list)) else v
        return {"backend": self.backend, "options": opts, "size": self.size}


def stimulus_id(job: Job, key: dict[str, Any], spec: RendererSpec, seed: int, renderer_id: dict[str, Any]) -> str:
    # A ground-truth item is the recording itself: the same id whatever renderer the run uses.
    what: dict[str, Any] = {"format": FORMAT_VERSION, "job": key, "source": "GT"}
    if job.kind == "render":
        what.update(source=spec.source_label(), renderer=renderer_id, seed=seed)
    return _digest(what)[:ID_LENGTH]


@dataclass(frozen=True)
class PlannedItem:
    stimulus_id: str
    seed: int
    job: Job


def plan_items(jobs: Sequence[Job], spec: RendererSpec, run_seed: int,
               shard: tuple[int, int] | None = None) -> list[PlannedItem]:
    """Ids and seeds of the jobs; with ``shard=(i, N)`` only the i-th of N (by id, 0-based).
    Two jobs with the same id (the same clip asked twice) are made once."""
    hashes = _Hashes()
    renderer_id = spec.identity()
    out: dict[str, PlannedItem] = {}
    for job in jobs:
        key = job_key(job, hashes)
        seed = item_seed(run_seed, key)
        sid = stimulus_id(job, key, spec, seed, renderer_id)
        out.setdefault(sid, PlannedItem(stimulus_id=sid, seed=seed, job=job))
    items = list(out.values())
    if shard is not None:
        i, n = shard
        items = [it for it in items if int(it.stimulus_id, 16) % n == i]
    return items


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` (0-based i) -> (i, N)."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ProduceError(f"--shard {text!r}: write i/N with 0 <= i < N, e.g. 0/4 ... 3/4")
    return int(m.group(1)), int(m.group(2))


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


# -------------------------------------------------------------------------------------- making a clip

def load_face(path: str) -> np.ndarray:
    """A face photo, or the first frame of a video, as (H, W, 3) uint8 RGB."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: face file not found")
    if p.suffix.lower() in VIDEO_EXTS:
        return as_rgb(read_first_frame(p), where=f"{p} frame 0")
    return load_image(p)


def speech_for_renderer(x: np.ndarray, rate: int, where: str) -> np.ndarray:
    """``generator.audio.load_speech`` on audio already decoded (one decode serves both the renderer's
    8 kHz input and the mp4's full-rate track): the same checks, resampling and normalisation."""
    dur = len(x) / rate
    if dur < MIN_DURATION_S:
        raise InputError(f"{where}: speech is {dur:.2f} s long; at least {MIN_DURATION_S:.1f} s is needed "
                         "(one video frame is 40 ms)")
    if float(np.abs(x).max()) < 1e-4:
        raise InputError(f"{where}: the recording is silent; give a speech recording")
    return normalise(resample(x, rate, MODEL_RATE))


def _write_poster(path: Path, frame: np.ndarray) -> None:
    from PIL import Image  # optional heavy dependency: imported only when used

    Image.fromarray(np.ascontiguousarray(frame)).save(path, format="PNG")


def _check_media(info: Any, path: Path) -> None:
    problems = []
    if info.video_codec != "h264":
        problems.append(f"video codec {info.video_codec} (want h264)")
    if info.pix_fmt != "yuv420p":
        problems.append(f"pixel format {info.pix_fmt} (want yuv420p)")
    if abs(info.fps - FPS) > 1e-6:
        problems.append(f"{info.fps} fps (want {FPS})")
    if info.audio_codec not in ("aac",):
        problems.append(f"audio codec {info.audio_codec} (want aac)")
    if problems:
        raise GeneratorError(f"{path}: made a file that browsers may not play: {'; '.join(problems)}")


def _gt_clip(job: Job) -> tuple[np.ndarray, dict[str, Any]]:
    """A recorded video aligned to ``job.size_variant`` with its first frame's landmarks."""
    frames, fps = read_video(job.face)
    if abs(fps - FPS) > 0.01:
        # Keep the time line: pick the frame shown at each 25 fps instant.
        n = int(round(len(frames) / fps * FPS))
        idx = np.minimum((np.arange(n) * fps / FPS).round().astype(int), len(frames) - 1)
        frames = frames[idx]
    w, h = (int(v) for v in str(job.size_variant).split("x"))
    lm = detect_landmarks(frames[0], where=f"{job.face} frame 0")
    aligned, M = align_clip(frames, lm, (w, h))
    return aligned, {"aligned_to": f"{w}x{h}", "source_fps": fps, "transform": np.asarray(M).round(6).tolist()}


def make_item(item: PlannedItem, renderer: Any, spec: RendererSpec, out: Path) -> dict[str, Any]:
    """Make one stimulus (media + poster in ``out/media``) and return its manifest row."""
    job, sid = item.job, item.stimulus_id
    tmp = out / TMP_DIR / f"{sid}-{_HOST}-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        if not Path(job.speech).is_file():
            raise InputError(f"{job.speech}: speech file not found")
        audio, audio_rate = read_audio(job.speech)  # the recording's own audio, at its own rate and level
        if job.kind == "gt":
            frames, params = _gt_clip(job)
            provenance = {"backend": "recording", "checkpoint_sha256": None, "seed": None,
                          "parameters": params}
            source = "GT"
        elif job.kind == recombine.KIND:
            frames, audio, audio_rate, params = recombine.make_clip(job)
            provenance = {"backend": "recording", "checkpoint_sha256": None, "seed": None, "parameters": params}
            source = spec.source or "RECORDING"
        else:
            face = load_face(job.face)
            speech = speech_for_renderer(audio, audio_rate, job.speech)
            try:
                result = renderer.render(face, speech, job.emotion_spec(), item.seed, intensity=job.intensity,
                                         size=spec.size)
            except NoFaceError as exc:
                raise NoFaceError(f"{job.face}: {str(exc).removeprefix('face image: ')}") from None
            frames = np.asarray(result.frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
                raise GeneratorError(f"renderer {spec.backend} returned frames {frames.shape} {frames.dtype}; "
                                     "expected (T, H, W, 3) uint8")
            if int(result.fps) != FPS:
                raise GeneratorError(f"renderer {spec.backend} returned {result.fps} fps; expected {FPS}")
            provenance = {"backend": getattr(renderer, "name", spec.backend),
                          "checkpoint_sha256": getattr(renderer, "checkpoint_sha256", None), "seed": item.seed,
                          "parameters": {"renderer": _jsonable(result.parameters),
                                         "options": spec.identity()["options"], "size": spec.size or "face",
                                         "intensity": job.intensity, "emotion": list(job.visual or ()),
                                         "face_sha256": _sha_or_none(job.face),
                                         "speech_sha256": _sha_or_none(job.speech),
                                         "format": FORMAT_VERSION}}
            source = spec.source_label()
        media_tmp, poster_tmp = tmp / f"{sid}.mp4", tmp / f"{sid}.png"
        write_mp4(media_tmp, frames, FPS, audio, audio_rate)
        _write_poster(poster_tmp, frames[0])
        info = probe(media_tmp)
        _check_media(info, media_tmp)
        digest = sha256_file(media_tmp)
        media_dir = out / MEDIA_DIR
        media_dir.mkdir(parents=True, exist_ok=True)
        for src in (poster_tmp, media_tmp):  # the mp4 last: its presence means the item is complete
            dst = media_dir / src.name
            if dst.exists():
                _set_aside(dst)
            os.replace(src, dst)
        h, w = frames.shape[1:3]
        return {
            "stimulus_id": sid, "media": f"{MEDIA_DIR}/{sid}.mp4", "sha256": digest,
            "duration_s": round(float(info.duration_s), 6), "fps": float(info.fps), "width": int(w), "height": int(h),
            "audio_rate": info.audio_rate, "source": source, "visual_emotion": job.visual_emotion,
            "audio_emotion": job.audio_emotion, "identity": job.identity, "sentence": job.sentence,
            "intensity": job.speech_intensity if job.kind == "gt" else f"{job.intensity:g}",
            "size_variant": job.size_variant if job.kind == "gt" else f"{w}x{h}",
            "poster": f"{MEDIA_DIR}/{sid}.png", "visual_blend": job.visual_blend,
            **({"visual_emotion_origin": job.visual_origin} if job.visual_origin != "render" else {}),
            "provenance": provenance,
            "extra": {"design": job.design, "repeat": job.repeat, "same_recording": job.same_recording,
                      "speech_intensity": job.speech_intensity, "synthetic_speech": job.synthetic_speech,
                      "face_file": Path(job.face).name, "speech_file": Path(job.speech).name},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own per-job temporary folder


def _sha_or_none(path: str) -> str | None:
    return sha256_file(path) if Path(path).is_file() else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def clean_stale_tmp(out: Path) -> int:
    """Remove the per-job temporary folders that killed runs left behind: only this host's, and only
    those whose process is gone (shards on other machines may share the folder). Returns how many."""
    n = 0
    root = out / TMP_DIR
    if not root.is_dir():
        return 0
    for d in root.iterdir():
        parts = d.name.rsplit("-", 2)
        if len(parts) != 3 or parts[1] != _HOST or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(d, ignore_errors=True)  # our own temporary files, never output
        n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_aside(path: Path) -> Path:
    """Rename a file no record vouches for to ``NAME.unverified-N`` (never delete output)."""
    n = 1
    while (target := path.with_name(f"{path.name}.unverified-{n}")).exists():
        n += 1
    os.replace(path, target)
    return target


# ------------------------------------------------------------------------------- workers (processes)

_WORKER: dict[str, Any] = {}


def build_renderer(spec: RendererSpec, factory: Callable[..., Any] | None = None) -> Any:
    if factory is not None:
        return factory(spec.backend, **spec.options)
    return get_renderer(spec.backend, **spec.options)


def _worker_init(spec: RendererSpec, factory: Callable[..., Any] | None, out: str) -> None:
    # One renderer per worker process; the pool already uses the cores, so each worker's math runs
    # on one thread (set before numpy/torch start their thread pools).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import cv2  # optional heavy dependency: imported only when used

        cv2.setNumThreads(1)
    except ImportError:
        pass
    _WORKER.update(renderer=build_renderer(spec, factory), spec=spec, out=Path(out))


def _worker_make(item: PlannedItem) -> tuple[str, dict[str, Any] | None, str | None]:
    return _make_safely(item, _WORKER["renderer"], _WORKER["spec"], _WORKER["out"])


def _make_safely(item: PlannedItem, renderer: Any, spec: RendererSpec, out: Path
                 ) -> tuple[str, dict[str, Any] | None, str | None]:
    """(id, row, None) or (id, None, reason): a failed item must not stop the run."""
    try:
        return item.stimulus_id, make_item(item, renderer, spec, out), None
    except (GeneratorError, StimuliError, ValueError, OSError) as exc:
        return item.stimulus_id, None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - recorded with its type, the run goes on
        return item.stimulus_id, None, f"unexpected {type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------------ the run

@dataclass
class RunSummary:
    total: int
    produced: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    manifest: Path | None = None
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.total} items: {self.produced} produced, {self.skipped} already done (skipped), "
                f"{self.failed} failed in {self.seconds:.1f} s")


class _Recorder:
    """Rows of the set: read back on start (manifest + journal), journalled per item, saved atomically."""

    def __init__(self, out: Path, shard: tuple[int, int] | None, name: str, description: str,
                 save_every_s: float) -> None:
        sfx = shard_suffix(shard)
        self.out = out
        self.manifest_path = out / (MANIFEST_NAME if shard is None else f"manifest{sfx}.json")
        self.journal_path = out / f"journal{sfx}.jsonl"
        self.failures_path = out / f"failures{sfx}.jsonl"
        self.name, self.description, self.save_every_s = name, description, save_every_s
        self.rows: dict[str, dict[str, Any]] = {}
        self.known: dict[str, dict[str, Any]] = {}
        self._last_save = 0.0
        self._dirty = False

    def load(self) -> None:
        """Earlier rows whose media still match their sha256 (others are dropped and remade): this
        run's own files give the rows it keeps; every manifest and journal in the folder (other shards,
        an unsharded run) tells what is already made."""
        own = {r["stimulus_id"]: r for r in _read_rows(self.manifest_path) + _read_journal(self.journal_path)}
        others: dict[str, dict[str, Any]] = {}
        for path in sorted(self.out.glob("manifest*.json")) + sorted(self.out.glob("journal*.jsonl")):
            if path not in (self.manifest_path, self.journal_path):
                for r in (_read_journal(path) if path.suffix == ".jsonl" else _read_rows(path)):
                    others.setdefault(r["stimulus_id"], r)
        checked: dict[Path, str] = {}

        def verified(row: dict[str, Any]) -> bool:
            media = self.out / row["media"]
            if media not in checked:
                checked[media] = sha256_file(media) if media.is_file() else ""
            return checked[media] == row["sha256"]

        self.rows = {sid: r for sid, r in own.items() if verified(r)}
        self.known = {sid: r for sid, r in others.items() if sid not in self.rows and verified(r)}

    def done(self, sid: str) -> bool:
        """Made already (here or by another run in the folder); the row becomes this run's too."""
        if sid in self.rows:
            return True
        if sid in self.known:
            self.rows[sid] = self.known.pop(sid)
            self._dirty = True
            return True
        return False

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["stimulus_id"]] = row
        line = json.dumps(row, sort_keys=True) + "\n"
        with open(self.journal_path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._dirty = True
        if time.monotonic() - self._last_save >= self.save_every_s:
            self.save()

    def save(self) -> Path:
        manifest = build_manifest(self.out, [self.rows[k] for k in sorted(self.rows)], name=self.name,
                                  description=self.description, where=str(self.manifest_path))
        save_manifest(manifest, self.manifest_path)
        self._last_save = time.monotonic()
        self._dirty = False
        return self.manifest_path

    def write_failures(self, failures: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures).encode()
        if failures or self.failures_path.exists():
            atomic_write_bytes(self.failures_path, data)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProduceError(f"{path}: not valid JSON ({exc}); move it away to start the set again") from None
    return list(data.get("stimuli", []))


def _read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by a kill: that item is remade
    return rows


def _failure_record(item: PlannedItem, reason: str) -> dict[str, Any]:
    j = item.job
    return {"stimulus_id": item.stimulus_id, "face": j.face, "speech": j.speech, "kind": j.kind,
            "visual_emotion": j.visual_emotion, "audio_emotion": j.audio_emotion, "repeat": j.repeat,
            "reason": reason}


def default_workers(spec: RendererSpec) -> int:
    device = str(spec.options.get("device") or "")
    if device.startswith("cuda"):
        return 1  # one process feeds the GPU (in batches when the renderer has render_batch)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def produce(items: Sequence[PlannedItem], out: str | os.PathLike, spec: RendererSpec, *,
            shard: tuple[int, int] | None = None, workers: int | None = None, batch_size: int = 8,
            name: str | None = None, description: str = "", options: dict[str, Any] | None = None,
            console: Any = None, renderer_factory: Callable[..., Any] | None = None,
            save_every_s: float = 2.0) -> RunSummary:
    """Make every planned item that is not already done; returns the summary (``failed`` > 0 when
    some items failed; their reasons are in ``failures.jsonl``)."""
    from rich.console import Console  # optional heavy dependency: imported only when used
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,  # optional heavy dependency: imported only when used
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    rec = _Recorder(out, shard, name or out.name, description, save_every_s)
    rec.load()
    clean_stale_tmp(out)
    started = time.time()
    run_file = _write_run_file(out, shard, options or {}, len(items), started)
    todo = [it for it in items if not rec.done(it.stimulus_id)]
    summary = RunSummary(total=len(items), skipped=len(items) - len(todo))
    by_id = {it.stimulus_id: it for it in todo}
    n_workers = workers or default_workers(spec)
    n_workers = max(1, min(n_workers, len(todo) or 1))

    rested: dict[str, float] = {}  # face file -> the largest rest shift (px) of its clips (rest_note)

    def record(sid: str, row: dict[str, Any] | None, reason: str | None) -> None:
        if row is not None:
            rec.add(row)
            summary.produced += 1
            shift = _rest_shift(row)
            if shift:
                face = str((row.get("extra") or {}).get("face_file") or "?")
                rested[face] = max(rested.get(face, 0.0), shift)
        else:
            summary.failed += 1
            summary.failures.append(_failure_record(by_id[sid], str(reason)))

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"generate {out.name}", total=len(todo), rate="")

            def advance() -> None:
                progress.advance(task)
                t = progress.tasks[0]
                rate = t.completed / max(t.elapsed or 1e-9, 1e-9)
                progress.update(task, rate=f"{rate:.2f} items/s")

            # Built here even when workers build their own: a bad backend or checkpoint is then one
            # clear error before any work, not a crash of every worker.
            renderer = build_renderer(spec, renderer_factory) if any(
                it.job.kind == "render" for it in todo) else None
            if todo and n_workers == 1:
                if renderer is not None and hasattr(renderer, "render_batch") and batch_size > 1:
                    for start in range(0, len(todo), batch_size):
                        for sid, row, reason in _make_batch(todo[start:start + batch_size], renderer, spec, out):
                            record(sid, row, reason)
                            advance()
                else:
                    for it in todo:
                        record(*_make_safely(it, renderer, spec, out))
                        advance()
            elif todo:
                del renderer
                _run_pool(todo, n_workers, spec, renderer_factory, out, record, advance)
    finally:
        rec.write_failures(summary.failures)
        summary.manifest = rec.save()
        summary.seconds = time.time() - started
        _finish_run_file(run_file, summary)
    console.print(summary.line() + (f"; reasons in {rec.failures_path}" if summary.failed else ""))
    for line in _failure_lines(summary.failures):
        console.print(line, markup=False, highlight=False)
    if rested:
        console.print(rest_note(rested))
    return summary


def _failure_lines(failures: Sequence[dict[str, Any]]) -> list[str]:
    """One console line per photo whose clips failed: how many and the first reason."""
    per: dict[str, list[str]] = {}
    for f in failures:
        per.setdefault(Path(str(f.get("face") or "?")).name, []).append(str(f.get("reason") or "?"))
    return [f"  {face}: {len(reasons)} clip(s) failed: {reasons[0]}" for face, reasons in per.items()]


def _rest_shift(row: dict[str, Any]) -> float:
    """The warp renderer's rest shift (px) recorded in a produced row, 0 when none (other backends too)."""
    params = ((row.get("provenance") or {}).get("parameters") or {}).get("renderer") or {}
    try:
        return float(params.get("rest_shift_px") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def rest_note(rested: dict[str, float]) -> str:
    """What to tell a researcher whose photos were not neutral (face file -> largest rest shift, px)."""
    names = ", ".join(f"{name} ({shift:.1f} px)" for name, shift in sorted(rested.items()))
    return (f"note: {len(rested)} photo(s) were not at rest - the mouth was open or smiling and was closed to a "
            f"neutral mouth before the emotion: {names}. A smile's cheeks and folds stay on the face and carry "
            "into every emotion; prefer neutral photos, and run `emostudy check` (the rater flags clips that do "
            "not read as intended). `--rest photo` renders the photo as it is.")


def _run_pool(todo: Sequence[PlannedItem], n_workers: int, spec: RendererSpec,
              factory: Callable[..., Any] | None, out: Path, record: Callable[..., None],
              advance: Callable[[], None]) -> None:
    """Make items in ``n_workers`` spawned processes, each with its own renderer.

    A worker that dies (a crash in native code) breaks the pool and every item then in flight. Those
    items become suspects: in a new pool each is retried alone, and one that kills a worker while
    alone is recorded as failed; the others go on."""
    ctx = mp.get_context("spawn")
    queue, suspects = list(todo), []
    while queue or suspects:
        crashed: list[PlannedItem] = []
        isolated = False
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(spec, factory, str(out))) as pool:
            pending: dict[Future, PlannedItem] = {}
            while (queue or suspects or pending) and not crashed:
                if suspects:
                    if not pending:  # one suspect at a time, nothing else in flight
                        it = suspects.pop(0)
                        pending[pool.submit(_worker_make, it)] = it
                        isolated = True
                else:
                    isolated = False
                    while queue and len(pending) < 2 * n_workers:  # a short queue: a kill loses little
                        it = queue.pop(0)
                        pending[pool.submit(_worker_make, it)] = it
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    it = pending.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        crashed.append(it)
                        continue
                    record(*result)
                    advance()
            crashed += pending.values()
        if isolated and len(crashed) == 1:
            record(crashed[0].stimulus_id, None, "the worker process died while making this item alone (a "
                                                 "crash in native code?); try it with --workers 1 to see why")
            advance()
        else:
            suspects = crashed + suspects


def _make_batch(batch: Sequence[PlannedItem], renderer: Any, spec: RendererSpec, out: Path
                ) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """GPU path: render a batch of clips in one call, then encode each. Inputs that fail to load fail
    their item only; a failing batch call falls back to one clip at a time."""
    inputs, results, ready = [], [], []
    for it in batch:
        if it.job.kind != "render":
            results.append(_make_safely(it, renderer, spec, out))
            continue
        try:
            inputs.append({"face": load_face(it.job.face), "speech": load_speech(it.job.speech),
                           "emotion": it.job.emotion_spec(), "seed": it.seed, "intensity": it.job.intensity})
            ready.append(it)
        except (GeneratorError, ValueError, OSError) as exc:
            results.append((it.stimulus_id, None, f"{type(exc).__name__}: {exc}"))
    if not ready:
        return results
    try:
        rendered = renderer.render_batch(inputs, size=spec.size)
    except (GeneratorError, ValueError, RuntimeError):
        return results + [_make_safely(it, renderer, spec, out) for it in ready]

    class _Done:  # hands make_item the batch's result for one clip
        name = getattr(renderer, "name", spec.backend)
        checkpoint_sha256 = getattr(renderer, "checkpoint_sha256", None)

        def __init__(self, result: Any) -> None:
            self.result = result

        def render(self, *args: Any, **kwargs: Any) -> Any:
            return self.result

    for it, res in zip(ready, rendered):
        results.append(_make_safely(it, _Done(res), spec, out))
    return results


def _write_run_file(out: Path, shard: tuple[int, int] | None, options: dict[str, Any], n: int,
                    started: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    path = out / RUNS_DIR / f"run-{stamp}-{os.getpid()}{shard_suffix(shard)}.json"
    data = {"options": _jsonable(options), "items": n, "started": stamp, "python": sys.version.split()[0],
            "argv": sys.argv}
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    return path


def _finish_run_file(path: Path, summary: RunSummary) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["summary"] = {"total": summary.total, "produced": summary.produced, "skipped": summary.skipped,
                       "failed": summary.failed, "seconds": round(summary.seconds, 3)}
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


# ----------------------------------------------------------------------------------------------- merge

def merge_shards(out: str | os.PathLike, others: Sequence[str | os.PathLike] = (), *,
                 name: str | None = None, description: str = "") -> Path:
    """Join the shard manifests (and journals) in ``out`` and in the folders ``others`` into
    ``out/manifest.json``: media of other folders are copied into ``out`` (verified by sha256); rows are
    sorted by id, so the same shards give the same bytes whatever the order. Two different rows with
    one id are refused."""
    out = Path(out)
    rows: dict[str, dict[str, Any]] = {}
    shard_descriptions: set[str] = set()
    for folder in [out, *map(Path, others)]:
        if not folder.is_dir():
            raise ProduceError(f"{folder}: no such folder to merge")
        for shard_manifest in sorted(folder.glob("manifest.shard-*.json")):
            try:
                shard_descriptions.add(str(json.loads(shard_manifest.read_text(encoding="utf-8")).get("description", "")))
            except (OSError, ValueError):
                pass  # _read_rows below reports an unreadable shard manifest
        sources = sorted(folder.glob("manifest.shard-*.json")) + sorted(folder.glob("journal*.jsonl"))
        if folder != out and (folder / MANIFEST_NAME).is_file():
            sources.append(folder / MANIFEST_NAME)
        for src in sources:
            for row in (_read_journal(src) if src.suffix == ".jsonl" else _read_rows(src)):
                sid = row["stimulus_id"]
                media = folder / row["media"]
                if not media.is_file() or sha256_file(media) != row["sha256"]:
                    continue  # a journal line of an item whose media did not survive
                if sid in rows and _canon(rows[sid]) != _canon(row):
                    raise ProduceError(f"{src}: stimulus {sid} differs from the row already merged; the shards "
                                       "were made with different inputs or software")
                if folder != out:
                    for rel in (row["media"], row.get("poster")):
                        if rel:
                            _copy_verified(folder / rel, out / rel)
                rows[sid] = row
    if not rows:
        raise ProduceError(f"{out}: nothing to merge (no manifest.shard-*.json or journal files with media)")
    if (out / MANIFEST_NAME).is_file():
        for row in _read_rows(out / MANIFEST_NAME):
            if row["stimulus_id"] not in rows and (out / row["media"]).is_file():
                rows[row["stimulus_id"]] = row  # keep what the set already had (never drop output)
    if not description and len(shard_descriptions) == 1:
        description = shard_descriptions.pop()  # the shards' own (e.g. "emostudy generate --design mismatched")
    manifest = build_manifest(out, [rows[k] for k in sorted(rows)], name=name or out.name,
                              description=description, check_media=True)
    return save_manifest(manifest)


def _canon(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def _copy_verified(src: Path, dst: Path) -> None:
    if dst.is_file() and sha256_file(dst) == sha256_file(src):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        _set_aside(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def describe_jobs(items: Sequence[PlannedItem], done: set[str] | None = None) -> list[dict[str, Any]]:
    """One plain row per item for ``--dry-run``."""
    done = done or set()
    return [{"stimulus_id": it.stimulus_id, "status": "done" if it.stimulus_id in done else "todo",
             "kind": it.job.kind, "face": Path(it.job.face).name, "speech": Path(it.job.speech).name,
             "visual": it.job.visual_blend and ",".join(f"{k}={v:g}" for k, v in it.job.visual_blend.items())
             or it.job.visual_emotion, "audio": it.job.audio_emotion, "identity": it.job.identity,
             "sentence": it.job.sentence, "repeat": it.job.repeat, "seed": it.seed,
             "size_variant": it.job.size_variant} for it in items]


def done_ids(out: str | os.PathLike, shard: tuple[int, int] | None = None) -> set[str]:
    """Ids already made in ``out`` (media present and matching)."""
    out = Path(out)
    if not out.is_dir():
        return set()
    rec = _Recorder(out, shard, out.name, "", 1e9)
    rec.load()
    return set(rec.rows)
