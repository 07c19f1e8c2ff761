"""The Prometheus text exposition format (version 0.0.4), written by hand: a few dozen lines
and no runtime dependency. Every family gets its ``# HELP`` and ``# TYPE`` lines once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol, Sequence


class Buckets(Protocol):
    """A histogram snapshot: per-bucket counts (not cumulative; the last is +Inf), their sum."""

    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        """How many values."""
        ...


class Exposition:
    """Writes families in the Prometheus text format."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._families: set[str] = set()

    def _family(self, name: str, kind: str, help_: str) -> None:
        if name not in self._families:  # a histogram family is written one series at a time
            self._families.add(name)
            self._lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]

    def counter(self, name: str, help_: str, samples: list[tuple[dict, Any]]) -> None:
        """A counter family (name ends in ``_total``)."""
        self._family(name, "counter", help_)
        self._samples(name, samples)

    def gauge(self, name: str, help_: str, samples: list[tuple[dict, Any]]) -> None:
        """A gauge family."""
        self._family(name, "gauge", help_)
        self._samples(name, samples)

    def histogram(self, name: str, help_: str, labels: dict, bounds: Sequence[float],
                  h: Buckets) -> None:
        """One histogram series with upper ``bounds`` in seconds (call again with other labels
        for more series)."""
        self._family(name, "histogram", help_)
        cumulative = 0
        for bound, n in zip((*bounds, "+Inf"), h.counts):
            cumulative += n
            self._samples(f"{name}_bucket", [({**labels, "le": _value(bound)}, cumulative)])
        self._samples(f"{name}_sum", [(labels, h.sum_s)])
        self._samples(f"{name}_count", [(labels, h.count)])

    def _samples(self, name: str, samples: list[tuple[dict, Any]]) -> None:
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            self._lines.append(f"{name}{{{text}}} {_value(value)}" if text
                               else f"{name} {_value(value)}")

    def text(self) -> str:
        """The exposition, one line per HELP, TYPE and sample."""
        return "\n".join(self._lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, Decimal):
        return str(float(v))
    return repr(float(v)) if isinstance(v, float) else str(v)
