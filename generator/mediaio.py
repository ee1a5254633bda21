"""Video files in and out with PyAV.

``write_mp4`` makes browser-playable files: H.264 (yuv420p) + AAC in mp4 with ``+faststart``, video and
audio of equal length (the audio is padded or trimmed to the video's duration).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from generator.audio import resample
from generator.errors import InputError

BROWSER_AUDIO_RATE = 44100  # every browser plays 44.1 kHz AAC


def write_mp4(path: str | os.PathLike, frames_rgb: np.ndarray, fps: int = 25, audio: np.ndarray | None = None,
              audio_rate: int | None = None, *, out_audio_rate: int = BROWSER_AUDIO_RATE, crf: int = 18) -> None:
    """Write (T, H, W, 3) uint8 RGB frames (+ optional mono float audio in [-1, 1]) to an mp4.

    H and W must be even (yuv420p); odd sizes are refused with a message rather than silently cropped.
    """
    import av  # optional heavy dependency: imported only when used

    frames_rgb = np.asarray(frames_rgb)
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3 or frames_rgb.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got {frames_rgb.shape} {frames_rgb.dtype}")
    t, h, w, _ = frames_rgb.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame size {w}x{h}: H.264 yuv420p needs even width and height")
    container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
    try:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast", "profile": "high"}
        vs.codec_context.time_base = Fraction(1, fps)
        astream = None
        if audio is not None:
            if audio_rate is None:
                raise ValueError("audio_rate is needed with audio")
            a = resample(np.asarray(audio, dtype=np.float32), int(audio_rate), out_audio_rate)
            n_target = int(round(t / fps * out_audio_rate))
            a = np.pad(a, (0, max(0, n_target - len(a))))[:n_target]
            astream = container.add_stream("aac", rate=out_audio_rate)
            astream.layout = "mono"
            # ffmpeg's default AAC coder (twoloop) costs more than the whole H.264 encode of a 128x128
            # clip; "fast" is ~3x quicker and transparent enough for speech at the default bitrate.
            astream.options = {"aac_coder": "fast"}
        for i in range(t):
            vf = av.VideoFrame.from_ndarray(frames_rgb[i], format="rgb24")
            vf.pts = i
            for packet in vs.encode(vf):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        if astream is not None:
            samples = np.clip(a, -1.0, 1.0).astype(np.float32)
            block = 1024
            for start in range(0, len(samples), block):
                chunk = samples[start:start + block]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate = out_audio_rate
                af.pts = start
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    finally:
        container.close()


def read_video(path: str | os.PathLike, *, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video: returns ((T, H, W, 3) uint8 RGB, fps)."""
    import av  # optional heavy dependency: imported only when used

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: video file not found")
    frames = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise InputError(f"{p}: has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 25.0
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except InputError:
        raise
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise InputError(f"{p}: cannot be decoded as video ({exc})") from None
    if not frames:
        raise InputError(f"{p}: the video has no frames")
    return np.stack(frames), fps


def read_first_frame(path: str | os.PathLike) -> np.ndarray:
    """The first frame of a video as (H, W, 3) uint8 RGB."""
    return read_video(path, max_frames=1)[0][0]
