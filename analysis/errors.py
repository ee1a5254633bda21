"""Exception hierarchy of the analysis package::

    AnalysisError                 every error raised on purpose by ``analysis``
    +-- ExportFormatError         an export folder or one of its files is malformed (names file/row/column)
    +-- AnalysisOptionError       an option cannot be applied to these data (unknown source, bad unit...)
"""

from __future__ import annotations


class AnalysisError(Exception):
    """Base class: every error raised on purpose by ``analysis``."""


class ExportFormatError(AnalysisError):
    """An export folder, or a row/column of one of its files, is invalid."""


class AnalysisOptionError(AnalysisError):
    """An analysis option does not fit the data (e.g. a source name that is not in the answers)."""
