"""Asking beanstalkd what it holds: stats, peeks, buried listings, kicks, deletes.

Owns :class:`Admin` on one server (:mod:`.queries`), :class:`Admins` over a set of servers,
1..N, one server being a set of one (:mod:`.group`), and the pipelined job scans
(:mod:`.jobscan`).  ``from beanfleet.admin import Admin`` is the public path.

May import: ``wire`` and the base modules.  Never ``work``, ``produce``, ``metrics``, ``cli``.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""

from beanfleet.admin.group import Admins, PerServer
from beanfleet.admin.queries import Admin, BuriedListing, JobInfo, PeekState, Stats, TubeStats

__all__ = [
    "Admin",
    "Admins",
    "BuriedListing",
    "JobInfo",
    "PeekState",
    "PerServer",
    "Stats",
    "TubeStats",
]
