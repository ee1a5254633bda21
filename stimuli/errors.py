"""Exception hierarchy of the stimuli package (see the package docstring)."""


class StimuliError(Exception):
    """Base class: every error raised on purpose by ``stimuli``."""


class ManifestError(StimuliError):
    """A manifest, or one of its rows, is invalid."""


class ImportSourceError(StimuliError):
    """Recordings cannot be imported (missing folder, bad labels CSV, malformed CREMA-D name)."""


class DesignError(StimuliError):
    """A design cannot be built from the given stimuli (too few to balance, missing pairs...)."""


class SpecError(StimuliError):
    """A study spec is invalid."""


class PlanError(StimuliError):
    """A study plan is invalid or does not match its manifest."""
