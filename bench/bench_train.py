"""Training throughput of the paper's generator, per training stage (``generator.neural.train.Trainer``).

    .venv/bin/python bench/bench_train.py --quick                       # a CPU smoke run (tiny model, seconds)
    python3 bench/bench_train.py --device cuda --steps 20 --json t.json  # paper config, bf16 autocast
    python3 bench/bench_train.py --device cuda --no-amp --json t32.json  # the same in fp32

What runs: one ``Trainer`` per stage (``emotion``: the emotion discriminator's pre-training;
``pretrain``: the generator on MRM + perceptual + aux; ``joint``: frame critic with WGAN-GP and
emotion discriminator, then the generator with every term), with ``TrainConfig``'s defaults: the
paper's model (``GeneratorConfig()``, 41.6 M parameters), discriminators of width 64, batch 4, windows
of 32 frames, augmentation on, perceptual weight 1. Each stage makes ``--warmup`` untimed steps (cuDNN
algorithm choice, allocator growth, the clip cache filling), then ``--steps`` timed steps, each step
synchronised on CUDA. A step is exactly ``Trainer.step()``: the CPU data pipeline (clip choice,
window, augmentation, collation) runs inside it, as in a real run; ``data_s_per_step`` times that part
alone afterwards, on the same steps.

Data: a synthetic corpus (``generator.data.synthetic.make_corpus``) made in a temporary folder and removed
afterwards. Perceptual loss: the trainer refuses to run it without a VGG-19 weights file, and nothing
is downloaded here: unless ``--vgg19`` names real torchvision weights, the script writes VGG-19 weights
with random values in torchvision's layout to the temporary folder (speed does not depend on the
weight values; the losses printed mean nothing). The generator and the discriminators are also
randomly initialised.

Prints one JSON line per stage (clips/s, steps/s, s/step, peak GPU memory, ...) after a header line;
``--json PATH`` also writes everything to PATH. A stage that fails (e.g. out of memory) is reported
with its error and the next stage still runs; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STAGES = ("emotion", "pretrain", "joint")


def _mb(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 1)


def _machine(dev) -> dict:
    import torch

    from bench.common import cpu_model

    cpu = cpu_model()
    m = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
         "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "load_before": os.getloadavg()}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        m["gpu"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gb": round(p.total_memory / 2**30, 1),
                    "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                    "bf16_supported": torch.cuda.is_bf16_supported(), "cudnn_benchmark": torch.backends.cudnn.benchmark}
        try:
            m["gpu"]["tf32_conv"] = torch.backends.cudnn.allow_tf32
            m["gpu"]["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        except Exception as exc:  # a future torch may drop the flags
            m["gpu"]["tf32"] = f"unknown ({exc})"
    return m


def _random_vgg19(path: Path) -> Path:
    """VGG-19 ``features`` weights with random values, in torchvision's layout (what ``load_vgg19`` reads)."""
    import torch

    from generator.neural.losses import VGG19Features

    torch.manual_seed(0)
    torch.save(VGG19Features().state_dict(), path)
    return path


def bench_stage(stage: str, args, corpus: Path, vgg19: str | None, dev) -> dict:
    import torch

    from generator.neural.model import GeneratorConfig, count_parameters
    from generator.neural.train import TrainConfig, Trainer, step_rng

    gpu = dev.type == "cuda"

    def sync():
        if gpu:
            torch.cuda.synchronize(dev)

    n = args.warmup + args.steps
    model = GeneratorConfig.tiny() if args.quick else GeneratorConfig()
    cfg = TrainConfig(corpus=str(corpus), model=model, disc_width=args.disc_width, window=args.window,
                      batch_size=args.batch_size, emotion_steps=n if stage == "emotion" else 0,
                      pretrain_steps=n if stage == "pretrain" else 0, joint_steps=n if stage == "joint" else 0,
                      beta=args.beta, vgg19=vgg19, augment=not args.no_augment, device=str(dev), amp=args.amp,
                      compile=args.compile, seed=0)
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(0)
    t_build = time.perf_counter()
    trainer = Trainer(cfg)
    t_build = time.perf_counter() - t_build
    warm = []
    for _ in range(args.warmup):
        sync()
        t0 = time.perf_counter()
        trainer.step()
        sync()
        warm.append(time.perf_counter() - t0)
    times, metrics = [], {}
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        metrics = trainer.step()
        sync()
        times.append(time.perf_counter() - t0)
    if metrics.get("stage") != stage:  # the config makes every step of this trainer a step of `stage`
        raise RuntimeError(f"expected {stage!r} steps, the trainer ran {metrics.get('stage')!r}")
    peak = _mb(torch.cuda.max_memory_allocated(dev)) if gpu else None
    peak_reserved = _mb(torch.cuda.max_memory_reserved(dev)) if gpu else None
    # the CPU data pipeline of the same timed steps alone (clips are cached by now, as in a long run)
    data = []
    for s in range(args.warmup, n):
        t0 = time.perf_counter()
        batch = trainer.data.batch(step_rng(cfg.seed, s, 0), cfg.batch_size, cfg.augment)
        batch = {k: v.to(dev) for k, v in batch.items()}
        sync()
        data.append(time.perf_counter() - t0)
    total = sum(times)
    res = {
        "stage": stage, "device": str(dev), "amp_requested": args.amp, "bf16_autocast": trainer.use_amp,
        "compile": args.compile, "model": "tiny (--quick)" if args.quick else "paper (GeneratorConfig())",
        "generator_parameters": count_parameters(trainer.G), "disc_width": args.disc_width,
        "batch_size": cfg.batch_size, "window": cfg.window, "augment": cfg.augment, "beta": cfg.beta,
        "perceptual": trainer.perceptual is not None,
        "warmup_steps": args.warmup, "steps": args.steps,
        "s_per_step": round(total / args.steps, 4), "s_per_step_median": round(statistics.median(times), 4),
        "steps_per_s": round(args.steps / total, 3), "clips_per_s": round(args.steps * cfg.batch_size / total, 2),
        "frames_per_s": round(args.steps * cfg.batch_size * cfg.window / total, 1),
        "data_s_per_step": round(statistics.median(data), 4),
        # what is left of a step without its (synchronous, CPU) data pipeline: an estimate of the device's share
        "rest_s_per_step_est": round(max(statistics.median(times) - statistics.median(data), 0.0), 4),
        "peak_gpu_mb": peak, "peak_gpu_reserved_mb": peak_reserved,
        "build_s": round(t_build, 2), "warmup_step_s": [round(x, 3) for x in warm],
        "step_s": [round(x, 4) for x in times],
        "last_metrics": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()},
    }
    del trainer
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    return res


def run(args) -> dict:
    import torch

    from generator.data.synthetic import make_corpus
    from generator.neural.train import TrainConfig

    dev = torch.device(args.device)
    if dev.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {args.device}: only cpu and cuda[:N] are supported")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: CUDA is not available here")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if args.threads:
        torch.set_num_threads(args.threads)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise SystemExit(f"--stages: unknown {bad}; choose from {','.join(STAGES)}")
    defaults = TrainConfig(corpus="")
    res: dict = {"machine": _machine(dev), "stages": [], "failed": []}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        n_frames = max(args.window, defaults.window) + 8
        infos = make_corpus(tmp / "corpus", n_identities=args.identities, clips_per_emotion=2, n_frames=n_frames,
                            seed=0)
        corpus_s = time.perf_counter() - t0
        vgg19, vgg_note = args.vgg19, "off (beta 0)"
        if args.beta > 0:
            if vgg19:
                vgg_note = f"VGG-19 weights from {vgg19}"
            else:
                vgg19 = str(_random_vgg19(tmp / "vgg19-random.pth"))
                vgg_note = ("VGG-19 with RANDOM weights in torchvision's layout (temporary file, nothing "
                            "downloaded): speed does not depend on the weight values")
        res["setup"] = {
            "corpus": f"synthetic (generator.data.synthetic.make_corpus): {args.identities} identities x 6 emotions, "
                      f"{sum(i.split == 'train' for i in infos)} train clips of {n_frames} frames",
            "corpus_build_s": round(corpus_s, 2), "perceptual": vgg_note,
            "weights": "generator and discriminators randomly initialised (seed 0); losses are meaningless",
            "paper_defaults": {"batch_size": defaults.batch_size, "window": defaults.window,
                               "disc_width": defaults.disc_width, "beta": defaults.beta, "augment": defaults.augment},
        }
        print(json.dumps({"machine": res["machine"], "setup": res["setup"]}), flush=True)
        for stage in stages:
            try:
                r = bench_stage(stage, args, tmp / "corpus", vgg19, dev)
            except Exception as exc:  # e.g. out of memory: report it and go on with the next stage
                import traceback

                r = {"stage": stage, "device": str(dev), "amp_requested": args.amp, "error": repr(exc)[:2000],
                     "traceback": traceback.format_exc()[-4000:]}
                res["failed"].append(stage)
            gc.collect()  # here, not in the except block: the exception's frames hold the failed stage's tensors
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            res["stages"].append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "traceback"}), flush=True)
            if "traceback" in r:
                print(r["traceback"], file=sys.stderr, flush=True)
    res["machine"]["load_after"] = os.getloadavg()
    return res


def main(argv=None) -> int:
    from generator.neural.train import TrainConfig

    d = TrainConfig(corpus="")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast on CUDA (TrainConfig.amp; ignored on the CPU)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per stage")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per stage before the timed ones")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated, from emotion,pretrain,joint")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="clips per step (TrainConfig default)")
    p.add_argument("--window", type=int, default=d.window, help="frames per clip window (TrainConfig default)")
    p.add_argument("--disc-width", type=int, default=d.disc_width)
    p.add_argument("--beta", type=float, default=d.beta, help="perceptual weight; 0 = no VGG-19")
    p.add_argument("--vgg19", help="real torchvision VGG-19 weights (default: random ones in a temp file)")
    p.add_argument("--no-augment", action="store_true", help="turn the photometric augmentation off")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (compile time is in warm-up)")
    p.add_argument("--identities", type=int, default=2, help="identities of the synthetic corpus")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: tiny model, discriminators of width 8, batch 2, window 8, 1+2 steps per stage")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.disc_width, args.batch_size, args.window = 8, 2, 8
        args.warmup, args.steps, args.identities = 1, 2, 1
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.window < 1:
        raise SystemExit("--steps, --batch-size and --window must be >= 1, --warmup >= 0")
    res = run(args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 1 if res["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
