"""API keys as stored and checked: shared by the registry (which stores hashes) and the HTTP edge (which checks them)."""

from __future__ import annotations

import hashlib


def hash_key(plaintext: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()
