"""Generalize a Linux root: operations that plan, a plan that is shown, then applied.

``vmimage generalize`` (issue 10) is a superset of ``waagent -deprovision``: see
:mod:`vmimage.generalize.ops` for the operations and :mod:`vmimage.generalize.rootfs` for how
every path stays inside the target root.
"""

import importlib

#: The modules whose import registers operations, in the order ``--list-operations`` shows.
OPERATION_MODULES = ("ops", "ops_config", "ops_cleanup")


def load_operations() -> None:
    """Register every operation (the registry fills as its modules are imported)."""
    for name in OPERATION_MODULES:
        importlib.import_module(f"vmimage.generalize.{name}")
