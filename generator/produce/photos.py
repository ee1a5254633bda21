"""Expression photos: the visual emotion comes from the person's own posed photo of it.

Validated photo sets (KDEF, RaFD, NimStim, FACES, ...) have one photo per person per emotion. With
``emostudy generate --faces DIR --face-labels photos.csv`` (columns ``file,identity,emotion``) or
``--expression-photos`` (KDEF / RaFD file names recognised), each clip starts from the photo of its
visual emotion, and the speech animates only the mouth, blinks and head motion (the warp's
``mouth,life`` components): no landmark warp makes the expression.

Designs, for every identity:

- ``matched``: each speech file of emotion E with the identity's photo of E.
- ``mismatched``: every (visual V, audio A) pair: the photo of V with speech of A (speech used in a
  seeded turn, as in :mod:`generator.produce.jobs`).
- ``factorial``: every speech file with the photo of every visual emotion given (``--emotions``).

Speech of the identity's own voice is used when the speech labels give that identity; otherwise the
whole speech pool serves every identity. Every photo a design needs and the set lacks is listed in
one error before anything is rendered.

File-name conventions (frontal photos only; other angles are not usable by the renderers):

- KDEF: ``AF01ANS.JPG`` = session A/B, F/M, person 01, emotion (AF afraid, AN angry, DI disgusted,
  HA happy, NE neutral, SA sad, SU surprised), angle S (straight). Identity ``F01``; session A is
  preferred when both are present.
- RaFD: ``Rafd090_01_Caucasian_female_angry_frontal.jpg`` = camera angle 090 (frontal), person 01,
  emotion, gaze frontal. Identity ``01``.

Surprise and contempt are not among the six emotions: such photos are skipped (and counted).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from generator.produce.jobs import (
    IMAGE_EXTS,
    DesignOptions,
    Job,
    ProduceError,
    SpeechItem,
    _job,
    _need_labels,
    _speech_pool,
    collect_files,
    one_hot,
)
from stimuli.emotions import EMOTIONS, parse_emotion
from stimuli.rng import StableRng

ORIGIN = "photo"  # the manifest's visual_emotion_origin of these clips
PHOTO_COMPONENTS = ("mouth", "life")  # what speech moves on an expression photo (warp backend)

_KDEF = re.compile(r"^([AB])([FM])(\d{2})(AF|AN|DI|HA|NE|SA|SU)(S|FL|FR|HL|HR)$", re.IGNORECASE)
_KDEF_EMOTIONS = {"AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happiness", "NE": "neutral",
                  "SA": "sadness", "SU": None}
_RAFD = re.compile(r"^Rafd(\d{3})_(\d+)_([A-Za-z-]+)_(male|female)_([a-z]+)_([a-z]+)$", re.IGNORECASE)
_RAFD_EMOTIONS = {"angry": "anger", "disgusted": "disgust", "fearful": "fear", "happy": "happiness",
                  "neutral": "neutral", "sad": "sadness", "contemptuous": None, "surprised": None}


@dataclass(frozen=True)
class ExpressionPhoto:
    path: str
    identity: str
    emotion: str
    rank: int = 0  # lower is preferred when one identity has two photos of one emotion (KDEF sessions)


def parse_kdef(name: str) -> tuple[str, str | None, int] | None:
    """(identity, emotion or None when not one of the six, session rank) of a frontal KDEF name, else None."""
    m = _KDEF.match(Path(name).stem)
    if not m or m.group(5).upper() != "S":
        return None
    session, sex, person, code, _ = m.groups()
    return f"{sex.upper()}{person}", _KDEF_EMOTIONS[code.upper()], 0 if session.upper() == "A" else 1


def parse_rafd(name: str) -> tuple[str, str | None, int] | None:
    """(identity, emotion or None, 0) of a frontal RaFD name (camera 090, gaze frontal), else None."""
    m = _RAFD.match(Path(name).stem)
    if not m or m.group(1) != "090" or m.group(6).lower() != "frontal":
        return None
    emo = m.group(5).lower()
    if emo not in _RAFD_EMOTIONS:
        return None
    return m.group(2), _RAFD_EMOTIONS[emo], 0


def read_face_labels_csv(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """{file name: {identity, emotion}} from a CSV with the columns ``file,identity,emotion``."""
    p = Path(path)
    if not p.is_file():
        raise ProduceError(f"{p}: face labels CSV not found")
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if not {"file", "identity", "emotion"} <= cols:
            raise ProduceError(f"{p}: the face labels CSV needs the columns file, identity, emotion "
                               f"(found {', '.join(sorted(cols)) or 'none'})")
        out: dict[str, dict[str, str]] = {}
        for i, row in enumerate(reader, start=2):
            name = Path((row.get("file") or "").strip()).name
            ident = (row.get("identity") or "").strip()
            if not name:
                raise ProduceError(f"{p}: line {i}, column 'file': empty")
            if not ident:
                raise ProduceError(f"{p}: line {i}, column 'identity': empty (who is in {name}?)")
            try:
                emo = parse_emotion(row.get("emotion") or "")
            except ValueError as exc:
                raise ProduceError(f"{p}: line {i}, column 'emotion': {exc}") from None
            if name in out:
                raise ProduceError(f"{p}: line {i}: {name!r} is labelled twice")
            out[name] = {"identity": ident, "emotion": emo}
    return out


def collect_photos(faces: Sequence[str], labels_csv: str | None = None) -> tuple[list[ExpressionPhoto], list[str]]:
    """The expression photos under ``faces`` and notes on the files left out.

    With a labels CSV every photo must be in it (a photo without a label is an error naming it); without
    one, KDEF and RaFD names are read and a file with neither name is an error."""
    files = collect_files(faces, IMAGE_EXTS, "face photo")
    labels = read_face_labels_csv(labels_csv) if labels_csv else None
    photos, skipped, unknown = [], Counter(), []
    for f in files:
        if labels is not None:
            row = labels.get(f.name)
            if row is None:
                unknown.append(f.name)
                continue
            photos.append(ExpressionPhoto(str(f), row["identity"], row["emotion"]))
            continue
        parsed = parse_kdef(f.name) or parse_rafd(f.name)
        if parsed is None:
            unknown.append(f.name)
            continue
        ident, emo, rank = parsed
        if emo is None:
            skipped["not one of the six emotions (surprise, contempt)"] += 1
            continue
        photos.append(ExpressionPhoto(str(f), ident, emo, rank))
    if unknown:
        how = (f"add them to {labels_csv}" if labels_csv else
               "name them like KDEF (AF01ANS.JPG) or RaFD (Rafd090_01_Caucasian_female_angry_frontal.jpg), "
               "or give --face-labels CSV with the columns file,identity,emotion")
        raise ProduceError(f"{len(unknown)} face photo(s) have no identity and emotion: "
                           f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}; {how}")
    # One photo per identity and emotion: the preferred rank (KDEF session A); two equal ones are an error.
    chosen: dict[tuple[str, str], ExpressionPhoto] = {}
    for ph in sorted(photos, key=lambda p: (p.identity, p.emotion, p.rank, p.path)):
        key = (ph.identity, ph.emotion)
        if key in chosen:
            if chosen[key].rank == ph.rank:
                raise ProduceError(f"two photos of {ph.identity} showing {ph.emotion}: {Path(chosen[key].path).name} "
                                   f"and {Path(ph.path).name}; keep one (or label them as different identities)")
            skipped["a second session of the same person and emotion"] += 1
            continue
        chosen[key] = ph
    notes = [f"{n} photo(s) left out: {why}" for why, n in sorted(skipped.items())]
    return list(chosen.values()), notes


def _speech_for(identity: str, speech: list[SpeechItem]) -> list[SpeechItem]:
    own = [s for s in speech if s.identity == identity]
    return own or speech


def plan_photo_jobs(opts: DesignOptions, *, notes: list[str] | None = None) -> list[Job]:
    """The jobs of a design on expression photos (see the module docstring); every photo the design
    needs and the set lacks is listed in one ``ProduceError``."""
    if opts.design not in ("matched", "mismatched", "factorial"):
        raise ProduceError(f"expression photos work with the designs matched, mismatched and factorial, "
                           f"not {opts.design!r}")
    if opts.recordings:
        raise ProduceError("expression photos need --faces and --speech, not --recordings")
    if opts.repeats < 1:
        raise ProduceError(f"--repeats must be at least 1, got {opts.repeats}")
    photos, photo_notes = collect_photos(opts.faces, opts.face_labels)
    if notes is not None:
        notes.extend(photo_notes)
    speech, _ = _speech_pool(opts)
    _need_labels(speech, opts.design)
    by_key = {(p.identity, p.emotion): p for p in photos}
    identities = sorted({p.identity for p in photos})
    rng = StableRng(opts.seed, "produce/photos")
    wanted: list[tuple[str, str, SpeechItem, int]] = []  # (identity, visual emotion, speech, repeat)
    for ident in identities:
        pool = _speech_for(ident, speech)
        if opts.design == "matched":
            wanted += [(ident, s.emotion, s, r) for r in range(opts.repeats) for s in pool]  # type: ignore[misc]
        elif opts.design == "factorial":
            emotions = [parse_emotion(e) for e in opts.emotions]
            wanted += [(ident, e, s, r) for r in range(opts.repeats) for s in pool for e in emotions]
        else:
            by_emotion = {e: [s for s in pool if s.emotion == e] for e in EMOTIONS}
            absent = [e for e, items in by_emotion.items() if not items]
            if absent:
                raise ProduceError(f"design 'mismatched' needs speech of all six emotions for {ident}; none for "
                                   f"{', '.join(absent)}")
            queues = {e: rng.child(f"{ident}/speech/{e}").shuffled(items) for e, items in by_emotion.items()}
            used = Counter()
            for r in range(opts.repeats):
                for v in EMOTIONS:
                    for a in EMOTIONS:
                        wanted.append((ident, v, queues[a][used[a] % len(queues[a])], r))
                        used[a] += 1
    missing = sorted({(i, v) for i, v, _, _ in wanted if (i, v) not in by_key})
    if missing:
        per: dict[str, list[str]] = {}
        for i, v in missing:
            per.setdefault(i, []).append(v)
        listing = "; ".join(f"{i}: {', '.join(vs)}" for i, vs in per.items())
        raise ProduceError(f"design {opts.design!r} needs {len(missing)} expression photo(s) the faces lack "
                           f"(identity: emotions) - {listing}. Add the photos, or leave those identities out")
    jobs = []
    for ident, v, s, r in wanted:
        job = _job(by_key[(ident, v)].path, s, one_hot(v), opts, r, ident, False)
        jobs.append(replace(job, visual_origin=ORIGIN))
    if not jobs:
        raise ProduceError(f"design {opts.design!r} made no jobs from these photos")
    return jobs
