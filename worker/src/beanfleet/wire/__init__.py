"""Talking to beanstalkd: the wire layer.

Owns the pipelining connection (:mod:`.connection`), opening clients and connections and the
one-line connect errors (:mod:`.client`), the set of servers and where a put goes
(:mod:`.servers`), and the ``SERVER/ID`` job reference (:mod:`.jobref`).

May import: greenstalk, the standard library, and the base modules (``names``, ``bounds``,
``priorities``, ``errors``).  Never ``click``, ``prometheus_client`` or any package above it.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""
