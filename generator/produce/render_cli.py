"""`emostudy render`: one talking-face clip from a face photo, a speech file and an emotion.

    emostudy render --backend warp --face photo.jpg --speech speech.wav --emotion sadness --seed 3 --out clip.mp4
    emostudy render --backend warp ... --emotion happiness=0.7,neutral=0.3 --intensity 0.8 --size 256
    emostudy render --backend neural --checkpoint generator.pt ...
    emostudy render ... --face-policy largest   # a photo with several faces: use the largest
    emostudy render ... --force                 # render a photo the face gate refused (recorded)

Every backend runs the face gate (``generator.faces.find_face``) first: too small, rotated, cut off,
not a face, or several faces (unless ``--face-policy largest``) refuse with the file and the fix.

Thin over :func:`render_file`. The mp4 is H.264 + AAC (browser-playable), written to a temporary file
beside ``--out`` and renamed into place; an existing ``--out`` is kept unless ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

from generator.errors import GeneratorError, InputError, NoFaceError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".flv", ".webm", ".m4v"}


def load_face_file(path: str | os.PathLike) -> np.ndarray:
    """A face photo (any Pillow format) or the first frame of a video, as (H, W, 3) uint8 RGB."""
    from generator.faces import load_image  # lazy: keeps the command table light
    from generator.mediaio import read_first_frame  # lazy: keeps the command table light

    p = Path(path)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return read_first_frame(p)
    return load_image(p)


def parse_components(text: str | None) -> tuple[str, ...] | None:
    """'expression,mouth,life' -> tuple; 'none' or '' -> () (a still face); None -> None (default)."""
    if text is None:
        return None
    text = text.strip().lower()
    if text in ("", "none", "still"):
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def render_file(*, backend: str, face: str | os.PathLike, speech: str | os.PathLike, emotion: str, seed: int,
                out: str | os.PathLike, intensity: float = 1.0, size: int = 128, checkpoint: str | None = None,
                device: str | None = None, components: tuple[str, ...] | None = None,
                face_policy: str | None = None, overwrite: bool = False, force: bool = False,
                template: str | None = None, rest: str | None = None) -> dict[str, Any]:
    """Render one clip to ``out`` (mp4); returns a summary (frames, duration, parameters)."""
    from generator.audio import MODEL_RATE, load_speech  # lazy: keeps the command table light
    from generator.mediaio import write_mp4  # lazy: keeps the command table light
    from generator.renderers import emotion_vector, get_renderer  # lazy: keeps the command table light

    out_path = Path(out)
    if out_path.suffix.lower() != ".mp4":
        raise InputError(f"--out {out_path}: the output is an mp4 file; give a name ending in .mp4")
    if out_path.exists() and not overwrite:
        raise InputError(f"--out {out_path} exists; choose another name or pass --overwrite")
    if not out_path.parent.is_dir():
        raise InputError(f"--out {out_path}: folder {out_path.parent} does not exist")
    emotion_vector(emotion, intensity)  # validate before the slow work
    options: dict[str, Any] = {}
    if backend == "neural":
        if not checkpoint:
            raise InputError("--backend neural needs --checkpoint PATH (a generator checkpoint)")
        options["checkpoint"] = checkpoint
        if device:
            options["device"] = device
        if template:
            options["template"] = template
    elif backend == "warp":
        if checkpoint:
            raise InputError("--backend warp is training-free and takes no --checkpoint")
        if components is not None:
            options["components"] = components
        if rest is not None:
            options["rest"] = rest
        if template:
            raise InputError("--template chooses the neural backend's crop; --backend warp uses its own")
    if backend != "warp" and components is not None:
        raise InputError("--components applies to --backend warp only")
    if backend != "warp" and rest is not None:
        raise InputError("--rest applies to --backend warp only")
    if face_policy is not None:
        options["policy"] = face_policy
    if force:
        options["force"] = True
    image = load_face_file(face)
    x = load_speech(speech, MODEL_RATE)
    renderer = get_renderer(backend, **options)
    try:
        result = renderer.render(image, x, emotion, seed, intensity=intensity, size=size)
    except NoFaceError as exc:
        raise NoFaceError(f"{face}: {str(exc).removeprefix('face image: ')}") from None
    fd, tmp = tempfile.mkstemp(suffix=".mp4", prefix=f".{out_path.stem}-", dir=out_path.parent)
    # mkstemp makes 0600 files; give the clip the mode a plain open() would (a server user must read it).
    mask = os.umask(0o022)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    os.close(fd)
    try:
        write_mp4(tmp, result.frames, result.fps, result.audio, result.audio_rate)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"out": str(out_path), "frames": int(len(result.frames)), "fps": int(result.fps),
            "size": list(result.frames.shape[1:3]), "duration_s": round(len(result.frames) / result.fps, 3),
            "backend": renderer.name, "checkpoint_sha256": renderer.checkpoint_sha256,
            "parameters": result.parameters}


@click.command(name="render", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--backend", type=click.Choice(["warp", "neural"]), default="warp", show_default=True,
              help="warp: training-free, landmark-driven; neural: the paper's generator (needs --checkpoint).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, help="Generator checkpoint (neural).")
@click.option("--device", default=None, help="neural: cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--face", required=True, type=click.Path(dir_okay=False), help="Face photo (or a video: its first frame).")
@click.option("--speech", required=True, type=click.Path(dir_okay=False),
              help="Speech recording (wav, mp3, flac, m4a, ...): mixed to mono, resampled to 8 kHz.")
@click.option("--emotion", required=True,
              help="A name or CREMA-D code (sadness, HAP) or a blend (happiness=0.7,neutral=0.3).")
@click.option("--intensity", default=1.0, show_default=True, type=float, help="Expression intensity in [0, 1].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed (head motion, blinks; neural noise).")
@click.option("--size", default=128, show_default=True, type=int, help="Frame size: 128 or 256.")
@click.option("--components", default=None,
              help="warp only: comma list of expression,mouth,life ('mouth,life' = lips only; 'none' = still face).")
@click.option("--face-policy", type=click.Choice(["single", "largest"]), default=None,
              help="With several faces in the photo: refuse (single, the default) or use the largest.")
@click.option("--force", is_flag=True,
              help="Render a photo the face gate refused (too small, rotated, cut off, ...); recorded in the output.")
@click.option("--template", type=click.Choice(["authors", "ours"]), default=None,
              help="neural only: the alignment crop (default: authors for the authors' state dict, ours for ours).")
@click.option("--rest", type=click.Choice(["neutral", "photo"]), default=None,
              help="warp only: start from a neutral mouth (close a smiling photo's lips; the default) or the photo as it is.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .mp4 file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def render_command(backend: str, checkpoint: str | None, device: str | None, face: str, speech: str, emotion: str,
                   intensity: float, seed: int, size: int, components: str | None, face_policy: str | None,
                   out: str, overwrite: bool, force: bool, template: str | None, rest: str | None,
                   as_json: bool) -> None:
    """Render one talking-face clip (25 fps mp4 with the speech)."""
    try:
        summary = render_file(backend=backend, face=face, speech=speech, emotion=emotion, seed=seed, out=out,
                              intensity=intensity, size=size, checkpoint=checkpoint, device=device,
                              components=parse_components(components), face_policy=face_policy,
                              overwrite=overwrite, force=force, template=template, rest=rest)
    except GeneratorError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"wrote {summary['out']}: {summary['frames']} frames, {summary['size'][1]}x{summary['size'][0]}, "
                   f"{summary['duration_s']:.2f} s ({summary['backend']})")
