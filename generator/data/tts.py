"""Offline speech synthesis with espeak-ng (the library and its data ship in ``espeakng-loader``).

Used for the demo's speech: the twelve CREMA-D sentences spoken with six *prosody presets* that stand
in for the six vocal emotions. The presets move the four things espeak lets us set (pitch level, pitch
range, speech rate, loudness) in the directions the vocal-emotion literature reports; they are a
caricature of emotional speech, not emotional speech, and everything made from them is labelled
synthetic (``SYNTHETIC_LABEL``).

espeak-ng keeps its state in C globals, so one lock serialises every call in a process, and the
library is initialised once per process (again after a fork). Synchronous mode
(``AUDIO_OUTPUT_SYNCHRONOUS``) delivers the samples to a callback before ``espeak_Synth`` returns.

Determinism: espeak's default voices add a pitch "flutter" whose phase is a static counter that is
never reset (wavegen.c, ``Flutter_ix``), so the same call can come out a few milliseconds longer or
shorter depending on what was said before in the process. Voice variants with ``flutter 0`` are
repeatable call to call; the demo uses one of them (``DEMO_VOICE``).
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from generator.errors import GeneratorError, InputError
from stimuli.emotions import EMOTIONS, parse_emotion

TTS_RATE = 22050  # Hz: espeak-ng's output rate
DEMO_VOICE = "en-us+michel"  # a stock variant with flutter 0: same call, same samples
SYNTHETIC_LABEL = "synthetic speech (espeak-ng with an emotion prosody preset), not recorded emotional speech"

# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_EE_OK = 0

# The ranges espeak-ng accepts (speak_lib.h): rate in words per minute, volume 0-200 (100 = normal),
# pitch and range 0-100 (50 = the voice's default).
RATE_WPM = (80, 450)
LIMITS = {"pitch": (0, 100), "range": (0, 100), "rate": RATE_WPM, "volume": (0, 200)}


class TTSError(GeneratorError):
    """espeak-ng cannot be loaded or refuses a request."""


@dataclass(frozen=True)
class Prosody:
    """espeak-ng settings for one emotion: pitch and range 0-100 (50 = default), rate in words/min
    (175 = default), volume 0-200 (100 = default)."""

    pitch: int
    range: int
    rate: int
    volume: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# Directions from Banse & Scherer (1996, JPSP 70:614, acoustic profiles of 14 portrayed emotions),
# Scherer (2003, Speech Communication 40:227, Table 6 "synthetic compilation") and the meta-analysis of
# Juslin & Laukka (2003, Psych. Bull. 129:770, Table 7). Magnitudes are ours, chosen so that espeak's
# voice stays intelligible:
# - anger (hot anger): F0 mean up, F0 range/variability up, rate up, intensity up.
# - disgust: F0 mean down, rate down (slow, drawn-out), intensity slightly down.
# - fear (panic): F0 mean up strongly, F0 range narrow (Juslin & Laukka: low F0 variability),
#   rate up, intensity medium.
# - happiness (elation/joy): F0 mean up, F0 range wide, rate slightly up, intensity up.
# - neutral: espeak's defaults.
# - sadness: F0 mean down, F0 range narrow (monotone), rate slow, intensity down.
PROSODY: dict[str, Prosody] = {
    "anger": Prosody(pitch=60, range=85, rate=200, volume=150),
    "disgust": Prosody(pitch=36, range=45, rate=135, volume=90),
    "fear": Prosody(pitch=78, range=30, rate=215, volume=110),
    "happiness": Prosody(pitch=68, range=90, rate=190, volume=125),
    "neutral": Prosody(pitch=50, range=50, rate=175, volume=100),
    "sadness": Prosody(pitch=34, range=12, rate=130, volume=65),
}
assert tuple(PROSODY) == EMOTIONS


def prosody_for(emotion: str) -> Prosody:
    """The preset of an emotion (name, CREMA-D code or alias)."""
    try:
        return PROSODY[parse_emotion(emotion)]
    except ValueError as exc:
        raise InputError(str(exc)) from None


class _Engine:
    """The process's espeak-ng: the library, the kept-alive callback and the sample buffer."""

    def __init__(self) -> None:
        try:
            import espeakng_loader  # optional heavy dependency: imported only when used
        except ModuleNotFoundError:
            raise TTSError("speech synthesis needs the 'espeakng-loader' package: "
                           "pip install 'emostudy[generator]'") from None
        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise TTSError(f"cannot load espeak-ng from {lib_path}: {exc}; reinstall espeakng-loader") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise TTSError(f"espeak_Initialize failed (returned {rate}) with data path {data_path}")
        if rate != TTS_RATE:
            raise TTSError(f"espeak-ng reports {rate} Hz, expected {TTS_RATE} Hz")
        self.lib = lib
        self.rate = rate
        self.chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n: int, events) -> int:
        if n > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    def say(self, text: str, voice: str, settings: dict[str, int]) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise InputError(f"espeak-ng has no voice {voice!r}; try 'en-us' or 'en'")
        for key, param in (("rate", _ESPEAK_RATE), ("volume", _ESPEAK_VOLUME), ("pitch", _ESPEAK_PITCH),
                           ("range", _ESPEAK_RANGE)):
            if self.lib.espeak_SetParameter(param, int(settings[key]), 0) != _EE_OK:
                raise TTSError(f"espeak-ng refused {key}={settings[key]}")
        data = text.encode("utf-8") + b"\0"
        self.chunks = []
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise TTSError(f"espeak_Synth failed with code {err} for {text!r}")
        self.lib.espeak_Synchronize()
        out = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        self.chunks = []
        return out


_lock = threading.Lock()
_engine: _Engine | None = None
_engine_pid: int | None = None


def _reset_after_fork() -> None:
    global _lock, _engine, _engine_pid
    _lock = threading.Lock()  # a lock held by another thread at fork time would never be released
    _engine, _engine_pid = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _get_engine() -> _Engine:
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        _engine, _engine_pid = _Engine(), os.getpid()
    return _engine


def synthesize(text: str, *, voice: str = "en-us", pitch: int = 50, range: int = 50, rate: int = 175,
               volume: int = 100) -> tuple[np.ndarray, int]:
    """Speak ``text``: returns (samples (N,) float32 in [-1, 1], 22050).

    Parameters are espeak-ng's: pitch and range 0-100, rate 80-450 words/min, volume 0-200.
    Thread-safe (one lock per process). Leading/trailing silence is kept as espeak makes it.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"nothing to say: text {text!r} is empty")
    settings = {"pitch": pitch, "range": range, "rate": rate, "volume": volume}
    for key, value in settings.items():
        lo, hi = LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise InputError(f"{key}={value!r} is out of range: espeak-ng takes an integer in [{lo}, {hi}]")
    with _lock:
        pcm = _get_engine().say(text, voice, settings)
    if pcm.size == 0:
        raise TTSError(f"espeak-ng produced no audio for {text!r} (voice {voice!r})")
    return (pcm.astype(np.float32) / 32768.0), TTS_RATE


def synthesize_emotion(text: str, emotion: str, *, voice: str = DEMO_VOICE) -> tuple[np.ndarray, int]:
    """``synthesize`` with the prosody preset of ``emotion`` (synthetic: see ``SYNTHETIC_LABEL``)."""
    return synthesize(text, voice=voice, **prosody_for(emotion).as_dict())


def describe_presets() -> dict[str, Any]:
    """The presets as plain data, for provenance records and documentation."""
    return {"engine": "espeak-ng", "label": SYNTHETIC_LABEL, "voice": DEMO_VOICE,
            "presets": {name: p.as_dict() for name, p in PROSODY.items()}}
