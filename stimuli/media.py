"""Probe media files with PyAV (duration, fps, frame size, audio sample rate)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

from stimuli.errors import ManifestError


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    audio_rate: int | None
    video_codec: str
    audio_codec: str | None
    pix_fmt: str | None
    n_frames: int | None


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read a video's properties. Raises ``ManifestError`` naming the file when it is not a video."""
    import av  # PyAV; imported here so that `import stimuli` stays cheap

    try:
        with av.open(str(path)) as container:
            vstreams = container.streams.video
            if not vstreams:
                raise ManifestError(f"{path}: has no video stream; stimuli must be videos")
            v = vstreams[0]
            rate = v.average_rate or v.guessed_rate or v.base_rate
            fps = float(rate) if rate else 0.0
            if v.duration is not None and v.time_base is not None:
                duration = float(v.duration * v.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = 0.0
            a = container.streams.audio[0] if container.streams.audio else None
            n_frames = v.frames or None
            if (duration <= 0 or fps <= 0) or n_frames is None:
                # Some containers (flv, raw streams) carry no totals: count by decoding.
                count, last = 0, None
                for frame in container.decode(video=0):
                    count += 1
                    last = frame
                n_frames = count
                if fps <= 0 and last is not None and last.time:
                    fps = count / max(last.time, 1e-9)
                if duration <= 0 and fps > 0:
                    duration = count / fps
            return MediaInfo(
                duration_s=float(duration),
                fps=float(Fraction(fps).limit_denominator(1001)) if fps else 0.0,
                width=int(v.codec_context.width),
                height=int(v.codec_context.height),
                audio_rate=int(a.codec_context.sample_rate) if a is not None else None,
                video_codec=v.codec_context.name,
                audio_codec=a.codec_context.name if a is not None else None,
                pix_fmt=v.codec_context.pix_fmt,
                n_frames=n_frames,
            )
    except ManifestError:
        raise
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise ManifestError(f"{path}: cannot be read as a video ({exc}); check the file or re-encode it") from None
