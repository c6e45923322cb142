"""Every failure a client can see, as one exception type each.

The HTTP glue turns an ``ApiError`` into the contract's JSON error body, so the status, the machine
readable ``code`` and the human message are decided where the failure is understood, not in the glue.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failure with a place in the HTTP contract."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


class InvalidArgument(ApiError):
    status, code = 400, "invalid_argument"


class Unauthenticated(ApiError):
    status, code = 401, "unauthenticated"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not supported here; use {', '.join(allowed)}.",
                         headers={"Allow": ", ".join(allowed)})


class IdempotencyConflict(ApiError):
    status, code = 409, "idempotency_conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class PersistenceFailed(ApiError):
    status, code = 500, "persistence_failed"


class StorytellerFailed(ApiError):
    status, code = 502, "storyteller_failed"


class InternalError(ApiError):
    status, code = 500, "internal_error"
