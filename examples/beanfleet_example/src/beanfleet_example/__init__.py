"""Example beanfleet job handlers (see handlers.py)."""
