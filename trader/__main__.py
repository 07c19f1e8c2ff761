"""``python -m trader``: the same as the ``trader`` command (start trader)."""

import sys

from trader.cli.start import main

sys.argv[0] = "python -m trader"  # what the usage line names, not ".../trader/__main__.py"
sys.exit(main())
