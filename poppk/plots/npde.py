"""NPDE figure (the four panels of the ``npde`` R package), drawn from
:func:`poppk.diagnostics.npde_table` or :func:`~poppk.diagnostics.gof_table`."""

from __future__ import annotations


import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from poppk.plots._style import COLORS, finish, new_figure
from poppk.plots.gof import plot_residuals

__all__ = ["plot_npde"]


def plot_npde(
    table: pd.DataFrame,
    tests: pd.DataFrame | None = None,
    *,
    time: str = "TAFD",
    pred: str | None = None,
    title: str | None = "NPDE",
) -> Figure:
    """QQ-plot and histogram of the NPDE against N(0, 1), NPDE against time and prediction.

    Parameters
    ----------
    table
        A table with an ``NPDE`` column (:func:`~poppk.diagnostics.npde_table`
        or :func:`~poppk.diagnostics.gof_table`).
    tests
        :func:`~poppk.diagnostics.npde_tests` output, shown in the histogram panel.
    time
        Time column for the third panel.
    pred
        Prediction column for the fourth panel (default ``PRED`` when present,
        else ``EPRED``).
    """
    x = table["NPDE"].to_numpy(dtype=float)
    x = np.sort(x[np.isfinite(x)])
    n = x.size
    fig, axes = new_figure(2, 2, panel=(5.0, 4.2))
    ax = axes[0, 0]
    if n:
        theo = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
        ax.scatter(theo, x, s=10, facecolor="none", edgecolor=COLORS["obs"], lw=0.6)
        lim = max(3.0, np.abs(x).max() * 1.05, np.abs(theo).max() * 1.05)
        ax.plot([-lim, lim], [-lim, lim], color=COLORS["ref"], lw=1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_xlabel("Theoretical N(0, 1) quantiles")
    ax.set_ylabel("Sample quantiles (NPDE)")
    ax.set_title("Q-Q plot vs N(0, 1)", fontsize=10)
    ax.grid(alpha=0.25, lw=0.5)

    ax = axes[0, 1]
    if n:
        lim = max(4.0, np.abs(x).max() * 1.05)
        ax.hist(x, bins=min(30, max(8, int(np.sqrt(n)))), range=(-lim, lim), density=True, color=COLORS["outer_fill"],
                alpha=0.45, edgecolor="white")
        g = np.linspace(-lim, lim, 200)
        ax.plot(g, stats.norm.pdf(g), color=COLORS["ref"], lw=1.3, label="N(0, 1)")
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.set_xlabel("NPDE")
    ax.set_ylabel("Density")
    ax.set_title("Histogram", fontsize=10)
    if tests is not None:
        t = tests
        txt = (f"mean {t.loc['mean', 'value']:+.3f} (p={t.loc['t-test', 'p_value']:.3g})\n"
               f"variance {t.loc['variance', 'value']:.3f} (p={t.loc['Fisher variance test', 'p_value']:.3g})\n"
               f"normality SW p={t.loc['SW test of normality', 'p_value']:.3g}\n"
               f"global p={t.loc['global test', 'p_value']:.3g}  (n={int(t['n'].iloc[0])})")
        ax.text(0.98, 0.97, txt, transform=ax.transAxes, ha="right", va="top", fontsize=7.5,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"})
    ax.grid(alpha=0.25, lw=0.5)

    if time in table:
        plot_residuals(table, time, "NPDE", ax=axes[1, 0])
    else:
        axes[1, 0].set_visible(False)
    pred = pred or ("PRED" if "PRED" in table else "EPRED")
    if pred in table:
        plot_residuals(table, pred, "NPDE", ax=axes[1, 1])
    else:
        axes[1, 1].set_visible(False)
    return finish(fig, title)
