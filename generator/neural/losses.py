"""The paper's objectives (Section III-D, NOTES.md "Losses and training as coded").

- ``mouth_region_mask`` / ``mrm_loss``: L1 weighted by a 2-D Gaussian (sigma 9 px at 128 px, peak 1,
  + 0.01 floor) centred on the mean of the 20 mouth landmarks of each frame.
- ``VGG19Features`` / ``PerceptualLoss``: VGG-19 ``features`` (torchvision's module layout, so a
  torchvision state dict file loads) at module indices 4, 9, 18, 27, 36; sum of MSEs; frames as they
  are (BGR, [-1, 1], no ImageNet normalisation), as the reference code does. Weights come only from a
  file the user gives: without one, ``load_vgg19`` raises ``PerceptualWeightsMissing`` (never random).
- ``gradient_penalty`` / ``frame_d_loss`` / ``frame_g_loss``: WGAN-GP with one interpolation weight per
  video and the gradient norm over the whole clip (lambda 10).
- ``emotion_d_loss`` / ``emotion_g_loss``: cross-entropy with the 7th "fake" class.
- ``aux_emotion_loss``: the speech-emotion head's cross-entropy.

Weights (alpha, beta, gamma, delta and the auxiliary weight) are applied by the trainer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from generator.errors import CheckpointError
from generator.neural.model import FAKE_CLASS

MOUTH = slice(48, 68)  # the 20 mouth landmarks of the 68-point layout
VGG_LAYERS = (4, 9, 18, 27, 36)  # the five max-pool outputs of VGG-19 `features`
# torchvision's VGG-19 ("E"): numbers are conv widths, "M" a 2x2 max pool.
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M")


class PerceptualWeightsMissing(CheckpointError):
    """The perceptual loss needs VGG-19 weights that were not given or cannot be read."""


def mouth_region_mask(landmarks: torch.Tensor, size: int, *, sigma_px_at_128: float = 9.0,
                      floor: float = 0.01) -> torch.Tensor:
    """(B, T, 68, 2) landmarks (x, y pixels) -> mask (B, T, 1, size, size): G + floor, G peak 1."""
    sigma = sigma_px_at_128 * size / 128.0
    centre = landmarks[..., MOUTH, :].mean(-2)  # (B, T, 2)
    grid = torch.arange(size, dtype=landmarks.dtype, device=landmarks.device)
    dx2 = (grid - centre[..., 0:1]) ** 2  # (B, T, W)
    dy2 = (grid - centre[..., 1:2]) ** 2  # (B, T, H)
    g = torch.exp(-(dy2.unsqueeze(-1) + dx2.unsqueeze(-2)) / (2 * sigma ** 2))  # (B, T, H, W)
    return (g + floor).unsqueeze(2)


def mrm_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1(pred * m, target * m), mean over every element (the trainer multiplies by alpha = 100)."""
    return F.l1_loss(pred * mask, target * mask)


class VGG19Features(nn.Module):
    """VGG-19 ``features`` in torchvision's layout (keys ``features.<i>.weight``)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, taps: tuple[int, ...] = VGG_LAYERS) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
            if i >= max(taps):
                break
        return out


def load_vgg19(path: str | os.PathLike | None) -> VGG19Features:
    """VGG-19 features from a torchvision-format state dict file (e.g. ``vgg19-dcbb9e9d.pth``).

    The ``classifier.*`` entries of a full torchvision file are ignored; every ``features.*`` key
    must be present with its shape. Frozen and in eval mode.
    """
    fix = ("pass --vgg19 PATH to torchvision's VGG-19 weights (vgg19-dcbb9e9d.pth, downloaded once "
           "where you have internet), or turn the perceptual term off with --beta 0")
    if path is None:
        raise PerceptualWeightsMissing(f"the perceptual loss needs VGG-19 weights and none were given: {fix}")
    p = Path(path)
    if not p.is_file():
        raise PerceptualWeightsMissing(f"{p}: VGG-19 weights file not found: {fix}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file; re-raised with the path
        raise PerceptualWeightsMissing(f"{p}: cannot be read as a torch state dict ({exc}): {fix}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = VGG19Features()
    want = net.state_dict()
    got = {k: v for k, v in state.items() if k.startswith("features.")} if isinstance(state, dict) else {}
    missing = sorted(set(want) - set(got))
    bad = sorted(k for k in set(want) & set(got) if tuple(got[k].shape) != tuple(want[k].shape))
    if missing or bad:
        raise PerceptualWeightsMissing(f"{p}: not torchvision VGG-19 weights (missing {missing[:3]}, wrong shapes "
                                       f"{bad[:3]}): {fix}")
    net.load_state_dict(got, strict=True)
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    return net


class PerceptualLoss(nn.Module):
    """Sum over the five VGG taps of MSE(features(pred), features(target)); frames (B, T, 3, H, W)."""

    def __init__(self, vgg: VGG19Features, taps: tuple[int, ...] = VGG_LAYERS):
        super().__init__()
        self.vgg, self.taps = vgg, taps

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.vgg.eval()  # always frozen
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.vgg(pred.flatten(0, 1), self.taps)
        with torch.no_grad():
            ft = self.vgg(target.flatten(0, 1), self.taps)
        return sum(F.mse_loss(a, b) for a, b in zip(fp, ft))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, reference: torch.Tensor,
                     *, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP term: E[(||grad_x sum_t D(x_t)||_2 - 1)^2], x = a * real + (1 - a) * fake.

    One ``a`` ~ U(0, 1) per video (drawn on the CPU), and the gradient norm over the whole clip
    (NOTES.md). ``critic(video, reference) -> (B, T)``.
    """
    b = real.shape[0]
    alpha = torch.rand(b, 1, 1, 1, 1, generator=generator).to(real.device, real.dtype)
    x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x, reference)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)
    return ((norm - 1) ** 2).mean()


def frame_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor, gp: torch.Tensor, lam: float = 10.0) -> torch.Tensor:
    """Critic loss: mean D(fake) - mean D(real) + lambda * GP."""
    return d_fake.mean() - d_real.mean() + lam * gp


def frame_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Generator's frame term: -mean D(fake) (the trainer multiplies by gamma = 0.01)."""
    return -d_fake.mean()


def emotion_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """0.5 * (CE(D(fake), fake) + CE(D(real), emotion)); labels (B,) in 0..5."""
    fake = torch.full_like(labels, FAKE_CLASS)
    return 0.5 * (F.cross_entropy(logits_fake, fake) + F.cross_entropy(logits_real, labels))


def emotion_g_loss(logits_fake: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """CE(D(fake), the emotion the video was made with) (the trainer multiplies by delta = 0.001)."""
    return F.cross_entropy(logits_fake, condition)


def aux_emotion_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The speech-emotion head's cross-entropy (weight 0.001 in the trainer)."""
    return F.cross_entropy(logits, labels)
