"""LOO-PIT figure, drawn from :func:`poppk.diagnostics.predictive.pit_table`."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from poppk.plots._style import COLORS, finish, new_figure

__all__ = ["plot_loo_pit"]


def plot_loo_pit(hist: pd.DataFrame, ecdf: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Histogram of the PIT values and their ECDF minus the uniform CDF, with the bands of uniformity.

    Parameters
    ----------
    hist, ecdf
        The two tables of :func:`poppk.diagnostics.predictive.pit_table`.
    title
        Figure title (default: says how many values and whether the ECDF stays in its band).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = new_figure(1, 2, panel=(4.6, 3.8))
    ax = axes[0, 0]
    width = hist["upper"] - hist["lower"]
    ax.bar(hist["lower"], hist["count"], width=width, align="edge", color=COLORS["outer_fill"], alpha=0.6,
           edgecolor="white", label="LOO-PIT values")
    ax.fill_between(pd.concat([hist["lower"], hist["upper"].iloc[-1:]]),
                    list(hist["band_lower"]) + [hist["band_lower"].iloc[-1]],
                    list(hist["band_upper"]) + [hist["band_upper"].iloc[-1]],
                    step="post", color="#999999", alpha=0.25, lw=0, label="Uniform, 95% band per bin")
    ax.axhline(float(hist["expected"].iloc[0]), color=COLORS["ref"], lw=1, ls="--", label="Uniform (expected)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("LOO-PIT (probability, no unit)")
    ax.set_ylabel("Number of observations")
    ax = axes[0, 1]
    ax.fill_between(ecdf["pit"], -ecdf["band"], ecdf["band"], color="#999999", alpha=0.25, lw=0,
                    label=f"{100 * ecdf.attrs.get('prob', 0.95):g}% simultaneous band")
    ax.plot(ecdf["pit"], ecdf["ecdf_minus_uniform"], color=COLORS["median"], lw=1.6, label="ECDF − uniform CDF")
    ax.axhline(0, color=COLORS["ref"], lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("LOO-PIT (probability, no unit)")
    ax.set_ylabel("ECDF − uniform CDF")
    handles = [h for a in axes[0] for h in a.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if title is None:
        n = ecdf.attrs.get("n", len(ecdf))
        verdict = "leaves" if ecdf.attrs.get("outside") else "stays inside"
        title = f"LOO-PIT of {n} observations: the ECDF {verdict} its band of uniformity"
    return finish(fig, title)
