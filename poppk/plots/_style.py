"""Shared figure helpers: figure creation, colours, a LOWESS trend line.

Figures are created with :class:`matplotlib.figure.Figure` directly (no
pyplot state, Agg canvas), so plotting never opens windows or leaks figures;
in Jupyter a returned Figure is displayed inline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["new_figure", "COLORS", "lowess", "add_trend", "identity_line", "unit_suffix", "finish"]

#: Colour conventions (xpose/PsN): observed black/grey, trend red, medians red, outer percentiles blue.
COLORS = {
    "obs": "#5a5a5a",
    "obs_light": "#a0a0a0",
    "trend": "#d62728",
    "median": "#c0392b",
    "median_fill": "#e74c3c",
    "outer": "#1f4e9c",
    "outer_fill": "#3b7dd8",
    "blq": "#e67e22",
    "ref": "#000000",
    "pred": "#2ca02c",
}


def new_figure(nrows: int = 1, ncols: int = 1, *, panel: tuple[float, float] = (4.2, 3.6), **kw: Any):
    """A Figure with a grid of axes (``squeeze=False``) sized per panel."""
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def unit_suffix(unit: str | None) -> str:
    """``" (unit)"`` or ``""``."""
    return f" ({unit})" if unit else ""


#: At most this many points anchor the robustness passes of :func:`lowess` (residuals elsewhere are interpolated).
LOWESS_ANCHORS = 300
#: Elements per block of the (evaluation points x data) weight arrays in :func:`lowess`.
_LOWESS_BLOCK = 1 << 20


def lowess(x: np.ndarray, y: np.ndarray, *, frac: float = 2 / 3, n_points: int = 60, iterations: int = 2,
           log_x: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Locally weighted linear regression (Cleveland 1979) evaluated on a grid.

    Tricube weights over the ``frac`` nearest neighbours, ``iterations``
    robustifying passes with bisquare weights.  Used only to draw trend
    lines.  Returns ``(grid, fitted)``; empty arrays with fewer than 5 points.

    Memory stays O(n) whatever the number of points n: the local fits are
    computed in blocks of rows, and with more than :data:`LOWESS_ANCHORS`
    points the robustness residuals come from fits at that many anchors (half
    at quantiles of x, half evenly spaced over its range), linearly
    interpolated as in the ``delta`` shortcut of Cleveland's lowess, so the
    work is O(n x anchors) rather than O(n^2).  Up to that many points the
    result is the exact smoother.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if log_x:
        ok &= x > 0
    x, y = x[ok], y[ok]
    if log_x:
        x = np.log(x)
    n = x.size
    if n < 5 or np.ptp(x) == 0:
        return np.array([]), np.array([])
    k = max(3, min(n, int(np.ceil(frac * n))))
    robust = np.ones(n)

    def fit_block(x0: np.ndarray) -> np.ndarray:
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

    def fit_at(x0: np.ndarray) -> np.ndarray:
        rows = max(1, _LOWESS_BLOCK // n)
        return np.concatenate([fit_block(x0[i:i + rows]) for i in range(0, x0.size, rows)])

    if n <= LOWESS_ANCHORS:
        def fitted_at_data() -> np.ndarray:
            return fit_at(x)
    else:
        xs = np.sort(x)
        half = LOWESS_ANCHORS // 2  # quantiles where the data are dense, an even grid where they are sparse
        anchors = np.unique(np.concatenate([xs[np.round(np.linspace(0, n - 1, half)).astype(int)],
                                            np.linspace(xs[0], xs[-1], LOWESS_ANCHORS - half)]))

        def fitted_at_data() -> np.ndarray:
            return np.interp(x, anchors, fit_at(anchors))

    for _ in range(iterations):
        resid = y - fitted_at_data()
        s = np.median(np.abs(resid))
        if s <= 0:
            break
        u = np.clip(resid / (6 * s), -1, 1)
        robust = (1 - u**2) ** 2
    grid = np.linspace(x.min(), x.max(), n_points)
    fitted = fit_at(grid)
    return (np.exp(grid) if log_x else grid), fitted


def add_trend(ax: Any, x: np.ndarray, y: np.ndarray, *, log_x: bool = False, log_y: bool = False,
              label: str | None = "LOWESS trend", **kw: Any) -> None:
    """Draw a LOWESS trend line of y on x (on log axes when asked)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if log_y:
        ok = y > 0
        x, y = x[ok], np.log(y[ok])
    gx, gy = lowess(x, y, log_x=log_x)
    if gx.size:
        ax.plot(gx, np.exp(gy) if log_y else gy, color=kw.pop("color", COLORS["trend"]), lw=kw.pop("lw", 1.8),
                label=label, zorder=kw.pop("zorder", 5), **kw)


def identity_line(ax: Any, lo: float, hi: float) -> None:
    """A y = x line from lo to hi."""
    ax.plot([lo, hi], [lo, hi], color=COLORS["ref"], lw=1, label="Identity", zorder=4)


def finish(fig: Figure, title: str | None = None) -> Figure:
    """Add a figure title."""
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig
