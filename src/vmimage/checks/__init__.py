"""The disk and system rules: every module here, imported so that its ``@rule`` functions
register in the one registry (:mod:`vmimage.rules`).

Find a rule from its ID in one step: ``vmimage checks show ID`` prints its module, or
``grep -rn 'id="LINUX-NO-SWAP"' src/vmimage/checks``.
"""

import vmimage.checks.windows.bitlocker
import vmimage.checks.windows.generalized
import vmimage.checks.windows.system
import vmimage.checks.windows.tasks
import vmimage.checks.windows.updates  # noqa: F401
from vmimage.checks import vhd_format  # noqa: F401
from vmimage.checks.linux import (  # noqa: F401
    accounts,
    agent,
    boot,
    disk_layout,
    firewall,
    generalized,
    network,
    software,
    ssh,
    swap,
)
