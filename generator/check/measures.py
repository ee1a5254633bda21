"""What `emostudy check` measures on one decoded clip: pure functions of landmarks, audio and faces.

Units: landmark distances are in *eye distances* (the distance between the two eye centres of the same
frame), so that a measure means the same on a 128x128 clip and a 1080p recording. Landmarks follow the
iBUG 68-point scheme (``generator.faces``): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67;
image y points down.

Expression measures compare each frame with the same face at rest (the source photo of a generated
clip, the first frame of a recording), after a similarity alignment on points that expressions hardly
move (eye corners, nose bridge), so that head motion does not read as expression. Signs: positive =
brows raised (above the eye line), brows further apart (inner ends 21, 22), lip corners higher
(relative to the midpoint of the lip centres 51 and 57), mouth wider (48-54), eyes wider open (lid
gaps 37-41, 38-40, 43-47, 44-46).

Lip sync: the mouth opening (inner-lip distance) per frame against the speech envelope (RMS of the
audio in each frame's 1/fps window); the Pearson correlation at lags -max_lag..max_lag frames and the
lag of its maximum. ``lag > 0`` means the audio comes *later* than the mouth (``corr(mouth[t],
envelope[t + lag])`` is largest).
"""

from __future__ import annotations

import numpy as np

EXPRESSION_MEASURES = ("brow_raise", "brow_distance", "lip_corner_height", "mouth_width", "eye_opening")
STABLE_POINTS = (27, 28, 36, 39, 42, 45)  # nose bridge, eye corners


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lm = np.asarray(lm, dtype=np.float64)
    return lm[..., 36:42, :].mean(axis=-2), lm[..., 42:48, :].mean(axis=-2)


def eye_distance(lm: np.ndarray) -> np.ndarray:
    left, right = eye_centres(lm)
    return np.linalg.norm(right - left, axis=-1)


def mouth_opening(lm: np.ndarray) -> np.ndarray:
    """Inner-lip opening (mean of the 61-67, 62-66, 63-65 gaps) in eye distances; (T, 68, 2) -> (T,)."""
    lm = np.asarray(lm, dtype=np.float64)
    gap = np.linalg.norm(lm[..., [61, 62, 63], :] - lm[..., [67, 66, 65], :], axis=-1).mean(axis=-1)
    return gap / eye_distance(lm)


def plausible(lm: np.ndarray, box: tuple[int, int, int, int] | None = None,
              previous: np.ndarray | None = None, max_jump: float = 0.35) -> bool:
    """Does one frame's landmark set look like a face? Brows above eyes above nose tip above mouth above
    chin; eye distance 20-70 % of the detector box width; no jump of more than ``max_jump`` eye distances
    (mean over points) from the previous frame's landmarks."""
    lm = np.asarray(lm, dtype=np.float64)
    y = lambda idx: float(lm[list(idx), 1].mean())  # noqa: E731
    iod = float(eye_distance(lm))
    if not iod > 0:
        return False
    ordered = y(range(17, 27)) < y(range(36, 48)) < lm[33, 1] < y(range(48, 68)) < lm[8, 1]
    if not ordered:
        return False
    if box is not None:
        width = max(box[2] - box[0], 1)
        if not 0.2 <= iod / width <= 0.7:
            return False
    if previous is not None:
        jump = float(np.linalg.norm(lm - np.asarray(previous, np.float64), axis=-1).mean()) / iod
        if jump > max_jump:
            return False
    return True


def similarity_to(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation) mapping points src -> dst, as 2x3."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # Complex-number form of the 2-D Procrustes problem: d ~ a * s with a = scale * e^{i theta}.
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    a = (np.conj(sc) @ dc) / max(float(np.real(np.conj(sc) @ sc)), 1e-12)
    m = np.array([[a.real, -a.imag], [a.imag, a.real]])
    return np.hstack([m, (md - m @ ms)[:, None]])


def _shape_measures(lm: np.ndarray) -> dict[str, float]:
    """Absolute measures of one (68, 2) landmark set, in its own eye distances."""
    iod = float(eye_distance(lm))
    left, right = eye_centres(lm)
    eye_y = (left[1] + right[1]) / 2
    eye_open = lambda up, lo: float(np.linalg.norm(lm[up] - lm[lo], axis=-1).mean())  # noqa: E731
    return {
        "brow_raise": float(eye_y - lm[17:27, 1].mean()) / iod,
        "brow_distance": float(np.linalg.norm(lm[22] - lm[21])) / iod,
        # Corners above the midpoint of the lip centres (51, 57): a smile curves the mouth up, AU15 down;
        # opening the jaw moves both, so speech alone hardly changes it.
        "lip_corner_height": float(lm[[51, 57], 1].mean() - lm[[48, 54], 1].mean()) / iod,
        "mouth_width": float(np.linalg.norm(lm[54] - lm[48])) / iod,
        "eye_opening": (eye_open([37, 38], [41, 40]) + eye_open([43, 44], [47, 46])) / 2 / iod,
    }


def expression_measures(frames_lm: np.ndarray, rest_lm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame change of each expression measure from the face at rest; frames (T, 68, 2) -> {name: (T,)}.

    Frames whose landmarks are NaN (no face) give NaN.
    """
    rest = np.asarray(rest_lm, np.float64)
    base = _shape_measures(rest)
    out = {k: np.full(len(frames_lm), np.nan) for k in EXPRESSION_MEASURES}
    for t, lm in enumerate(np.asarray(frames_lm, np.float64)):
        if not np.isfinite(lm).all():
            continue
        m = similarity_to(lm[list(STABLE_POINTS)], rest[list(STABLE_POINTS)])
        aligned = lm @ m[:, :2].T + m[:, 2]
        for k, v in _shape_measures(aligned).items():
            out[k][t] = v - base[k]
    return out


def speech_envelope(audio: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS of the audio in each video frame's window [t / fps, (t + 1) / fps); (n_frames,)."""
    a = np.asarray(audio, np.float64)
    edges = np.round(np.arange(n_frames + 1) / fps * rate).astype(int)
    env = np.zeros(n_frames)
    for t in range(n_frames):
        seg = a[edges[t]:edges[t + 1]]
        env[t] = float(np.sqrt(np.mean(seg ** 2))) if seg.size else 0.0
    return env


def _fill_nan(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64).copy()
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return np.nan_to_num(x)
    idx = np.arange(len(x))
    x[~ok] = np.interp(idx[~ok], idx[ok], x[ok])
    return x


def lag_correlation(mouth: np.ndarray, envelope: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of mouth[t] with envelope[t + lag] for lag in -max_lag..max_lag: (lags, r).

    Lags that leave fewer than 8 overlapping frames, or a constant signal, give NaN.
    """
    m, e = _fill_nan(mouth), _fill_nan(envelope)
    n = min(len(m), len(e))
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(len(lags), np.nan)
    for i, k in enumerate(lags):
        a = m[max(0, -k):n - max(0, k)]
        b = e[max(0, k):n - max(0, -k) if k < 0 else n][: len(a)]
        if len(a) < 8 or a.std() < 1e-9 or b.std() < 1e-9:
            continue
        r[i] = float(np.corrcoef(a, b)[0, 1])
    return lags, r


def lip_sync(mouth: np.ndarray, envelope: np.ndarray, max_lag: int = 12) -> dict[str, float | int | None]:
    """{'corr': r at the best lag, 'lag_frames': the best lag, 'corr_at_zero': r at lag 0} (None where undefined).

    The best lag maximises r weighted by the overlap's share of the clip, (n - |lag|) / n, as the usual
    biased cross-correlation estimate does: on a 1-s clip a lag of 10 frames leaves 16 frames to
    correlate, and a chance peak there must not beat a real one at lag 0."""
    lags, r = lag_correlation(mouth, envelope, max_lag)
    if not np.isfinite(r).any():
        return {"corr": None, "lag_frames": None, "corr_at_zero": None}
    n = min(len(mouth), len(envelope))
    best = int(np.nanargmax(r * (n - np.abs(lags)) / n))
    zero = r[max_lag]
    return {"corr": float(r[best]), "lag_frames": int(lags[best]),
            "corr_at_zero": float(zero) if np.isfinite(zero) else None}
