"""From inputs to a stimulus set: the paper's network (torch), a training-free renderer, data
preparation, training, batch production and evaluation.

Importing ``generator`` imports no torch: modules that need it import it themselves.

Exceptions::

    GeneratorError
    +-- InputError        a face image / speech file / emotion cannot be used (names the file and the fix)
    |   +-- NoFaceError   no face, or more than one face, where one is needed
    +-- CheckpointError   a checkpoint cannot be loaded (wrong layout, missing file)
    +-- DataError         prepared data is missing or malformed
"""

from generator.errors import CheckpointError, DataError, GeneratorError, InputError, NoFaceError

__all__ = ["GeneratorError", "InputError", "NoFaceError", "CheckpointError", "DataError"]
