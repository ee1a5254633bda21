"""The paper's network and its training (torch): ``model`` (generator, frame and emotion
discriminators), ``losses``, ``checkpoint`` (save/load, the released weights' layout), ``train`` (three
stages, resume, DDP), ``renderer`` (the ``neural`` backend of ``generator.renderers``) and ``cli``
(`emostudy train`). Stands on ``data/`` (the corpus it trains on) and the floor."""
