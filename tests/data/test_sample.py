"""Pooling a stream to one row per second (asym.data.sample.per_second), at rates whose seconds
fall between rows: each second takes exactly the rows that start in it."""

from __future__ import annotations

import numpy as np
import pytest

from asym.data.sample import per_second


def _by_hand(n_rows: int, rate: float) -> list[float]:
    """Row i starts at i / rate seconds; second s is the mean of the rows starting in [s, s + 1),
    or, where none does, the last row started before it."""
    times = np.arange(n_rows) / rate
    out, s = [], 0
    while s < times[-1] + 1e-12 or (rate < 1 and s * rate < n_rows):
        inside = np.flatnonzero((times >= s - 1e-9) & (times < s + 1 - 1e-9))
        if inside.size:
            out.append(float(inside.mean()))
        elif rate < 1:
            out.append(float(np.flatnonzero(times <= s + 1e-9)[-1]))
        s += 1
    return out


@pytest.mark.parametrize("rate", [1.0, 2.5, 29.97, 100.0, 0.7, 0.5, 0.25])
@pytest.mark.parametrize("n_rows", [1, 7, 100, 301])
def test_each_second_takes_the_rows_that_start_in_it(rate, n_rows):
    x = np.arange(n_rows, dtype=np.float64)[:, None] * np.ones((1, 3))
    pooled = per_second(x, rate)
    assert pooled[:, 0].tolist() == pytest.approx(_by_hand(n_rows, rate))
    assert np.array_equal(pooled[:, 0], pooled[:, 2])


def test_one_row_a_second_is_the_stream_itself():
    x = np.random.default_rng(0).normal(size=(9, 4))
    assert per_second(x, 1) is x
