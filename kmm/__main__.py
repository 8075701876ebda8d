"""`python -m kmm ...`: see kmm/cli.py."""

import sys

from kmm.cli import main

if __name__ == "__main__":
    sys.exit(main())
