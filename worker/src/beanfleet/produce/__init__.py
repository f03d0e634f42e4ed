"""Putting jobs: :class:`Producer`, ``put``, ``put_many``, ``schedule_at``.

Owns the one :class:`Producer` over a set of servers, one or several (:mod:`.producer`:
the put loop, placement and failover, and the one-call helpers), and the pipelined batch
writer of a bulk put with what a refusing server said (:mod:`.batch`).  The public names are
re-exported by :mod:`beanfleet` itself, lazily.

May import: ``wire`` and the base modules.  Never ``work``, ``admin``, ``metrics``, ``cli``.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""

from beanfleet.produce.producer import (
    Producer,
    delay_until,
    encode_body,
    put,
    put_many,
    schedule_at,
)

__all__ = ["Producer", "delay_until", "encode_body", "put", "put_many", "schedule_at"]
