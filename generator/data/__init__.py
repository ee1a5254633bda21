"""Data for training and for the demo: ``prepare`` (CREMA-D -> aligned 25 fps clips, landmarks, splits),
``augment`` (photometric augmentation), ``corpus`` (the prepared corpus on disk), ``synthetic`` (a small
made-up corpus for tests and benchmarks), ``tts`` (offline speech synthesis with emotion prosody presets)
and ``cli`` (`emostudy prepare`). Stands on the floor only."""
