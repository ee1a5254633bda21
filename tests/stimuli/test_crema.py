from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stimuli.crema import CREMA_SENTENCES, CremaName, parse_crema_name
from stimuli.emotions import EMOTION_CODES, EMOTIONS, INTENSITY_CODES
from stimuli.errors import ImportSourceError


def test_parse_example_and_path_forms():
    expected = CremaName(actor="1001", sentence="DFA", emotion="anger", intensity="XX")
    assert parse_crema_name("1001_DFA_ANG_XX") == expected
    assert parse_crema_name("VideoFlash/1001_DFA_ANG_XX.flv") == expected
    assert parse_crema_name("/data/crema/1001_dfa_ang_xx.mp4") == expected
    c = parse_crema_name("1091_WSI_SAD_HI.wav")
    assert (c.actor, c.sentence, c.emotion, c.intensity) == ("1091", "WSI", "sadness", "HI")
    assert c.sentence_text == "We'll stop in a couple of minutes"
    assert c.emotion_code == "SAD" and c.stem == "1091_WSI_SAD_HI" and str(c) == c.stem


def test_the_twelve_sentences():
    assert len(CREMA_SENTENCES) == 12
    assert CREMA_SENTENCES["IEO"] == "It's eleven o'clock"
    assert CREMA_SENTENCES["ITH"] == "I think I have a doctor's appointment"
    assert CREMA_SENTENCES["DFA"] == "Don't forget a jacket"


@pytest.mark.parametrize("name, needle", [
    ("1001_DFA_ANG", "not a CREMA-D clip name"),
    ("101_DFA_ANG_XX", "not a CREMA-D clip name"),
    ("1001_XYZ_ANG_XX", "sentence code 'XYZ'"),
    ("1001_DFA_JOY_XX", "emotion code 'JOY'"),
    ("1001_DFA_ANG_ZZ", "intensity code 'ZZ'"),
])
def test_bad_names_say_which_part(name, needle):
    with pytest.raises(ImportSourceError, match=needle):
        parse_crema_name(name)


@given(actor=st.integers(1001, 1091), sentence=st.sampled_from(sorted(CREMA_SENTENCES)),
       emo=st.sampled_from(range(6)), intensity=st.sampled_from(INTENSITY_CODES),
       ext=st.sampled_from(["", ".flv", ".mp4", ".wav"]))
def test_round_trip(actor, sentence, emo, intensity, ext):
    stem = f"{actor}_{sentence}_{EMOTION_CODES[emo]}_{intensity}"
    c = parse_crema_name(f"some/dir/{stem}{ext}")
    assert c.actor == str(actor) and c.sentence == sentence and c.emotion == EMOTIONS[emo]
    assert c.intensity == intensity and c.stem == stem
