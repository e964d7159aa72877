"""Kept only so that importers not yet switched keep working: the strict writer is
:mod:`vmimage.privatefile` (``write_private``, ``write_public``, ``private_dir``). Import it
from there; this module goes once no one imports it."""

from __future__ import annotations

from vmimage.privatefile import private_dir, write_private

__all__ = ["private_dir", "write_private"]
