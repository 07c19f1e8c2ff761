#!/usr/bin/env python3
"""The ``trader`` command from a checkout, uninstalled (see trader/cli/start.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from trader.cli.start import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
