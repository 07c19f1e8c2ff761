#!/usr/bin/env python3
"""The ``trader-replay`` command from a checkout, uninstalled (see trader/cli/replay.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from trader.cli.replay import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
