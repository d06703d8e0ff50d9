"""Bearer-token auth. A job's owner is the sha256 of the token that created it: the database
never holds a token, and each token sees only its own jobs."""

from __future__ import annotations

import hashlib
import hmac


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenAuth:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._digests = [token_digest(token).encode() for token in tokens]

    def owner(self, token: str | None) -> str | None:
        """The owner id of a known token, else None. Compares digests in constant time and
        against every known token, so timing tells nothing about which one nearly matched."""
        if not token:
            return None
        digest = token_digest(token)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(known, digest.encode())
        return digest if matched else None
