"""The one Backoff: doubling to the cap, jitter within its bounds, reset."""

from __future__ import annotations

import random

import pytest

from trader.backoff import Backoff


class FixedRandom(random.Random):
    """A random source that always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_without_jitter_the_delay_doubles_to_the_cap_and_resets() -> None:
    b = Backoff(0.5, 3, jitter=0)
    assert [b.next_delay() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    assert b.attempt == 5
    b.reset()
    assert (b.attempt, b.next_delay()) == (0, 0.5)


def test_full_jitter_spreads_over_the_whole_delay() -> None:
    low, high = Backoff(1, 8, rng=FixedRandom(0.0)), Backoff(1, 8, rng=FixedRandom(0.999999))
    assert [low.next_delay() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert [round(high.next_delay(), 3) for _ in range(5)] == [1, 2, 4, 8, 8]
    delays = [Backoff(1, 8, rng=random.Random(seed)).next_delay() for seed in range(200)]
    assert all(0 <= d < 1 for d in delays)
    assert min(delays) < 0.1 and max(delays) > 0.9  # the whole range is used


def test_partial_jitter_keeps_a_floor() -> None:
    low = Backoff(1, 8, jitter=0.5, rng=FixedRandom(0.0))
    high = Backoff(1, 8, jitter=0.5, rng=FixedRandom(0.999999))
    assert [low.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert [round(high.next_delay(), 3) for _ in range(5)] == [1, 2, 4, 8, 8]
    low.reset()
    assert low.next_delay() == 0.5
    spread = {
        round(Backoff(1, 8, jitter=0.5, rng=random.Random(seed)).next_delay(), 6)
        for seed in range(20)
    }
    assert len(spread) == 20 and all(0.5 <= d < 1 for d in spread)


def test_many_attempts_stay_at_the_cap() -> None:
    b = Backoff(0.001, 30, jitter=0)
    for _ in range(1000):
        delay = b.next_delay()
    assert delay == 30


@pytest.mark.parametrize(
    "args, kwargs",
    [((1, 0.5), {}), ((-1, 1), {}), ((1, 2), {"jitter": 1.5}), ((1, 2), {"jitter": -0.1})],
)
def test_bad_parameters_are_refused(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(*args, **kwargs)
