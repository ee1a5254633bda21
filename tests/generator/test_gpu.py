"""CUDA paths of the generator (skipped without a GPU; see tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from generator.neural.model import Generator, GeneratorConfig  # noqa: E402
from generator.neural.renderer import generate  # noqa: E402

pytestmark = pytest.mark.gpu


def test_cuda_generation_matches_cpu():
    torch.manual_seed(0)
    cpu = Generator(GeneratorConfig.tiny()).eval()
    gpu = Generator(GeneratorConfig.tiny()).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    face = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    speech = np.random.default_rng(1).standard_normal(8 * 320).astype(np.float32)
    a = generate(cpu, face, speech, "anger", 3)
    b = generate(gpu, face, speech, "anger", 3)  # same noise: drawn on the CPU as the reference does
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_cuda_training_step_with_bf16_autocast(tmp_path):
    from generator.data.synthetic import make_corpus
    from generator.neural.train import TrainConfig, Trainer

    make_corpus(tmp_path, n_identities=1, clips_per_emotion=2, n_frames=8, seed=0)
    cfg = TrainConfig(corpus=str(tmp_path), model=GeneratorConfig.tiny(), disc_width=8, window=4, batch_size=2,
                      emotion_steps=1, pretrain_steps=1, joint_steps=1, beta=0.0, device="cuda", amp=True)
    trainer = Trainer(cfg)
    for _ in range(3):
        metrics = trainer.step()
    assert trainer.use_amp == torch.cuda.is_bf16_supported()
    assert all(np.isfinite(v) for k, v in metrics.items() if k not in ("step", "stage"))
