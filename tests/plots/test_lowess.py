"""The LOWESS trend line: same curve as the exact n x n smoother, memory that does not grow as n^2."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from poppk.plots._style import LOWESS_ANCHORS, lowess


def _exact_lowess(x, y, *, frac=2 / 3, n_points=60, iterations=2):
    """The former implementation: every local fit against every point at once (n x n arrays)."""
    n = x.size
    k = max(3, min(n, int(np.ceil(frac * n))))
    robust = np.ones(n)

    def fit_at(x0):
        d = np.abs(x[None, :] - x0[:, None])
        h = np.partition(d, k - 1, axis=1)[:, k - 1]
        h = np.where(h > 0, h, np.max(d, axis=1) + 1e-12)
        u = np.clip(d / h[:, None], 0, 1)
        w = (1 - u**3) ** 3 * robust[None, :]
        sw = w.sum(1)
        mx = (w * x).sum(1) / sw
        my = (w * y).sum(1) / sw
        sxx = (w * (x - mx[:, None]) ** 2).sum(1)
        sxy = (w * (x - mx[:, None]) * (y - my[:, None])).sum(1)
        slope = np.where(sxx > 1e-12 * np.maximum(sw, 1e-300), sxy / np.where(sxx > 0, sxx, 1), 0.0)
        return my + slope * (x0 - mx)

    for _ in range(iterations):
        resid = y - fit_at(x)
        s = np.median(np.abs(resid))
        if s <= 0:
            break
        u = np.clip(resid / (6 * s), -1, 1)
        robust = (1 - u**2) ** 2
    grid = np.linspace(x.min(), x.max(), n_points)
    return grid, fit_at(grid)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(1.0, 0.8, size=n)
    y = np.sin(x / 3) + 0.3 * rng.standard_t(3, size=n)  # heavy tails exercise the robustness passes
    return x, y


@pytest.mark.parametrize("n", [300, 2000])
@pytest.mark.parametrize("log_x", [False, True])
def test_same_curve_as_the_exact_smoother(n, log_x):
    x, y = _data(n)
    gx, gy = lowess(x, y, log_x=log_x)
    ex, ey = _exact_lowess(np.log(x) if log_x else x, y)
    ex = np.exp(ex) if log_x else ex
    np.testing.assert_allclose(gx, ex)
    tol = 1e-10 if n <= LOWESS_ANCHORS else 1e-3 * np.ptp(ey)
    np.testing.assert_allclose(gy, ey, atol=tol, rtol=0)


def test_twenty_thousand_points_in_bounded_memory():
    # the n x n smoother needed 20,000^2 x 8 bytes = 3.2 GB for each of its temporaries
    x, y = _data(20_000, seed=1)
    tracemalloc.start()
    try:
        gx, gy = lowess(x, y, log_x=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150e6, f"peak {peak / 1e6:.0f} MB"
    assert gx.size == 60 and np.isfinite(gy).all()
    assert abs(gy[len(gy) // 2] - np.sin(gx[len(gx) // 2] / 3)) < 0.2
