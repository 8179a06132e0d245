"""Random-effect figures: η distributions and η against covariates, drawn from
:func:`poppk.diagnostics.eta_table` (and optionally
:func:`~poppk.diagnostics.eta_covariate_table` for the annotations)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from poppk.plots._style import COLORS, add_trend, finish, new_figure, unit_suffix

__all__ = ["plot_eta_distributions", "plot_eta_covariates"]


from poppk.diagnostics.random_effects import is_continuous as _is_continuous  # noqa: E402
from poppk.diagnostics.random_effects import level_labels as _level_labels  # noqa: E402


def plot_eta_distributions(table: pd.DataFrame, *, title: str | None = "Random effects") -> Figure:
    """Histogram of each η with the N(0, ω²) density of the model, and a Q-Q plot.

    Parameters
    ----------
    table
        :func:`poppk.diagnostics.eta_table` (its ``attrs`` give ω and shrinkage).
    """
    params = table.attrs.get("parameters") or [c[4:] for c in table.columns
                                                if c.startswith("eta_") and not c.endswith("_sd")]
    omega = table.attrs.get("omega", {})
    shrink = table.attrs.get("shrinkage", {})
    fig, axes = new_figure(2, len(params), panel=(3.8, 3.2))
    for j, p in enumerate(params):
        e = table[f"eta_{p}"].to_numpy(dtype=float)
        e = e[np.isfinite(e)]
        w = omega.get(p, np.nan)
        lim = max(np.abs(e).max() * 1.1 if e.size else 1.0, 3 * w if np.isfinite(w) else 0)
        ax = axes[0, j]
        ax.hist(e, bins=min(25, max(6, int(np.sqrt(e.size)) + 2)), range=(-lim, lim), density=True,
                color=COLORS["outer_fill"], alpha=0.45, edgecolor="white", label="Posterior mean η")
        if np.isfinite(w):
            g = np.linspace(-lim, lim, 200)
            ax.plot(g, stats.norm.pdf(g, 0, w), color=COLORS["ref"], lw=1.3, label=f"N(0, ω²), ω = {w:.3g}")
        ax.axvline(0, color="#888888", lw=0.8)
        sh = shrink.get(p)
        ax.set_title(f"η {p}" + (f"  (shrinkage {sh:.0f}%)" if sh is not None else ""), fontsize=10)
        ax.set_xlabel(f"η {p}")
        ax.set_ylabel("Density")
        ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.grid(alpha=0.25, lw=0.5)
        ax = axes[1, j]
        if e.size:
            srt = np.sort(e)
            theo = stats.norm.ppf((np.arange(1, e.size + 1) - 0.5) / e.size)
            ax.scatter(theo, srt, s=14, facecolor="none", edgecolor=COLORS["obs"], lw=0.7)
            if np.isfinite(w):
                ax.plot(theo, w * theo, color=COLORS["ref"], lw=1, label="N(0, ω²)")
                ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.set_xlabel("Theoretical N(0, 1) quantiles")
        ax.set_ylabel(f"η {p} quantiles")
        ax.grid(alpha=0.25, lw=0.5)
    return finish(fig, title)


def plot_eta_covariates(
    table: pd.DataFrame,
    stats_table: pd.DataFrame | None = None,
    *,
    covariates: Sequence[str] | None = None,
    parameters: Sequence[str] | None = None,
    ncols: int = 5,
    title: str | None = "Random effects vs covariates",
) -> Figure:
    """η against each covariate: scatter with LOWESS trend (continuous), box plots (categorical).

    One block of panels per parameter, ``ncols`` covariates per row.
    Covariates with a single value, and columns identical to an earlier one
    (e.g. TBW derived from WT), are left out.  With ``stats_table`` each
    panel prints r and the regression p-value (ANOVA p for categories), in
    bold red when p < 0.01.

    Parameters
    ----------
    table
        :func:`poppk.diagnostics.eta_table`.
    stats_table
        :func:`poppk.diagnostics.eta_covariate_table`, to print r / p in each panel.
    covariates, parameters
        Subsets to draw (default: all).
    ncols
        Panels per row.
    """
    params = list(parameters or table.attrs.get("parameters") or [])
    covs = []
    for c in list(covariates or table.attrs.get("covariates") or []):
        col = table[c]
        if col.nunique(dropna=True) < 2 or any(col.equals(table[k]) for k in covs):
            continue
        covs.append(c)
    if not covs or not params:
        fig, axes = new_figure(1, 1)
        axes[0, 0].text(0.5, 0.5, "No varying covariates in the data", ha="center", va="center")
        axes[0, 0].set_axis_off()
        return finish(fig, title)
    units = table.attrs.get("units", {})
    shrink = table.attrs.get("shrinkage", {})
    ncols = max(1, min(ncols, len(covs)))
    rows_per = int(np.ceil(len(covs) / ncols))
    fig, axes = new_figure(rows_per * len(params), ncols, panel=(3.2, 2.7))
    for i, p in enumerate(params):
        e = table[f"eta_{p}"].to_numpy(dtype=float)
        for j, c in enumerate(covs):
            ax = axes[i * rows_per + j // ncols, j % ncols]
            xv = table[c]
            ok = xv.notna().to_numpy() & np.isfinite(e)
            if _is_continuous(xv[ok]):
                x = pd.to_numeric(xv[ok]).to_numpy(dtype=float)
                ax.scatter(x, e[ok], s=14, facecolor="none", edgecolor=COLORS["obs"], lw=0.7)
                add_trend(ax, x, e[ok], label=None)
            else:
                labels = _level_labels(xv[ok])
                levels = sorted(pd.unique(labels))
                data = [e[ok][labels == lv] for lv in levels]
                ax.boxplot(data, positions=np.arange(len(levels)), widths=0.5, showfliers=False,
                           medianprops={"color": COLORS["trend"]})
                rng = np.random.default_rng(0)
                for k, d in enumerate(data):
                    ax.scatter(k + rng.uniform(-0.12, 0.12, d.size), d, s=10, facecolor="none",
                               edgecolor=COLORS["obs"], lw=0.6)
                ax.set_xticks(np.arange(len(levels)), levels)
            ax.axhline(0, color=COLORS["ref"], lw=0.8)
            if stats_table is not None:
                r = stats_table[(stats_table["parameter"] == p) & (stats_table["covariate"] == c)]
                if len(r):
                    r = r.iloc[0]
                    txt = (f"r = {r['r']:.2f}, p = {r['p_value']:.2g}" if r["type"] == "continuous"
                           else f"ANOVA p = {r['p_value']:.2g}")
                    strong = np.isfinite(r["p_value"]) and r["p_value"] < 0.01
                    ax.text(0.03, 0.97, txt, transform=ax.transAxes, ha="left", va="top", fontsize=7.5,
                            color=COLORS["trend"] if strong else "#333333",
                            fontweight="bold" if strong else "normal",
                            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.0})
            ax.set_xlabel(f"{c}{unit_suffix(units.get(c))}", fontsize=9)
            if j % ncols == 0:
                sh = shrink.get(p)
                ax.set_ylabel(f"η {p}" + (f"\n(shrinkage {sh:.0f}%)" if sh is not None else ""))
            ax.grid(alpha=0.25, lw=0.5)
            ax.tick_params(labelsize=8)
        for j in range(len(covs), rows_per * ncols):
            axes[i * rows_per + j // ncols, j % ncols].set_visible(False)
    return finish(fig, title)
