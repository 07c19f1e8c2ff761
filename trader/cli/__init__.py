"""The command-line programs, one module per command, each with ``main(argv=None) -> int``.

Installed as console scripts (``trader``, ``trader-ctl``, ``trader-replay``, ``trader-backtest``,
see ``setup.cfg``); ``python -m trader`` is ``trader``; ``scripts/*.py`` call the same ``main``
from a checkout.
"""
