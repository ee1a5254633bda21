"""`emostudy train`: thin click wrapper over ``generator.neural.train.train``.

Examples::

    emostudy train --corpus prepared/ --out runs/paper --vgg19 vgg19-dcbb9e9d.pth --device cuda
    torchrun --nproc_per_node 4 -m emostudy.cli train --corpus prepared/ --out runs/ddp --device cuda ...
    emostudy train --synthetic 4 --config tiny --beta 0 --out runs/smoke --steps 0,300,0
    emostudy train --resume runs/paper
"""

from __future__ import annotations

import os
from pathlib import Path

import click


def _steps(value: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give three integers EMOTION,PRETRAIN,JOINT, e.g. 2000,100000,100000")
    if len(parts) != 3 or min(parts) < 0:
        raise click.BadParameter(f"{value!r}: give three non-negative integers EMOTION,PRETRAIN,JOINT")
    return parts  # type: ignore[return-value]


@click.command("train")
@click.option("--corpus", type=click.Path(file_okay=False), help="Prepared corpus folder (index.jsonl + clips/).")
@click.option("--synthetic", type=int, default=0, show_default=True,
              help="Make a synthetic corpus with this many identities in OUT/corpus and train on it.")
@click.option("--out", type=click.Path(file_okay=False), help="New run folder (refused if it holds files).")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), help="Continue the run in this folder.")
@click.option("--config", "config_name", type=click.Choice(["paper", "tiny"]), default="paper", show_default=True)
@click.option("--steps", default="2000,100000,100000", show_default=True,
              help="Steps of the three stages: emotion-D pre-training, G pre-training, joint.")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--window", type=int, default=32, show_default=True, help="Frames per training window.")
@click.option("--vgg19", type=click.Path(dir_okay=False), help="torchvision VGG-19 weights (perceptual loss).")
@click.option("--beta", type=float, default=1.0, show_default=True, help="Perceptual weight (0 = off, no VGG).")
@click.option("--disc-width", type=int, default=64, show_default=True)
@click.option("--no-augment", is_flag=True, help="Turn the photometric augmentation off.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast on CUDA.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the generator.")
@click.option("--threads", type=int, help="CPU threads (torch.set_num_threads).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--sample-every", type=int, default=500, show_default=True)
@click.option("--checkpoint-every", type=int, default=1000, show_default=True)
@click.option("--until-step", type=int, help="Stop after this global step (resume later).")
def train_command(corpus, synthetic, out, resume, config_name, steps, batch_size, window, vgg19, beta, disc_width,
                  no_augment, device, amp, compile_, threads, seed, log_every, sample_every, checkpoint_every,
                  until_step):
    """Train the paper's generator (three stages; see generator/neural/train.py)."""
    import torch  # optional heavy dependency: imported only when used

    from generator.errors import GeneratorError  # lazy: keeps the command table light
    from generator.neural.model import GeneratorConfig  # lazy: keeps the command table light
    from generator.neural.train import TrainConfig, new_run_dir, train  # lazy: keeps the command table light

    if threads:
        torch.set_num_threads(threads)
    try:
        if resume:
            if out or corpus or synthetic:
                raise click.UsageError("--resume continues a run as it was configured: leave out --out/--corpus")
            last = train(TrainConfig(corpus=""), resume, resume=True, until_step=until_step)
            click.echo(f"checkpoint: {last}")
            return
        if not out:
            raise click.UsageError("give --out (a new run folder) or --resume RUN")
        run = Path(out)
        if synthetic:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise click.UsageError("--synthetic under torchrun would make the corpus once per process: make it "
                                       "first (one process, --until-step 0) and pass --corpus")
            if corpus:
                raise click.UsageError("give --corpus or --synthetic, not both")
            from generator.data.synthetic import make_corpus  # lazy: keeps the command table light

            new_run_dir(run)
            corpus = str(run / "corpus")
            make_corpus(corpus, n_identities=synthetic, n_frames=max(window, 32), seed=seed)
        elif not corpus:
            raise click.UsageError("give --corpus (prepared data) or --synthetic N")
        n_emo, n_pre, n_joint = _steps(steps)
        model = GeneratorConfig() if config_name == "paper" else GeneratorConfig.tiny()
        cfg = TrainConfig(corpus=str(corpus), model=model, disc_width=disc_width if config_name == "paper" else
                          min(disc_width, 16), window=window, batch_size=batch_size, emotion_steps=n_emo,
                          pretrain_steps=n_pre, joint_steps=n_joint, vgg19=vgg19, beta=beta,
                          augment=not no_augment, seed=seed, device=device, amp=amp, compile=compile_,
                          log_every=log_every, sample_every=sample_every, checkpoint_every=checkpoint_every)
        last = train(cfg, run, until_step=until_step, allow_existing=bool(synthetic))
    except GeneratorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"checkpoint: {last}")
