"""The one waiting rule after a failure: capped doubling with jitter.

A worker reconnecting to a server, a worker resting a server it could not reach, and a
producer resting a server that refused a job all wait the same way: each failure doubles the
next wait up to a cap, and each wait is drawn from the upper half of its nominal value so
that clients that failed together do not come back together.  Success resets it.
"""

from __future__ import annotations

import random


class Backoff:
    """``first`` seconds after the first failure, doubling to ``cap``, jittered to [½, 1]×."""

    __slots__ = ("_next", "cap", "first")

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def failed(self) -> float:
        """Seconds to wait after one more failure."""
        delay = self._next * random.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self.cap)
        return delay

    def succeeded(self) -> None:
        self._next = self.first
