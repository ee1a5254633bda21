"""Video emotion classifier: trains on the synthetic corpus and beats chance; metrics by hand; report files.

Tiny and fast on purpose: 32x32 frames (the discriminator's five stride-2 convs need a multiple of 32),
width 8 (convs 8..64, FC 512 -> 256 -> 64, LSTM 64), 8-frame clips, no augmentation, 40 epochs on
24 clips: ~3 s on 2 CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from generator.errors import CheckpointError, InputError
from generator.evaluate.classifier import (ClassifierConfig, accuracy, classify, confusion_matrix, corpus_videos,
                                           load_classifier, macro_f1, row_normalise, train_classifier, video_files,
                                           write_report)

TINY = ClassifierConfig(image_size=32, width=8, n_frames=8, batch_size=6, epochs=40, lr=1e-3, augment=False, seed=0)


def test_metrics_by_hand():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    # class 0: TP 1, predicted 2, true 2 -> F1 0.5; class 1: TP 2, predicted 3, true 2 -> 0.8;
    # class 2: TP 0 -> 0; classes 3-5 absent from both -> left out. Macro = 1.3 / 3.
    assert macro_f1(y_true, y_pred) == pytest.approx(1.3 / 3)
    assert accuracy(y_true, y_pred) == pytest.approx(0.6)
    cm = confusion_matrix(y_true, y_pred)
    assert cm[0].tolist() == [1, 1, 0, 0, 0, 0] and cm[2].tolist() == [1, 0, 0, 0, 0, 0]
    norm = row_normalise(cm)
    np.testing.assert_allclose(norm[1, :2], [0.0, 1.0])
    assert np.isnan(norm[4]).all()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: threads only contend on the shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from generator.data.synthetic import make_corpus

    corpus = tmp_path_factory.mktemp("syn")
    make_corpus(corpus, n_identities=2, clips_per_emotion=3, n_frames=8, seed=0)
    out = tmp_path_factory.mktemp("cls")
    result = train_classifier(corpus, out, TINY)
    return corpus, out, result


def test_trains_and_classifies_synthetic_test_set_above_chance(trained):
    corpus, out, result = trained
    assert result.checkpoint.is_file() and len(result.history) == TINY.epochs
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    model, config = load_classifier(out)
    assert config == TINY
    res = classify(model, config, corpus_videos(corpus, "test"), "Synthetic test")
    assert len(res.keys) == 12  # 2 identities x 6 emotions, 1 held-out clip each
    # chance is 1/6 (2 of 12); at least 5 of 12 right has probability ~0.04 by guessing
    assert res.accuracy >= 5 / 12
    assert res.macro_f1 > 1 / 6


def test_generated_videos_from_files_and_report(trained, tmp_path):
    from generator.data.corpus import read_clip, read_index
    from generator.mediaio import write_mp4

    corpus, out, _ = trained
    gen = tmp_path / "gen"
    gen.mkdir()
    for info in read_index(corpus, "test")[:4]:
        video = read_clip(corpus, info).video
        write_mp4(gen / f"{info.clip_id}.mp4", np.ascontiguousarray(video[..., ::-1]), fps=25)  # BGR -> RGB
    videos = video_files(gen)
    assert [v.emotion for v in videos] == ["anger", "disgust", "fear", "happiness"]  # from the names
    assert videos[0].load().shape == (8, 128, 128, 3)
    model, config = load_classifier(out / "classifier.pt")
    real = classify(model, config, corpus_videos(corpus, "test"), "Ground-truth")
    generated = classify(model, config, videos, "Generated")
    files = write_report([real, generated], tmp_path / "report")
    for key in ("table_csv", "table_md", "predictions", "figure", "confusion_ground-truth", "confusion_generated"):
        assert files[key].is_file(), key
    md = files["table_md"].read_text()
    assert f"| Ground-truth | {100 * real.accuracy:.2f} |" in md
    assert files["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unlabelled_file_and_bad_checkpoint_are_refused(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="no emotion in the file name"):
        video_files(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


def test_config_refuses_bad_image_size():
    with pytest.raises(ValueError, match="multiple of 32"):
        ClassifierConfig(image_size=48)


def test_train_classifier_cli_with_a_checkpoint(trained, tmp_path):
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from generator.evaluate.cli import train_classifier_command

    corpus, out, result = trained
    buf = io.StringIO()
    r = CliRunner().invoke(train_classifier_command, ["--data", str(corpus), "--out", str(tmp_path / "r"),
                                                      "--checkpoint", str(result.checkpoint), "--device", "cpu"],
                           obj={"console": Console(file=buf, width=200)})
    assert r.exit_code == 0, r.output + buf.getvalue()
    assert (tmp_path / "r" / "table2.md").is_file() and (tmp_path / "r" / "fig4_confusion.png").is_file()
    assert "Ground-truth" in buf.getvalue()


def test_augmented_training_with_a_val_split_keeps_the_best_epoch(trained, tmp_path):
    import dataclasses
    import shutil

    from generator.data.corpus import read_index, write_index

    corpus, _, _ = trained
    shutil.copytree(corpus, tmp_path / "c")
    infos = [dataclasses.replace(i, split="val" if i.split == "test" else i.split) for i in read_index(corpus)]
    write_index(tmp_path / "c", infos)
    cfg = dataclasses.replace(TINY, epochs=3, augment=True)
    res = train_classifier(tmp_path / "c", tmp_path / "o", cfg)
    accs = [row["val_accuracy"] for row in res.history]
    assert len(accs) == 3 and all("val_macro_f1" in row for row in res.history)
    assert res.best_epoch == 1 + int(np.argmax(accs))  # first epoch with the best val accuracy
