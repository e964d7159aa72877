"""Allow ``python -m vmimage.vm.endpoints`` (:func:`vmimage.vm.endpoints.run.main`)."""

import sys

from vmimage.vm.endpoints.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
