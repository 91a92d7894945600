"""Signed tokens (itsdangerous): one salt per purpose, errors turned into domain errors."""

from __future__ import annotations

import hmac
import json
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous import Signer as _ItsSigner
from itsdangerous.encoding import base64_encode
from itsdangerous.signer import HMACAlgorithm

from registry.errors import ValidationFailed


class InvalidToken(ValidationFailed):
    """A token that was forged, altered, or signed for another purpose."""

    code = "validation_error"


class TokenExpired(InvalidToken):
    """A token older than its purpose allows."""


class _KeyedHMAC(HMACAlgorithm):
    """itsdangerous' HMAC, keyed once: each signature copies the keyed state (same digest)."""

    def __init__(self, digest_method: Any, key: bytes) -> None:
        super().__init__(digest_method)
        self._key, self._keyed = key, hmac.new(key, digestmod=digest_method)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        """Return the HMAC of ``value`` under ``key`` (from the keyed copy for its own key)."""
        if key != self._key:
            return super().get_signature(key, value)
        mac = self._keyed.copy()
        mac.update(value)
        return mac.digest()


class _KeyedSigner(_ItsSigner):
    """itsdangerous' signer, deriving its key and keying its HMAC once, not on every signature."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key = super().derive_key()
        if type(self.algorithm) is HMACAlgorithm:
            self.algorithm = _KeyedHMAC(self.algorithm.digest_method, self._key)

    def derive_key(self, secret_key: Any = None) -> bytes:
        """Return the key derived at construction (the same for every call with no argument)."""
        return self._key if secret_key is None else super().derive_key(secret_key)


# The JSON itsdangerous writes (its ``_CompactJSON``: no spaces, non-ASCII kept), one
# encoder for every token instead of one built by ``json.dumps`` per token.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class _Untimed(URLSafeSerializer):
    """URLSafeSerializer with one signer, and payloads never compressed.

    Its tokens are ordinary itsdangerous tokens (any ``URLSafeSerializer`` with
    the secret and salt verifies them, and this one reads compressed ones).
    Signed in volume (a receipt per check), the stock serializer built a signer
    and derived its key per token, built a JSON encoder per token, and tried
    zlib on payloads too short to gain.
    """

    def __init__(self, secret: str, salt: str) -> None:
        super().__init__(secret, salt=salt, signer=_KeyedSigner)
        self._signer = super().make_signer(salt)

    def make_signer(self, salt: Any = None) -> _ItsSigner:
        """Return the one signer of this serializer's own salt."""
        return self._signer if salt is None or salt == self.salt else super().make_signer(salt)

    def dump_payload(self, obj: Any) -> bytes:
        """Return the payload as base64 JSON (the stock serializer's JSON), uncompressed."""
        return base64_encode(_COMPACT.encode(obj).encode("utf-8"))


class Signer:
    """Sign and verify payloads for one purpose (the salt), optionally with a max age."""

    def __init__(self, secret: str, purpose: str, max_age: int | None = None) -> None:
        self.max_age = max_age
        self._timed = URLSafeTimedSerializer(secret, salt=f"anning.{purpose}")
        self._plain = _Untimed(secret, f"anning.{purpose}")

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
