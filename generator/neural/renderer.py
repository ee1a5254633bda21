"""Inference with the paper's generator: ``generate(...)`` and the ``neural`` renderer backend.

``generate(model, faces, speeches, emotions, seeds)`` renders clips from aligned faces:

- deterministic per clip: clip ``i`` draws its random numbers from ``torch.Generator().manual_seed(seeds[i])``
  in the reference order (NOTES.md), so a clip's video does not depend on the other clips in the batch
  and equals the reference code's output after ``torch.manual_seed(seed)`` (batch of one);
- batched over clips: clips whose speech has the same number of samples run as one batch;
- memory bounded for long speech: the per-clip work (speech encoder, LSTMs, image encoder, the skip
  half of every decoder convolution) runs once, then the frames are decoded in chunks that carry the
  ConvLSTM state, so the result equals one pass and memory does not grow with the duration
  (except the uint8 output itself).

Emotion input (``generator.renderers.emotion_vector``): a name, a blend (``"happiness=0.7,neutral=0.3"``),
a mapping or a 6-vector of non-negative weights, normalised to sum 1, times ``intensity`` in [0, 1].
The network was trained on one-hot vectors only. A blend is an interpolation of the *input* of the
emotion encoder: it gives a continuum of videos between two emotions that is smooth in the weight,
and a one-hot blend is exactly the one-hot video; it is NOT guaranteed that observers perceive a
70/30 blend as "70 % happy", that the morph is perceptually linear, or that intensities below 1
look like a weaker expression (the network never saw them). Validate continua with a pilot study.

``NeuralRenderer`` (interface of ``generator.renderers``): any photo -> the face gate
(``generator.faces.find_face``: refuses tiny, rotated, cut-off, non-face and several faces unless told)
-> 3-point alignment -> generate -> RGB frames, with provenance parameters.

Which crop: the authors' ``generator.pt`` (a bare state dict) was trained on the reference's crop, so it
is aligned with the reference's template and recipe (``generator.align.align_authors``); our own
checkpoints were trained on data that ``generator.data.prepare`` aligned with our template, so they use
ours. ``template="authors"`` / ``"ours"`` overrides either choice explicitly.

Provenance: NOTES.md gives no sha256 of the released ``generator.pt``, so no file can be recognised as
the authors' release; a bare state dict is recorded as "a state dict in the authors' layout" with its
sha256 (``weights``), and ``authors_release`` stays false unless :data:`RELEASED_SHA256` is filled in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generator.align import TEMPLATES, align_authors, align_face
from generator.audio import MODEL_RATE
from generator.errors import InputError
from generator.faces import FACE_POLICIES, as_rgb, authors_landmarks, find_face
from generator.neural.checkpoint import file_sha256, load_generator
from generator.neural.model import Generator
from generator.renderers import RenderResult, emotion_vector

FPS = 25
DEFAULT_FRAME_BUDGET = 64  # frames (over the whole batch) decoded at once: bounds activation memory
# On a GPU, fewer and larger launches pay: 512 frames in flight doubled batch-8 inference on an H200
# (7,147 -> 14,474 frames/s) for 1.7 GB of activations (docs/benchmarks.md, "Generator on a GPU").
CUDA_FRAME_BUDGET = 512
# sha256 of the authors' released generator.pt. Unknown here: NOTES.md and the state-dict listing give its
# keys and shapes but no checksum, and the file cannot be downloaded on this machine.
RELEASED_SHA256: str | None = None
AUTHORS_LAYOUT = "a state dict in the authors' layout"


def default_frame_budget(device: str) -> int:
    """The renderer's frame budget for ``device`` when none is given."""
    return CUDA_FRAME_BUDGET if str(device).startswith("cuda") else DEFAULT_FRAME_BUDGET


def clip_noise(model: Generator, seed: int, n_frames: int):
    """The random numbers of one clip, drawn as the reference does for a batch of one."""
    return model.draw_noise(1, n_frames, torch.Generator().manual_seed(int(seed)))


def faces_to_tensor(faces_rgb: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 RGB -> (B, 3, S, S) BGR float in [-1, 1] (the network's convention)."""
    x = torch.from_numpy(np.ascontiguousarray(faces_rgb[..., ::-1])).float() / 127.5 - 1.0
    return x.permute(0, 3, 1, 2).contiguous()


def frames_to_uint8_rgb(video: torch.Tensor) -> np.ndarray:
    """(B, n, 3, S, S) BGR in [-1, 1] -> (B, n, S, S, 3) uint8 RGB (round to nearest)."""
    x = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.flip(2).permute(0, 1, 3, 4, 2).cpu().numpy()


@torch.inference_mode()
def generate_batch(model: Generator, faces: torch.Tensor, audio: torch.Tensor, emotion: torch.Tensor,
                   seeds: Sequence[int], *, frame_budget: int = DEFAULT_FRAME_BUDGET,
                   dtype: torch.dtype = torch.float32, method: str = "subpixel") -> np.ndarray:
    """One batch of equal-length clips: faces (B,3,S,S) BGR [-1,1], audio (B,L), emotion (B,6).

    Returns (B, T, S, S, 3) uint8 RGB. ``dtype=torch.bfloat16`` runs the network under bf16 autocast.
    ``method``: "subpixel" (default, fastest: ``Decoder.forward_subpixel``) or "split"
    (``Decoder.forward_fast``); both equal the reference computation up to float rounding.
    """
    if method not in ("subpixel", "split"):
        raise ValueError(f"method must be 'subpixel' or 'split', got {method!r}")
    dev = next(model.parameters()).device
    b, n_samples = audio.shape
    t = model.n_frames(n_samples)
    draws = [clip_noise(model, s, t) for s in seeds]
    noise = tuple(torch.cat([d[k] for d in draws]) for k in range(3))
    mf = torch.channels_last
    # The per-clip encoders stay in fp32 (cheap; oneDNN has no bf16 LSTM on many CPUs).
    codes = model.encode(faces.to(dev), audio.to(dev), emotion.to(dev), noise=noise)
    terms = [x.contiguous(memory_format=mf) for x in codes.terms]
    kernels = model.decoder.phase_kernels() if method == "subpixel" else None
    out = np.empty((b, t, model.cfg.image_size, model.cfg.image_size, 3), np.uint8)
    chunk = max(1, frame_budget // b)
    state = None
    with torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype != torch.float32):
        for t0 in range(0, t, chunk):
            z = codes.z[:, t0:t0 + chunk]
            if kernels is not None:
                video, state = model.decoder.forward_subpixel(z, terms, kernels, state, memory_format=mf)
            else:
                video, state = model.decoder.forward_fast(z, terms, state, memory_format=mf)
            out[:, t0:t0 + video.shape[1]] = frames_to_uint8_rgb(video)
    return out


def generate(model: Generator, faces: np.ndarray | Sequence[np.ndarray], speeches: np.ndarray | Sequence[np.ndarray],
             emotions: Any, seeds: int | Sequence[int], *, intensity: float = 1.0, batch_size: int = 8,
             frame_budget: int = DEFAULT_FRAME_BUDGET, dtype: torch.dtype = torch.float32,
             method: str = "subpixel") -> np.ndarray | list[np.ndarray]:
    """Render clips from aligned faces; see the module docstring.

    One clip: ``face`` (S, S, 3) uint8 RGB aligned to the template, ``speech`` (L,) float32 8 kHz,
    ``emotion`` (name / blend / mapping / 6-vector), ``seed`` int -> (T, S, S, 3) uint8 RGB,
    T = ceil(L / 320). Lists of faces/speeches/emotions/seeds (equal lengths, or one face, speech,
    emotion broadcast to all) -> a list of clips.
    """
    single = isinstance(seeds, (int, np.integer))
    seed_list = [int(seeds)] if single else [int(s) for s in seeds]
    n = len(seed_list)

    def as_list(x, what: str, is_single) -> list:
        items = [x] if is_single(x) else list(x)
        if len(items) == 1:
            items = items * n
        if len(items) != n:
            raise InputError(f"{len(items)} {what} for {n} seeds: give one, or one per seed")
        return items

    face_list = as_list(faces, "faces", lambda x: isinstance(x, np.ndarray) and x.ndim == 3)
    speech_list = as_list(speeches, "speeches", lambda x: isinstance(x, np.ndarray) and x.ndim == 1)
    emo_list = as_list(emotions, "emotions", _is_single_emotion)
    size = model.cfg.image_size
    for i, f in enumerate(face_list):
        if f.shape != (size, size, 3) or f.dtype != np.uint8:
            raise InputError(f"face {i}: expected an aligned ({size}, {size}, 3) uint8 RGB image, got {f.shape} "
                             f"{f.dtype}; NeuralRenderer.render aligns any photo")
    minimum = model.speech_encoder.min_samples()
    for i, s in enumerate(speech_list):
        if np.ndim(s) != 1 or len(s) < minimum:
            raise InputError(f"speech {i}: expected mono samples at 8 kHz, at least {minimum} long, got shape "
                             f"{np.shape(s)}")
    vecs = np.stack([emotion_vector(e, intensity) for e in emo_list]).astype(np.float32)
    results: list[np.ndarray | None] = [None] * n
    by_length: dict[int, list[int]] = {}
    for i, s in enumerate(speech_list):
        by_length.setdefault(len(s), []).append(i)
    for idx_all in by_length.values():
        for k in range(0, len(idx_all), batch_size):
            idx = idx_all[k:k + batch_size]
            out = generate_batch(model, faces_to_tensor(np.stack([face_list[i] for i in idx])),
                                 torch.from_numpy(np.stack([np.asarray(speech_list[i], np.float32) for i in idx])),
                                 torch.from_numpy(vecs[idx]), [seed_list[i] for i in idx],
                                 frame_budget=frame_budget, dtype=dtype, method=method)
            for j, i in enumerate(idx):
                results[i] = out[j]
    return results[0] if single else results  # type: ignore[return-value]


def _is_single_emotion(x: Any) -> bool:
    if isinstance(x, (str, Mapping)):
        return True
    try:
        return np.asarray(x, dtype=np.float64).ndim == 1
    except (TypeError, ValueError):
        return False


class NeuralRenderer:
    """The ``neural`` backend of ``generator.renderers``: the paper's generator from a checkpoint.

    ``checkpoint`` is our training checkpoint or the authors' bare ``generator.pt`` (paper config).
    """

    name = "neural"

    def __init__(self, checkpoint: str | os.PathLike, device: str = "cpu", *, threads: int | None = None,
                 dtype: str = "float32", frame_budget: int | None = None, template: str | None = None,
                 policy: str = "single", force: bool = False):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device!r}: CUDA is not available here; use device='cpu'")
        if dtype not in ("float32", "bfloat16"):
            raise InputError(f"dtype must be float32 or bfloat16, got {dtype!r}")
        if threads:
            torch.set_num_threads(int(threads))
        self.checkpoint = Path(checkpoint)
        self.model, self.info = load_generator(self.checkpoint, device)
        self.checkpoint_sha256: str = file_sha256(self.checkpoint)
        self.device = device
        self.dtype = torch.float32 if dtype == "float32" else torch.bfloat16
        self.frame_budget = frame_budget if frame_budget is not None else default_frame_budget(device)
        if template is not None and template not in TEMPLATES:
            raise InputError(f"unknown alignment template {template!r}: use one of {', '.join(TEMPLATES)}")
        self.template = template or ("authors" if self.info.get("bare") else "ours")
        if policy not in FACE_POLICIES:
            raise InputError(f"unknown face policy {policy!r}: use one of {', '.join(FACE_POLICIES)}")
        self.policy = policy
        self.force = bool(force)
        self.last_gate: dict | None = None

    def weights_description(self) -> dict[str, Any]:
        """What the checkpoint is, as provenance says it (module docstring)."""
        if self.info.get("bare"):
            release = RELEASED_SHA256 is not None and self.checkpoint_sha256 == RELEASED_SHA256
            return {"weights": "the authors' released generator.pt" if release else AUTHORS_LAYOUT,
                    "authors_release": release}
        return {"weights": "an emostudy checkpoint", "authors_release": False}

    def align(self, face: np.ndarray, *, where: str = "face image") -> np.ndarray:
        """Any RGB photo -> the aligned (S, S, 3) uint8 RGB face the network expects (through the gate;
        what the gate found is kept in ``last_gate``)."""
        aligned, _ = self._align(face, where)
        return aligned

    def _align(self, face: np.ndarray, where: str) -> tuple[np.ndarray, dict]:
        rgb = as_rgb(face, where=where)
        s = self.model.cfg.image_size
        checked = find_face(rgb, policy=self.policy, force=self.force, where=where)
        self.last_gate = checked.provenance()
        if self.template == "authors":
            # Their landmark settings (grey image, detector upsampled once) for their crop; the gate's own
            # landmarks only when their detector finds nothing where the gate found the face.
            lm = authors_landmarks(rgb, checked.box)
            self.last_gate["landmarks"] = "authors' settings (grey, upsampled once)" if lm is not None else "ours"
            aligned, _, _ = align_authors(rgb, checked.landmarks if lm is None else lm, size=(s, s))
        else:
            aligned, _, _ = align_face(rgb, checked.landmarks, size=(s, s))
        return aligned, self.last_gate

    def render(self, face: np.ndarray, speech: np.ndarray, emotion: Any, seed: int, *, intensity: float = 1.0,
               size: int = 128):
        return self.render_batch([{"face": face, "speech": speech, "emotion": emotion, "seed": seed,
                                   "intensity": intensity}], size=size)[0]

    def render_batch(self, items: Sequence[Mapping[str, Any]], *, size: int = 128) -> list:
        """Several clips in one call (batched where the speech lengths are equal): ``items`` are dicts
        with the arguments of ``render`` (face, speech, emotion, seed, intensity). Each clip is the one
        ``render`` makes (the noise is per clip); batching can change a rare pixel by one level
        (float summation order), never more."""
        if size < 16 or size % 2:
            raise InputError(f"size must be an even number of pixels >= 16, got {size}")
        speeches = [np.asarray(it["speech"], dtype=np.float32) for it in items]
        vecs = [emotion_vector(it["emotion"], it.get("intensity", 1.0)) for it in items]
        prepared = [self._align(it["face"], "face image") for it in items]
        aligned = [a for a, _ in prepared]
        seeds = [int(it["seed"]) for it in items]
        clips = generate(self.model, aligned, speeches, vecs, seeds, frame_budget=self.frame_budget, dtype=self.dtype)
        results = []
        for it, frames, x, vec, seed, (_, gate) in zip(items, clips, speeches, vecs, seeds, prepared):
            if frames.shape[1] != size:
                import cv2  # optional heavy dependency: imported only when used

                interp = cv2.INTER_AREA if size < frames.shape[1] else cv2.INTER_CUBIC
                frames = np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])
            params = {"backend": self.name, "checkpoint_sha256": self.checkpoint_sha256, "seed": seed,
                      "emotion_vector": [round(float(v), 6) for v in vec],
                      "intensity": float(it.get("intensity", 1.0)), "size": int(size),
                      "model_size": int(self.model.cfg.image_size), "dtype": str(self.dtype)[6:],
                      "code_version": self.info.get("code_version"), **self.weights_description(),
                      "template": self.template, "face_policy": self.policy, "face_gate": dict(gate)}
            results.append(RenderResult(frames=frames, audio=x.copy(), audio_rate=MODEL_RATE, fps=FPS,
                                        parameters=params))
        return results
