"""Seeded randomness for the world generator: one numpy Generator, drawn in buffered blocks.

The generator makes millions of small random choices; a numpy call per choice would dominate its run
time, so uniforms and normals are drawn a block at a time and handed out one by one. Every draw
comes from the one ``numpy.random.Generator`` seeded by the world's seed, in program order, so the
same seed always gives the same world.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

_BLOCK = 8192


class Dice:
    """Buffered draws from one seeded ``numpy.random.Generator``."""

    __slots__ = ("rng", "_u", "_ui", "_n", "_ni")

    def __init__(self, seed: int | np.random.Generator) -> None:
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._u: list[float] = []
        self._ui = 0
        self._n: list[float] = []
        self._ni = 0

    def random(self) -> float:
        """A uniform float in [0, 1)."""
        if self._ui >= len(self._u):
            self._u = self.rng.random(_BLOCK).tolist()
            self._ui = 0
        value = self._u[self._ui]
        self._ui += 1
        return value

    def normal(self) -> float:
        """A standard normal draw."""
        if self._ni >= len(self._n):
            self._n = self.rng.standard_normal(_BLOCK).tolist()
            self._ni = 0
        value = self._n[self._ni]
        self._ni += 1
        return value

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.random() < p

    def below(self, n: int) -> int:
        """A uniform integer in [0, n)."""
        return min(int(self.random() * n), n - 1)

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high] (both included)."""
        return low + self.below(high - low + 1)

    def uniform(self, low: float, high: float) -> float:
        """A uniform float in [low, high)."""
        return low + (high - low) * self.random()

    def lognormal(self, median: float, sigma: float) -> float:
        """A log-normal draw with the given median and log-space spread."""
        return median * math.exp(sigma * self.normal())

    def exponential(self, mean: float) -> float:
        """An exponential draw with the given mean."""
        return -mean * math.log(1.0 - self.random())

    def poisson(self, lam: float) -> int:
        """A Poisson draw."""
        return int(self.rng.poisson(lam))

    def choice(self, items: Sequence[T]) -> T:
        """One item, uniformly."""
        return items[self.below(len(items))]

    def weighted(self, items: Sequence[T], weights: Sequence[float]) -> T:
        """One item with probability proportional to its weight."""
        total = sum(weights)
        point = self.random() * total
        for item, weight in zip(items, weights, strict=True):
            point -= weight
            if point < 0:
                return item
        return items[-1]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """``k`` distinct items (fewer when there are fewer), in random order."""
        pool = list(items)
        k = min(k, len(pool))
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def shuffle(self, items: list[T]) -> None:
        """Shuffle a list in place (Fisher-Yates)."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def bytes(self, n: int) -> bytes:
        """``n`` random bytes."""
        return self.rng.bytes(n)
