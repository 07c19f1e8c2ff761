"""Secrets: credentials from the environment only, each from its variable or from a file the
variable names (``TRADER_API_SECRET_FILE``, e.g. a systemd credential); never part of any
output."""

from __future__ import annotations

import os
import re
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

from trader.errors import ConfigError


@dataclass(frozen=True)
class Secrets:
    """Credentials, from the environment only; never part of any output.

    Each comes from its variable (``TRADER_API_SECRET``) or from a file named by the variable
    with ``_FILE`` appended (``TRADER_API_SECRET_FILE``, e.g. a systemd credential); a file that
    its group or others may read is refused.
    """

    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    api_password: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    alert_urls: str | None = field(default=None, repr=False)  # apprise URLs: bot tokens
    api_token: str | None = field(default=None, repr=False)  # the operator API's token

    ENV: typing.ClassVar[dict[str, str]] = {
        "api_key": "TRADER_API_KEY",
        "api_secret": "TRADER_API_SECRET",
        "api_password": "TRADER_API_PASSWORD",
        "redis_password": "TRADER_REDIS_PASSWORD",
        "alert_urls": "TRADER_ALERT_URLS",
        "api_token": "TRADER_API_TOKEN",
    }

    @property
    def has_keys(self) -> bool:
        """True when both key and secret are set."""
        return bool(self.api_key and self.api_secret)

    def values(self) -> tuple[str, ...]:
        """Every secret value that is set (for scrubbing output); each alert URL on its own
        too, so one of several is scrubbed wherever it appears."""
        values = tuple(v for name in self.ENV if (v := getattr(self, name)))
        return values + self.alert_url_list()

    def alert_url_list(self) -> tuple[str, ...]:
        """The apprise URLs of ``TRADER_ALERT_URLS`` (separated by spaces, commas or lines)."""
        return tuple(u for u in re.split(r"[\s,]+", self.alert_urls or "") if u)


SECRET_FILE_SUFFIX = "_FILE"
MAX_SECRET_BYTES = 64 * 1024


def read_secrets(env: Mapping[str, str]) -> tuple[Secrets, dict[str, str]]:
    """The secrets and where each came from (variable name -> ``environment``, ``file PATH``
    or ``not set``)."""
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for name, var in Secrets.ENV.items():
        direct, path = env.get(var) or None, env.get(var + SECRET_FILE_SUFFIX) or None
        if direct and path:
            raise ConfigError(f"set {var} or {var}{SECRET_FILE_SUFFIX}, not both")
        if path:
            values[name] = _read_secret_file(var + SECRET_FILE_SUFFIX, path)
            sources[var] = f"file {path} ({var}{SECRET_FILE_SUFFIX})"
        else:
            values[name] = direct
            sources[var] = "environment" if direct else "not set"
    return Secrets(**values), sources


def _read_secret_file(var: str, path: str) -> str:
    """The stripped content of a secret file that only its owner may read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{var}: {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{var}: {path} has mode {mode:04o}; a secret file must be readable by its owner "
                f"only (chmod 600 {path})"
            )
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{var}: cannot read {path}: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"{var}: the path contains a NUL byte") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"{var}: {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{var}: {path} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{var}: {path} is empty")
    return text
