"""Stable hashing: every random choice the sandbox makes is seeded from what it depends on."""

from __future__ import annotations

import hashlib


def mix(*parts: object) -> int:
    """A stable 64-bit hash (Python's hash() differs between processes)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(str(part).encode("utf-8", "replace"))
        digest.update(b"\x00")
    return int.from_bytes(digest.digest(), "big")
