"""The paper's networks (Eskimez et al., Section III) as plain ``nn.Module``s built from one config.

- ``Generator``: speech encoder (+ context layer), speech LSTM, image encoder with downsampled-image
  skips, emotion encoder, noise encoder, decoder with a ConvLSTM stage, auxiliary speech-emotion head.
  ``GeneratorConfig()`` is the paper config: its state dict has exactly the 68 keys and shapes of the
  authors' ``generator.pt`` (41,647,993 parameters; ../shared/paper/NOTES.md), so those weights load
  unchanged (``load_generator_state``, with or without the ``module.`` prefix of ``nn.DataParallel``).
- ``FrameDiscriminator``: per-frame WGAN critic on cat(frame, reference image).
- ``EmotionDiscriminator``: per-frame convs -> LSTM -> last step -> ``n_classes`` logits. In training
  ``n_classes = 7`` (six emotions + "fake" at index 6); with ``n_classes = 6`` it is the paper's video
  emotion classifier (IV-C, Table II).

Conventions (NOTES.md): frames are **BGR** in [-1, 1], 8 kHz mono speech, 25 fps, 320 samples per
frame, T = ceil(L / 320). Emotion vectors are over (anger, disgust, fear, happiness, neutral, sadness).

Random numbers: one forward pass draws, in this order and always from a CPU generator (the global one
unless ``generator`` is given), the context padding (start block, end block, each (B, 17, 16)
N(0, 0.002)) and then one (B, noise_dim) N(0, 1) vector per frame in time order. This is the reference
code's order, so ``torch.manual_seed(s)`` followed by a forward pass reproduces its video for seed ``s``
(on any device: the numbers are drawn on the CPU and then moved, as the reference does).

No I/O, no seeding and no printing here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

N_EMOTIONS = 6  # anger, disgust, fear, happiness, neutral, sadness (stimuli.emotions.EMOTIONS)
FAKE_CLASS = 6  # index of "fake" in the emotion discriminator's 7 classes


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes of the generator. The defaults are the paper's (the layout of the released weights)."""

    image_size: int = 128  # square frames; a multiple of 32 (five stride-2 blocks), at least 64
    speech_channels: tuple[int, ...] = (64, 128, 256, 512)
    speech_kernels: tuple[int, ...] = (63, 31, 17, 9)
    speech_strides: tuple[int, ...] = (4, 4, 2, 2)  # total 64 samples -> 125 vectors/s at 8 kHz
    speech_features: int = 16  # the 1x1 conv after the four blocks
    context: int = 17  # steps of past and future context (35 copies)
    context_std: float = 0.002  # N(0, std) padding of the context layer
    keep_every: int = 5  # 125 vectors/s -> 25 frames/s
    speech_dim: int = 512
    speech_layers: int = 2
    emotion_dim: int = 512
    noise_dim: int = 128
    image_dim: int = 512
    filters: tuple[int, ...] = (64, 128, 256, 512, 512)  # image encoder; the decoder mirrors them
    decoder_out: int = 32  # channels of the last decoder stage before the 7x7 output conv
    n_emotions: int = N_EMOTIONS

    def __post_init__(self) -> None:
        if len(self.filters) != 5:
            raise ValueError(f"filters must have 5 entries (five encoder blocks), got {self.filters}")
        if self.image_size % 32 or self.image_size < 64:
            # 64 is the least: the 4th-stage reflection padding needs a bottleneck of at least 2x2
            raise ValueError(f"image_size must be a multiple of 32 and at least 64, got {self.image_size}")
        n = len(self.speech_channels)
        if not (len(self.speech_kernels) == len(self.speech_strides) == n):
            raise ValueError("speech_channels, speech_kernels and speech_strides need the same length")

    @classmethod
    def tiny(cls) -> "GeneratorConfig":
        """A small config for tests and CPU experiments: same structure, 64 px, narrow layers."""
        return cls(image_size=64, speech_channels=(16, 32, 32, 64), speech_kernels=(63, 31, 17, 9),
                   speech_dim=64, emotion_dim=32, noise_dim=16, image_dim=64,
                   filters=(16, 32, 64, 64, 64), decoder_out=16)

    @property
    def speech_hop(self) -> int:
        """Audio samples per speech vector (64 in the paper)."""
        return math.prod(self.speech_strides)

    @property
    def samples_per_frame(self) -> int:
        return self.speech_hop * self.keep_every

    @property
    def bottleneck(self) -> int:
        """Side of the deepest feature map (4 at 128 px)."""
        return self.image_size // 32

    @property
    def latent_dim(self) -> int:
        return self.speech_dim + self.noise_dim + self.image_dim + self.emotion_dim

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generator config fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# --------------------------------------------------------------------------------------------------
# building blocks


def _pad_conv_act(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, pad: int = 1) -> nn.Sequential:
    # [ReflectionPad2d, Conv2d, LeakyReLU(0.2)]: the conv weight sits at index 1 as in the checkpoint.
    return nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(c_in, c_out, kernel, stride), nn.LeakyReLU(0.2))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _downsample(x: torch.Tensor) -> torch.Tensor:
    # nearest with scale 1/2 picks the even rows and columns (what the weights expect, NOTES.md).
    return x[:, :, ::2, ::2]


class SpeechEncoder(nn.Module):
    """Waveform (B, L) -> per-frame speech vectors (B, T, speech_dim), T = ceil(L / samples_per_frame)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        prev = 1
        for c, k, s in zip(cfg.speech_channels, cfg.speech_kernels, cfg.speech_strides):
            layers += [nn.ReflectionPad1d((k - 1) // 2), nn.Conv1d(prev, c, k, s), nn.LeakyReLU(0.2), nn.Dropout(0.0)]
            prev = c
        layers += [nn.Conv1d(prev, cfg.speech_features, 1), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)  # conv weights at 1, 5, 9, 13, 16 (paper config)
        width = cfg.speech_features * (2 * cfg.context + 1)  # 16 * 35 = 560
        self.fc_1 = nn.Sequential(nn.Linear(width, cfg.speech_dim), nn.LeakyReLU(0.2))

    def min_samples(self) -> int:
        """Shortest waveform the reflection paddings accept."""
        n = 1
        for k, s in zip(reversed(self.cfg.speech_kernels), reversed(self.cfg.speech_strides)):
            n = max(n, (k - 1) // 2 + 1) * s  # the layer input must be longer than its padding
        return n

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, N, speech_features), N = ceil(L / 64): 125 vectors/s."""
        return self.net(audio.unsqueeze(1)).transpose(1, 2)

    def context(self, feats: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """Context layer: (B, N, 16) -> (B, ceil(N / 5), 560).

        Pads ``context`` steps of noise each side, stacks the 35 shifted copies by time offset
        (-17 ... +17; feature index = offset_index * 16 + channel) and keeps every 5th step.
        """
        cfg = self.cfg
        expanded = torch.cat((start, feats, end), dim=1)  # (B, N + 34, 16)
        win = expanded.unfold(1, 2 * cfg.context + 1, cfg.keep_every)  # (B, T, 16, 35)
        return win.transpose(2, 3).flatten(2)  # (B, T, 35 * 16)

    def forward(self, audio: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        return self.fc_1(self.context(self.features(audio), start, end))


class ImageEncoder(nn.Module):
    """Reference image (B, 3, S, S) -> identity code (B, image_dim) and five skips.

    Skips at 128 px: 67@64, 131@32, 259@16, 515@8, 515@4 (conv output, then the image downsampled).
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        prev = 3
        for i, f in enumerate(cfg.filters, start=1):
            setattr(self, f"conv_{i}", _pad_conv_act(prev, f, 3, 2, 1))
            prev = f + 3
        self.conv_6 = nn.Sequential(nn.Conv2d(prev, cfg.image_dim, cfg.bottleneck), nn.LeakyReLU(0.2))
        self.n_blocks = len(cfg.filters)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        h, x = image, image
        for i in range(1, self.n_blocks + 1):
            h = getattr(self, f"conv_{i}")(h)
            x = _downsample(x)
            h = torch.cat((h, x), dim=1)
            skips.append(h)
        return self.conv_6(h).flatten(1), skips


class EmotionEncoder(nn.Module):
    """Emotion vector (B, 6) -> (B, emotion_dim): two FC layers (paper III-A.3)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.fc_1 = nn.Sequential(nn.Linear(cfg.n_emotions, cfg.emotion_dim), nn.LeakyReLU(0.2),
                                  nn.Linear(cfg.emotion_dim, cfg.emotion_dim), nn.LeakyReLU(0.2))

    def forward(self, emotion: torch.Tensor) -> torch.Tensor:
        return self.fc_1(emotion)


class NoiseEncoder(nn.Module):
    """A fresh N(0, 1) vector per frame through one LSTM (head motion, paper III-A.4)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.noise_rnn = nn.LSTM(cfg.noise_dim, cfg.noise_dim, 1, batch_first=True)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.noise_rnn(noise)[0]


class ConvLSTM(nn.Module):
    """One-layer convolutional LSTM with the reference's parameter names and gate order (i, f, g, o).

    The candidate uses LeakyReLU(0.2) instead of tanh (as the released weights expect); "same" zero
    padding; zero initial state.
    """

    def __init__(self, c_in: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden, self.pad = hidden, kernel // 2
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden, c_in, kernel, kernel))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden, hidden, kernel, kernel))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden))
        bound = 1.0 / math.sqrt(hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The input half of the gates for many frames at once: (N, C, H, W) -> (N, 4h, H, W)."""
        return F.conv2d(x, self.weight_ih_l0, self.bias_ih_l0, padding=self.pad)

    def step(self, gx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step from precomputed input gates (B, 4h, H, W) (bias_ih included)."""
        if state is None:  # zero state: conv_hh(0) is exactly its bias
            gates = gx + self.bias_hh_l0[:, None, None]
            c_prev = None
        else:
            h_prev, c_prev = state
            gates = gx + F.conv2d(h_prev, self.weight_hh_l0, self.bias_hh_l0, padding=self.pad)
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        g = F.leaky_relu(g, 0.2)
        c = i * g if c_prev is None else f * c_prev + i * g
        return o * torch.tanh(c), c

    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(B, T, C, H, W) -> (B, T, hidden, H, W) and the last state."""
        b, t = x.shape[:2]
        gx = self.input_gates(x.flatten(0, 1)).unflatten(0, (b, t))
        out = []
        for k in range(t):
            state = self.step(gx[:, k], state)
            out.append(state[0])
        return torch.stack(out, dim=1), state


class Decoder(nn.Module):
    """Per-frame latent (1664) -> frame, with U-Net skips deepest first and a ConvLSTM at stage 4."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        f = cfg.filters
        s = cfg.bottleneck
        self.cfg = cfg
        self.fc_1 = nn.Sequential(nn.Linear(cfg.latent_dim, f[4] * s * s), nn.LeakyReLU(0.2))
        self.conv_1 = _pad_conv_act(f[4] + f[4] + 3, f[3])  # 1027 -> 512 @4
        self.conv_2 = _pad_conv_act(f[3] + f[3] + 3, f[2])  # 1027 -> 256 @8
        self.conv_3 = _pad_conv_act(f[2] + f[2] + 3, f[1])  # 515 -> 128 @16
        self.conv_4 = ConvLSTM(f[1] + f[1] + 3, f[0])  # 259 -> 64 @32
        self.conv_5 = _pad_conv_act(f[0] + f[0] + 3, cfg.decoder_out)  # 131 -> 32 @64
        self.out_new = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(cfg.decoder_out, 3, 7), nn.Tanh())

    # The reference computation: cat(h, skip repeated over time) -> conv, stage by stage.
    def forward_reference(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        b, t = z.shape[:2]
        f, s = self.cfg.filters, self.cfg.bottleneck
        h = self.fc_1(z).reshape(b * t, f[4], s, s)
        for i, name in enumerate(("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")):
            skip = skips[-1 - i]
            rep = skip.unsqueeze(1).expand(b, t, *skip.shape[1:]).reshape(b * t, *skip.shape[1:])
            h = torch.cat((h, rep), dim=1)
            if name == "conv_4":
                h = self.conv_4(h.unflatten(0, (b, t)))[0].flatten(0, 1)
            else:
                h = getattr(self, name)(h)
            h = _upsample(h)
        return self.out_new(h).unflatten(0, (b, t))

    def skip_terms(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """The skip half of each stage's convolution, once per clip (the skips do not change in time).

        conv(cat(h, skip)) = conv_h(h) + conv_skip(skip) + bias, exactly in real arithmetic, because
        reflection and zero padding act on each channel alone. Bias is folded in here.
        """
        out = []
        for i, name in enumerate(("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")):
            skip = skips[-1 - i]
            if name == "conv_4":
                cell = self.conv_4
                w = cell.weight_ih_l0[:, cell.weight_ih_l0.shape[1] - skip.shape[1]:]
                out.append(F.conv2d(skip, w, cell.bias_ih_l0, padding=cell.pad))
            else:
                conv = getattr(self, name)[1]
                w = conv.weight[:, conv.weight.shape[1] - skip.shape[1]:]
                out.append(F.conv2d(F.pad(skip, (1, 1, 1, 1), mode="reflect"), w, conv.bias))
        return out

    def forward_fast(self, z: torch.Tensor, terms: list[torch.Tensor],
                     state: tuple[torch.Tensor, torch.Tensor] | None = None,
                     memory_format: torch.memory_format = torch.contiguous_format
                     ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Decode frames (B, n, latent) given the clip's ``skip_terms`` and the ConvLSTM state.

        Returns frames (B, n, 3, S, S) and the state after the last frame, so a long clip can be
        decoded in chunks with the same result as in one pass.
        """
        b, n = z.shape[:2]
        f, s = self.cfg.filters, self.cfg.bottleneck
        h = self.fc_1(z).reshape(b * n, f[4], s, s).contiguous(memory_format=memory_format)
        for i, name in enumerate(("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")):
            term = terms[i]
            if name == "conv_4":
                cell = self.conv_4
                gx = F.conv2d(h, cell.weight_ih_l0[:, :h.shape[1]], None, padding=cell.pad)
                gx = gx.unflatten(0, (b, n)) + term.unsqueeze(1)
                outs = []
                for k in range(n):
                    state = cell.step(gx[:, k], state)
                    outs.append(state[0])
                h = torch.stack(outs, dim=1).flatten(0, 1)
            else:
                conv = getattr(self, name)[1]
                y = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), conv.weight[:, :h.shape[1]])
                h = F.leaky_relu(y.unflatten(0, (b, n)) + term.unsqueeze(1), 0.2).flatten(0, 1)
            h = _upsample(h)
        return self.out_new(h).unflatten(0, (b, n)), state
    def forward_subpixel(self, z: torch.Tensor, terms: list[torch.Tensor], kernels: list["PhaseKernels"],
                         state: tuple[torch.Tensor, torch.Tensor] | None = None,
                         memory_format: torch.memory_format = torch.channels_last
                         ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """``forward_fast`` without materialising any upsampled tensor (inference; see ``upconv``).

        ``kernels = self.phase_kernels()`` (once per set of weights). Same result up to float rounding.
        """
        b, n = z.shape[:2]
        f, s = self.cfg.filters, self.cfg.bottleneck
        h = self.fc_1(z).reshape(b * n, f[4], s, s).contiguous(memory_format=memory_format)
        conv = self.conv_1[1]
        y = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), conv.weight[:, :h.shape[1]])
        h = F.leaky_relu(y.unflatten(0, (b, n)) + terms[0].unsqueeze(1), 0.2).flatten(0, 1)
        for i, name in ((1, "conv_2"), (2, "conv_3"), (3, "conv_4"), (4, "conv_5")):
            y = upconv(h, kernels[i - 1]).unflatten(0, (b, n))  # (B, n, C, H, W)
            if name == "conv_4":
                outs = []
                for k in range(n):
                    state = self.conv_4.step(y[:, k] + terms[i], state)
                    outs.append(state[0])
                h = torch.stack(outs, dim=1).flatten(0, 1).contiguous(memory_format=memory_format)
            else:
                for j in range(b):  # per clip, in place: keeps the channels_last layout
                    y[j].add_(terms[i][j])
                h = F.leaky_relu_(y.flatten(0, 1), 0.2)
        out = torch.tanh(upconv(h, kernels[4]) + self.out_new[1].bias[:, None, None])
        return out.unflatten(0, (b, n)), state

    def phase_kernels(self) -> list["PhaseKernels"]:
        """Sub-pixel kernels of the five convolutions that follow an upsampling (decoder-feature half)."""
        f = self.cfg.filters
        return [PhaseKernels.of(self.conv_2[1].weight[:, :f[3]], "reflect"),
                PhaseKernels.of(self.conv_3[1].weight[:, :f[2]], "reflect"),
                PhaseKernels.of(self.conv_4.weight_ih_l0[:, :f[1]], "zeros"),
                PhaseKernels.of(self.conv_5[1].weight[:, :f[0]], "reflect"),
                PhaseKernels.of(self.out_new[1].weight, "reflect")]


@dataclass
class PhaseKernels:
    """A k x k convolution of a x2 nearest-upsampled, padded image, split into its four output phases.

    Output pixel (2i + a, 2j + b) only sees low-resolution pixels i + lo_a .. i + hi_a (rows) and the
    same for columns, so each phase is a small convolution of the low-resolution image with the taps
    that fall on one low-resolution pixel summed: 2x2 instead of 3x3 (7x7: 4x4), 2.25-3x fewer FLOPs,
    and the upsampled image is never built. Zero padding of the upsampled image is zero padding of
    the low-resolution one; reflection padding by 1 is replicate padding of the low-resolution image.
    For reflection by 3 (the 7x7 output conv) that holds except on the outer two rows and columns,
    which ``upconv`` recomputes directly.
    """

    weight: torch.Tensor  # (Co, C, k, k) the original kernel
    phases: list[torch.Tensor]  # [K_00, K_01, K_10, K_11], (Co, C, kh, kw)
    starts: tuple[int, int]  # first padded low-res row used by phase a = 0, 1
    pad: int  # low-res padding
    mode: str  # "reflect" or "zeros" (of the upsampled image)
    combined: torch.Tensor | None = None  # few output channels: all phases as one conv (faster)

    @classmethod
    def of(cls, weight: torch.Tensor, mode: str) -> "PhaseKernels":
        k = weight.shape[-1]
        p = k // 2
        rows, starts = [], []
        pad = -((0 - p) // 2)  # the lowest offset is floor(-p / 2)
        for a in (0, 1):
            offs = [(a + d) // 2 for d in range(-p, p + 1)]
            lo, hi = min(offs), max(offs)
            r = torch.zeros(hi - lo + 1, k, dtype=weight.dtype, device=weight.device)
            for tap, o in enumerate(offs):
                r[o - lo, tap] = 1.0
            rows.append(r)
            starts.append(lo + pad)
        phases = [torch.einsum("yk,xl,ockl->ocyx", rows[a], rows[b], weight).contiguous(memory_format=torch.channels_last)
                  for a in (0, 1) for b in (0, 1)]
        combined = None
        co = weight.shape[0]
        if co <= 4:  # e.g. the 3-channel output conv: one conv with 4*co (+ zero) channels beats four
            span = max(starts[a] + rows[a].shape[0] for a in (0, 1))
            comb = weight.new_zeros(co, 4, weight.shape[1], span, span)
            for a in (0, 1):
                for b in (0, 1):
                    kh, kw = rows[a].shape[0], rows[b].shape[0]
                    comb[:, 2 * a + b, :, starts[a]:starts[a] + kh, starts[b]:starts[b] + kw] = phases[2 * a + b]
            comb = comb.flatten(0, 1)  # channel c * 4 + phase: the order pixel_shuffle expects
            comb = torch.cat([comb, comb.new_zeros(16 - 4 * co, *comb.shape[1:])]) if co * 4 < 16 else comb
            combined = comb.contiguous(memory_format=torch.channels_last)
        return cls(weight=weight, phases=phases, starts=(starts[0], starts[1]), pad=pad, mode=mode, combined=combined)


def upconv(x: torch.Tensor, pk: PhaseKernels) -> torch.Tensor:
    """conv2d(pad(upsample_nearest_x2(x), k // 2, pk.mode), pk.weight) without the upsampled image.

    Returns a channels_last tensor (N, Co, 2h, 2w).
    """
    n, c, h, w = x.shape
    xp = _pad_lowres(x, pk.pad, replicate=pk.mode == "reflect")
    co = pk.weight.shape[0]
    if pk.combined is not None:
        y = F.conv2d(xp, pk.combined)[:, :4 * co, :h, :w].unflatten(1, (co, 2, 2))  # (N, Co, a, b, h, w)
        y = y.permute(0, 4, 2, 5, 3, 1).contiguous().view(n, 2 * h, 2 * w, co).permute(0, 3, 1, 2)
    else:
        base = x.new_empty((n, h, 2, w, 2, co))
        view = base.permute(0, 5, 1, 2, 3, 4)  # (N, Co, h, a, w, b)
        for a in (0, 1):
            for b in (0, 1):
                kern = pk.phases[2 * a + b]
                ra, cb = pk.starts[a], pk.starts[b]
                view[:, :, :, a, :, b] = F.conv2d(xp[:, :, ra:ra + h + kern.shape[2] - 1,
                                                     cb:cb + w + kern.shape[3] - 1], kern)
        y = base.view(n, 2 * h, 2 * w, co).permute(0, 3, 1, 2)
    if pk.mode == "reflect" and pk.weight.shape[-1] > 3:
        _fix_reflect_border_(x, pk.weight, y)
    return y


def _pad_lowres(x: torch.Tensor, p: int, replicate: bool) -> torch.Tensor:
    # channels_last padded copy; replicate or zero borders (faster than F.pad on channels_last here)
    n, c, h, w = x.shape
    xp = torch.empty((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    xp[:, :, p:p + h, p:p + w] = x
    if replicate:
        xp[:, :, :p, p:p + w] = x[:, :, :1]
        xp[:, :, p + h:, p:p + w] = x[:, :, -1:]
        xp[:, :, :, :p] = xp[:, :, :, p:p + 1]
        xp[:, :, :, p + w:] = xp[:, :, :, p + w - 1:p + w]
    else:
        xp[:, :, :p].zero_()
        xp[:, :, p + h:].zero_()
        xp[:, :, :, :p].zero_()
        xp[:, :, :, p + w:].zero_()
    return xp


def _fix_reflect_border_(x: torch.Tensor, weight: torch.Tensor, y: torch.Tensor, width: int = 2) -> None:
    # Recompute the outer ``width`` output rows and columns directly from strips of the upsampled image.
    p = weight.shape[-1] // 2
    need = (width + p + 1) // 2  # low-res rows covering the strip and its reflection: ceil((width + p) / 2)
    for xs, ws, ys in ((x, weight, y), (x.transpose(2, 3), weight.transpose(2, 3), y.transpose(2, 3))):
        top = F.pad(_upsample(xs[:, :, :need]), (p, p, p, 0), mode="reflect")
        ys[:, :, :width] = F.conv2d(top, ws)[:, :, :width]
        bottom = F.pad(_upsample(xs[:, :, -need:]), (p, p, 0, p), mode="reflect")
        ys[:, :, -width:] = F.conv2d(bottom, ws)[:, :, -width:]


@dataclass
class Codes:
    """Everything about a clip that the decoder needs, computed once per clip (``Generator.encode``)."""

    z: torch.Tensor  # (B, T, latent_dim): cat(speech, noise, image, emotion) per frame
    skips: list[torch.Tensor]  # five encoder skips, shallowest first
    terms: list[torch.Tensor] = field(default_factory=list)  # Decoder.skip_terms(skips)
    emotion_logits: torch.Tensor | None = None  # (B, 6) auxiliary speech-emotion head


class Generator(nn.Module):
    """(reference image, speech, emotion, noise) -> video. Parameter names are the checkpoint's."""

    def __init__(self, cfg: GeneratorConfig | None = None):
        super().__init__()
        cfg = cfg or GeneratorConfig()
        self.cfg = cfg
        self.speech_encoder = SpeechEncoder(cfg)
        self.image_encoder = ImageEncoder(cfg)
        self.noise_generator = NoiseEncoder(cfg)
        self.emotion_processor = EmotionEncoder(cfg)
        self.speech_rnn = nn.LSTM(cfg.speech_dim, cfg.speech_dim, cfg.speech_layers, batch_first=True)
        self.emotion_rnn = nn.LSTM(cfg.speech_dim, cfg.emotion_dim, 2, batch_first=True)
        self.emo_classifier = nn.Sequential(nn.Linear(cfg.emotion_dim, cfg.emotion_dim), nn.LeakyReLU(0.2),
                                            nn.Linear(cfg.emotion_dim, cfg.n_emotions))
        self.decoder = Decoder(cfg)
        for m in self.modules():  # NOTES.md: xavier_uniform on Linear/Conv weights; LSTMs default
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)

    def n_frames(self, n_samples: int) -> int:
        return -(-int(n_samples) // self.cfg.samples_per_frame)

    def draw_noise(self, batch: int, n_frames: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The random numbers of one forward pass, in the reference's order, on the CPU."""
        cfg = self.cfg
        shape = (batch, cfg.context, cfg.speech_features)
        start = torch.empty(shape).normal_(0.0, cfg.context_std, generator=generator)
        end = torch.empty(shape).normal_(0.0, cfg.context_std, generator=generator)
        noise = [torch.empty(batch, cfg.noise_dim).normal_(0.0, 1.0, generator=generator) for _ in range(n_frames)]
        return start, end, torch.stack(noise, dim=1)  # noise (B, T, noise_dim)

    def encode(self, image: torch.Tensor, audio: torch.Tensor, emotion: torch.Tensor,
               generator: torch.Generator | None = None, *, with_terms: bool = True,
               noise: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> Codes:
        """Per-clip work: speech, noise, emotion and image codes, and the decoder's skip terms.

        image (B, 3, S, S) BGR in [-1, 1]; audio (B, L) 8 kHz; emotion (B, 6) non-negative.
        ``noise`` (context start, context end, per-frame noise) replaces the draws from ``generator``.
        """
        cfg = self.cfg
        b, n_samples = audio.shape
        if image.shape[1:] != (3, cfg.image_size, cfg.image_size) or image.shape[0] != b:
            raise ValueError(f"image must be ({b}, 3, {cfg.image_size}, {cfg.image_size}), got {tuple(image.shape)}")
        if emotion.shape != (b, cfg.n_emotions):
            raise ValueError(f"emotion must be ({b}, {cfg.n_emotions}), got {tuple(emotion.shape)}")
        if n_samples < self.speech_encoder.min_samples():
            raise ValueError(f"speech of {n_samples} samples is too short: at least "
                             f"{self.speech_encoder.min_samples()} samples are needed")
        t = self.n_frames(n_samples)
        start, end, noise = self.draw_noise(b, t, generator) if noise is None else noise
        if noise.shape != (b, t, cfg.noise_dim):
            raise ValueError(f"noise must be ({b}, {t}, {cfg.noise_dim}), got {tuple(noise.shape)}")
        dev, dt = audio.device, audio.dtype
        z_speech = self.speech_rnn(self.speech_encoder(audio, start.to(dev, dt), end.to(dev, dt)))[0]  # (B, T, 512)
        emo_h = self.emotion_rnn(z_speech)[0]
        emotion_logits = self.emo_classifier(emo_h[:, -1])
        z_emo = self.emotion_processor(emotion).unsqueeze(1).expand(b, t, cfg.emotion_dim)
        z_img, skips = self.image_encoder(image)
        z_noise = self.noise_generator(noise.to(dev, dt))
        z = torch.cat((z_speech, z_noise, z_img.unsqueeze(1).expand(b, t, cfg.image_dim), z_emo), dim=2)
        terms = self.decoder.skip_terms(skips) if with_terms else []
        return Codes(z=z, skips=skips, terms=terms, emotion_logits=emotion_logits)

    def forward(self, image: torch.Tensor, audio: torch.Tensor, emotion: torch.Tensor,
                generator: torch.Generator | None = None, *, reference_path: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (video (B, T, 3, S, S) BGR in [-1, 1], auxiliary speech-emotion logits (B, 6)).

        ``reference_path`` decodes as the reference code does (skips concatenated and repeated per
        frame); the default splits each convolution so the skip half runs once per clip. Both give
        the same video up to float rounding.
        """
        codes = self.encode(image, audio, emotion, generator, with_terms=not reference_path)
        if reference_path:
            video = self.decoder.forward_reference(codes.z, codes.skips)
        else:
            video = self.decoder.forward_fast(codes.z, codes.terms)[0]
        return video, codes.emotion_logits


# --------------------------------------------------------------------------------------------------
# discriminators


def _critic_convs(c_in: int, width: int, slope: float = 0.3) -> nn.Sequential:
    # 5 x [Conv2d 3x3 stride 2 pad 1, LeakyReLU(0.3)], widths w, 2w, 4w, 8w, 8w (64 ... 512 in the paper)
    layers: list[nn.Module] = []
    for c in (width, 2 * width, 4 * width, 8 * width, 8 * width):
        layers += [nn.Conv2d(c_in, c, 3, 2, 1), nn.LeakyReLU(slope)]
        c_in = c
    return nn.Sequential(*layers)


class FrameDiscriminator(nn.Module):
    """WGAN critic of single frames given the reference image (paper III-B).

    forward(video (B, T, 3, S, S), reference (B, 3, S, S)) -> scores (B, T).
    """

    def __init__(self, image_size: int = 128, width: int = 64):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.convs = _critic_convs(6, width)
        flat = 8 * width * (image_size // 32) ** 2  # 8192
        self.out = nn.Sequential(nn.Linear(flat, 32 * width), nn.LeakyReLU(0.3), nn.Linear(32 * width, 1))

    def forward(self, video: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        ref = reference.unsqueeze(1).expand_as(video)
        x = torch.cat((video, ref), dim=2).flatten(0, 1)
        return self.out(self.convs(x).flatten(1)).view(b, t)


class EmotionDiscriminator(nn.Module):
    """Video emotion classifier: per-frame convs -> FC -> LSTM -> last step -> logits (paper III-C).

    ``EmotionDiscriminator(n_classes=7, image_size=128, width=64)`` is the paper's discriminator
    (six emotions in ``stimuli.emotions.EMOTIONS`` order + "fake" at index 6); ``n_classes=6`` makes
    the paper's video emotion classifier (IV-C). ``width`` scales every layer (64 = paper:
    convs 64..512, FC 8192 -> 2048 -> 512, LSTM 512).

    forward(video (B, T, 3, S, S) float in [-1, 1]) -> logits (B, n_classes). The network has no
    colour convention of its own: the generator's training feeds BGR frames (NOTES.md).
    """

    def __init__(self, n_classes: int = 7, image_size: int = 128, width: int = 64):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.n_classes, self.image_size, self.width = n_classes, image_size, width
        self.convs = _critic_convs(3, width)
        flat = 8 * width * (image_size // 32) ** 2
        self.projector = nn.Sequential(nn.Linear(flat, 32 * width), nn.LeakyReLU(0.3), nn.Linear(32 * width, 8 * width))
        self.rnn_1 = nn.LSTM(8 * width, 8 * width, 1, batch_first=True)
        self.cls = nn.Linear(8 * width, n_classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"video must be (B, T, 3, H, W), got {tuple(video.shape)}")
        b, t = video.shape[:2]
        h = self.convs(video.flatten(0, 1)).flatten(1).unflatten(0, (b, t))  # (B, T, flat)
        h = self.rnn_1(self.projector(h))[0]
        return self.cls(h[:, -1])


# --------------------------------------------------------------------------------------------------
# state dicts


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys saved from ``nn.DataParallel``/DDP (``module.x``) -> plain keys (``x``); others unchanged."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_generator_state(model: Generator, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict strictly, with or without the ``module.`` prefix; names what does not fit."""
    state = strip_module_prefix(state)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append("wrong shapes " + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
                                                     for k in wrong[:5]))
        raise KeyError("state dict does not fit the generator config: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
