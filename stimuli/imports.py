"""Import existing recordings into a new stimulus set (a folder with ``manifest.json`` + ``media/``).

Two sources:

* a folder of videos plus a labels CSV (``import_folder``): columns at least ``file, source,
  visual_emotion, audio_emotion, identity, sentence``; optional ``intensity, size_variant, stimulus_id``;
  any other column goes to the row's ``extra``. An empty emotion (or ``none``) means none/silent.
* a CREMA-D tree (``import_crema_d``): every video whose name is a CREMA-D clip name
  (``1001_DFA_ANG_XX.flv``) becomes a row: identity = actor, sentence = sentence code, visual and audio
  emotion = the clip's emotion, intensity = its code. An mp4 is preferred over an flv of the same clip.

Media are hard-linked (or copied, across file systems or on request) under opaque names
``media/<stimulus_id><ext>``; ids are derived from the file's sha256, so neither the id nor the file
name tells a participant the condition (an id given in the labels CSV is kept, but its media file is
still named ``media/s<sha256[:16]><ext>``). Everything is read, hashed and probed first; the set is then
written into a temporary folder beside ``out`` and renamed into place, so a failed import leaves nothing.
An existing non-empty ``out`` is never touched.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from stimuli.crema import parse_crema_name
from stimuli.emotions import parse_emotion
from stimuli.errors import ImportSourceError, ManifestError
from stimuli.manifest import MANIFEST_NAME, Manifest, build_manifest, save_manifest, sha256_file

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".flv")  # preference order
LABEL_COLUMNS = ("file", "source", "visual_emotion", "audio_emotion", "identity", "sentence")
OPTIONAL_COLUMNS = ("intensity", "size_variant", "stimulus_id")
_NO_EMOTION = {"", "none", "null", "-"}


@dataclass(frozen=True)
class ImportRow:
    """One recording to import: the file and its labels (manifest fields other than the probed ones)."""

    path: Path
    labels: dict[str, Any]
    where: str  # how errors name it: "labels.csv: row 3 (line 4)" or the file path
    original: str  # path relative to the imported folder (kept in the provenance)


@dataclass
class ImportReport:
    manifest: Manifest
    out: Path
    linked: int = 0
    copied: int = 0
    skipped: list[str] = field(default_factory=list)  # "file: reason"
    unlisted: list[str] = field(default_factory=list)  # videos in the folder that the CSV does not name


# ------------------------------------------------------------------------------------------ reading

def _emotion_cell(value: str, fail: Callable[[str], ImportSourceError]) -> str | None:
    if value.strip().lower() in _NO_EMOTION:
        return None
    try:
        return parse_emotion(value)
    except ValueError as exc:
        raise fail(str(exc)) from None


def read_labels_csv(labels: str | os.PathLike, folder: str | os.PathLike) -> list[ImportRow]:
    """Read and check a labels CSV; errors name the CSV row, its line and the column."""
    labels, folder = Path(labels), Path(folder)
    if not labels.is_file():
        raise ImportSourceError(f"{labels}: labels CSV not found")
    if not folder.is_dir():
        raise ImportSourceError(f"{folder}: not a folder of videos")
    with open(labels, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportSourceError(f"{labels}: empty file; the first line must name the columns "
                                    f"{', '.join(LABEL_COLUMNS)}") from None
        header = [h.strip() for h in header]
        dups = sorted({h for h in header if header.count(h) > 1})
        if dups:
            raise ImportSourceError(f"{labels}: header: column {dups[0]!r} appears twice")
        missing = [c for c in LABEL_COLUMNS if c not in header]
        if missing:
            raise ImportSourceError(f"{labels}: header: column '{missing[0]}' is missing; the header has "
                                    f"{', '.join(header) or 'nothing'}, it needs at least {', '.join(LABEL_COLUMNS)}")
        rows: list[ImportRow] = []
        seen_files: dict[str, int] = {}
        for n, cells in enumerate(reader, start=1):
            line = reader.line_num
            where = f"{labels}: row {n} (line {line})"
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) != len(header):
                raise ImportSourceError(f"{where}: has {len(cells)} fields, the header has {len(header)}; "
                                        "quote values that contain commas")
            rec = dict(zip(header, (c.strip() for c in cells)))

            def fail(col: str, msg: str) -> ImportSourceError:
                return ImportSourceError(f"{where}, column '{col}': {msg}")

            rel = rec["file"]
            if not rel:
                raise fail("file", "empty; give the video's path relative to the folder")
            path = folder / rel
            if not path.is_file():
                raise fail("file", f"{rel!r}: no such file in {folder}")
            key = str(path.resolve())
            if key in seen_files:
                raise fail("file", f"{rel!r} is already listed in row {seen_files[key]}")
            seen_files[key] = n
            out: dict[str, Any] = {}
            for col in ("source", "identity", "sentence"):
                if not rec[col]:
                    raise fail(col, "empty; every row needs it")
                out[col] = rec[col]
            for col in ("visual_emotion", "audio_emotion"):
                out[col] = _emotion_cell(rec[col], lambda m, c=col: fail(c, m))
            for col in ("intensity", "size_variant", "stimulus_id"):
                if rec.get(col):
                    out[col] = rec[col]
            extra = {k: v for k, v in rec.items() if k not in LABEL_COLUMNS + OPTIONAL_COLUMNS and v}
            if extra:
                out["extra"] = extra
            rows.append(ImportRow(path=path, labels=out, where=where, original=Path(rel).as_posix()))
    if not rows:
        raise ImportSourceError(f"{labels}: no data rows after the header")
    return rows


def crema_rows(folder: str | os.PathLike, *, source: str = "GT", size_variant: str | None = None,
               skip_bad_names: bool = False) -> tuple[list[ImportRow], list[str]]:
    """Rows for every CREMA-D video under ``folder`` (recursively). Returns (rows, skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportSourceError(f"{folder}: not a folder; give the CREMA-D root (holding e.g. VideoFlash/)")
    best: dict[str, Path] = {}
    bad: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS):
        rel = path.relative_to(folder).as_posix()
        try:
            name = parse_crema_name(path.name)
        except ImportSourceError as exc:
            bad.append(f"{rel}: {exc}")
            continue
        prev = best.get(name.stem)
        if prev is None or VIDEO_EXTENSIONS.index(path.suffix.lower()) < VIDEO_EXTENSIONS.index(prev.suffix.lower()):
            best[name.stem] = path
    if bad and not skip_bad_names:
        raise ImportSourceError(f"{folder}: {len(bad)} video(s) without a CREMA-D name, e.g. {bad[0]}; rename or "
                                "remove them, or pass --skip-bad-names")
    if not best:
        raise ImportSourceError(f"{folder}: no CREMA-D videos found (names like 1001_DFA_ANG_XX.flv, "
                                f"extensions {', '.join(VIDEO_EXTENSIONS)})")
    rows = []
    for stem in sorted(best):
        path = best[stem]
        c = parse_crema_name(stem)
        labels: dict[str, Any] = {"source": source, "visual_emotion": c.emotion, "audio_emotion": c.emotion,
                                  "identity": c.actor, "sentence": c.sentence, "intensity": c.intensity,
                                  "extra": {"sentence_text": c.sentence_text, "crema_name": c.stem}}
        if size_variant:
            labels["size_variant"] = size_variant
        rows.append(ImportRow(path=path, labels=labels, where=str(path),
                              original=path.relative_to(folder).as_posix()))
    return rows, bad


# ------------------------------------------------------------------------------------------ writing

def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportSourceError(f"{out}: already exists and is not an empty folder; import writes a new set "
                                "and never overwrites one: choose another --out")


def _place(src: Path, dst: Path, mode: str) -> str:
    """Hard-link (mode 'auto' or 'link') or copy ``src`` to ``dst``. Returns 'linked' or 'copied'."""
    if mode in ("auto", "link"):
        try:
            os.link(src, dst)
            return "linked"
        except OSError as exc:
            if mode == "link" or exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK,
                                                   errno.ENOTSUP, errno.EOPNOTSUPP):
                raise ImportSourceError(f"{src}: cannot hard-link into {dst.parent} ({exc}); use copy mode") from None
    shutil.copyfile(src, dst)
    return "copied"


def import_rows(rows: Sequence[ImportRow], out: str | os.PathLike, *, name: str = "", description: str = "",
                mode: str = "auto", skip_unreadable: bool = False, console: Any = None,
                probe: Callable[[Path], Any] | None = None) -> ImportReport:
    """Hash and probe every row, then write the set atomically. ``mode``: auto (hard link, else copy),
    link, copy. ``console``: a rich Console for a progress bar (None: quiet)."""
    from stimuli.media import probe as probe_media

    probe = probe or probe_media
    out = Path(out)
    if mode not in ("auto", "link", "copy"):
        raise ImportSourceError(f"mode {mode!r}: use auto, link or copy")
    _check_out(out)
    if not rows:
        raise ImportSourceError("nothing to import")
    prepared: list[tuple[ImportRow, dict[str, Any]]] = []
    skipped: list[str] = []
    by_sha: dict[str, str] = {}
    progress = _progress(console)
    with progress:
        task = progress.add_task("hash + probe", total=len(rows)) if progress.enabled else None
        for row in rows:
            sha = sha256_file(row.path)
            try:
                info = probe(row.path)
            except ManifestError as exc:
                if skip_unreadable:
                    skipped.append(f"{row.original}: {exc}")
                    if task is not None:
                        progress.advance(task)
                    continue
                raise ImportSourceError(f"{row.where}: {exc}") from None
            if sha in by_sha:
                raise ImportSourceError(f"{row.where}: the file {row.original} has the same content as "
                                        f"{by_sha[sha]}; a set holds each video once")
            by_sha[sha] = row.where
            opaque = f"s{sha[:16]}"
            sid = row.labels.get("stimulus_id") or opaque
            record = {
                **row.labels,
                "stimulus_id": sid,
                # Named by content even when the researcher chose the id (it may read "GT_anger_1").
                "media": f"media/{opaque}{row.path.suffix.lower()}",
                "sha256": sha,
                "duration_s": info.duration_s, "fps": info.fps, "width": info.width, "height": info.height,
                "audio_rate": info.audio_rate,
                "provenance": {"backend": "recording", "parameters": {"original": row.original}},
            }
            prepared.append((row, record))
            if task is not None:
                progress.advance(task)
    if not prepared:
        raise ImportSourceError(f"none of the {len(rows)} videos could be read: {skipped[0] if skipped else ''}")
    # Validate the whole manifest before writing; name the import row on error.
    for i, (row, record) in enumerate(prepared, start=1):
        try:
            build_manifest(out, [record], where=row.where)
        except ManifestError as exc:
            raise ImportSourceError(str(exc).replace(f"{row.where}: row 1", row.where)) from None
    ids: dict[str, str] = {}
    for row, record in prepared:
        if record["stimulus_id"] in ids:
            raise ImportSourceError(f"{row.where}, column 'stimulus_id': {record['stimulus_id']!r} is already "
                                    f"used by {ids[record['stimulus_id']]}; ids must be unique")
        ids[record["stimulus_id"]] = row.where
    manifest = build_manifest(out, [r for _, r in prepared], name=name or out.name, description=description)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    counts = {"linked": 0, "copied": 0}
    try:
        (tmp / "media").mkdir()
        for row, record in prepared:
            counts[_place(row.path, tmp / record["media"], mode)] += 1
        save_manifest(manifest, tmp / MANIFEST_NAME)
        _check_out(out)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=False)  # our own temporary folder, never the user's
        raise
    return ImportReport(manifest=manifest, out=out, linked=counts["linked"], copied=counts["copied"],
                        skipped=skipped)


class _NoProgress:
    enabled = False

    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, *a: Any, **k: Any) -> None:
        return None

    def advance(self, *a: Any) -> None:
        return None


def _progress(console: Any) -> Any:
    if console is None:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 console=console, transient=True)
    p.enabled = True  # type: ignore[attr-defined]
    return p


def import_folder(folder: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike, *,
                  name: str = "", mode: str = "auto", console: Any = None) -> ImportReport:
    """A folder of videos + a labels CSV -> a new stimulus set at ``out``."""
    folder = Path(folder)
    _check_out(Path(out))
    rows = read_labels_csv(labels, folder)
    listed = {r.path.resolve() for r in rows}
    report = import_rows(rows, out, name=name, mode=mode, console=console,
                         description=f"imported from {folder.name} with {Path(labels).name}")
    report.unlisted = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                             if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and p.resolve() not in listed)
    return report


def import_crema_d(folder: str | os.PathLike, out: str | os.PathLike, *, source: str = "GT",
                   size_variant: str | None = None, name: str = "", mode: str = "auto",
                   skip_bad_names: bool = False, skip_unreadable: bool = False, console: Any = None) -> ImportReport:
    """A CREMA-D tree -> a new stimulus set at ``out`` (see the module docstring)."""
    _check_out(Path(out))
    rows, bad = crema_rows(folder, source=source, size_variant=size_variant, skip_bad_names=skip_bad_names)
    report = import_rows(rows, out, name=name, mode=mode, skip_unreadable=skip_unreadable, console=console,
                         description=f"CREMA-D clips imported from {Path(folder).name}")
    report.skipped = bad + report.skipped
    return report
