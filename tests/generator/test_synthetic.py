"""The synthetic talking-face corpus: format, determinism, audio-driven mouth."""

from __future__ import annotations

import numpy as np

from generator.data.corpus import read_clip, read_index
from generator.data.synthetic import make_clip, make_corpus, make_identity, mouth_centre, mouth_opening
from stimuli.emotions import EMOTIONS


def _gap(lm: np.ndarray) -> np.ndarray:
    # inner-lip gap: mean of the lower inner lip (65-67) minus the upper (61-63), per frame
    return lm[:, 65:68, 1].mean(1) - lm[:, 61:64, 1].mean(1)


def test_corpus_format_and_splits(tmp_path):
    infos = make_corpus(tmp_path, n_identities=2, clips_per_emotion=2, n_frames=12, seed=3)
    assert len(infos) == 2 * 6 * 2
    assert {i.emotion for i in infos} == set(EMOTIONS)
    index = read_index(tmp_path)
    assert sorted(i.clip_id for i in index) == sorted(i.clip_id for i in infos)
    assert len(read_index(tmp_path, "test")) == 12 and len(read_index(tmp_path, "train")) == 12
    clip = read_clip(tmp_path, index[0])
    assert clip.video.shape == (12, 128, 128, 3) and clip.video.dtype == np.uint8
    assert clip.landmarks.shape == (12, 68, 2) and clip.audio.shape == (12 * 320,)
    assert np.abs(clip.audio).max() == np.float32(1.0) and abs(float(clip.audio.mean())) < 1e-4


def test_same_seed_same_bytes(tmp_path):
    a = make_corpus(tmp_path / "a", n_identities=1, clips_per_emotion=2, n_frames=8, seed=5)
    b = make_corpus(tmp_path / "b", n_identities=1, clips_per_emotion=2, n_frames=8, seed=5)
    assert a == b
    for info in a:
        assert (tmp_path / "a" / "clips" / f"{info.clip_id}.npz").read_bytes() == \
            (tmp_path / "b" / "clips" / f"{info.clip_id}.npz").read_bytes()


def test_mouth_follows_the_audio_envelope():
    ident = make_identity(np.random.default_rng(0), "x")
    video, lm, audio = make_clip(ident, "neutral", 50, seed=1)
    opening = mouth_opening(audio, 50)
    gap = _gap(lm)
    assert opening[0] < 0.05 and gap[0] < 2.0  # starts silent, mouth closed (the reference frame)
    assert np.corrcoef(opening, gap)[0, 1] > 0.99
    # the pixels change where the mouth is: the darkest frame region tracks the opening
    cx, cy = np.round(mouth_centre(lm[0])).astype(int)
    patch = video[:, cy - 4:cy + 5, cx - 6:cx + 7].astype(float).mean(axis=(1, 2, 3))
    assert np.corrcoef(opening, -patch)[0, 1] > 0.8


def test_emotions_change_the_face():
    ident = make_identity(np.random.default_rng(0), "x")
    happy = make_clip(ident, "happiness", 4, seed=2)[1][0]
    sad = make_clip(ident, "sadness", 4, seed=2)[1][0]
    # corners (48, 54) relative to the lip centre line: up for happiness, down for sadness
    assert happy[[48, 54], 1].mean() < sad[[48, 54], 1].mean() - 3
