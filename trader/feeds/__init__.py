"""Feeds: worker threads that turn the outside world into events (simulated market, REST
poller, websocket listeners)."""
