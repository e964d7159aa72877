"""Every check module, imported so that its ``@check`` functions register.

Find a rule from its ID in one step: ``grep -rn 'id="LNX-SWAP-NONE"' src/vmimage/checks``.
"""

from vmimage.checks import vhd_format  # noqa: F401
