"""The builders :class:`~trader.app.App` uses for what a config chooses: the exchange
(:mod:`.venue`), the store backend (:mod:`.storage`), and the live run's HTTP endpoint and alerts
(:mod:`.endpoints`). Each choice is made here, once; nothing else asks which it was. The app
itself, its event -> handlers table and the start and stop order stay in ``trader/app.py`` and
``trader/lifecycle.py``."""
