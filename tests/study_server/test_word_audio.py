"""Issue 29: the word check's sound differs in bytes per participant, so a table of the sha256 of the 8
shipped word files tells nothing (the audit passed the check 50/50 that way); the word stays the word."""

from __future__ import annotations

import hashlib
import io
import wave

import numpy as np

from study_server.study.audio_check import AUDIO_DIR, expected_word, word_index, words
from studykit import TASK2, arrive, import_study, make_plan


def _samples(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def test_a_hash_lookup_of_the_shipped_words_finds_nothing(app, client, media_set, tmp_path):
    name = import_study(app, make_plan(media_set, TASK2, out=tmp_path / "w.json", name="words", quota=20,
                                       audio_check=True), media_set)
    shipped = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in AUDIO_DIR.glob("word-*.wav")}
    assert len(shipped) == len(words())
    secret = app.config["SECRET_KEY"]
    served: dict[str, list[bytes]] = {}
    for i in range(12):
        token = arrive(client, name, lab=f"word-{i}")
        state = client.post(f"/api/v1/a/{token}/start").get_json()
        r = client.get(state["audio_check"]["media_url"])
        assert r.status_code == 200 and r.mimetype == "audio/wav"
        assert hashlib.sha256(r.data).hexdigest() not in shipped  # the lookup attack finds nothing
        served.setdefault(expected_word(secret, token, 0), []).append(r.data)
        # still the word: the served samples are the shipped ones plus noise far under the speech
        original = _samples((AUDIO_DIR / f"word-{word_index(secret, token, 0)}.wav").read_bytes())
        got = _samples(r.data)
        assert got.shape == original.shape
        noise_rms = np.sqrt(np.mean((got - original) ** 2))
        assert 10 < noise_rms < 100 and np.sqrt(np.mean(original ** 2)) > 20 * noise_rms
        again = client.get(state["audio_check"]["media_url"])
        assert again.data == r.data  # the same participant's attempt: the same bytes (retries, ranges)
    same_word = [copies for copies in served.values() if len(copies) > 1]
    assert same_word, "12 participants and 8 words: some word was drawn twice"
    for copies in same_word:
        assert len({hashlib.sha256(c).hexdigest() for c in copies}) == len(copies)
