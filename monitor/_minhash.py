"""The text signature of level-2 dedupe: one-permutation MinHash over word 3-shingles,
with rotation densification, and the similarity two signatures estimate."""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence

SHINGLE = 3
SIGNATURE_SIZE = 64


_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


def signature(terms: Sequence[str]) -> tuple[int, ...]:
    """One-permutation MinHash of word 3-shingles (empty when the text is too short)."""
    if len(terms) < SHINGLE + 2:
        return ()
    empty = 1 << 32  # above every 32-bit value
    bins = [empty] * SIGNATURE_SIZE
    for shingle in map(" ".join, zip(*(terms[k:] for k in range(SHINGLE)), strict=False)):
        hasher = _BLAKE2B_8.copy()  # cheaper than a new one, and the same digest
        hasher.update(shingle.encode())
        h = int.from_bytes(hasher.digest(), "big")
        slot, value = h % SIGNATURE_SIZE, (h >> 8) & 0xFFFFFFFF
        if value < bins[slot]:
            bins[slot] = value
    if empty not in bins:
        return tuple(bins)
    return _densify([None if v == empty else v for v in bins])


def _densify(bins: list[int | None]) -> tuple[int, ...]:
    # Rotation densification: an empty bin borrows the next filled bin's value, marked by
    # the distance, so two texts agree on it exactly when they agree on the lender.
    size = len(bins)
    out: list[int] = []
    for i, own in enumerate(bins):
        if own is not None:  # step 0: the value itself (values are 32-bit)
            out.append(own)
            continue
        for step in range(1, size):
            value = bins[(i + step) % size]
            if value is not None:
                out.append((value + step * 0x9E3779B1) & 0xFFFFFFFF)
                break
    return tuple(out)


def signature_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures' shingle sets (0 if either is empty)."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return int(sum(map(operator.eq, a, b))) / len(a)
