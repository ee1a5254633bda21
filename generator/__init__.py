"""From inputs to a stimulus set: the paper's network (torch), a training-free renderer, data
preparation, training, batch production and evaluation.

Importing ``generator`` imports no torch: modules that need it import it themselves.

Rooms, and the floor they stand on (imports run only downward; tests/test_boundaries.py's
``GENERATOR_FLOORS`` checks every import statement)::

    produce/   batch production of sets (batch, jobs), `emostudy generate` (cli) and `emostudy render`
               (render_cli), the demo's inputs (demo_assets, demo_inputs)   -> check, data, floor
    evaluate/  PSNR / SSIM / NLMD (metrics), the video emotion classifier (classifier),
               `emostudy evaluate` and `emostudy train-classifier` (cli)   -> neural, data, floor
    neural/    the paper's network (model), losses, checkpoints, training (train), the ``neural``
               renderer (renderer), `emostudy train` (cli)                 -> data, floor
    data/      CREMA-D preparation (prepare), augmentation, the corpus on disk (corpus), a synthetic
               corpus (synthetic), speech synthesis (tts), `emostudy prepare` (cli)  -> floor
    warp/      the training-free ``warp`` renderer                          -> floor
    check/     `emostudy check`: machine measures of a produced set        -> floor
    floor      the modules at this level: errors, audio (speech in and out), mediaio (video files),
               align (the template and similarity transforms), faces (detection, landmarks, the face
               gate; imports align), renderers (the renderer interface and its backend registry)

Rooms on one level (warp, check, data) do not import each other. ``renderers.get_renderer`` loads a
backend (``warp/``, ``neural/``) by name from its ``BACKENDS`` table when asked: a plugin registry, so
production never imports the renderer it runs. An import inside a function is left only for an optional
heavy dependency (torch, cv2, dlib, scipy, ...) or, in a command module (``cli.py``, ``*_cli.py``), to keep
the command table light; each says so in a comment.

Exceptions::

    GeneratorError
    +-- InputError        a face image / speech file / emotion cannot be used (names the file and the fix)
    |   +-- NoFaceError   no face, or more than one face, where one is needed
    +-- CheckpointError   a checkpoint cannot be loaded (wrong layout, missing file)
    +-- DataError         prepared data is missing or malformed
"""

from generator.errors import CheckpointError, DataError, GeneratorError, InputError, NoFaceError

__all__ = ["GeneratorError", "InputError", "NoFaceError", "CheckpointError", "DataError"]
