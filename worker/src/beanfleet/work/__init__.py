"""Running jobs: the worker loop and everything one job passes through.

Read :mod:`.loop` first: the ``Worker`` over a set of servers (1..N) and one job's path from
reserve to delete.  Behind it: where jobs come from (:mod:`.sources`, waiting on every
server at once, over one :mod:`.session` per connection, prefetch included), the job and its
state (:mod:`.job`), retry and bury (:mod:`.outcome`), the heartbeat thread
(:mod:`.heartbeat`), the observer protocol (:mod:`.events`) and its two observers here, the
job log (:mod:`.joblog`) and the per-host run records (:mod:`.crashguard`), recycling and
shutdown (:mod:`.recycle`, :mod:`.shutdown`) and handlers (:mod:`.handlers`).
:mod:`.worker` and :mod:`.pool` are compatibility names only.

May import: ``wire`` and the base modules.  Never ``metrics`` or ``cli`` (metrics observe
the worker through :mod:`.events`; ``beanfleet work`` wires them), never ``produce`` or
``admin``.  This ``__init__``
imports nothing, so :mod:`.handlers` stays importable without greenstalk.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""
