"""Signed tokens (itsdangerous): one salt per purpose, errors turned into domain errors."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from registry.errors import ValidationFailed


class InvalidToken(ValidationFailed):
    """A token that was forged, altered, or signed for another purpose."""

    code = "validation_error"


class TokenExpired(InvalidToken):
    """A token older than its purpose allows."""


class Signer:
    """Sign and verify payloads for one purpose (the salt), optionally with a max age."""

    def __init__(self, secret: str, purpose: str, max_age: int | None = None) -> None:
        self.max_age = max_age
        self._timed = URLSafeTimedSerializer(secret, salt=f"anning.{purpose}")
        self._plain = URLSafeSerializer(secret, salt=f"anning.{purpose}")

    def dumps(self, payload: Any) -> str:
        """Return the signed token for ``payload``."""
        serializer = self._timed if self.max_age is not None else self._plain
        return str(serializer.dumps(payload))

    def loads(self, token: str) -> Any:
        """Return the payload of a genuine token, or raise InvalidToken / TokenExpired."""
        try:
            if self.max_age is not None:
                return self._timed.loads(token, max_age=self.max_age)
            return self._plain.loads(token)
        except SignatureExpired as exc:
            raise TokenExpired("the token has expired") from exc
        except (BadData, UnicodeError, ValueError) as exc:
            raise InvalidToken("the token is not one this registry signed") from exc
