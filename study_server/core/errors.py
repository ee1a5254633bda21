"""Exception hierarchy of the study server.

    StudyServerError
    ├── ConfigError        settings are missing or invalid (raised at start-up)
    ├── StudyImportError   a plan or set cannot be imported
    └── ApiError           a request is refused; carries an HTTP status and a stable code
        ├── NotFound       (404) unknown study, assignment token, item or media
        ├── Conflict       (409) the request contradicts stored state (already answered, study full)
        └── Forbidden      (403) the request is not allowed in this state (audio check, excluded)

``ApiError`` is translated at the HTTP edge into ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from typing import Any


class StudyServerError(Exception):
    """Base class: every error raised on purpose by ``study_server``."""


class ConfigError(StudyServerError):
    """The server's settings are missing or invalid."""


class StudyImportError(StudyServerError):
    """A study plan or its stimulus set cannot be imported."""


class ApiError(StudyServerError):
    """A refused request: ``status`` (HTTP), ``code`` (stable, for programs) and a clear message."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return {"error": body}


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Forbidden(ApiError):
    status = 403
