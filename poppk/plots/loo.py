"""LOO figures: model comparison and Pareto k, drawn from
:func:`poppk.diagnostics.compare` and :func:`~poppk.diagnostics.loo_pointwise`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from poppk.plots._style import COLORS, finish, new_figure

__all__ = ["plot_compare", "plot_pareto_k"]


def plot_compare(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """ELPD-LOO of each model with ±SE, and the difference to the best with ±dSE
    (as :func:`arviz.plot_compare`); best model on top."""
    t = table.sort_values("rank")
    n = len(t)
    fig, axes = new_figure(1, 1, panel=(7.5, 0.6 * n + 1.6))
    ax = axes[0, 0]
    y = np.arange(n)[::-1]
    ax.errorbar(t["elpd"], y, xerr=t["se"], fmt="o", mfc="white", color="black", capsize=3, label="ELPD-LOO ± SE")
    best = float(t["elpd"].iloc[0])
    if n > 1:
        ax.errorbar(best + t["d_elpd"].iloc[1:] * -1, y[1:] - 0.25, xerr=t["dse"].iloc[1:], fmt="^",
                    color="#888888", capsize=3, label="Difference to best ± SE")
    ax.axvline(best, color="#888888", ls="--", lw=0.8)
    labels = [f"{m}  (weight {w:.2f}{', k>0.7: ' + str(int(k)) if k else ''})"
              for m, w, k in zip(t.index, t["weight"], t.get("n_k_gt_0.7", pd.Series(0, index=t.index)))]
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"ELPD-LOO (log score, leave one {table.attrs.get('by', 'subject')} out; higher is better)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.grid(alpha=0.25, lw=0.5, axis="x")
    ax.set_ylim(-0.7, n - 0.5)
    how = ", η integrated out" if table.attrs.get("loo_method") == "integrated" else ""
    return finish(fig, title or f"Model comparison (PSIS-LOO{how})")


def plot_pareto_k(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Pareto k of every left-out unit with the 0.5 / 0.7 / 1 thresholds."""
    fig, axes = new_figure(1, 1, panel=(7.0, 3.6))
    ax = axes[0, 0]
    k = table["pareto_k"].to_numpy(dtype=float)
    color = np.where(k > 1, "#8e0000", np.where(k > 0.7, COLORS["trend"], np.where(k > 0.5, COLORS["blq"], COLORS["obs"])))
    ax.scatter(np.arange(k.size), k, s=16, c=color, marker="+" if k.size > 200 else "o")
    for h, ls in ((0.5, ":"), (0.7, "--"), (1.0, "-")):
        ax.axhline(h, color="#555555", lw=0.8, ls=ls)
    unit = table.columns[0]
    for i in np.flatnonzero(k > 0.7):
        ax.annotate(str(table[unit].iloc[i]), (i, k[i]), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("Subject (data order; high k labelled by ID)" if unit == "id"
                  else "Observation (data order; high k labelled by index)")
    ax.set_ylabel("Pareto k")
    ax.grid(alpha=0.25, lw=0.5)
    n_bad = int((k > 0.7).sum())
    return finish(fig, title or f"PSIS-LOO Pareto k ({n_bad} of {k.size} above 0.7)")
