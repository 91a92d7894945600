"""Domain errors: services raise these; the API turns them into the one envelope."""

from __future__ import annotations


class RegistryError(Exception):
    """A domain error with an API code and HTTP status."""

    code = "bad_request"
    status = 400

    def __init__(
        self, message: str, *, field: str | None = None, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or ([{"field": field, "message": message}] if field else [])


class ValidationFailed(RegistryError):
    """The input is well-formed but not acceptable."""

    code = "validation_error"
    status = 422


class InvalidPhoneError(ValidationFailed):
    """A phone number that does not parse (SPEC §2)."""

    code = "invalid_phone"


class UnknownSender(ValidationFailed):
    """No sender has that code."""

    code = "unknown_sender"


class UnknownAddress(ValidationFailed):
    """No sender contacts people from that address."""

    code = "unknown_address"


class Unauthorized(RegistryError):
    """No key, or a key the registry does not know."""

    code = "unauthorized"
    status = 401


class Forbidden(RegistryError):
    """Another organization's sender or record, or a role or scope the caller lacks."""

    code = "forbidden"
    status = 403


class NotFound(RegistryError):
    """No such record."""

    code = "not_found"
    status = 404


class Conflict(RegistryError):
    """The request contradicts the current state."""

    code = "conflict"
    status = 409


class TooLarge(RegistryError):
    """The body or batch is larger than the registry takes in one request."""

    code = "too_large"
    status = 413


class RateLimited(RegistryError):
    """Too many requests of one kind; ``retry_after`` seconds until the window reopens."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class MalformedPayload(RegistryError):
    """A body that is not the format its sender documents (an SMS cloud's callback, Kannel's post)."""

    code = "bad_request"
    status = 400
