"""Self-describing checkpoints of the generator (ours) and the authors' bare state dict.

Our file (``torch.save`` of a dict, written atomically)::

    {"format": "emostudy-generator", "format_version": 1, "code_version": "0.1.0+<git>",
     "model_config": GeneratorConfig.to_dict(), "train_config": {...} | None, "step": int,
     "generator": state_dict, "frame_disc": ..., "emotion_disc": ..., "optimizers": {...},
     "rng": {...}, "metrics": {...}}

Only ``format``, ``model_config`` and ``generator`` are needed for inference. The authors'
``generator.pt`` is a bare state dict (keys ``module.*``): it is accepted as is, with the paper config.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from generator.errors import CheckpointError
from generator.neural.model import Generator, GeneratorConfig, load_generator_state

FORMAT = "emostudy-generator"
FORMAT_VERSION = 1


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (for provenance only)."""
    try:
        v = version("emostudy")
    except PackageNotFoundError:
        v = "unknown"
    repo = Path(__file__).resolve().parents[2]  # generator/neural/checkpoint.py -> the checkout
    if (repo / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], check=True,
                                 capture_output=True, text=True, timeout=10)
            v += "+" + out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            v += "+nogit"  # provenance is best-effort: a checkout without git still trains
    return v


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format fields) atomically: a temporary name, then rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "code_version": code_version(), **payload}
    tmp = p.with_name(f".{p.name}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, p)
    return p


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file; a bare state dict (the authors' file) comes back wrapped as ours."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; re-raised with the path
        raise CheckpointError(f"{p}: cannot be read as a torch checkpoint ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: expected a dict (our checkpoint or a state dict), got {type(data).__name__}")
    if data.get("format") == FORMAT:
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(f"{p}: checkpoint format {data['format_version']} is newer than this code "
                                  f"({FORMAT_VERSION}); upgrade emostudy")
        return data
    if data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "code_version": "authors' release",
                "model_config": GeneratorConfig().to_dict(), "generator": data, "step": None, "bare": True}
    raise CheckpointError(f"{p}: neither an emostudy checkpoint nor a bare generator state dict "
                          f"(keys {sorted(data)[:5]})")


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Generator in eval mode from our checkpoint or the authors' ``generator.pt``; returns (model, info)."""
    data = read_checkpoint(path)
    try:
        cfg = GeneratorConfig.from_dict(data["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad model_config ({exc})") from None
    model = Generator(cfg)
    try:
        load_generator_state(model, data["generator"])
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    info = {k: data.get(k) for k in ("code_version", "step", "train_config")}
    info["bare"] = bool(data.get("bare"))
    info["model_config"] = cfg.to_dict()
    return model.to(device).eval(), info
