"""Objective evaluation: ``metrics`` (PSNR / SSIM / NLMD of generated against ground-truth videos, the
paper's Table 1), ``classifier`` (the video emotion classifier, built on the network's emotion
discriminator) and ``cli`` (`emostudy evaluate`, `emostudy train-classifier`). Stands on ``neural/``,
``data/`` and the floor."""
