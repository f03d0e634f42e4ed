"""``python -m beanfleet``: the ``beanfleet`` command without its console script."""

from beanfleet.cli import main

main()
