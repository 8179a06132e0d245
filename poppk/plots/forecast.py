"""Figures of one patient's forecast: draw what :func:`poppk.forecast.forecast` computed."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_forecast_curve", "plot_exposure"]

_IND, _POP = "#1f5fa8", "#9a9a9a"


def plot_forecast_curve(fc: Any, ax: Any = None) -> Any:
    """Her forecast concentration curve (median, 50% and 90% bands), the population's 90% band,
    her measured concentrations (BLQ as open triangles at the LLOQ) and the doses."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    s = fc.summary
    t = s["time"].values
    pop = s["conc"].sel(prediction="population")
    ind = s["conc"].sel(prediction="individual")
    ax.fill_between(t, pop.sel(quantile=0.05), pop.sel(quantile=0.95), color=_POP, alpha=0.25,
                    label="population 90% (covariates only)")
    if fc.record.n_obs:
        ax.fill_between(t, ind.sel(quantile=0.05), ind.sel(quantile=0.95), color=_IND, alpha=0.2,
                        label="her forecast 90%")
        ax.fill_between(t, ind.sel(quantile=0.25), ind.sel(quantile=0.75), color=_IND, alpha=0.3)
        ax.plot(t, ind.sel(quantile=0.5), color=_IND, lw=1.6, label="her forecast median")
        o = fc.record.observations
        blq = o["BLQ"].astype(bool).to_numpy()
        ax.plot(o["TIME"][~blq], o["DV"][~blq], "o", color="k", ms=5, label="measured")
        if blq.any():
            ax.plot(o["TIME"][blq], o["LLOQ"][blq], "v", mfc="none", color="k", ms=6, label="below LLOQ")
    else:
        ax.plot(t, pop.sel(quantile=0.5), color=_POP, lw=1.6, label="population median")
    for dt in np.unique(fc.record.doses["TIME"].to_numpy(dtype=float)):
        ax.axvline(dt, color="k", lw=0.5, ls=":", alpha=0.6)
    ax.set_yscale("log")
    lo = float(np.nanmin(np.where(pop.sel(quantile=0.05) > 0, pop.sel(quantile=0.05), np.nan)))
    ax.set_ylim(bottom=max(lo, float(np.nanmax(pop.sel(quantile=0.95))) * 1e-3))
    ax.set_xlabel(f"time ({fc.time_unit})")
    ax.set_ylabel(f"concentration ({fc.spec.unit.get('concentration', '')})")
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    return ax


def plot_exposure(fc: Any, recommendation: Any = None, ax: Any = None) -> Any:
    """Her exposure intervals beside the population's (5-95%, median), per metric, relative to the
    population median; the target range (if any) as a band."""
    import matplotlib.pyplot as plt

    metrics = list(fc.summary["metric"].values)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(metrics) + 1.0))
    e = fc.summary["exposure"]
    for i, m in enumerate(metrics):
        ref = float(e.sel(prediction="population", metric=m, quantile=0.5))
        for pred, off, color in (("population", 0.15, _POP), ("individual", -0.15, _IND)):
            q = e.sel(prediction=pred, metric=m).values / ref
            ax.plot([q[0], q[-1]], [i + off] * 2, color=color, lw=3, solid_capstyle="butt")
            ax.plot([q[2]], [i + off], "o", color=color, ms=5)
    ax.axvline(1.0, color="k", lw=0.5)
    ax.set_yticks(range(len(metrics)))
    ax.set_yticklabels(metrics)
    ax.set_xscale("log")
    ax.set_xlabel("exposure / population median (blue: her forecast, grey: population), current doses")
    ax.invert_yaxis()
    return ax
