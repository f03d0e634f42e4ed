"""Running jobs: the worker loop and everything one job passes through.

Owns the worker (:mod:`.worker`; :mod:`.pool` drives it over several servers until the two
merge in the next step of issue 19), prefetch (:mod:`.prefetch`), the heartbeat thread
(:mod:`.heartbeat`), the reserved job (:mod:`.job`), retry and bury (:mod:`.outcome`), the
per-host run records (:mod:`.crashguard`), recycling and shutdown (:mod:`.recycle`,
:mod:`.shutdown`), handlers (:mod:`.handlers`) and the job log (:mod:`.joblog`).

May import: ``wire`` and the base modules.  Never ``metrics`` or ``cli`` (the two
``TYPE_CHECKING`` imports of ``metrics.worker`` are listed exceptions, removed when metrics
observe the worker through a protocol), never ``produce`` or ``admin``.  This ``__init__``
imports nothing, so :mod:`.handlers` stays importable without greenstalk.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""
