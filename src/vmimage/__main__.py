"""Allow ``python -m vmimage``."""

from vmimage.cli import main

main()
