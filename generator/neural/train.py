"""Training of the paper's generator (Section IV-B, NOTES.md "Losses and training as coded").

Three stages over one global step counter:

1. ``emotion``: pre-train the emotion discriminator on real clips (cross-entropy over six emotions);
2. ``pretrain``: the generator on alpha * MRM + beta * perceptual (+ the auxiliary speech-emotion
   term), G lr 1e-4;
3. ``joint``: alternating D and G steps: frame critic (WGAN-GP) and emotion discriminator (with the
   fake class) at lr 1e-4, then the generator on alpha * MRM + beta * perceptual + gamma * frame GAN +
   delta * emotion GAN + aux, G lr 1e-5. Adam betas (0.5, 0.999) everywhere.

Reproducibility and exact resume: the data of step ``s`` on rank ``r`` (clip choice, window, augmentation)
and the generator's noise are drawn from RNGs seeded by ``(seed, s, r)``, so a run resumed from a
checkpoint (model, discriminators and optimiser states) makes exactly the steps an uninterrupted run
makes. The checkpoint also stores torch's global RNG state.

A run writes into its own new folder (``run_dir``; refused if it exists and is not empty)::

    options.json            the TrainConfig
    metrics.jsonl           one JSON object per logged step
    samples/step_XXXXXX.png ground truth (top) / generated (bottom) frames of fixed held-out windows
    checkpoints/step_XXXXXX.pt, checkpoints/last.pt

Devices: ``device="cuda"`` with bf16 autocast (``amp``), optional ``torch.compile`` of the generator,
and data parallelism under ``torchrun`` (WORLD_SIZE > 1: NCCL on GPUs, gloo on CPUs; the generator is
wrapped in DDP; the discriminators' gradients are all-reduced by hand because their gradient penalty
needs a double backward that DDP's reducer does not support).
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from generator.data.augment import augment_clip
from generator.data.corpus import ClipInfo, read_clip, read_index
from generator.errors import DataError, GeneratorError
from generator.neural.checkpoint import read_checkpoint, save_checkpoint
from generator.neural.losses import (
    PerceptualLoss,
    aux_emotion_loss,
    emotion_d_loss,
    emotion_g_loss,
    frame_d_loss,
    frame_g_loss,
    gradient_penalty,
    load_vgg19,
    mouth_region_mask,
    mrm_loss,
)
from generator.neural.model import (
    EmotionDiscriminator,
    FrameDiscriminator,
    Generator,
    GeneratorConfig,
    load_generator_state,
)
from stimuli.emotions import EMOTIONS

SPF = 320
STAGES = ("emotion", "pretrain", "joint")


class RunFolderExists(GeneratorError):
    """A new run was asked to write into a folder that already holds files."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run. Defaults are the paper's (NOTES.md) except the step counts."""

    corpus: str
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    disc_width: int = 64  # 64 = the paper's discriminators
    window: int = 32  # frames per training window (1.28 s)
    batch_size: int = 4  # the paper used 3-8
    emotion_steps: int = 2000
    pretrain_steps: int = 100_000
    joint_steps: int = 100_000
    lr_g_pretrain: float = 1e-4
    lr_g_joint: float = 1e-5
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    alpha: float = 100.0  # MRM
    beta: float = 1.0  # perceptual (needs vgg19)
    gamma: float = 0.01  # frame GAN
    delta: float = 0.001  # emotion GAN
    aux_weight: float = 0.001  # speech-emotion head
    gp_lambda: float = 10.0
    vgg19: str | None = None  # torchvision-format VGG-19 weights (needed when beta > 0)
    augment: bool = True
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    compile: bool = False
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 1000
    cache_clips: int = 256

    @property
    def total_steps(self) -> int:
        return self.emotion_steps + self.pretrain_steps + self.joint_steps

    def stage_of(self, step: int) -> str:
        if step < self.emotion_steps:
            return "emotion"
        if step < self.emotion_steps + self.pretrain_steps:
            return "pretrain"
        return "joint"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        d["model"] = GeneratorConfig.from_dict(d["model"])
        d["betas"] = tuple(d["betas"])
        return cls(**d)


# --------------------------------------------------------------------------------------------------
# data


class ClipStore:
    """Windows of prepared clips (``generator.data.corpus`` format) as training tensors.
    ``batch(rng, ...)`` is a pure function of the RNG: which clips, which windows, which augmentation.
    The reference image is frame 0 of the clip (NOTES.md), augmented with the same transform as the window.
    """

    def __init__(self, root: str | os.PathLike, split: str, image_size: int, window: int, *, cache: int = 256):
        self.root, self.size, self.window = Path(root), image_size, window
        infos = read_index(root, split)
        self.infos: list[ClipInfo] = [i for i in infos if i.n_frames >= window]
        if not self.infos:
            raise DataError(f"{self.root}: no {split!r} clips with at least {window} frames "
                            f"({len(infos)} clips in the split); use a shorter --window or more data")
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.infos)

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(video (N,S,S,3) uint8 BGR, landmarks (N,68,2) in S-pixel units, audio (N*320,))."""
        info = self.infos[i]
        hit = self._cache.get(info.clip_id)
        if hit is not None:
            self._cache.move_to_end(info.clip_id)
            return hit
        c = read_clip(self.root, info)
        video, lm = c.video, c.landmarks.astype(np.float32)
        if video.shape[1] != self.size or video.shape[2] != self.size:
            import cv2  # optional heavy dependency: imported only when used

            s = self.size / video.shape[2]
            video = np.stack([cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA) for f in video])
            lm = (lm + 0.5) * s - 0.5  # pixel centres map to pixel centres
        item = (video, lm, c.audio.astype(np.float32))
        self._cache[info.clip_id] = item
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return item

    def window_of(self, i: int, start: int, rng: np.random.Generator | None = None, augment: bool = False
                  ) -> dict[str, np.ndarray]:
        video, lm, audio = self.clip(i)
        w = self.window
        frames = np.concatenate([video[:1], video[start:start + w]])
        if augment and rng is not None:
            frames = augment_clip(frames, rng)[0]
        return {"reference": frames[0], "frames": frames[1:], "landmarks": lm[start:start + w],
                "audio": audio[start * SPF:(start + w) * SPF],
                "label": np.int64(EMOTIONS.index(self.infos[i].emotion))}

    def batch(self, rng: np.random.Generator, batch_size: int, augment: bool) -> dict[str, torch.Tensor]:
        items = []
        for _ in range(batch_size):
            i = int(rng.integers(len(self.infos)))
            start = int(rng.integers(self.infos[i].n_frames - self.window + 1))
            items.append(self.window_of(i, start, rng, augment))
        return collate(items)


def to_tensor_frames(frames: np.ndarray) -> torch.Tensor:
    """uint8 BGR (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1] (NOTES.md: x / 127.5 - 1)."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return t.movedim(-1, -3)


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {
        "reference": to_tensor_frames(np.stack([it["reference"] for it in items])),  # (B, 3, S, S)
        "frames": to_tensor_frames(np.stack([it["frames"] for it in items])),  # (B, W, 3, S, S)
        "landmarks": torch.from_numpy(np.stack([it["landmarks"] for it in items])),  # (B, W, 68, 2)
        "audio": torch.from_numpy(np.stack([it["audio"] for it in items])),  # (B, W * 320)
        "label": torch.from_numpy(np.stack([it["label"] for it in items])),  # (B,)
    }


def step_rng(seed: int, step: int, rank: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, rank])


# --------------------------------------------------------------------------------------------------
# distributed helpers


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL for CUDA, gloo otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist  # optional heavy dependency: imported only when used

    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        owns = True
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")), owns_group=owns)


def _allreduce_grads(module: torch.nn.Module, d: Dist) -> None:
    if d.world <= 1:
        return
    import torch.distributed as dist  # optional heavy dependency: imported only when used

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= d.world


# --------------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Holds the networks, optimisers and data of one run; ``step()`` advances by one global step."""

    def __init__(self, cfg: TrainConfig, *, dist: Dist | None = None):
        self.cfg = cfg
        self.dist = dist or Dist()
        dev = cfg.device
        if dev.startswith("cuda"):
            if not torch.cuda.is_available():
                raise GeneratorError(f"--device {dev}: CUDA is not available on this machine; use --device cpu")
            if self.dist.world > 1:
                dev = f"cuda:{self.dist.local_rank}"
                torch.cuda.set_device(dev)
        self.device = torch.device(dev)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        # Perceptual weights first: a run that needs them and lacks them stops before any work.
        needs_g = cfg.pretrain_steps + cfg.joint_steps > 0
        self.perceptual = None
        if cfg.beta > 0 and needs_g:
            self.perceptual = PerceptualLoss(load_vgg19(cfg.vgg19)).to(self.device)
        m = cfg.model
        self.G = Generator(m).to(self.device)
        self.Df = FrameDiscriminator(m.image_size, cfg.disc_width).to(self.device)
        self.De = EmotionDiscriminator(7, m.image_size, cfg.disc_width).to(self.device)
        if self.dist.world > 1:
            self._broadcast_parameters()
        self.G_run: torch.nn.Module = self.G
        if self.dist.world > 1:
            # optional heavy dependency: imported only when used
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.G_run = DDP(self.G, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.G_run = torch.compile(self.G_run)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g_pretrain, betas=cfg.betas)
        self.opt_df = torch.optim.Adam(self.Df.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.opt_de = torch.optim.Adam(self.De.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.data = ClipStore(cfg.corpus, "train", m.image_size, cfg.window, cache=cfg.cache_clips)
        self.step_no = 0

    def _broadcast_parameters(self) -> None:
        import torch.distributed as dist  # optional heavy dependency: imported only when used

        for module in (self.G, self.Df, self.De):
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp)

    # ---- one global step --------------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        cfg, s = self.cfg, self.step_no
        stage = cfg.stage_of(s)
        rng = step_rng(cfg.seed, s, self.dist.rank)
        batch = {k: v.to(self.device) for k, v in self.data.batch(rng, cfg.batch_size, cfg.augment).items()}
        noise = torch.Generator().manual_seed(int(rng.integers(2**62)))
        out: dict[str, float] = {"step": s, "stage": stage}  # type: ignore[dict-item]
        if stage == "emotion":
            self.De.train()
            with self._autocast():
                loss = F.cross_entropy(self.De(batch["frames"]), batch["label"])
            self.opt_de.zero_grad(set_to_none=True)
            loss.backward()
            _allreduce_grads(self.De, self.dist)
            self.opt_de.step()
            out["d_emotion"] = loss.item()
        else:
            out.update(self._generator_step(batch, noise, rng, joint=(stage == "joint")))
        self.step_no += 1
        return out

    def _generator_step(self, batch, noise: torch.Generator, rng: np.random.Generator, joint: bool
                        ) -> dict[str, float]:
        cfg = self.cfg
        lr = cfg.lr_g_joint if joint else cfg.lr_g_pretrain
        for group in self.opt_g.param_groups:
            group["lr"] = lr
        self.G.train()
        onehot = F.one_hot(batch["label"], len(EMOTIONS)).float()
        real, ref = batch["frames"], batch["reference"]
        with self._autocast():
            fake, aux_logits = self.G_run(ref, batch["audio"], onehot, noise)
        fake = fake.float()
        metrics: dict[str, float] = {}
        if joint:  # discriminator step on the detached fake
            self.Df.train()
            self.De.train()
            for p in list(self.Df.parameters()) + list(self.De.parameters()):
                p.requires_grad_(True)
            gp_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            with self._autocast():
                d_real = self.Df(real, ref).float()
                d_fake = self.Df(fake.detach(), ref).float()
            gp = gradient_penalty(self.Df, real, fake, ref, generator=gp_gen)
            loss_df = frame_d_loss(d_real, d_fake, gp, cfg.gp_lambda)
            with self._autocast():
                loss_de = emotion_d_loss(self.De(real).float(), self.De(fake.detach()).float(), batch["label"])
            self.opt_df.zero_grad(set_to_none=True)
            self.opt_de.zero_grad(set_to_none=True)
            (loss_df + loss_de).backward()
            _allreduce_grads(self.Df, self.dist)
            _allreduce_grads(self.De, self.dist)
            self.opt_df.step()
            self.opt_de.step()
            metrics.update(d_frame=loss_df.item(), gp=gp.item(), d_emotion=loss_de.item())
            for p in list(self.Df.parameters()) + list(self.De.parameters()):
                p.requires_grad_(False)
        mask = mouth_region_mask(batch["landmarks"], cfg.model.image_size)
        l_mrm = mrm_loss(fake, real, mask)
        loss = cfg.alpha * l_mrm
        metrics["mrm"] = l_mrm.item()
        if self.perceptual is not None:
            l_per = self.perceptual(fake, real)
            loss = loss + cfg.beta * l_per
            metrics["perceptual"] = l_per.item()
        l_aux = aux_emotion_loss(aux_logits.float(), batch["label"])
        loss = loss + cfg.aux_weight * l_aux
        metrics["aux"] = l_aux.item()
        if joint:
            with self._autocast():
                g_frame = frame_g_loss(self.Df(fake, ref).float())
                g_emo = emotion_g_loss(self.De(fake).float(), batch["label"])
            loss = loss + cfg.gamma * g_frame + cfg.delta * g_emo
            metrics.update(g_frame=g_frame.item(), g_emotion=g_emo.item())
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        metrics["g_total"] = loss.item()
        return metrics

    # ---- state ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "model_config": self.cfg.model.to_dict(),
            "train_config": self.cfg.to_dict(),
            "step": self.step_no,
            "generator": self.G.state_dict(),
            "frame_disc": self.Df.state_dict(),
            "emotion_disc": self.De.state_dict(),
            "optimizers": {"g": self.opt_g.state_dict(), "frame": self.opt_df.state_dict(),
                           "emotion": self.opt_de.state_dict()},
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def load_state(self, data: dict[str, Any]) -> None:
        load_generator_state(self.G, data["generator"])
        self.Df.load_state_dict(data["frame_disc"])
        self.De.load_state_dict(data["emotion_disc"])
        self.opt_g.load_state_dict(data["optimizers"]["g"])
        self.opt_df.load_state_dict(data["optimizers"]["frame"])
        self.opt_de.load_state_dict(data["optimizers"]["emotion"])
        torch.set_rng_state(data["rng"]["torch"])
        if data["rng"].get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(data["rng"]["cuda"])
        self.step_no = int(data["step"])


# --------------------------------------------------------------------------------------------------
# runs


def sample_grid(G: Generator, store: ClipStore, n: int = 4, seed: int = 0, columns: int = 4) -> np.ndarray:
    """A BGR uint8 grid: per clip, a row of ground-truth frames above a row of generated ones."""
    rows = []
    G.eval()
    dev = next(G.parameters()).device
    with torch.no_grad():
        for i in range(min(n, len(store))):
            item = store.window_of(i, 0)
            b = collate([item])
            onehot = F.one_hot(b["label"], len(EMOTIONS)).float().to(dev)
            fake, _ = G(b["reference"].to(dev), b["audio"].to(dev), onehot, torch.Generator().manual_seed(seed))
            idx = np.linspace(0, store.window - 1, columns).round().astype(int)
            gen = ((fake[0, idx].float().clamp(-1, 1) + 1) * 127.5).round().byte().movedim(1, -1).cpu().numpy()
            rows.append(np.concatenate(list(item["frames"][idx]), axis=1))
            rows.append(np.concatenate(list(gen), axis=1))
    return np.concatenate(rows, axis=0)


def _write_png(path: Path, image_bgr: np.ndarray) -> None:
    import cv2  # optional heavy dependency: imported only when used

    ok, buf = cv2.imencode(".png", image_bgr)
    if not ok:
        raise GeneratorError(f"{path}: PNG encoding failed")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def new_run_dir(run_dir: str | os.PathLike) -> Path:
    p = Path(run_dir)
    if p.exists() and any(p.iterdir()):
        raise RunFolderExists(f"{p}: already holds files (another run?); choose a new --out folder, "
                              f"or continue that run with --resume {p}")
    (p / "checkpoints").mkdir(parents=True, exist_ok=True)
    (p / "samples").mkdir(exist_ok=True)
    return p


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, until_step: int | None = None,
          console=None, progress: bool = True, on_step: Callable[[dict], None] | None = None,
          allow_existing: bool = False) -> Path:
    """Run (or continue, ``resume=True``) the training in ``run_dir``; returns the last checkpoint path.

    ``until_step`` stops early (for tests and time-boxed runs); the run can be resumed later.
    ``allow_existing`` is for a caller that made ``run_dir`` itself (e.g. with a corpus inside).
    """
    dist = setup_distributed(cfg.device)
    try:
        run = Path(run_dir)
        data = None
        if resume:
            last = run / "checkpoints" / "last.pt"
            data = read_checkpoint(last)
            cfg = TrainConfig.from_dict(data["train_config"]) if data.get("train_config") else cfg
        elif dist.main and not allow_existing and run.exists() and any(run.iterdir()):
            new_run_dir(run)  # raises RunFolderExists before any work
        trainer = Trainer(cfg, dist=dist)  # checks the corpus and the VGG-19 file first
        if not resume and dist.main:
            if allow_existing:
                (run / "checkpoints").mkdir(parents=True, exist_ok=True)
                (run / "samples").mkdir(exist_ok=True)
            else:
                new_run_dir(run)
            (run / "options.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
        if data is not None:
            trainer.load_state(data)
        end = cfg.total_steps if until_step is None else min(until_step, cfg.total_steps)
        sample_store = None
        if dist.main:
            split = "test" if read_index(cfg.corpus, "test") else "train"
            try:
                sample_store = ClipStore(cfg.corpus, split, cfg.model.image_size, cfg.window, cache=8)
            except DataError:
                sample_store = trainer.data
        last_path = run / "checkpoints" / "last.pt"
        with _progress(console, enabled=progress and dist.main) as bar:
            task = bar.add_task("training", total=end, completed=trainer.step_no, rate="") if bar else None
            t0, steps0 = time.perf_counter(), trainer.step_no
            while trainer.step_no < end:
                metrics = trainer.step()
                s = trainer.step_no
                if on_step is not None:
                    on_step(metrics)
                if bar is not None:
                    rate = (s - steps0) / max(time.perf_counter() - t0, 1e-9)
                    bar.update(task, completed=s, description=str(metrics["stage"]),
                               rate=f"{rate * cfg.batch_size * dist.world:.1f} clips/s")
                if dist.main and (s % cfg.log_every == 0 or s == end):
                    rate = (s - steps0) / max(time.perf_counter() - t0, 1e-9)
                    rec = {**metrics, "clips_per_s": rate * cfg.batch_size * dist.world, "time": time.time()}
                    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rec, sort_keys=True) + "\n")
                if dist.main and sample_store is not None and s % cfg.sample_every == 0:
                    _write_png(run / "samples" / f"step_{s:06d}.png", sample_grid(trainer.G, sample_store, seed=cfg.seed))
                if dist.main and (s % cfg.checkpoint_every == 0 or s == end):
                    state = trainer.state()
                    if s % cfg.checkpoint_every == 0:
                        save_checkpoint(run / "checkpoints" / f"step_{s:06d}.pt", state)
                    save_checkpoint(last_path, state)
        return last_path
    finally:
        if dist.owns_group:
            import torch.distributed as tdist  # optional heavy dependency: imported only when used

            tdist.destroy_process_group()


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(console, enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,  # optional heavy dependency: imported only when used
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


# --------------------------------------------------------------------------------------------------
# evaluation used by the tests and the CLI


def mouth_l1(G: Generator, corpus: str | os.PathLike, split: str = "test", *, seed: int = 0,
             max_clips: int | None = None) -> dict[str, float]:
    """Mouth-region L1 of whole clips (reference = frame 0) vs the copy-the-reference-frame baseline.

    The error of a frame is sum(G * |pred - gt|) / (3 * sum(G)) with G the MRM Gaussian (no floor),
    in [0, 2] units of the [-1, 1] frames; averaged over frames 1.. and clips.
    """
    infos = read_index(corpus, split)[:max_clips]
    if not infos:
        raise DataError(f"{corpus}: no {split!r} clips to evaluate")
    size = G.cfg.image_size
    store = ClipStore(corpus, split, size, 1, cache=0)
    store.infos = infos
    errs_model, errs_copy = [], []
    G.eval()
    dev = next(G.parameters()).device
    with torch.no_grad():
        for i, info in enumerate(infos):
            video, lm, audio = store.clip(i)
            gt = to_tensor_frames(video)[None]  # (1, N, 3, S, S)
            onehot = F.one_hot(torch.tensor([EMOTIONS.index(info.emotion)]), len(EMOTIONS)).float()
            fake, _ = G(gt[:, 0].to(dev), torch.from_numpy(audio)[None].to(dev), onehot.to(dev),
                        torch.Generator().manual_seed(seed))
            fake = fake.float().cpu()
            g = mouth_region_mask(torch.from_numpy(lm)[None], size, floor=0.0)  # (1, N, 1, S, S)
            denom = 3 * g.sum(dim=(2, 3, 4))

            def err(pred):
                return ((g * (pred - gt).abs()).sum(dim=(2, 3, 4)) / denom)[0, 1:]

            errs_model.append(err(fake))
            errs_copy.append(err(gt[:, :1].expand_as(gt)))
    return {"model": float(torch.cat(errs_model).mean()), "copy_reference": float(torch.cat(errs_copy).mean()),
            "n_clips": len(infos)}


__all__ = ["TrainConfig", "Trainer", "ClipStore", "train", "mouth_l1", "sample_grid", "new_run_dir",
           "RunFolderExists", "STAGES"]
