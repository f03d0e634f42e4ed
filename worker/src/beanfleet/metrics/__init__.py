"""Prometheus: the beanstalkd exporter and the workers' own metrics.

Owns the exporter's collector over a set of servers, 1..N (:mod:`.exporter`), the worker's
metrics written to per-process value files (:mod:`.worker`, :mod:`.valuefiles`), the
endpoint that merges those files (:mod:`.endpoint`) and the small HTTP server both use
(:mod:`.http`).

May import: ``work``, ``admin``, ``wire``, the base modules and ``prometheus_client``.  Never
``cli``; ``work`` never imports this package.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""
