"""Alerts to the operator through apprise (Telegram, Discord, Slack, e-mail, ntfy, webhooks):
``rules`` decides which events alert and writes their text on the main thread, ``sender``
batches, rate-limits and delivers them from the ``alerts`` worker thread."""
