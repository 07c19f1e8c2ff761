#!/usr/bin/env python3
"""Follow trader's event stream in Redis and print each event: an example consumer.

    python scripts/redis_consumer.py [--url redis://127.0.0.1:6379/0] [--prefix trader]
                                     [--from-start | --from ID] [--count N] [--type TYPE ...]

Reads ``<prefix>:events`` with ``XREAD BLOCK``, from new entries on (or the whole retained
stream with ``--from-start``), and prints one line per event: the stream id, the event type and
its fields. Each entry carries ``seq`` (``<session>:<n>``, 1, 2, 3... within one trader run),
``type`` and ``event`` (JSON; ``trader.events.event_from_json`` rebuilds the typed event). A
``StreamGap`` entry marks events trader had to leave out while Redis was unreachable.

If Redis goes away the consumer waits and resumes after the last id it printed. The Redis
password, if any, comes from ``TRADER_REDIS_PASSWORD`` (or ``TRADER_REDIS_PASSWORD_FILE``), as
for trader itself. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import redis  # noqa: E402

from trader.config import read_secrets  # noqa: E402
from trader.errors import ConfigError  # noqa: E402
from trader.events import event_from_json, event_to_dict  # noqa: E402

BLOCK_MS = 1000
RETRY_MAX_S = 5.0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Print trader's events from Redis as they come.")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0", help="Redis URL")
    parser.add_argument("--prefix", default="trader", help="storage.key_prefix of the instance")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true", help="replay the retained stream")
    start.add_argument("--from", dest="from_id", help="start after this stream id")
    parser.add_argument("--count", type=int, default=0, help="exit after N events (0: never)")
    parser.add_argument("--type", action="append", default=[], help="only these event types")
    args = parser.parse_args(argv)
    try:
        password = read_secrets(os.environ)[0].redis_password
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(
        args.url,
        password=password,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=BLOCK_MS / 1000 + 2,
    )
    stream = f"{args.prefix}:events"
    last = "0" if args.from_start else (args.from_id or "$")
    if last == "$":  # resolve now, so a reconnect resumes here and not at the then-newest entry
        try:
            top = client.xrevrange(stream, count=1)
            last = top[0][0] if top else "0"
        except redis.RedisError as exc:
            print(f"cannot read {stream} at {args.url}: {exc}", file=sys.stderr)
            return 1
    printed, delay, wait = 0, 0.1, threading.Event()
    try:
        while not args.count or printed < args.count:
            try:
                reply = client.xread({stream: last}, count=100, block=BLOCK_MS)
                delay = 0.1
            except redis.RedisError as exc:
                print(f"# redis: {exc}; retrying in {delay:.1f}s", file=sys.stderr, flush=True)
                wait.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            for entry_id, fields in (e for _, entries in reply for e in entries):
                last = entry_id
                if args.type and fields.get("type") not in args.type:
                    continue
                print(line(entry_id, fields), flush=True)
                printed += 1
                if printed == args.count:
                    return 0
    except KeyboardInterrupt:
        pass
    return 0


def line(entry_id: str, fields: dict[str, str]) -> str:
    """``<id> <seq> <Type> key=value ...`` for one stream entry."""
    try:
        data = event_to_dict(event_from_json(fields["event"]))
    except (KeyError, ValueError, TypeError) as exc:
        return f"{entry_id} unreadable entry ({exc}): {fields}"
    kind = data.pop("type")
    return f"{entry_id} {fields.get('seq', '-')} {kind} " + " ".join(
        f"{k}={v}" for k, v in data.items()
    )


if __name__ == "__main__":
    sys.exit(main())
