"""espeak-ng synthesis: the samples, the settings taking effect, the emotion presets' directions,
thread safety. Acoustic measures here are an independent route: an autocorrelation pitch tracker,
durations and RMS computed with numpy, not the espeak parameters themselves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from generator.data.tts import DEMO_VOICE, PROSODY, SYNTHETIC_LABEL, TTS_RATE, describe_presets, synthesize, synthesize_emotion
from generator.errors import InputError
from stimuli.emotions import EMOTIONS

SENTENCE = "I think I have a doctor's appointment."


def pitch_track(x: np.ndarray, sr: int) -> np.ndarray:
    """F0 (Hz) of voiced 40 ms frames: the autocorrelation peak in 60-400 Hz, kept when >= 0.6."""
    fr = int(0.04 * sr)
    out = []
    for s in range(0, len(x) - fr, fr // 4):
        w = x[s:s + fr] - x[s:s + fr].mean()
        if np.sqrt((w ** 2).mean()) < 0.03:
            continue
        ac = np.correlate(w, w, "full")[fr - 1:]
        ac = ac / (ac[0] + 1e-12)
        lo, hi = int(sr / 400), int(sr / 60)
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.6:
            out.append(sr / k)
    return np.array(out)


def test_synthesize_returns_speech_at_22050():
    x, sr = synthesize("It's eleven o'clock.")
    assert sr == TTS_RATE == 22050
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.5 < len(x) / sr < 3.0
    assert 0.05 < np.abs(x).max() <= 1.0
    f = pitch_track(x, sr)
    assert len(f) > 10  # voiced speech, not noise
    assert 70 < np.median(f) < 200  # espeak's default male voice


def test_settings_take_effect():
    base, sr = synthesize(SENTENCE)
    high, _ = synthesize(SENTENCE, pitch=90)
    fast, _ = synthesize(SENTENCE, rate=300)
    loud, _ = synthesize(SENTENCE, volume=180)
    flat, _ = synthesize(SENTENCE, range=0)
    assert np.median(pitch_track(high, sr)) > 1.2 * np.median(pitch_track(base, sr))
    assert len(fast) < 0.75 * len(base)
    rms = lambda v: float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))
    assert rms(loud) > 1.4 * rms(base)

    def spread(v):  # 10-90 % spread of F0 in semitones
        q = np.percentile(12 * np.log2(pitch_track(v, sr)), [10, 90])
        return q[1] - q[0]

    assert spread(flat) < 0.5 * spread(base)


def test_same_call_same_samples_with_the_demo_voice():
    a, _ = synthesize(SENTENCE, pitch=60, voice=DEMO_VOICE)
    synthesize("Something else first.", voice=DEMO_VOICE)
    b, _ = synthesize(SENTENCE, pitch=60, voice=DEMO_VOICE)
    np.testing.assert_array_equal(a, b)
    # The default voice's pitch flutter carries over between calls (see the module docstring):
    # lengths agree to within a few percent, samples need not.
    c, _ = synthesize(SENTENCE)
    d, _ = synthesize(SENTENCE)
    assert abs(len(c) - len(d)) < 0.03 * len(c)


def test_presets_follow_the_literature_directions():
    """Scherer 2003 / Banse & Scherer 1996 / Juslin & Laukka 2003: anger, fear, happiness higher F0 than
    neutral; sadness and disgust lower and slower; sadness quieter, anger louder."""
    assert set(PROSODY) == set(EMOTIONS)
    m = {}
    for emo in EMOTIONS:
        x, sr = synthesize_emotion(SENTENCE, emo)
        f0 = pitch_track(x, sr)
        q = np.percentile(12 * np.log2(f0), [10, 90])  # F0 range in semitones
        m[emo] = dict(f0=float(np.median(f0)), spread=q[1] - q[0], dur=len(x) / sr,
                      rms=float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))
    n = m["neutral"]
    for emo in ("anger", "fear", "happiness"):
        assert m[emo]["f0"] > 1.1 * n["f0"], (emo, m[emo], n)
        assert m[emo]["dur"] < n["dur"], emo
    for emo in ("sadness", "disgust"):
        assert m[emo]["f0"] < 0.95 * n["f0"], (emo, m[emo], n)
        assert m[emo]["dur"] > 1.15 * n["dur"], emo
    for emo in ("anger", "happiness"):
        assert m[emo]["spread"] > 1.2 * n["spread"], emo
    for emo in ("sadness", "fear"):
        assert m[emo]["spread"] < 0.7 * n["spread"], emo
    assert m["anger"]["rms"] > 1.3 * n["rms"]
    assert m["sadness"]["rms"] < 0.8 * n["rms"]
    assert describe_presets()["label"] == SYNTHETIC_LABEL and "synthetic" in SYNTHETIC_LABEL


def test_threads_get_their_own_samples():
    jobs = [(SENTENCE, e) for e in EMOTIONS] * 2
    serial = [synthesize_emotion(t, e)[0] for t, e in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda j: synthesize_emotion(*j)[0], jobs))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(pitch=120), "pitch"), (dict(rate=10), "rate"), (dict(volume=-1), "volume"),
    (dict(range=1.5), "range"),
])
def test_out_of_range_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        synthesize(SENTENCE, **kwargs)


def test_bad_text_voice_emotion():
    with pytest.raises(InputError, match="empty"):
        synthesize("  ")
    with pytest.raises(InputError, match="voice"):
        synthesize(SENTENCE, voice="no-such-voice-xx")
    with pytest.raises(InputError, match="unknown emotion"):
        synthesize_emotion(SENTENCE, "boredom")


def _child_synth(emotion):
    return synthesize_emotion(SENTENCE, emotion)[0]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_get_the_same_samples(method):
    import multiprocessing as mp

    here = [synthesize_emotion(SENTENCE, e)[0] for e in ("anger", "sadness")]  # parent initialised first
    with mp.get_context(method).Pool(2) as pool:
        there = pool.map(_child_synth, ["anger", "sadness"])
    for a, b in zip(here, there):
        np.testing.assert_array_equal(a, b)
