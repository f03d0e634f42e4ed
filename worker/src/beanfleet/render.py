"""Moved to :mod:`beanfleet.fleet.render` (this name stays for the ``render`` command)."""

from beanfleet.fleet.render import MANIFEST, Output, outputs, render, templates_dir

__all__ = ["MANIFEST", "Output", "outputs", "render", "templates_dir"]
