"""generator.neural.train: stages, exact resume, run folders, the perceptual-weights rule, DDP (gloo, 2 ranks),
and a tiny model that learns the synthetic corpus."""

from __future__ import annotations

import json
import socket

import pytest

torch = pytest.importorskip("torch")

from generator.data.synthetic import make_corpus  # noqa: E402
from generator.neural.losses import PerceptualWeightsMissing, VGG19Features  # noqa: E402
from generator.neural.model import GeneratorConfig  # noqa: E402
from generator.neural.train import RunFolderExists, TrainConfig, Trainer, mouth_l1, train  # noqa: E402

# Smaller than GeneratorConfig.tiny(): enough to learn the synthetic mouth in a few hundred CPU steps.
MICRO = GeneratorConfig(image_size=64, speech_channels=(16, 32, 32, 32), speech_dim=32, emotion_dim=16,
                        noise_dim=8, image_dim=32, filters=(8, 16, 32, 32, 32), decoder_out=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    make_corpus(root, n_identities=2, clips_per_emotion=2, n_frames=10, seed=1)
    return str(root)


def _cfg(corpus, **kw) -> TrainConfig:
    base = dict(corpus=corpus, model=MICRO, disc_width=4, window=4, batch_size=2, emotion_steps=1,
                pretrain_steps=1, joint_steps=2, beta=0.0, augment=True, log_every=1, sample_every=2,
                checkpoint_every=2)
    base.update(kw)
    return TrainConfig(**base)


def _states(path):
    data = torch.load(path, weights_only=True)
    return data, {f"{part}.{k}": v for part in ("generator", "frame_disc", "emotion_disc") for k, v in data[part].items()}


@pytest.mark.slow  # ~10 s idle, more on the shared VM (VGG-19 forward/backward on the CPU)
def test_resume_gives_the_same_steps_as_an_uninterrupted_run(corpus, tmp_path):
    vgg = tmp_path / "vgg19.pth"
    torch.manual_seed(0)
    torch.save(VGG19Features().state_dict(), vgg)  # random weights, but in the torchvision layout
    cfg = _cfg(corpus, beta=1.0, vgg19=str(vgg))
    torch.manual_seed(0)
    a = train(cfg, tmp_path / "a", progress=False)
    torch.manual_seed(0)
    train(cfg, tmp_path / "b", progress=False, until_step=2)
    torch.manual_seed(123)  # the global RNG state is restored from the checkpoint
    b = train(cfg, tmp_path / "b", progress=False, resume=True)
    data_a, sa = _states(a)
    data_b, sb = _states(b)
    assert data_a["step"] == data_b["step"] == 4
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ma = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    drop = ("time", "clips_per_s")
    assert [{k: v for k, v in m.items() if k not in drop} for m in ma] == \
        [{k: v for k, v in m.items() if k not in drop} for m in mb]
    assert [m["stage"] for m in ma] == ["emotion", "pretrain", "joint", "joint"]
    assert {"d_frame", "gp", "d_emotion", "g_frame", "g_emotion", "perceptual", "mrm"} <= set(ma[-1])
    assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert json.loads((tmp_path / "a" / "options.json").read_text())["vgg19"] == str(vgg)
    assert data_a["train_config"]["model"] == MICRO.to_dict() and data_a["code_version"]


def test_perceptual_term_without_weights_stops_before_any_work(corpus, tmp_path):
    with pytest.raises(PerceptualWeightsMissing, match="--vgg19"):
        train(_cfg(corpus, beta=1.0, vgg19=None), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_never_writes_into_another_runs_folder(corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("precious\n")
    with pytest.raises(RunFolderExists, match="--resume"):
        train(_cfg(corpus), run, progress=False)
    assert (run / "metrics.jsonl").read_text() == "precious\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, corpus: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from generator.neural.train import setup_distributed

    d = setup_distributed("cpu")
    torch.manual_seed(rank)  # different initialisations: rank 0's are broadcast
    trainer = Trainer(_cfg(corpus, emotion_steps=1, pretrain_steps=1, joint_steps=1, augment=False), dist=d)
    for _ in range(3):
        trainer.step()
    torch.save(trainer.state()["generator"] | {f"Df.{k}": v for k, v in trainer.Df.state_dict().items()},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_two_cpu_ranks_stay_in_sync(corpus, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), corpus, str(tmp_path)), nprocs=2, join=True)
    s0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)


@pytest.mark.slow
def test_tiny_model_learns_the_synthetic_mouth(tmp_path):
    root = tmp_path / "corpus"
    make_corpus(root, n_identities=3, clips_per_emotion=3, n_frames=24, seed=0)
    cfg = TrainConfig(corpus=str(root), model=MICRO, disc_width=8, window=8, batch_size=4, lr_g_pretrain=5e-4,
                      emotion_steps=0, pretrain_steps=300, joint_steps=0, beta=0.0, augment=False,
                      log_every=50, sample_every=10**6, checkpoint_every=10**6)
    torch.manual_seed(0)
    last = train(cfg, tmp_path / "run", progress=False)
    from generator.neural.checkpoint import load_generator

    model, _ = load_generator(last)
    scores = mouth_l1(model, root, "test")  # held-out utterances
    assert scores["n_clips"] == 18
    # copying the reference frame is the baseline to beat (its mouth is closed; the speech opens it)
    assert scores["model"] < 0.95 * scores["copy_reference"], scores
