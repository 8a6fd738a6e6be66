"""Keyed hashing of identifiers (names, NIK, passport numbers, escort and group references).

An identifier is replaced by HMAC-SHA256 under a secret key before it is stored or compared
across cases, so the same person or escort links cases without anyone reading who they are.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata


class Pseudonymiser:
    """Turns identifiers into stable keyed hashes; the key never leaves this object."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a pseudonymisation key is required")
        self._key = key.encode()

    def __repr__(self) -> str:
        return "Pseudonymiser(key=***)"

    def token(self, kind: str, identifier: str) -> str:
        """A stable pseudonym for one identifier of one kind (e.g. 'escort', 'passport')."""
        normal = " ".join(unicodedata.normalize("NFKC", identifier).casefold().split())
        digest = hmac.new(self._key, f"{kind}\x1f{normal}".encode(), hashlib.sha256)
        return f"{kind}:{digest.hexdigest()[:32]}"
