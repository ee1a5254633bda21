"""The video emotion classifier of paper IV-C (Table II, Fig. 4).

Architecture: the emotion discriminator of ``generator.neural.model`` with six outputs and no "fake" class
(``EmotionDiscriminator(n_classes=6, image_size, width)``): per-frame convs -> FC -> LSTM -> last step.
It is trained on the train split of a prepared corpus (``generator.data.corpus``: CREMA-D via
``emostudy prepare``, or the synthetic corpus) with cross-entropy, Adam (lr 1e-4, betas (0.5, 0.999),
as the reference's discriminators), on random windows of ``n_frames`` frames (32 in the paper's
training), the photometric augmentation of ``generator.data.augment`` (one transform per clip) unless
turned off. After every epoch it is scored on the val split (when there is one) and the best epoch's
weights are kept.

Classification uses the whole clip (the LSTM reads every frame; its last step decides). Frames are
**BGR** scaled to [-1, 1] (x / 127.5 - 1, NOTES.md), resized to ``image_size`` with area averaging
when it is smaller than the stored 128 (``image_size`` must be a multiple of 32; 32 or 64 make tiny,
fast models for tests).

Scores: accuracy, macro F1 (the unweighted mean over the classes present in the true or the
predicted labels of per-class F1 = 2PR / (P + R), 0 where P + R = 0; scikit-learn's
``f1_score(average="macro")``), and the row-normalised confusion matrix (rows: true emotion; each row
sums to 1; a row with no clip is left empty), drawn like the paper's Fig. 4.

A checkpoint (``classifier.pt``) holds the config, the state dict, the emotion order and the training
history, so loading never needs the architecture restated.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from generator.data.augment import augment_clip
from generator.data.corpus import ClipInfo, read_clip, read_index
from generator.data.prepare import read_video_at_fps
from generator.errors import CheckpointError, DataError, InputError
from generator.evaluate.metrics import list_videos
from generator.neural.model import EmotionDiscriminator
from stimuli.crema import parse_crema_name
from stimuli.emotions import EMOTIONS, parse_emotion
from stimuli.errors import StimuliError
from stimuli.manifest import atomic_write_bytes, load_manifest

CHECKPOINT_NAME = "classifier.pt"
CHECKPOINT_KIND = "emostudy-video-emotion-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 128  # frames are resized to image_size x image_size (multiple of 32)
    width: int = 64  # 64 = the paper's emotion discriminator
    n_frames: int = 32  # training window (paper IV-B)
    batch_size: int = 8
    epochs: int = 20
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % 32 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 32 (>= 32), got {self.image_size}")
        for name in ("width", "n_frames", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


# ------------------------------------------------------------------------------------------ frames

def resize_frames(video: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8 (area averaging when shrinking)."""
    import cv2  # optional heavy dependency: imported only when used

    video = np.asarray(video)
    if video.shape[1:3] == (size, size):
        return video
    interp = cv2.INTER_AREA if video.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in video])


def to_tensor(video_bgr: np.ndarray):
    """(T, S, S, 3) uint8 BGR -> (T, 3, S, S) float32 in [-1, 1]."""
    import torch  # optional heavy dependency: imported only when used

    x = torch.from_numpy(np.ascontiguousarray(video_bgr)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


class _ClipStore:
    """Clips of a corpus split, resized; kept in memory when they fit in ``cache_bytes``."""

    def __init__(self, root: Path, infos: list[ClipInfo], size: int, cache_bytes: int = 2 << 30):
        self.root, self.infos, self.size = root, infos, size
        need = sum(i.n_frames for i in infos) * size * size * 3
        self.cache: dict[str, np.ndarray] | None = {} if need <= cache_bytes else None

    def video(self, k: int) -> np.ndarray:
        info = self.infos[k]
        if self.cache is not None and info.clip_id in self.cache:
            return self.cache[info.clip_id]
        v = resize_frames(read_clip(self.root, info).video, self.size)
        if self.cache is not None:
            self.cache[info.clip_id] = v
        return v


def _window(video: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random run of n frames (a short clip is padded by repeating its last frame)."""
    if len(video) >= n:
        start = int(rng.integers(0, len(video) - n + 1))
        return video[start:start + n]
    return np.concatenate([video, np.repeat(video[-1:], n - len(video), axis=0)])


# ------------------------------------------------------------------------------------------ metrics

def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> np.ndarray:
    """Counts (n_classes, n_classes): rows true class, columns predicted."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def row_normalise(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (NaN for a row without clips)."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums > 0, cm / np.where(sums > 0, sums, 1), np.nan)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> float:
    """Unweighted mean of per-class F1 over the classes in y_true or y_pred (module docstring)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    pred, true = cm.sum(axis=0), cm.sum(axis=1)
    present = (pred + true) > 0
    if not present.any():
        return math.nan
    denom = pred + true  # 2PR / (P + R) = 2 TP / (pred + true)
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return float(f1[present].mean())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else math.nan


def plot_confusion(cm_norm: np.ndarray, title: str = "", ax=None):
    """Row-normalised confusion matrix as a heat map with the values printed (like Fig. 4); returns the Axes."""
    if ax is None:
        from matplotlib.figure import Figure  # optional heavy dependency: imported only when used

        ax = Figure(figsize=(4.6, 4.0)).subplots()
    ax.imshow(np.nan_to_num(cm_norm), vmin=0.0, vmax=1.0, cmap="Blues")
    n = cm_norm.shape[0]
    for i in range(n):
        for j in range(n):
            v = cm_norm[i, j]
            ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if np.nan_to_num(v) > 0.6 else "black")
    labels = [e[:3].upper() for e in EMOTIONS]
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------------------ model

def build_model(config: ClassifierConfig):
    return EmotionDiscriminator(n_classes=len(EMOTIONS), image_size=config.image_size, width=config.width)


def save_checkpoint(path: Path, model, config: ClassifierConfig, history: list[dict]) -> None:
    import torch  # optional heavy dependency: imported only when used

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"kind": CHECKPOINT_KIND, "config": asdict(config), "emotions": list(EMOTIONS),
                "state_dict": model.state_dict(), "history": history}, tmp)
    os.replace(tmp, path)


def load_classifier(path: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, config) from a checkpoint written by :func:`train_classifier`."""
    import torch  # optional heavy dependency: imported only when used

    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"{p}: classifier checkpoint not found; train one with `emostudy train-classifier`")
    try:
        ck = torch.load(p, map_location=device, weights_only=True)
    except (RuntimeError, OSError, EOFError) as exc:
        raise CheckpointError(f"{p}: cannot be read as a checkpoint ({exc})") from None
    if not isinstance(ck, dict) or ck.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{p}: not a video emotion classifier checkpoint (kind {ck.get('kind')!r})"
                              if isinstance(ck, dict) else f"{p}: not a classifier checkpoint")
    if list(ck["emotions"]) != list(EMOTIONS):
        raise CheckpointError(f"{p}: emotion order {ck['emotions']} differs from {list(EMOTIONS)}")
    cfg = dict(ck["config"])
    cfg["betas"] = tuple(cfg["betas"])
    config = ClassifierConfig(**cfg)
    model = build_model(config).to(device)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, config


def predict(model, videos_bgr: list[np.ndarray], config: ClassifierConfig, device: str = "cpu") -> np.ndarray:
    """Predicted class index of each whole clip ((T, H, W, 3) uint8 BGR, any T >= 1)."""
    import torch  # optional heavy dependency: imported only when used

    out = []
    model.eval()
    with torch.no_grad():
        for v in videos_bgr:
            x = to_tensor(resize_frames(v, config.image_size)).unsqueeze(0).to(device)
            out.append(int(model(x).argmax(dim=1).item()))
    return np.asarray(out, dtype=np.int64)


# ------------------------------------------------------------------------------------------ training

@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0


def train_classifier(corpus: str | os.PathLike, out: str | os.PathLike, config: ClassifierConfig = ClassifierConfig(),
                     *, device: str = "cpu", progress: Callable[[int, int, dict], None] | None = None) -> TrainResult:
    """Train on the corpus' train split; keep the epoch best on val (the last epoch without a val split)."""
    import torch  # optional heavy dependency: imported only when used
    from torch import nn  # optional heavy dependency: imported only when used

    root = Path(corpus)
    train = read_index(root, "train")
    val = read_index(root, "val")
    if not train:
        raise DataError(f"{root}: the corpus has no train clips; prepare it (or give a corpus with a train split)")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_model(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    loss_fn = nn.CrossEntropyLoss()
    store = _ClipStore(root, train, config.image_size)
    labels = np.asarray([EMOTIONS.index(parse_emotion(i.emotion)) for i in train])
    val_store = _ClipStore(root, val, config.image_size) if val else None
    val_labels = np.asarray([EMOTIONS.index(parse_emotion(i.emotion)) for i in val])
    ckpt = Path(out) / CHECKPOINT_NAME
    history: list[dict] = []
    best = (-1.0, 0)
    best_state = None
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        total, n_seen, correct = 0.0, 0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            clips = []
            for k in idx:
                w = _window(store.video(int(k)), config.n_frames, rng)
                if config.augment:
                    w, _ = augment_clip(w, rng)
                clips.append(to_tensor(w))
            x = torch.stack(clips).to(device)  # (B, T, 3, S, S)
            y = torch.from_numpy(labels[idx]).to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
            n_seen += len(idx)
            correct += int((logits.argmax(1) == y).sum().item())
        row = {"epoch": epoch, "loss": total / n_seen, "train_accuracy": correct / n_seen}
        if val_store is not None:
            pred = predict(model, [val_store.video(k) for k in range(len(val))], config, device)
            row["val_accuracy"] = accuracy(val_labels, pred)
            row["val_macro_f1"] = macro_f1(val_labels, pred)
            score = row["val_accuracy"]
        else:
            score = float(epoch)  # no val split: the last epoch
        if score > best[0]:
            best = (score, epoch)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(row)
        if progress is not None:
            progress(epoch, config.epochs, row)
    assert best_state is not None
    model.load_state_dict(best_state)
    save_checkpoint(ckpt, model, config, history)
    return TrainResult(checkpoint=ckpt, history=history, best_epoch=best[1])


# ------------------------------------------------------------------------------------------ test sets

@dataclass
class LabelledVideo:
    key: str
    emotion: str
    load: Callable[[], np.ndarray]  # -> (T, H, W, 3) uint8 BGR


def corpus_videos(corpus: str | os.PathLike, split: str = "test") -> list[LabelledVideo]:
    """The clips of one split of a prepared corpus (the real test set)."""
    root = Path(corpus)
    infos = read_index(root, split)
    if not infos:
        raise DataError(f"{root}: no clips in the {split!r} split")
    return [LabelledVideo(i.clip_id, parse_emotion(i.emotion), (lambda i=i: read_clip(root, i).video)) for i in infos]


def _emotion_from_name(stem: str) -> str:
    try:
        return parse_crema_name(stem).emotion
    except StimuliError:
        pass
    for token in reversed(stem.replace("-", "_").split("_")):
        try:
            return parse_emotion(token)
        except ValueError:
            continue
    raise InputError(f"{stem}: no emotion in the file name; name files like 1001_DFA_ANG_XX.mp4 or "
                     "<anything>_<emotion>.mp4, or give a stimulus set (manifest.json with visual_emotion)")


def video_files(source: str | os.PathLike, fps: float = 25.0, *, source_label: str | None = None
                ) -> list[LabelledVideo]:
    """Generated videos with their intended emotion: a stimulus set (manifest ``visual_emotion``; only
    the rows whose ``source`` is ``source_label`` when the set has such rows) or a folder of videos whose
    names carry the emotion. Frames are read at ``fps`` and turned to BGR.

    The classifier was trained on aligned square crops; give it videos framed the same way (the
    generator's 128x128 output is): other frames are resized to a square, not aligned."""
    p = Path(source)
    refs = list_videos(p, source_label=source_label)
    emotions: dict[str, str | None] = {}
    mpath = p if p.is_file() else p / "manifest.json"
    if mpath.is_file():
        emotions = {s.stimulus_id: s.visual_emotion for s in load_manifest(mpath, check_media=False)}
    out = []
    for r in refs:
        if r.key in emotions:
            emo = emotions[r.key]
            if emo is None:
                raise InputError(f"{mpath}: stimulus {r.key} has no visual_emotion to score against")
        else:
            emo = _emotion_from_name(r.key)
        out.append(LabelledVideo(r.key, emo, (lambda r=r: np.ascontiguousarray(read_video_at_fps(r.path, fps)[..., ::-1]))))
    return out


@dataclass
class Classification:
    name: str
    keys: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def accuracy(self) -> float:
        return accuracy(self.y_true, self.y_pred)

    @property
    def macro_f1(self) -> float:
        return macro_f1(self.y_true, self.y_pred)

    @property
    def confusion(self) -> np.ndarray:
        return row_normalise(confusion_matrix(self.y_true, self.y_pred))


def classify(model, config: ClassifierConfig, videos: list[LabelledVideo], name: str, device: str = "cpu",
             progress: Callable[[int, int], None] | None = None) -> Classification:
    y_true, y_pred = [], []
    for k, v in enumerate(videos):
        y_true.append(EMOTIONS.index(parse_emotion(v.emotion)))
        y_pred.append(int(predict(model, [v.load()], config, device)[0]))
        if progress is not None:
            progress(k + 1, len(videos))
    return Classification(name, [v.key for v in videos], np.asarray(y_true), np.asarray(y_pred))


def write_report(results: list[Classification], out: str | os.PathLike) -> dict[str, Path]:
    """Table II (CSV + Markdown), predictions.csv, one confusion PNG per set and one figure of all (Fig. 4)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["data", "n_videos", "accuracy_percent", "macro_f1_percent"])
    md = "| Data | Accuracy (%) | F1-score (%) | videos |\n|---|---|---|---|\n"
    for r in results:
        w.writerow([r.name, len(r.keys), f"{100 * r.accuracy:.2f}", f"{100 * r.macro_f1:.2f}"])
        md += f"| {r.name} | {100 * r.accuracy:.2f} | {100 * r.macro_f1:.2f} | {len(r.keys)} |\n"
    md += ("\nF1-score: macro F1 (mean of per-emotion F1 over the emotions in the true or predicted labels). "
           "Confusion matrices: rows are true emotions, row-normalised.\n")
    files["table_csv"], files["table_md"] = outdir / "table2.csv", outdir / "table2.md"
    atomic_write_bytes(files["table_csv"], buf.getvalue().encode("utf-8"))
    atomic_write_bytes(files["table_md"], md.encode("utf-8"))
    pbuf = io.StringIO()
    pw = csv.writer(pbuf, lineterminator="\n")
    pw.writerow(["data", "key", "true", "predicted"])
    for r in results:
        for k, t, p in zip(r.keys, r.y_true, r.y_pred):
            pw.writerow([r.name, k, EMOTIONS[int(t)], EMOTIONS[int(p)]])
    files["predictions"] = outdir / "predictions.csv"
    atomic_write_bytes(files["predictions"], pbuf.getvalue().encode("utf-8"))
    cms = {r.name: r.confusion for r in results}
    for r in results:
        fig = Figure(figsize=(4.6, 4.0))
        ax = fig.subplots()
        plot_confusion(cms[r.name], f"{r.name} (acc {100 * r.accuracy:.1f}%)", ax=ax)
        fig.tight_layout()
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in r.name.lower())
        files[f"confusion_{safe}"] = outdir / f"confusion_{safe}.png"
        fig.savefig(files[f"confusion_{safe}"], dpi=120)
    fig = Figure(figsize=(4.6 * len(results), 4.0))
    axes = fig.subplots(1, len(results), squeeze=False)
    for ax, r in zip(axes[0], results):
        plot_confusion(cms[r.name], r.name, ax=ax)
    fig.tight_layout()
    files["figure"] = outdir / "fig4_confusion.png"
    fig.savefig(files["figure"], dpi=120)
    files["confusion_json"] = outdir / "confusion.json"
    atomic_write_bytes(files["confusion_json"], json.dumps(
        {r.name: {"emotions": list(EMOTIONS), "row_normalised": [[None if np.isnan(v) else round(float(v), 6)
                                                                  for v in row] for row in cms[r.name]],
                  "counts": confusion_matrix(r.y_true, r.y_pred).tolist()} for r in results},
        indent=2).encode("utf-8"))
    return files
