"""Putting jobs: :class:`Producer`, ``put``, ``put_many``, ``schedule_at``.

Owns the producer on one server (:mod:`.producer`) and, for now, the one over several
(:mod:`.multiproducer`; merged into ``producer`` in the next step of issue 19).  The public
names are re-exported by :mod:`beanfleet` itself, lazily.

May import: ``wire`` and the base modules.  Never ``work``, ``admin``, ``metrics``, ``cli``.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""
