"""The websocket listener: one worker thread per connection, with our own reconnect loop.

Modules: ``connection`` (the venue protocol, opening, reading, sending, closing), ``frames``
(RFC 6455 frames read from websocket-client's socket, faster than its own reassembly),
``listener`` (the thread: reconnects, watchdogs, messages), ``rotation`` (make-before-break).

websocket-client's ``run_forever(reconnect=N)`` waits a fixed time and gives up after a clean
close, so the loop is ours (``websocket.create_connection`` and a read loop with a short socket
timeout, so the watchdogs run between frames):

- **Reconnect** with capped exponential backoff and jitter (``trader.backoff``); a connection that
  stayed up ``healthy_after_s`` resets it. ``serverShutdown`` (a ``RECONNECT`` control) skips
  the wait, once per ``healthy_after_s``. Every connect sends the protocol's subscriptions
  again.
- **Data watchdog** (market streams): no data message for ``stale_after_s`` -> ``FeedStale``,
  then reconnect. Pings, pongs and replies to our requests are not data. The first data message
  after any trouble (stale, disconnect, failed connect) publishes ``FeedRecovered``; the
  wiring's handlers of that event refresh balances and open orders over REST (the listener
  calls nothing else across threads); streams without a data watchdog (user data can be quiet
  for hours) recover when their subscription is acknowledged instead.
- **Dead connection**: no frame at all (data, ping or pong) for ``dead_after_s`` -> reconnect.
- **Rotation** before Binance's 24 h limit, make-before-break: open and subscribe a new
  connection, buffer what it sends until it is acknowledged, drain what the old one still has,
  close the old one, then replay the buffer, skipping frames identical to ones the old
  connection already delivered (so a fill is not applied twice).
- **Keepalive**: protocols that need it (Bybit) get ``ping_message`` every ``ping_interval_s``.
  Server pings are answered by the frame reader inside ``recv``; that is why handling a message
  never blocks on anything but ``publish``.

Handling a message is parse + ``publish`` only. Market data goes through the bus's conflating
path (``event.conflatable``); account and order events use the never-drop path, and if the bus
stays full past its timeout the listener reconnects, which triggers the REST refresh that
fills the gap. Malformed JSON, unknown message types and parser errors are counted and logged
(unknown types once each) and never stop the listener.

``close()`` aborts every open socket, so a blocked read returns at once; all waits are
``stop.wait()``. A TCP connect in progress is bounded by ``connect_timeout_s``. A bug that
escapes the read loop closes every socket of the listener before the supervisor restarts it.
"""

from trader.feeds.websocket.connection import StreamProtocol
from trader.feeds.websocket.listener import Listener, listener_name

__all__ = ["Listener", "StreamProtocol", "listener_name"]
