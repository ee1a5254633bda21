"""Demo inputs made on this machine, with no download: two face photos that ship inside installed
packages and synthetic speech of the twelve CREMA-D sentences in six emotion prosody presets.

- Faces (``make_face_pool``): scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain) and
  matplotlib's sample ``grace_hopper.jpg``.
- Speech (``make_speech_pool``): espeak-ng (:mod:`generator.data.tts`) with one prosody preset per emotion.
  Files are named like CREMA-D clips, ``SYN01_IEO_ANG_XX.wav``, with an actor id (``SYN01``) that
  cannot clash with CREMA-D's 1001-1091, so ``emostudy generate`` reads their labels from the names;
  a ``labels.csv`` beside them says the same and marks every file synthetic.

This is synthetic speech, not emotional speech: the presets caricature the acoustic directions of
vocal emotion (see ``generator.data.tts.PROSODY``). A study that needs real vocal emotion needs recordings.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from generator.align import shipped_faces
from generator.audio import write_wav
from generator.data.tts import DEMO_VOICE, PROSODY, SYNTHETIC_LABEL, synthesize_emotion
from generator.produce.jobs import SYNTHETIC_ACTOR_PREFIX
from stimuli.emotions import EMOTIONS, emotion_code, parse_emotion
from stimuli.manifest import atomic_write_bytes

try:  # the stimuli package owns the sentence table; keep a copy only for a stimuli without it
    from stimuli.crema import CREMA_SENTENCES as SENTENCES
except ImportError:  # pragma: no cover - stimuli.crema ships with this version
    SENTENCES = {
        "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
        "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
        "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
        "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
        "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
        "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
    }

SYNTHETIC_ACTOR = f"{SYNTHETIC_ACTOR_PREFIX}01"
SPEECH_RATE = 22050
FACE_NAMES = ("astronaut", "grace_hopper")


def speech_name(sentence: str, emotion: str, actor: str = SYNTHETIC_ACTOR) -> str:
    """CREMA-D style file name: ``SYN01_IEO_ANG_XX.wav`` (intensity XX: unspecified)."""
    return f"{actor}_{sentence}_{emotion_code(emotion)}_XX.wav"


def _sentence_codes(sentences: Iterable[str] | None) -> list[str]:
    if sentences is None:
        return list(SENTENCES)
    codes = []
    for s in sentences:
        code = s.strip().upper()
        if code not in SENTENCES:
            raise ValueError(f"unknown CREMA-D sentence code {s!r}: use one of {', '.join(SENTENCES)}")
        codes.append(code)
    return codes


def make_speech_pool(folder: str | os.PathLike, sentences: Sequence[str] | None = None,
                     emotions: Sequence[str] | None = None) -> list[Path]:
    """Write one wav (22,050 Hz mono, 16 bit) per sentence x emotion into ``folder``, plus
    ``labels.csv``; returns the wav paths. Existing identical files are left as they are."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    codes = _sentence_codes(sentences)
    emos = [parse_emotion(e) for e in (emotions if emotions is not None else EMOTIONS)]
    paths, rows = [], []
    for code in codes:
        for emo in emos:
            x, rate = synthesize_emotion(SENTENCES[code] + ".", emo)
            path = out / speech_name(code, emo)
            data = _wav_bytes(x, rate)
            if not (path.is_file() and path.read_bytes() == data):
                atomic_write_bytes(path, data)
            paths.append(path)
            p = PROSODY[emo]
            rows.append({"file": path.name, "emotion": emo, "identity": SYNTHETIC_ACTOR, "sentence": code,
                         "intensity": "XX", "synthetic": "1",
                         "note": f"{SYNTHETIC_LABEL}; voice {DEMO_VOICE}; pitch {p.pitch} range {p.range} "
                                 f"rate {p.rate} volume {p.volume}"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "labels.csv", buf.getvalue().encode())
    return paths


def _wav_bytes(x: np.ndarray, rate: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.wav"
        write_wav(p, x, rate)
        return p.read_bytes()


def demo_faces() -> list[tuple[str, np.ndarray]]:
    """[(name, (H, W, 3) uint8 RGB)] of the shipped photos (``FACE_NAMES``)."""
    return [(name, img) for name, (_, img) in zip(FACE_NAMES, shipped_faces())]


def make_face_pool(folder: str | os.PathLike) -> list[Path]:
    """Write the shipped face photos as PNG files into ``folder``; returns their paths."""
    from PIL import Image  # optional heavy dependency: imported only when used

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, img in demo_faces():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        path = out / f"{name}.png"
        if not (path.is_file() and path.read_bytes() == buf.getvalue()):
            atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths
