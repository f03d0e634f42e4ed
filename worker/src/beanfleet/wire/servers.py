"""Which server a job goes to, and which servers are resting after a failure.

Two placements:

``spread`` (the default)
    Round-robin over the servers, each producer starting at a random one so many producers
    do not all hit the first.  A refused put (draining, out of memory or binlog disk full)
    or a lost connection moves the job to the next server.

``tube``
    Each tube lives on one server, chosen by rendezvous hashing of the tube name over the
    server list: every producer with the same list picks the same server, and adding or
    removing a server moves only the tubes that hashed to it.  A tube's jobs then come out
    in its priority order, as with one server.  While that server is down its tubes go to
    their second choice (order holds again once it is back and the fallback jobs are done).

A server that failed rests for a backoff (doubling, capped, jittered) and is then tried
again; while it rests it is tried only after every other server (a last resort, so "all
down" is said only after each one was asked).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from typing import Literal

from beanfleet.errors import ConfigError

Placement = Literal["spread", "tube"]
PLACEMENTS: tuple[Placement, ...] = ("spread", "tube")

REST_FIRST = 0.5
REST_CAP = 15.0


def check_placement(value: str) -> Placement:
    for placement in PLACEMENTS:
        if value == placement:
            return placement
    raise ConfigError(f"invalid placement {value!r}: expected one of {', '.join(PLACEMENTS)}")


def rendezvous_order(tube: str, servers: Sequence[str]) -> list[str]:
    """``servers`` by descending hash of (server, tube): the tube's first choice first."""

    def score(server: str) -> bytes:
        return hashlib.blake2b(f"{server}\0{tube}".encode(), digest_size=8).digest()

    return sorted(servers, key=score, reverse=True)


class ServerHealth:
    """When each server may be asked again after a failure."""

    def __init__(self, servers: Sequence[str]) -> None:
        self._rest_until = dict.fromkeys(servers, 0.0)
        self._rest = dict.fromkeys(servers, REST_FIRST)

    def resting(self, server: str, now: float | None = None) -> bool:
        return self._rest_until[server] > (time.monotonic() if now is None else now)

    def failed(self, server: str) -> float:
        """Rest ``server``; return for how long."""
        rest = self._rest[server] * random.uniform(0.5, 1.0)
        self._rest_until[server] = time.monotonic() + rest
        self._rest[server] = min(self._rest[server] * 2, REST_CAP)
        return rest

    def succeeded(self, server: str) -> None:
        self._rest_until[server] = 0.0
        self._rest[server] = REST_FIRST

    def healthy_first(self, ordered: Sequence[str]) -> list[str]:
        """``ordered`` with the resting servers moved last, soonest back first."""
        now = time.monotonic()
        awake = [s for s in ordered if not self.resting(s, now)]
        asleep = sorted(
            (s for s in ordered if self.resting(s, now)), key=lambda s: self._rest_until[s]
        )
        return awake + asleep


class Placer:
    """The order in which to ask the servers for one put."""

    def __init__(self, servers: Sequence[str], placement: Placement) -> None:
        self.servers = list(servers)
        self.placement = check_placement(placement)
        self.health = ServerHealth(servers)
        self._next = random.randrange(len(self.servers))
        self._by_tube: dict[str, list[str]] = {}

    def order(self, tube: str) -> list[str]:
        if self.placement == "tube":
            ordered = self._by_tube.get(tube)
            if ordered is None:
                ordered = self._by_tube[tube] = rendezvous_order(tube, self.servers)
            return self.health.healthy_first(ordered)
        start = self._next
        self._next = (start + 1) % len(self.servers)
        return self.health.healthy_first(self.servers[start:] + self.servers[:start])
