"""The stimulus-set contract shared by every emostudy package.

Light on purpose: no torch, no flask. Other packages may import ``stimuli``; it imports none of them.

Exceptions (all carry a message that names the file, row, field and the fix)::

    StimuliError
    +-- ManifestError      a manifest (or a row of it) is invalid
    +-- ImportSourceError  a folder / CSV / CREMA-D tree cannot be imported
    +-- DesignError        a design cannot be satisfied with the given stimuli
    +-- SpecError          a study spec (TOML) is invalid
    +-- PlanError          a study plan (JSON) is invalid
"""

from stimuli.emotions import EMOTION_CODES, EMOTIONS, parse_emotion
from stimuli.errors import (
    DesignError,
    ImportSourceError,
    ManifestError,
    PlanError,
    SpecError,
    StimuliError,
)

__all__ = [
    "EMOTIONS",
    "EMOTION_CODES",
    "parse_emotion",
    "StimuliError",
    "ManifestError",
    "ImportSourceError",
    "DesignError",
    "SpecError",
    "PlanError",
]
