"""A small random number generator whose stream never changes across Python or NumPy versions.

Study plans must be byte-identical for the same (spec, manifest, seed) on any machine and any future
interpreter; ``random.Random`` and NumPy's generators do not promise that for all their methods.
Each stream is SHA-256 in counter mode over (seed, label): independent labels give independent streams,
so adding a draw in one part of a design does not move the draws of another.
"""

from __future__ import annotations

import hashlib
from typing import MutableSequence, Sequence, TypeVar

T = TypeVar("T")


class StableRng:
    """Uniform integers from SHA-256(seed, label, counter); unbiased by rejection sampling."""

    def __init__(self, seed: int, label: str = "") -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.label = label
        self._counter = 0
        self._pool = b""

    def child(self, label: str) -> "StableRng":
        """An independent stream for a named part of the work."""
        return StableRng(self.seed, f"{self.label}/{label}")

    def _bytes(self, n: int) -> bytes:
        while len(self._pool) < n:
            msg = f"{self.seed}\x00{self.label}\x00{self._counter}".encode()
            self._pool += hashlib.sha256(msg).digest()
            self._counter += 1
        out, self._pool = self._pool[:n], self._pool[n:]
        return out

    def randbelow(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        if n <= 0:
            raise ValueError(f"randbelow needs n > 0, got {n}")
        if n == 1:
            return 0
        nbytes = (n.bit_length() + 7) // 8 + 1
        span = 1 << (8 * nbytes)
        limit = span - span % n
        while True:
            x = int.from_bytes(self._bytes(nbytes), "big")
            if x < limit:
                return x % n

    def shuffle(self, items: MutableSequence[T]) -> None:
        """In-place Fisher-Yates shuffle."""
        for i in range(len(items) - 1, 0, -1):
            j = self.randbelow(i + 1)
            items[i], items[j] = items[j], items[i]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        out = list(items)
        self.shuffle(out)
        return out

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """k distinct elements, in random order."""
        if k > len(items):
            raise ValueError(f"cannot sample {k} of {len(items)} items")
        pool = list(items)
        for i in range(k):
            j = i + self.randbelow(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def choice(self, items: Sequence[T]) -> T:
        if not items:
            raise ValueError("choice from an empty sequence")
        return items[self.randbelow(len(items))]
