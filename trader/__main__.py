"""``python -m trader``: the same as the ``trader`` command (start trader)."""

import sys

from trader.cli.start import main

sys.exit(main())
