"""Generalize a Linux root: operations that plan, a plan that is shown, then applied.

``vmimage generalize`` (issue 10) is a superset of ``waagent -deprovision``: see
:mod:`vmimage.generalize.ops` for the operations and :mod:`vmimage.generalize.rootfs` for how
every path stays inside the target root.
"""
