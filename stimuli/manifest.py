"""Manifest of a stimulus set: one row per stimulus, validated on load.

A stimulus set is a folder holding ``manifest.json`` and the media files it names (paths relative to the
folder). The file is JSON so that provenance parameters keep their types::

    {
      "schema_version": 2,
      "name": "demo-task2",
      "description": "...",
      "stimuli": [ {row}, ... ]
    }

Row fields (``Stimulus``): see the dataclass below.

Schema versions: 2 adds the optional row field ``check`` (the results of ``emostudy check``: at least
``flagged`` and ``reasons``); 3 adds the optional row field ``norms`` (the clip's norms from a norming
study, written by ``emostudy select``: at least ``n_ratings`` and ``recognition``) and the optional top-level
``selection`` (the rule ``emostudy select`` applied, and where the norms came from). A manifest is written
with the lowest version that holds its content (1 while no row has check results), so that the bytes, and
therefore the sha256 that plans record, of a set made before a version do not change; all versions load. Every error names the manifest file, the row (its
1-based number and its stimulus_id) and the field, and says how to fix it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from stimuli.emotions import EMOTIONS, parse_emotion
from stimuli.errors import ManifestError

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST_NAME = "manifest.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Provenance:
    """How a stimulus was made: enough to make it again."""

    backend: str  # "recording" for imported videos, "warp", "neural", "still", ...
    checkpoint_sha256: str | None = None
    seed: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stimulus:
    """One row of a manifest.

    ``stimulus_id`` is opaque to participants (the server never shows it). ``media`` is relative to the
    set folder. ``visual_emotion``/``audio_emotion`` are canonical emotion names or None (no emotion
    shown / no audio). ``visual_blend`` holds the weights when the visual emotion is a blend (the
    ``visual_emotion`` is then its largest component).
    """

    stimulus_id: str
    media: str
    sha256: str
    duration_s: float
    fps: float
    width: int
    height: int
    audio_rate: int | None
    source: str
    visual_emotion: str | None
    audio_emotion: str | None
    identity: str
    sentence: str
    intensity: str | None = None
    size_variant: str | None = None
    poster: str | None = None
    visual_blend: dict[str, float] | None = None
    provenance: Provenance = field(default_factory=lambda: Provenance(backend="unknown"))
    extra: dict[str, Any] = field(default_factory=dict)
    # Results of `emostudy check` (schema version 2): {"flagged": bool, "reasons": [str, ...], measures...}
    check: dict[str, Any] | None = None
    # The clip's norms (schema version 3, `emostudy select`): {"n_ratings": int, "recognition": float, ...}
    norms: dict[str, Any] | None = None
    # Where the visual emotion comes from: None (the renderer made it, as before this field), "photo" (the
    # person's posed photo of that emotion) or "recording" (a recorded video of that emotion).
    visual_emotion_origin: str | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.check and self.check.get("flagged"))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["check"] is None:
            del d["check"]  # an unchecked row reads as in schema version 1
        if d["norms"] is None:
            del d["norms"]  # a row without norms reads as in schema version 2
        if d["visual_emotion_origin"] is None:
            del d["visual_emotion_origin"]  # rendered rows stay as they were written before the field
        return d


VISUAL_ORIGINS = ("photo", "recording")
_REQUIRED = ("stimulus_id", "media", "sha256", "duration_s", "fps", "width", "height",
             "source", "visual_emotion", "audio_emotion", "identity", "sentence")
_FIELDS = {f.name for f in dataclasses.fields(Stimulus)}


@dataclass(frozen=True)
class Manifest:
    """A validated stimulus set. ``root`` is the set folder (media paths resolve against it)."""

    root: Path
    stimuli: tuple[Stimulus, ...]
    name: str = ""
    description: str = ""
    selection: dict[str, Any] | None = None  # schema version 3: the rule of `emostudy select`

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.stimulus_id: s for s in self.stimuli})

    def __len__(self) -> int:
        return len(self.stimuli)

    def __iter__(self):
        return iter(self.stimuli)

    def __getitem__(self, stimulus_id: str) -> Stimulus:
        try:
            return self._by_id[stimulus_id]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no stimulus {stimulus_id!r} in the manifest of {self.root}") from None

    def __contains__(self, stimulus_id: object) -> bool:
        return stimulus_id in self._by_id  # type: ignore[attr-defined]

    def media_path(self, stimulus: Stimulus | str) -> Path:
        s = self[stimulus] if isinstance(stimulus, str) else stimulus
        return self.root / s.media

    def to_dict(self) -> dict[str, Any]:
        if self.selection is not None or any(s.norms is not None for s in self.stimuli):
            version = 3
        else:
            version = 2 if any(s.check is not None for s in self.stimuli) else 1
        return {
            "schema_version": version,
            "name": self.name,
            "description": self.description,
            "stimuli": [s.to_dict() for s in self.stimuli],
            **({"selection": self.selection} if self.selection is not None else {}),
        }

    def to_json_bytes(self) -> bytes:
        """Canonical bytes: same manifest, same bytes (sorted keys, fixed separators)."""
        return (json.dumps(self.to_dict(), sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json_bytes()).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _row_error(where: str, row: int, sid: Any, field_name: str, message: str) -> ManifestError:
    ident = f" (stimulus_id {sid!r})" if sid not in (None, "") else ""
    return ManifestError(f"{where}: row {row}{ident}, field '{field_name}': {message}")


def stimulus_from_dict(data: dict[str, Any], *, where: str = "manifest", row: int = 1) -> Stimulus:
    """Validate one row (a dict as stored in manifest.json) and build a ``Stimulus``."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: row {row}: expected an object with the stimulus fields, got {type(data).__name__}")
    sid = data.get("stimulus_id")

    def fail(name: str, msg: str) -> ManifestError:
        return _row_error(where, row, sid, name, msg)

    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field; allowed fields are {', '.join(sorted(_FIELDS))} "
                               "(put free-form data under 'extra')")
    for name in _REQUIRED:
        if name not in data:
            raise fail(name, "missing; every row needs it")
    if not isinstance(sid, str) or not _ID_RE.match(sid):
        raise fail("stimulus_id", f"{sid!r} is not a valid id: use 1-128 letters, digits, '_', '.', '-'")
    media = data["media"]
    if not isinstance(media, str) or not media or Path(media).is_absolute() or ".." in Path(media).parts:
        raise fail("media", f"{media!r} must be a non-empty path relative to the set folder, without '..'")
    sha = data["sha256"]
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise fail("sha256", f"{sha!r} is not a lowercase hex sha256 (64 characters)")
    for name in ("duration_s", "fps"):
        v = data[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise fail(name, f"{v!r} must be a positive number")
    for name in ("width", "height"):
        v = data[name]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise fail(name, f"{v!r} must be a positive integer (pixels)")
    rate = data.get("audio_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise fail("audio_rate", f"{rate!r} must be a positive integer (Hz) or null for silent media")
    for name in ("source", "identity", "sentence"):
        v = data[name]
        if not isinstance(v, str) or not v.strip():
            raise fail(name, f"{v!r} must be a non-empty string")
    emos: dict[str, str | None] = {}
    for name in ("visual_emotion", "audio_emotion"):
        v = data[name]
        if v is None:
            emos[name] = None
            continue
        try:
            emos[name] = parse_emotion(v)
        except ValueError as exc:
            raise fail(name, str(exc)) from None
    blend = data.get("visual_blend")
    if blend is not None:
        if not isinstance(blend, dict) or not blend:
            raise fail("visual_blend", f"{blend!r} must map emotion names to non-negative weights")
        clean: dict[str, float] = {}
        for k, w in blend.items():
            try:
                name = parse_emotion(k)
            except ValueError as exc:
                raise fail("visual_blend", str(exc)) from None
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise fail("visual_blend", f"weight {w!r} of {k!r} must be a non-negative number")
            clean[name] = float(w)
        if sum(clean.values()) <= 0:
            raise fail("visual_blend", "all weights are zero")
        blend = {k: clean[k] for k in EMOTIONS if k in clean}
    for name in ("intensity", "size_variant", "poster"):
        v = data.get(name)
        if v is not None and not isinstance(v, str):
            raise fail(name, f"{v!r} must be a string or null")
    poster = data.get("poster")
    if poster is not None and (Path(poster).is_absolute() or ".." in Path(poster).parts):
        raise fail("poster", f"{poster!r} must be relative to the set folder, without '..'")
    prov = data.get("provenance") or {"backend": "unknown"}
    if not isinstance(prov, dict) or not isinstance(prov.get("backend"), str):
        raise fail("provenance", "must be an object with at least a 'backend' string")
    extra_keys = sorted(set(prov) - {"backend", "checkpoint_sha256", "seed", "parameters"})
    if extra_keys:
        raise fail("provenance", f"unknown key {extra_keys[0]!r}; allowed: backend, checkpoint_sha256, seed, parameters")
    ck = prov.get("checkpoint_sha256")
    if ck is not None and (not isinstance(ck, str) or not _SHA_RE.match(ck)):
        raise fail("provenance", f"checkpoint_sha256 {ck!r} is not a lowercase hex sha256")
    seed = prov.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise fail("provenance", f"seed {seed!r} must be an integer or null")
    params = prov.get("parameters") or {}
    if not isinstance(params, dict):
        raise fail("provenance", "parameters must be an object")
    extra = data.get("extra") or {}
    if not isinstance(extra, dict):
        raise fail("extra", "must be an object")
    check = data.get("check")
    if check is not None:
        if not isinstance(check, dict) or not isinstance(check.get("flagged"), bool):
            raise fail("check", "must be an object with a boolean 'flagged' (written by `emostudy check`); "
                                "re-run the check or remove the field")
        reasons = check.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise fail("check", f"'reasons' {reasons!r} must be a list of strings")
    norms = data.get("norms")
    if norms is not None:
        _check_norms(norms, fail)
    origin = data.get("visual_emotion_origin")
    if origin is not None and origin not in VISUAL_ORIGINS:
        raise fail("visual_emotion_origin", f"{origin!r} must be one of {', '.join(VISUAL_ORIGINS)} or null "
                                            "(the renderer made the expression)")
    return Stimulus(
        stimulus_id=sid,
        media=Path(media).as_posix(),
        sha256=sha,
        duration_s=float(data["duration_s"]),
        fps=float(data["fps"]),
        width=int(data["width"]),
        height=int(data["height"]),
        audio_rate=rate,
        source=data["source"].strip(),
        visual_emotion=emos["visual_emotion"],
        audio_emotion=emos["audio_emotion"],
        identity=data["identity"].strip(),
        sentence=data["sentence"].strip(),
        intensity=data.get("intensity"),
        size_variant=data.get("size_variant"),
        poster=poster,
        visual_blend=blend,
        provenance=Provenance(backend=prov["backend"], checkpoint_sha256=ck, seed=seed, parameters=dict(params)),
        extra=dict(extra),
        check=dict(check) if check is not None else None,
        norms=dict(norms) if norms is not None else None,
        visual_emotion_origin=origin,
    )


def _check_norms(norms: Any, fail: Any) -> None:
    """A row's ``norms``: an object with an integer ``n_ratings`` >= 0 and a ``recognition`` in [0, 1] (or null
    for a clip nobody rated); every other value a number, a string or null."""
    fix = "written by `emostudy select`; select the set again or remove the field"
    if not isinstance(norms, dict):
        raise fail("norms", f"must be an object ({fix})")
    n = norms.get("n_ratings")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise fail("norms", f"'n_ratings' {n!r} must be an integer >= 0 ({fix})")
    rec = norms.get("recognition", "missing")
    if rec is not None and (isinstance(rec, bool) or not isinstance(rec, (int, float)) or not 0 <= rec <= 1):
        raise fail("norms", f"'recognition' {rec!r} must be a share between 0 and 1, or null ({fix})")
    for k, v in norms.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, str))):
            raise fail("norms", f"{k!r} is {v!r}: norms hold numbers, strings or null ({fix})")
        if isinstance(v, float) and not math.isfinite(v):
            raise fail("norms", f"{k!r} is {v!r}: write null for a missing value ({fix})")


def build_manifest(root: str | os.PathLike, rows: Iterable[dict[str, Any] | Stimulus], *,
                   name: str = "", description: str = "", where: str | None = None,
                   check_media: bool = False, selection: dict[str, Any] | None = None) -> Manifest:
    """Validate rows and build a manifest. Duplicate ids are refused; ``check_media`` also checks that
    every media file exists and matches its sha256."""
    root = Path(root)
    where = where or str(root / MANIFEST_NAME)
    stimuli: list[Stimulus] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        s = row if isinstance(row, Stimulus) else stimulus_from_dict(row, where=where, row=i)
        if isinstance(row, Stimulus):
            s = stimulus_from_dict(row.to_dict(), where=where, row=i)
        if s.stimulus_id in seen:
            raise _row_error(where, i, s.stimulus_id, "stimulus_id",
                             f"duplicate of row {seen[s.stimulus_id]}; ids must be unique within a set")
        seen[s.stimulus_id] = i
        if check_media:
            p = root / s.media
            if not p.is_file():
                raise _row_error(where, i, s.stimulus_id, "media", f"file {p} does not exist; "
                                 "restore it or remove the row")
            actual = sha256_file(p)
            if actual != s.sha256:
                raise _row_error(where, i, s.stimulus_id, "sha256", f"{p} has sha256 {actual}, the manifest says "
                                 f"{s.sha256}: the file changed since the set was made; re-create or re-import it")
        stimuli.append(s)
    return Manifest(root=root, stimuli=tuple(stimuli), name=name, description=description, selection=selection)


def load_manifest(path: str | os.PathLike, *, check_media: bool = True) -> Manifest:
    """Load and validate ``SET/manifest.json`` (or the folder ``SET``)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(f"{p}: no manifest here; make a set with `emostudy import` or `emostudy generate`")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or "stimuli" not in data:
        raise ManifestError(f"{p}: expected an object with a 'stimuli' list")
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ManifestError(f"{p}: field 'schema_version' is {version!r}; this emostudy reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))}")
    if version == 1 and any(isinstance(r, dict) and "check" in r for r in data["stimuli"]):
        raise ManifestError(f"{p}: rows have a 'check' field, which needs 'schema_version' 2")
    if not isinstance(data["stimuli"], list):
        raise ManifestError(f"{p}: field 'stimuli' must be a list of rows")
    selection = data.get("selection")
    if version < 3 and (selection is not None or any(isinstance(r, dict) and "norms" in r for r in data["stimuli"])):
        raise ManifestError(f"{p}: 'selection' or rows with a 'norms' field need 'schema_version' 3")
    if selection is not None and not isinstance(selection, dict):
        raise ManifestError(f"{p}: field 'selection' must be an object (the rule of `emostudy select`)")
    unknown = sorted(set(data) - {"schema_version", "name", "description", "stimuli", "selection"})
    if unknown and version >= 3:
        raise ManifestError(f"{p}: unknown top-level field {unknown[0]!r}; allowed: name, description, stimuli, "
                            "selection, schema_version")
    return build_manifest(p.parent, data["stimuli"], name=str(data.get("name", "")),
                          description=str(data.get("description", "")), where=str(p), check_media=check_media,
                          selection=selection)


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # Reading the umask means setting it; do it once (the process's umask rarely changes).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; give the file the mode a plain open() would (0666 less the umask), so
        # that a web server running as another user can read a set's manifest.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_manifest(manifest: Manifest, path: str | os.PathLike | None = None) -> Path:
    """Write the manifest atomically (default: ``manifest.root / manifest.json``)."""
    target = Path(path) if path is not None else manifest.root / MANIFEST_NAME
    atomic_write_bytes(target, manifest.to_json_bytes())
    return target
