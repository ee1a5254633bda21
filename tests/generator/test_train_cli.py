"""`emostudy train` through click (synthetic corpus, tiny config, one step per stage)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from generator.neural.cli import train_command  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_command_synthetic_smoke_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["--synthetic", "1", "--config", "tiny", "--beta", "0", "--steps", "1,1,1", "--window", "4",
            "--batch-size", "1", "--log-every", "1", "--sample-every", "3", "--checkpoint-every", "2", "--until-step", "2"]
    res = CliRunner().invoke(train_command, args + ["--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "corpus" / "index.jsonl").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    res = CliRunner().invoke(train_command, ["--resume", str(out)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["emotion", "pretrain", "joint"]
    assert (out / "samples" / "step_000003.png").is_file()
    again = CliRunner().invoke(train_command, args + ["--out", str(out)])
    assert again.exit_code != 0 and "already holds files" in again.output


def test_train_command_perceptual_needs_weights(tmp_path):
    res = CliRunner().invoke(train_command, ["--synthetic", "1", "--config", "tiny", "--steps", "0,1,0",
                                             "--window", "4", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "VGG-19" in res.output and "--vgg19" in res.output
