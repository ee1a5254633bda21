from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stimuli.emotions import EMOTIONS
from stimuli.errors import ImportSourceError, ManifestError
from stimuli.imports import import_crema_d, import_folder, read_labels_csv
from stimuli.manifest import load_manifest, sha256_file

HEADER = ["file", "source", "visual_emotion", "audio_emotion", "identity", "sentence", "intensity", "size_variant",
          "note"]


def _write_csv(path: Path, rows: list[list[str]], header=HEADER) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def video_folder(tmp_path, tiny_video_bytes):
    """Four tiny real mp4 files whose names reveal their emotion (as researchers' files often do)."""
    folder = tmp_path / "recordings"
    (folder / "sub").mkdir(parents=True)
    names = ["anger_take1.mp4", "happy_take1.mp4", "sub/fear_take2.mp4", "neutral.mp4"]
    for k, n in enumerate(names):
        (folder / n).write_bytes(tiny_video_bytes(k))
    rows = [
        ["anger_take1.mp4", "GT", "anger", "anger", "1001", "DFA", "XX", "128x128", "first"],
        ["happy_take1.mp4", "OURS", "HAP", "sad", "1002", "IEO", "", "", ""],
        ["sub/fear_take2.mp4", "BL", "", "fear", "1003", "It's eleven o'clock", "", "", ""],
    ]
    labels = _write_csv(tmp_path / "labels.csv", rows)
    return folder, labels


def test_import_folder(tmp_path, video_folder):
    folder, labels = video_folder
    out = tmp_path / "set"
    report = import_folder(folder, labels, out)
    m = load_manifest(out)  # check_media: files exist and match their sha256
    assert len(m) == 3 and report.linked + report.copied == 3
    assert report.unlisted == ["neutral.mp4"]
    a, h, f = m.stimuli
    assert (a.source, a.visual_emotion, a.audio_emotion, a.identity, a.sentence, a.intensity, a.size_variant) == (
        "GT", "anger", "anger", "1001", "DFA", "XX", "128x128")
    assert (h.visual_emotion, h.audio_emotion, h.intensity, h.size_variant) == ("happiness", "sadness", None, None)
    assert f.visual_emotion is None and f.audio_emotion == "fear" and f.sentence == "It's eleven o'clock"
    assert a.extra == {"note": "first"} and h.extra == {}
    assert a.provenance.backend == "recording" and a.provenance.parameters == {"original": "anger_take1.mp4"}
    # Probed with PyAV: 4 frames 16x16 at 25 fps, AAC at 44.1 kHz.
    assert (a.width, a.height, a.fps, a.audio_rate) == (16, 16, 25.0, 44100)
    assert 0.1 < a.duration_s < 0.3
    # Opaque names: no emotion word, code or original name in ids or media paths.
    for s in m:
        assert s.sha256 == sha256_file(folder / s.provenance.parameters["original"])
        assert s.media == f"media/{s.stimulus_id}.mp4"
        low = (s.stimulus_id + s.media).lower()
        for word in [*EMOTIONS, "ang", "hap", "fea", "sad", "happy", "take"]:
            assert word not in low
    if report.linked:
        assert os.stat(out / a.media).st_ino == os.stat(folder / "anger_take1.mp4").st_ino
    assert not [p for p in tmp_path.iterdir() if ".importing-" in p.name]


def test_researcher_ids_never_name_the_media_file(tmp_path, video_folder):
    # Acceptance finding: a labels CSV with a stimulus_id column such as "GT_anger_1" named the media file
    # media/GT_anger_1.mp4, the condition and the emotion in the file a participant's browser loads. The id is
    # kept (it is the researcher's key); the media name stays opaque (from the file's sha256).
    folder, _ = video_folder
    labels = _write_csv(tmp_path / "ids.csv", [["anger_take1.mp4", "GT", "anger", "anger", "1001", "DFA", "", "", "GT_anger_1"],
                                               ["happy_take1.mp4", "OURS", "HAP", "HAP", "1002", "IEO", "", "", "ours-hap"]],
                        header=["file", "source", "visual_emotion", "audio_emotion", "identity", "sentence",
                                "intensity", "size_variant", "stimulus_id"])
    m = import_folder(folder, labels, tmp_path / "set").manifest
    assert [s.stimulus_id for s in m.stimuli] == ["GT_anger_1", "ours-hap"]
    for s in m.stimuli:
        assert s.media == f"media/s{s.sha256[:16]}.mp4"
        assert (tmp_path / "set" / s.media).is_file()
    assert sorted(p.name for p in (tmp_path / "set" / "media").iterdir()) == sorted(
        s.media.split("/")[1] for s in m.stimuli)


def test_import_copy_mode_and_existing_out(tmp_path, video_folder):
    folder, labels = video_folder
    out = tmp_path / "copied"
    report = import_folder(folder, labels, out, mode="copy")
    assert report.copied == 3 and report.linked == 0
    assert os.stat(out / report.manifest.stimuli[0].media).st_ino != os.stat(folder / "anger_take1.mp4").st_ino
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(ImportSourceError, match="already exists.*never overwrites"):
        import_folder(folder, labels, out)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_unreadable_video_names_the_row_and_writes_nothing(tmp_path, video_folder):
    folder, labels = video_folder
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    rows = list(csv.reader(open(labels)))[1:] + [["broken.mp4", "GT", "fear", "fear", "1004", "DFA", "", "", ""]]
    _write_csv(labels, rows)
    out = tmp_path / "never"
    with pytest.raises(ImportSourceError, match=r"labels.csv: row 4 \(line 5\).*broken.mp4.*cannot be read"):
        import_folder(folder, labels, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".importing-" in p.name]


def test_duplicate_content_refused(tmp_path, video_folder):
    folder, labels = video_folder
    (folder / "copy.mp4").write_bytes((folder / "anger_take1.mp4").read_bytes())
    rows = list(csv.reader(open(labels)))[1:] + [["copy.mp4", "GT", "fear", "fear", "1004", "DFA", "", "", ""]]
    _write_csv(labels, rows)
    with pytest.raises(ImportSourceError, match=r"row 4 .*same content as .*row 1"):
        import_folder(folder, labels, tmp_path / "dup")


@pytest.mark.parametrize("row, column, needle", [
    (["anger_take1.mp4", "GT", "hapy", "anger", "1", "DFA", "", "", ""], "visual_emotion", "unknown emotion 'hapy'"),
    (["anger_take1.mp4", "GT", "anger", "furious", "1", "DFA", "", "", ""], "audio_emotion", "unknown emotion"),
    (["missing.mp4", "GT", "anger", "anger", "1", "DFA", "", "", ""], "file", "no such file"),
    (["", "GT", "anger", "anger", "1", "DFA", "", "", ""], "file", "empty"),
    (["anger_take1.mp4", "", "anger", "anger", "1", "DFA", "", "", ""], "source", "empty"),
    (["anger_take1.mp4", "GT", "anger", "anger", "", "DFA", "", "", ""], "identity", "empty"),
    (["anger_take1.mp4", "GT", "anger", "anger", "1", "", "", "", ""], "sentence", "empty"),
])
def test_bad_csv_row_names_row_and_column(tmp_path, video_folder, row, column, needle):
    folder, _ = video_folder
    good = ["happy_take1.mp4", "GT", "happiness", "happiness", "2", "DFA", "", "", ""]
    labels = _write_csv(tmp_path / "bad.csv", [good, row])
    with pytest.raises(ImportSourceError) as exc:
        read_labels_csv(labels, folder)
    msg = str(exc.value)
    assert f"bad.csv: row 2 (line 3), column '{column}'" in msg and needle in msg


def test_csv_structure_errors(tmp_path, video_folder):
    folder, _ = video_folder
    with pytest.raises(ImportSourceError, match="column 'visual_emotion' is missing"):
        read_labels_csv(_write_csv(tmp_path / "a.csv", [], header=["file", "source"]), folder)
    with pytest.raises(ImportSourceError, match=r"row 1 \(line 2\): has 3 fields, the header has 9"):
        read_labels_csv(_write_csv(tmp_path / "b.csv", [["a", "b", "c"]]), folder)
    with pytest.raises(ImportSourceError, match="no data rows"):
        read_labels_csv(_write_csv(tmp_path / "c.csv", []), folder)
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(ImportSourceError, match="empty file"):
        read_labels_csv(tmp_path / "d.csv", folder)
    rows = [["neutral.mp4", "GT", "neutral", "neutral", "1", "DFA", "", "", ""]] * 2
    with pytest.raises(ImportSourceError, match=r"row 2 .*column 'file'.*already listed in row 1"):
        read_labels_csv(_write_csv(tmp_path / "e.csv", rows), folder)


_BAD_CELLS = {"visual_emotion": "happyish", "audio_emotion": "ANGRYY", "source": "", "identity": "",
              "sentence": "", "file": "nope.mp4"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_rows=st.integers(1, 12), data=st.data())
def test_property_error_names_first_bad_row_and_field(tmp_path_factory, n_rows, data):
    folder = tmp_path_factory.mktemp("prop")
    rows = []
    for i in range(n_rows):
        (folder / f"v{i}.mp4").write_bytes(b"x")
        emo = data.draw(st.sampled_from(EMOTIONS))
        rows.append([f"v{i}.mp4", "GT", emo, emo, str(1000 + i), "DFA", "", "", ""])
    bad_row = data.draw(st.integers(0, n_rows - 1))
    column = data.draw(st.sampled_from(sorted(_BAD_CELLS)))
    rows[bad_row][HEADER.index(column)] = _BAD_CELLS[column]
    labels = _write_csv(folder / "labels.csv", rows)
    with pytest.raises(ImportSourceError) as exc:
        read_labels_csv(labels, folder)
    assert f"row {bad_row + 1} (line {bad_row + 2}), column '{column}'" in str(exc.value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_rows=st.integers(1, 8), data=st.data())
def test_property_bad_manifest_row_names_row_and_field(tmp_path_factory, n_rows, data):
    """A manifest with one bad row fails naming that row (1-based) and the field."""
    from stimuli_factories import fake_row

    root = tmp_path_factory.mktemp("man")
    rows = [fake_row(f"s{i}", "GT", "anger", "anger") for i in range(n_rows)]
    bad_row = data.draw(st.integers(0, n_rows - 1))
    field, value = data.draw(st.sampled_from([("visual_emotion", "joyous"), ("fps", -1), ("width", 1.5),
                                              ("sha256", "abc"), ("media", "../x.mp4"), ("source", ""),
                                              ("audio_rate", "44k"), ("stimulus_id", "bad id!")]))
    rows[bad_row][field] = value
    (root / "manifest.json").write_text(json.dumps({"schema_version": 1, "name": "x", "stimuli": rows}))
    with pytest.raises(ManifestError) as exc:
        load_manifest(root, check_media=False)
    assert f"row {bad_row + 1}" in str(exc.value) and f"field '{field}'" in str(exc.value)


# ------------------------------------------------------------------------------------------ CREMA-D

@pytest.fixture
def crema_tree(tmp_path, tiny_video_bytes):
    root = tmp_path / "CREMA-D"
    (root / "VideoFlash").mkdir(parents=True)
    (root / "VideoMP4").mkdir()
    (root / "AudioWAV").mkdir()
    names = ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_SAD_LO", "1091_WSI_NEU_XX"]
    for k, n in enumerate(names):
        (root / "VideoFlash" / f"{n}.flv").write_bytes(tiny_video_bytes(10 + k))  # mp4 bytes, .flv name
        (root / "AudioWAV" / f"{n}.wav").write_bytes(b"RIFF")
    (root / "VideoMP4" / "1001_DFA_ANG_XX.mp4").write_bytes(tiny_video_bytes(20))  # preferred over the flv
    (root / "VideoDemographics.csv").write_text("ActorID,Age\n1001,51\n")
    return root, names


def test_import_crema_d(tmp_path, crema_tree):
    root, names = crema_tree
    out = tmp_path / "crema-set"
    report = import_crema_d(root, out, size_variant="128x128")
    m = load_manifest(out)
    assert len(m) == 4 and report.skipped == []
    by_name = {s.extra["crema_name"]: s for s in m}
    assert sorted(by_name) == sorted(names)
    s = by_name["1001_IEO_HAP_HI"]
    assert (s.source, s.identity, s.sentence, s.visual_emotion, s.audio_emotion, s.intensity, s.size_variant) == (
        "GT", "1001", "IEO", "happiness", "happiness", "HI", "128x128")
    assert s.extra["sentence_text"] == "It's eleven o'clock"
    assert by_name["1001_DFA_ANG_XX"].provenance.parameters["original"] == "VideoMP4/1001_DFA_ANG_XX.mp4"
    assert by_name["1001_DFA_ANG_XX"].media.endswith(".mp4")
    assert by_name["1002_TIE_SAD_LO"].media.endswith(".flv")
    for st_ in m:
        assert "_" not in st_.media and "DFA" not in st_.media and "ANG" not in st_.media.upper()


def test_crema_bad_names_and_unreadable(tmp_path, crema_tree):
    root, _ = crema_tree
    (root / "VideoFlash" / "holiday.flv").write_bytes(b"junk")
    with pytest.raises(ImportSourceError, match="1 video.*without a CREMA-D name.*holiday.flv.*--skip-bad-names"):
        import_crema_d(root, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    (root / "VideoFlash" / "1003_MTI_FEA_MD.flv").write_bytes(b"junk")
    with pytest.raises(ImportSourceError, match="1003_MTI_FEA_MD.flv: cannot be read as a video"):
        import_crema_d(root, tmp_path / "b", skip_bad_names=True)
    report = import_crema_d(root, tmp_path / "c", skip_bad_names=True, skip_unreadable=True)
    assert len(report.manifest) == 4
    assert any("holiday.flv" in x for x in report.skipped) and any("1003_MTI_FEA_MD" in x for x in report.skipped)


def test_crema_empty_tree(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportSourceError, match="no CREMA-D videos found"):
        import_crema_d(tmp_path / "empty", tmp_path / "out")
