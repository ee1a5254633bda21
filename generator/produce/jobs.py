"""The jobs of a stimulus set: inputs (faces, speech, recordings, labels) and designs -> ``Job`` list.

Designs (``plan_jobs``), each repeated ``repeats`` times:

- ``matched``: the face shows the speech's emotion (every face x speech, or every recording).
- ``mismatched``: every (visual, audio) pair of the design's emotions (default the six: 36 pairs, the
  paper's Task 2; ``--emotions anger,happiness,sadness``: 9 pairs). With recordings, face and speech come
  from the same recording (face = its first frame); with separate pools, speech of the audio emotion and a
  face are drawn in turn from seeded shuffles.
- ``factorial``: every face x speech x visual emotion given.

``emotions`` (``--emotions``, two or more, default the six) limits matched and mismatched sets to those
emotions (speech labelled with another emotion is left out), so a mismatched set crosses the chosen visual
and audio emotions; in a factorial set they are the visual emotions, crossed with the speech given.
- ``continuum``: ``steps`` blends from one emotion to another (0 ... 1 of the second), every face x speech.
- ``jobs``: an explicit CSV, one row per stimulus (columns in ``read_jobs_csv``).

Nothing here opens a media file: a missing or unreadable input fails its item when the run
(:mod:`generator.produce.batch`) gets to it.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from generator.errors import GeneratorError
from stimuli.emotions import EMOTION_CODES, EMOTIONS, INTENSITY_CODES, parse_emotion
from stimuli.rng import StableRng

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".flv", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
AUDIO_EXTS = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".aiff", ".aif", ".wma"})
DESIGNS = ("matched", "mismatched", "factorial", "continuum", "jobs")
SYNTHETIC_ACTOR_PREFIX = "SYN"  # CREMA-style names of synthetic speech (generator.produce.demo_assets)

# A CREMA-D style name with any actor id: CREMA-D's own (1001-1091) or a synthetic one (SYN01).
_CREMA_LIKE = re.compile(r"^([A-Za-z0-9]+)_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{2})$")


class ProduceError(GeneratorError):
    """The run cannot start: bad options, a design that the inputs cannot fill, a conflicting merge."""


# ----------------------------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class SpeechItem:
    """A speech file (or a recording, whose audio is the speech) and its labels."""

    path: str
    emotion: str | None
    identity: str
    sentence: str
    intensity: str | None = None  # CREMA-D XX/LO/MD/HI when known
    synthetic: bool = False


@dataclass(frozen=True)
class FaceItem:
    path: str
    identity: str


def collect_files(paths: Iterable[str | os.PathLike], exts: frozenset[str], what: str) -> list[Path]:
    """Files with one of ``exts`` under the given folders (recursively, sorted) or the files themselves.

    A folder with none is an error (a typo in ``--faces`` should not make an empty set)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise ProduceError(f"{p}: no {what} files here (looked for {', '.join(sorted(exts))})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ProduceError(f"{p}: no such file or folder ({what})")
    return out


def parse_crema_like(name: str) -> tuple[str, str, str, str] | None:
    """(actor, sentence code, emotion, intensity) of a CREMA-D style name, or None."""
    stem = Path(name).name.split(".", 1)[0]
    m = _CREMA_LIKE.match(stem)
    if not m:
        return None
    actor, sentence, emo, inten = m.groups()
    if emo.upper() not in EMOTION_CODES or inten.upper() not in INTENSITY_CODES:
        return None
    return actor, sentence.upper(), EMOTIONS[EMOTION_CODES.index(emo.upper())], inten.upper()


def read_labels_csv(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Speech labels: a CSV with columns ``file`` and ``emotion`` (the audio emotion) and optionally
    ``identity``, ``sentence``, ``intensity``, ``synthetic`` (1/0). ``file`` is a file name or a path;
    rows are looked up by the file's name. Returns {file name: row}."""
    p = Path(path)
    if not p.is_file():
        raise ProduceError(f"{p}: labels CSV not found")
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if not {"file", "emotion"} <= cols:
            raise ProduceError(f"{p}: the labels CSV needs the columns 'file' and 'emotion' "
                               f"(found {', '.join(sorted(cols)) or 'none'})")
        out: dict[str, dict[str, str]] = {}
        for i, row in enumerate(reader, start=2):
            name = Path((row.get("file") or "").strip()).name
            if not name:
                raise ProduceError(f"{p}: line {i}, column 'file': empty")
            try:
                row["emotion"] = parse_emotion(row["emotion"])
            except ValueError as exc:
                raise ProduceError(f"{p}: line {i}, column 'emotion': {exc}") from None
            if name in out:
                raise ProduceError(f"{p}: line {i}: {name!r} is labelled twice")
            out[name] = {k: (v or "").strip() for k, v in row.items() if k}
    return out


def label_speech(path: Path, labels: dict[str, dict[str, str]] | None = None) -> SpeechItem:
    """Labels of one speech file: from the labels CSV, else from a CREMA-D style name, else unknown."""
    row = (labels or {}).get(path.name)
    crema = parse_crema_like(path.name)
    if row is not None:
        return SpeechItem(path=str(path), emotion=row["emotion"],
                          identity=row.get("identity") or (crema[0] if crema else path.stem),
                          sentence=row.get("sentence") or (crema[1] if crema else path.stem),
                          intensity=row.get("intensity") or (crema[3] if crema else None),
                          synthetic=row.get("synthetic", "").lower() in ("1", "true", "yes"))
    if crema is not None:
        actor, sentence, emotion, intensity = crema
        return SpeechItem(path=str(path), emotion=emotion, identity=actor, sentence=sentence,
                          intensity=intensity, synthetic=actor.upper().startswith(SYNTHETIC_ACTOR_PREFIX))
    return SpeechItem(path=str(path), emotion=None, identity=path.stem, sentence=path.stem)


# ------------------------------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Job:
    """One stimulus to make. ``kind`` is ``render`` (a renderer animates the face) or ``gt`` (a recorded
    video aligned to ``size_variant``). ``visual`` is the emotion vector (6 weights summing to 1)."""

    face: str
    speech: str
    visual: tuple[float, ...] | None
    audio_emotion: str | None
    identity: str
    sentence: str
    repeat: int = 0
    intensity: float = 1.0
    speech_intensity: str | None = None
    same_recording: bool = False
    synthetic_speech: bool = False
    design: str = ""
    kind: str = "render"
    size_variant: str | None = None
    # Where the visual emotion comes from: "render" (the renderer makes it), "photo" (the person's posed
    # photo of it: generator.produce.photos), "recording" (a recorded video: generator.produce.recombine).
    visual_origin: str = "render"

    @property
    def visual_emotion(self) -> str | None:
        if self.visual is None:
            return None
        return EMOTIONS[int(np.argmax(self.visual))]

    @property
    def visual_blend(self) -> dict[str, float] | None:
        if self.visual is None or max(self.visual) >= 1.0:
            return None
        return {e: w for e, w in zip(EMOTIONS, self.visual) if w > 0}

    def emotion_spec(self) -> str | dict[str, float]:
        blend = self.visual_blend
        return blend if blend is not None else str(self.visual_emotion)


def one_hot(emotion: str) -> tuple[float, ...]:
    name = parse_emotion(emotion)
    return tuple(1.0 if e == name else 0.0 for e in EMOTIONS)


def blend_vector(spec: str) -> tuple[float, ...]:
    """An emotion name or a blend ``happiness=0.7,neutral=0.3`` -> 6 weights summing to 1."""
    text = spec.strip()
    if not any(c in text for c in "=:,"):
        return one_hot(text)
    vec = np.zeros(len(EMOTIONS))
    for part in filter(None, (p.strip() for p in text.split(","))):
        sep = "=" if "=" in part else ":"
        if sep not in part:
            raise ValueError(f"{part!r} has no weight: write name=weight, e.g. happiness=0.7,neutral=0.3")
        k, v = part.split(sep, 1)
        vec[EMOTIONS.index(parse_emotion(k))] += float(v)
    if np.any(vec < 0) or vec.sum() <= 0 or not np.all(np.isfinite(vec)):
        raise ValueError(f"{spec!r}: weights must be non-negative numbers with a positive sum")
    return tuple(float(round(w, 6)) for w in vec / vec.sum())


@dataclass(frozen=True)
class DesignOptions:
    design: str
    faces: tuple[str, ...] = ()
    speech: tuple[str, ...] = ()
    recordings: tuple[str, ...] = ()
    labels: str | None = None
    jobs_csv: str | None = None
    repeats: int = 1
    seed: int = 0
    emotions: tuple[str, ...] = EMOTIONS
    continuum: tuple[str, str] | None = None
    steps: int = 5
    intensity: float = 1.0
    with_gt: bool = False
    face_labels: str | None = None  # expression photos: CSV file,identity,emotion (generator.produce.photos)
    expression_photos: bool = False  # expression photos named like KDEF / RaFD


def _speech_pool(opts: DesignOptions) -> tuple[list[SpeechItem], bool]:
    """(speech items, same_recording): recordings when given, else the speech files."""
    labels = read_labels_csv(opts.labels) if opts.labels else None
    if opts.recordings:
        if opts.speech or opts.faces:
            raise ProduceError("give either --recordings (face and speech from the same video) or "
                               "--faces with --speech, not both")
        files = collect_files(opts.recordings, VIDEO_EXTS, "recording")
        return [label_speech(f, labels) for f in files], True
    if not opts.speech:
        raise ProduceError(f"design {opts.design!r} needs speech: --speech DIR (or --recordings DIR)")
    if not opts.faces:
        raise ProduceError(f"design {opts.design!r} needs faces: --faces DIR (photos or videos)")
    files = collect_files(opts.speech, AUDIO_EXTS | VIDEO_EXTS, "speech")
    return [label_speech(f, labels) for f in files], False


def _face_pool(opts: DesignOptions) -> list[FaceItem]:
    files = collect_files(opts.faces, IMAGE_EXTS | VIDEO_EXTS, "face")
    return [FaceItem(path=str(f), identity=(parse_crema_like(f.name) or (f.stem,))[0]) for f in files]


def _need_labels(items: Sequence[SpeechItem], design: str) -> None:
    missing = [Path(s.path).name for s in items if s.emotion is None]
    if missing:
        raise ProduceError(
            f"design {design!r} needs the emotion of every speech file, and {len(missing)} have none "
            f"(e.g. {missing[0]!r}): name them like 1001_DFA_ANG_XX.wav or give --labels CSV "
            "with the columns file,emotion")


def _job(face: str, s: SpeechItem, visual: tuple[float, ...], opts: DesignOptions, repeat: int,
         identity: str, same: bool) -> Job:
    return Job(face=face, speech=s.path, visual=visual, audio_emotion=s.emotion, identity=identity,
               sentence=s.sentence, repeat=repeat, intensity=opts.intensity, speech_intensity=s.intensity,
               same_recording=same, synthetic_speech=s.synthetic, design=opts.design)


def plan_jobs(opts: DesignOptions) -> list[Job]:
    """The jobs of a design, in design order (see the module docstring)."""
    if opts.design not in DESIGNS:
        raise ProduceError(f"unknown design {opts.design!r}: use one of {', '.join(DESIGNS)}")
    if opts.repeats < 1:
        raise ProduceError(f"--repeats must be at least 1, got {opts.repeats}")
    if not 0.0 <= opts.intensity <= 1.0:
        raise ProduceError(f"--intensity must be in [0, 1], got {opts.intensity}")
    if opts.design == "jobs":
        if not opts.jobs_csv:
            raise ProduceError("design 'jobs' needs --jobs CSV")
        return read_jobs_csv(opts.jobs_csv, labels=read_labels_csv(opts.labels) if opts.labels else None,
                             repeats=opts.repeats)
    speech, same = _speech_pool(opts)
    if opts.design in ("matched", "mismatched"):
        chosen = _design_emotions(opts)
        speech = [s for s in speech if s.emotion is None or s.emotion in chosen]
        if not speech:
            raise ProduceError(f"no speech of the emotions {', '.join(chosen)} among the inputs; label the speech "
                               "(CREMA-D names or --labels) or choose --emotions the speech has")
    faces = [] if same else _face_pool(opts)
    pairs: list[tuple[str, str, SpeechItem]] = (  # (face path, identity, speech)
        [(s.path, s.identity, s) for s in speech] if same
        else [(f.path, f.identity, s) for f in faces for s in speech])
    jobs: list[Job] = []
    if opts.design == "matched":
        _need_labels(speech, opts.design)
        for r in range(opts.repeats):
            jobs += [_job(fp, s, one_hot(s.emotion), opts, r, ident, same) for fp, ident, s in pairs]  # type: ignore[arg-type]
    elif opts.design == "factorial":
        emotions = [parse_emotion(e) for e in opts.emotions]
        for r in range(opts.repeats):
            jobs += [_job(fp, s, one_hot(e), opts, r, ident, same) for fp, ident, s in pairs for e in emotions]
    elif opts.design == "continuum":
        if opts.continuum is None:
            raise ProduceError("design 'continuum' needs --from EMOTION and --to EMOTION")
        if opts.steps < 2:
            raise ProduceError(f"--steps must be at least 2 (the two ends), got {opts.steps}")
        a, b = (EMOTIONS.index(parse_emotion(e)) for e in opts.continuum)
        if a == b:
            raise ProduceError(f"a continuum needs two different emotions, got {EMOTIONS[a]} twice")
        for r in range(opts.repeats):
            for fp, ident, s in pairs:
                for k in range(opts.steps):
                    w = k / (opts.steps - 1)
                    vec = [0.0] * len(EMOTIONS)
                    vec[a], vec[b] = round(1.0 - w, 6), round(w, 6)
                    jobs.append(_job(fp, s, tuple(vec), opts, r, ident, same))
    elif opts.design == "mismatched":
        jobs = _mismatched(speech, faces, same, opts)
    if opts.with_gt:
        if not same:
            raise ProduceError("--with-gt needs --recordings (ground truth is the recorded video itself)")
        for s in speech:
            for variant in ("128x128", "96x128"):
                jobs.append(Job(face=s.path, speech=s.path, visual=one_hot(s.emotion) if s.emotion else None,
                                audio_emotion=s.emotion, identity=s.identity, sentence=s.sentence,
                                speech_intensity=s.intensity, same_recording=True, design=opts.design,
                                kind="gt", size_variant=variant, synthetic_speech=s.synthetic))
    if not jobs:
        raise ProduceError(f"design {opts.design!r} made no jobs from these inputs")
    return jobs


def _design_emotions(opts: DesignOptions) -> tuple[str, ...]:
    """The design's emotions (``--emotions``): canonical names, in the one-hot order, two or more, distinct."""
    try:
        chosen = [parse_emotion(e) for e in opts.emotions]
    except ValueError as exc:
        raise ProduceError(f"--emotions: {exc}") from None
    if len(set(chosen)) != len(chosen):
        raise ProduceError(f"--emotions names an emotion twice: {', '.join(opts.emotions)}")
    if len(chosen) < 2:
        raise ProduceError(f"--emotions needs two or more emotions, got {', '.join(chosen) or 'none'}")
    return tuple(e for e in EMOTIONS if e in chosen)


def _mismatched(speech: list[SpeechItem], faces: list[FaceItem], same: bool, opts: DesignOptions) -> list[Job]:
    _need_labels(speech, "mismatched")
    emotions = _design_emotions(opts)
    by_emotion = {e: [s for s in speech if s.emotion == e] for e in emotions}
    absent = [e for e, items in by_emotion.items() if not items]
    if absent:
        have = sorted({s.emotion for s in speech if s.emotion}, key=EMOTIONS.index)
        raise ProduceError(f"design 'mismatched' needs speech of each of its emotions ({', '.join(emotions)}); "
                           f"none for {', '.join(absent)} among {len(speech)} files. Give speech of those, or "
                           f"--emotions {','.join(have)} (the emotions the speech has)" if len(have) >= 2 else
                           f"design 'mismatched' needs speech of each of its emotions ({', '.join(emotions)}); "
                           f"none for {', '.join(absent)} among {len(speech)} files")
    rng = StableRng(opts.seed, "produce/mismatched")
    # Each audio emotion's recordings are used in a seeded order, in turn, so r repeats of 6 visual
    # emotions spread over as many different recordings as there are.
    queues = {e: rng.child(f"speech/{e}").shuffled(items) for e, items in by_emotion.items()}
    face_order = rng.child("faces").shuffled(faces) if faces else []
    jobs, used, n = [], {e: 0 for e in emotions}, 0
    for r in range(opts.repeats):
        for v in emotions:
            for a in emotions:
                s = queues[a][used[a] % len(queues[a])]
                used[a] += 1
                if same:
                    fp, ident = s.path, s.identity
                else:
                    f = face_order[n % len(face_order)]
                    fp, ident = f.path, f.identity
                n += 1
                jobs.append(_job(fp, s, one_hot(v), opts, r, ident, same))
    return jobs


def read_jobs_csv(path: str | os.PathLike, *, labels: dict[str, dict[str, str]] | None = None,
                  repeats: int = 1) -> list[Job]:
    """An explicit job list. Columns: ``face`` and ``speech`` (or ``recording`` for both), and
    ``visual_emotion`` (a name or a blend ``happiness=0.7,neutral=0.3``); optional ``audio_emotion``
    (else from the speech's labels or name), ``identity``, ``sentence``, ``intensity`` (renderer
    intensity 0-1), ``repeat``. Relative paths resolve against the CSV's folder. Files are not opened
    here: a missing one fails its item when the run gets to it."""
    p = Path(path)
    if not p.is_file():
        raise ProduceError(f"{p}: jobs CSV not found")
    base = p.parent
    jobs: list[Job] = []
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if "visual_emotion" not in cols or not ({"face", "speech"} <= cols or "recording" in cols):
            raise ProduceError(f"{p}: a jobs CSV needs the columns face, speech, visual_emotion "
                               f"(or recording, visual_emotion); found {', '.join(sorted(cols)) or 'none'}")
        for i, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k}

            def fail(col: str, msg: str) -> ProduceError:
                return ProduceError(f"{p}: line {i}, column {col!r}: {msg}")

            rec = row.get("recording", "")
            face = rec or row.get("face", "")
            speech = rec or row.get("speech", "")
            for col, val in (("face", face), ("speech", speech)):
                if not val:
                    raise fail(col, "empty (give a file, or a 'recording' column for both)")
            face_p, speech_p = (str(v if Path(v).is_absolute() else base / v) for v in (face, speech))
            try:
                visual = blend_vector(row["visual_emotion"])
            except (ValueError, KeyError) as exc:
                raise fail("visual_emotion", str(exc)) from None
            s = label_speech(Path(speech_p), labels)
            audio = s.emotion
            if row.get("audio_emotion"):
                try:
                    audio = parse_emotion(row["audio_emotion"])
                except ValueError as exc:
                    raise fail("audio_emotion", str(exc)) from None
            try:
                intensity = float(row["intensity"]) if row.get("intensity") else 1.0
                repeat = int(row["repeat"]) if row.get("repeat") else 0
            except ValueError as exc:
                raise fail("intensity/repeat", str(exc)) from None
            if not 0.0 <= intensity <= 1.0:
                raise fail("intensity", f"{intensity} is not in [0, 1]")
            ident = row.get("identity") or (s.identity if rec else (parse_crema_like(Path(face_p).name)
                                                                     or (Path(face_p).stem,))[0])
            for r in range(repeats):
                jobs.append(Job(face=face_p, speech=speech_p, visual=visual, audio_emotion=audio,
                                identity=ident, sentence=row.get("sentence") or s.sentence,
                                repeat=repeat * repeats + r, intensity=intensity, speech_intensity=s.intensity,
                                same_recording=bool(rec), synthetic_speech=s.synthetic, design="jobs"))
    if not jobs:
        raise ProduceError(f"{p}: the jobs CSV has no rows")
    return jobs
