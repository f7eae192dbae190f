"""``python -m datarax``: the same as the ``datarax`` command."""

import sys

from datarax.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
