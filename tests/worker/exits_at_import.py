"""A handler module that ends the process while it is imported (the worker must say so)."""

import sys

sys.exit(3)
