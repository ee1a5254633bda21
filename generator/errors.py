"""Exception hierarchy of the generator package (see the package docstring)."""


class GeneratorError(Exception):
    """Base class of the generator's own errors."""


class InputError(GeneratorError):
    """An input (face image, speech file, emotion) cannot be used."""


class NoFaceError(InputError):
    """No face, or several faces, where exactly one is needed."""


class CheckpointError(GeneratorError):
    """A checkpoint cannot be loaded."""


class DataError(GeneratorError):
    """Prepared data is missing or malformed."""
