"""``python -m smartbus``: the ``smartbus`` command (smartbus.cli)."""

import sys

from smartbus.cli import main

if __name__ == "__main__":
    sys.exit(main())
