"""Inference speed and memory of the paper's generator (paper config, 41.6 M parameters).

    .venv/bin/python bench/bench_generator.py --threads 2            # the numbers in docs/benchmarks.md
    .venv/bin/python bench/bench_generator.py --threads 2 --quick    # a 1-minute smoke version
    python3 bench/bench_generator.py --device cuda --json gpu.json   # on a CUDA GPU (see below)

Measures, in one process and on the same inputs:

- ``subpixel`` (ours, the default of ``generator.neural.renderer.generate``): per-clip work once, skip half of
  every decoder convolution once per clip, upsample+conv as four phase convolutions, channels_last,
  inference_mode, chunked decoding that carries the ConvLSTM state;
- ``split``: the same without the sub-pixel convolutions;
- ``reference``: the reference code's algorithm (``Generator.forward(reference_path=True)``: skips
  concatenated and repeated per frame, one pass over the clip);
- ``naive per-frame``: the image encoder and the whole decoder run once per frame;

frames/s at batch 1 and 8 for ``--seconds`` of speech per clip, whether the outputs are identical
(max |difference| of the [-1, 1] frames; share of equal uint8 pixels), bf16 autocast speed and PSNR
against fp32, and the peak resident memory of a fresh process rendering ``--memory-seconds`` of speech.
Weights are random (xavier init, seed 0): speed does not depend on their values.

``--device cuda`` (the default ``cpu`` gives the output above, unchanged): the same rows, with the work
synchronised (``torch.cuda.synchronize``) before every clock read; each measurement is run once untimed
first (cuDNN algorithm choice, allocator growth for its shapes) and then ``--repeats`` times, the row
giving the median (``runs_s``: every run) and ``peak_gpu_mb`` (``torch.cuda.max_memory_allocated`` over
the timed runs, weights included). The inputs of ``generate_batch`` stay on the CPU, as in
``generate``; every clip's frames come back to the CPU as uint8 chunk by chunk, so frames/s includes that
copy. On cuda, in addition: bf16 autocast rows at every batch size on ``--seconds`` of speech, rows at
each of ``--frame-budgets`` (frames decoded at once over the batch; 64 is ``generate``'s default), the
GPU output against the CPU's on the ``--ref-seconds`` clip (TF32 convolutions are torch's default on
CUDA), and, instead of the fresh-process RSS run, the peak GPU memory of rendering ``--memory-seconds``
of speech in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _inputs(n_clips: int, seconds: float, seed: int = 0):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    n = int(seconds * 8000)
    # speech-like: noise under a syllable-rate envelope, peak-normalised
    t = np.arange(n) / 8000
    audio = rng.standard_normal((n_clips, n)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    audio = (audio / np.abs(audio).max(axis=1, keepdims=True)).astype(np.float32)
    faces = torch.rand(n_clips, 3, 128, 128, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    emotion = torch.eye(6)[torch.arange(n_clips) % 6]
    return faces, torch.from_numpy(audio), emotion, list(range(n_clips))


_LAST_CPU = [0.0]
_DEVICE = ["cpu"]  # the device type of the run: CUDA work is synchronised before a clock is read


def _sync():
    if _DEVICE[0] == "cuda":
        import torch

        torch.cuda.synchronize()


def _timed(fn):
    # wall time (what a user waits) and process CPU time (less sensitive to other processes on a shared machine)
    _sync()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    _sync()
    _LAST_CPU[0] = time.process_time() - c0
    return out, time.perf_counter() - t0


def _mb(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 1)


def naive_per_frame(model, faces, audio, emotion, seeds):
    """Every frame from scratch: image encoder + concatenations + decoder, ConvLSTM state carried."""
    import torch

    from generator.neural.model import _upsample
    from generator.neural.renderer import clip_noise

    b = faces.shape[0]
    t = model.n_frames(audio.shape[1])
    draws = [clip_noise(model, s, t) for s in seeds]
    noise = tuple(torch.cat([d[k] for d in draws]) for k in range(3))
    codes = model.encode(faces, audio, emotion, noise=noise, with_terms=False)
    dec = model.decoder
    f, s = model.cfg.filters, model.cfg.bottleneck
    frames, state = [], None
    for k in range(t):
        _, skips = model.image_encoder(faces)  # per frame, as a naive implementation would
        h = dec.fc_1(codes.z[:, k]).reshape(b, f[4], s, s)
        for i, name in enumerate(("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")):
            h = torch.cat((h, skips[-1 - i]), dim=1)
            if name == "conv_4":
                state = dec.conv_4.step(dec.conv_4.input_gates(h), state)
                h = state[0]
            else:
                h = getattr(dec, name)(h)
            h = _upsample(h)
        frames.append(dec.out_new(h))
    return torch.stack(frames, 1)


def run(args) -> dict:
    import numpy as np
    import torch

    from generator.neural.model import Generator
    from generator.neural.renderer import DEFAULT_FRAME_BUDGET, clip_noise, frames_to_uint8_rgb, generate_batch

    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    if dev.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {args.device}: only cpu and cuda[:N] are supported")
    if gpu and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here")
    if gpu:
        dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    _DEVICE[0] = dev.type
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Generator().eval()
    cpu_model = None
    if gpu:
        import copy

        cpu_model = copy.deepcopy(model)  # same weights, for the GPU-vs-CPU comparison
        model = model.to(dev)
    res: dict = {"threads": args.threads, "seconds": args.seconds, "machine": _machine(), "rows": []}
    if gpu:
        res["device"] = _gpu_info(dev)
        res["repeats"] = args.repeats
        print(json.dumps({"device": res["device"]}), flush=True)
    gpu_extra: dict = {}

    def measure(fn):
        """CPU: one timed call (as always). CUDA: one untimed call, then the median of --repeats timed ones."""
        if not gpu:
            return _timed(fn)
        fn()
        torch.cuda.reset_peak_memory_stats(dev)
        runs = []
        for _ in range(args.repeats):
            out, secs = _timed(fn)
            runs.append(secs)
        gpu_extra.update(runs_s=[round(x, 4) for x in runs], peak_gpu_mb=_mb(torch.cuda.max_memory_allocated(dev)))
        return out, statistics.median(runs)

    def row(name, batch, n_frames, secs, **extra):
        if gpu:
            extra = {**extra, **gpu_extra}
        r = {"method": name, "batch": batch, "frames": n_frames, "seconds": round(secs, 4 if gpu else 2),
             "fps": round(n_frames / secs, 1), "cpu_s": round(_LAST_CPU[0], 2),
             "fps_per_cpu_s": round(n_frames / max(_LAST_CPU[0], 1e-9), 1), **extra}
        res["rows"].append(r)
        print(json.dumps(r), flush=True)

    with torch.inference_mode():
        faces, audio, emotion, seeds = _inputs(1, 1.0)
        generate_batch(model, faces, audio, emotion, seeds)  # warm-up (oneDNN primitive caches)

        # 1) identity of outputs + reference / naive speed, batch 1, on a shorter clip (memory of the reference)
        faces, audio, emotion, seeds = _inputs(1, args.ref_seconds)
        # generate_batch takes CPU tensors (as generate gives it); the direct model calls need them on the device
        fd, ad, ed = faces.to(dev), audio.to(dev), emotion.to(dev)
        ours, secs_ours = measure(lambda: generate_batch(model, faces, audio, emotion, seeds))
        cpu_ours, extra_ours = _LAST_CPU[0], dict(gpu_extra)
        t = ours.shape[1]

        def reference():
            torch.manual_seed(seeds[0])  # the reference draws from the global generator
            return model(fd, ad, ed, reference_path=True)[0]

        ref_video, secs_ref = measure(reference)
        row("reference (authors' algorithm)", 1, t, secs_ref)
        naive_video, secs_naive = measure(lambda: naive_per_frame(model, fd, ad, ed, seeds))
        row("naive per-frame", 1, t, secs_naive)
        _LAST_CPU[0] = cpu_ours
        gpu_extra.update(extra_ours)
        row("subpixel (ours)", 1, t, secs_ours, note=f"on the {args.ref_seconds:g} s clip")
        ref_u8 = frames_to_uint8_rgb(ref_video)
        # float comparison: decode ours again in float
        codes = model.encode(fd, ad, ed, noise=clip_noise(model, seeds[0], t))
        terms = [x.contiguous(memory_format=torch.channels_last) for x in codes.terms]
        sub_video, _ = model.decoder.forward_subpixel(codes.z, terms, model.decoder.phase_kernels())
        res["identity"] = {
            "max_abs_diff_vs_reference": float((sub_video - ref_video).abs().max()),
            "max_abs_diff_naive_vs_reference": float((naive_video - ref_video).abs().max()),
            "uint8_equal_share": float((ours == ref_u8).mean()),
            "uint8_max_diff": int(np.abs(ours.astype(int) - ref_u8.astype(int)).max()),
        }
        if gpu:  # the same clip rendered on the CPU (fp32 there; TF32 convolutions on the GPU by default)
            on_cpu = generate_batch(cpu_model, faces, audio, emotion, seeds)
            res["identity"].update(
                uint8_equal_share_vs_cpu=float((ours == on_cpu).mean()),
                uint8_max_diff_vs_cpu=int(np.abs(ours.astype(int) - on_cpu.astype(int)).max()))
            del on_cpu, cpu_model
        print(json.dumps(res["identity"]), flush=True)
        del ref_video, naive_video, sub_video, codes

        # 2) frames/s of ours at batch 1 and 8 for --seconds of speech per clip
        for b in args.batches:
            faces, audio, emotion, seeds = _inputs(b, args.seconds)
            out, secs = measure(lambda: generate_batch(model, faces, audio, emotion, seeds))
            row("subpixel (ours)", b, out.shape[0] * out.shape[1], secs)
            if b == 1:
                out2, secs2 = measure(lambda: generate_batch(model, faces, audio, emotion, seeds, method="split"))
                row("split", b, out2.shape[0] * out2.shape[1], secs2)
            if gpu:  # bf16 autocast at this batch size, and larger frame budgets (frames decoded at once)
                for budget in args.frame_budgets:
                    for dtype, name in ((torch.float32, "subpixel (ours)"), (torch.bfloat16, "subpixel bf16 autocast")):
                        if dtype == torch.float32 and budget == DEFAULT_FRAME_BUDGET:
                            continue  # the row above
                        out3, secs3 = measure(lambda: generate_batch(model, faces, audio, emotion, seeds,
                                                                     frame_budget=budget, dtype=dtype))
                        row(name, b, out3.shape[0] * out3.shape[1], secs3, frame_budget=budget)
            del out

        # 3) bf16 autocast
        faces, audio, emotion, seeds = _inputs(1, args.ref_seconds)
        fp32 = generate_batch(model, faces, audio, emotion, seeds)
        bf16, secs_bf = measure(lambda: generate_batch(model, faces, audio, emotion, seeds, dtype=torch.bfloat16))
        mse = float(((fp32.astype(np.float64) - bf16.astype(np.float64)) ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
        row("subpixel bf16 autocast", 1, bf16.shape[1], secs_bf, psnr_vs_fp32_db=round(psnr, 2))

        # 4) peak memory: of a fresh process (CPU), of this process's GPU allocations (CUDA)
        if gpu:
            res["peak_memory"] = _gpu_peak_memory(model, dev, args.memory_seconds)
    if not gpu:
        res["peak_memory"] = _peak_memory(args.memory_seconds, args.threads)
    print(json.dumps(res["peak_memory"]), flush=True)
    res["machine"]["load_after"] = os.getloadavg()
    return res


def _peak_memory(seconds: float, threads: int) -> dict:
    code = (
        "import resource, sys, time, torch; sys.path.insert(0, %r)\n"
        "torch.set_num_threads(%d)\n"
        "from generator.neural.model import Generator\n"
        "from generator.neural.renderer import generate_batch\n"
        "from bench.bench_generator import _inputs\n"
        "torch.manual_seed(0); m = Generator().eval()\n"
        "f, a, e, s = _inputs(1, %f)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.perf_counter(); out = generate_batch(m, f, a, e, s); t = time.perf_counter() - t\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(before, after, out.shape[1], t)\n" % (str(REPO), threads, seconds))
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    before, after, frames, secs = proc.stdout.split()
    return {"speech_s": seconds, "frames": int(frames), "peak_rss_mb": round(int(after) / 1024, 1),
            "rss_before_render_mb": round(int(before) / 1024, 1), "render_s": round(float(secs), 1)}


def _gpu_peak_memory(model, dev, seconds: float) -> dict:
    """Peak GPU memory of rendering ``seconds`` of speech (batch 1, fp32) in this process."""
    import torch

    from generator.neural.renderer import generate_batch

    f, a, e, s = _inputs(1, seconds)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    before = torch.cuda.memory_allocated(dev)
    t = time.perf_counter()
    out = generate_batch(model, f, a, e, s)
    torch.cuda.synchronize(dev)
    t = time.perf_counter() - t
    return {"speech_s": seconds, "frames": int(out.shape[1]),
            "peak_gpu_allocated_mb": _mb(torch.cuda.max_memory_allocated(dev)),
            "peak_gpu_reserved_mb": _mb(torch.cuda.max_memory_reserved(dev)),
            "gpu_allocated_before_render_mb": _mb(before), "render_s": round(t, 2),
            "peak_rss_parent_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "note": "torch.cuda.max_memory_allocated in this process (weights included); the uint8 output "
                    "is in CPU memory"}


def _gpu_info(dev) -> dict:
    import torch

    p = torch.cuda.get_device_properties(dev)
    info = {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gb": round(p.total_memory / 2**30, 1),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "bf16_supported": torch.cuda.is_bf16_supported(), "cudnn_benchmark": torch.backends.cudnn.benchmark}
    try:  # the flags torch reads by default (newer torch also has fp32_precision settings)
        info["tf32_conv"] = torch.backends.cudnn.allow_tf32
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    except Exception as exc:  # a future torch may drop the flags
        info["tf32"] = f"unknown ({exc})"
    return info


def _machine() -> dict:
    import torch

    from bench.common import cpu_model

    cpu = cpu_model()  # not Linux: platform.processor() is all we have
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": os.getloadavg(),
            "max_rss_parent_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0, help="speech per clip for the frames/s rows")
    p.add_argument("--ref-seconds", type=float, default=4.0, help="clip for the reference/naive/bf16 rows")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--memory-seconds", type=float, default=60.0)
    p.add_argument("--quick", action="store_true", help="short clips (a smoke run)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--repeats", type=int, default=3, help="cuda only: timed runs per row (median)")
    p.add_argument("--frame-budgets", default="64,512",
                   help="cuda only: frames decoded at once (over the batch) for the extra rows; 64 = generate's default")
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    args.frame_budgets = [int(b) for b in args.frame_budgets.split(",")]
    if args.quick:
        args.seconds, args.ref_seconds, args.memory_seconds = 2.0, 1.0, 4.0
    res = run(args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
