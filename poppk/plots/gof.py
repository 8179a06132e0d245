"""Goodness-of-fit figures, drawn from :func:`poppk.diagnostics.gof_table` and
:func:`poppk.diagnostics.individual_fit_table`."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from poppk.plots._style import COLORS, add_trend, finish, identity_line, new_figure, unit_suffix

__all__ = [
    "plot_gof",
    "plot_dv_vs_pred",
    "plot_dv_vs_ipred",
    "plot_residuals",
    "plot_individual_fits",
]

_X_LABELS = {"TIME": "Time", "TAFD": "Time after first dose", "TAD": "Time after dose",
             "PRED": "Population prediction (PRED)", "EPRED": "Mean simulated value (EPRED)",
             "IPRED": "Individual prediction (IPRED)"}
_R_LABELS = {"NPDE": "NPDE", "NPD": "NPD", "PWRES": "PWRES (posterior predictive)", "IWRES": "IWRES"}


def _axis(ax: Any):
    if ax is None:
        fig, axes = new_figure(1, 1, panel=(5.0, 4.6))
        return fig, axes[0, 0]
    return ax.figure, ax


def _xlabel(table: pd.DataFrame, col: str) -> str:
    a = table.attrs
    if col in ("TIME", "TAFD", "TAD"):
        return _X_LABELS[col] + unit_suffix(a.get("time_unit"))
    if col in ("PRED", "IPRED", "EPRED", "DV"):
        return _X_LABELS.get(col, "Observed concentration (DV)") + unit_suffix(a.get("concentration_unit"))
    return col


def _dv_vs(table: pd.DataFrame, col: str, *, log: bool, ax: Any, trend: bool) -> Figure:
    fig, ax = _axis(ax)
    q = table[~table["BLQ"].astype(bool)]
    x = q[col].to_numpy(dtype=float)
    y = q["DV"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if log:
        ok &= (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    ax.scatter(x, y, s=12, facecolor="none", edgecolor=COLORS["obs"], lw=0.6, alpha=0.7, label="Observations",
               zorder=3)
    if x.size:
        lo = min(x.min(), y.min())
        hi = max(x.max(), y.max())
        if not log:
            lo = 0.0
        identity_line(ax, lo, hi)
        if trend:
            add_trend(ax, x, y, log_x=log, log_y=log)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(lo / 1.3, hi * 1.3)
            ax.set_ylim(lo / 1.3, hi * 1.3)
        else:
            ax.set_xlim(0, hi * 1.04)
            ax.set_ylim(0, hi * 1.04)
        ax.set_aspect("equal", adjustable="box")
    n_blq = int(table["BLQ"].astype(bool).sum())
    if n_blq:
        ax.text(0.98, 0.02, f"{n_blq} BLQ records not shown", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="#555555")
    ax.set_xlabel(_xlabel(table, col))
    ax.set_ylabel("Observed concentration (DV)" + unit_suffix(table.attrs.get("concentration_unit")))
    ax.grid(alpha=0.25, lw=0.5)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    return fig


def plot_dv_vs_pred(table: pd.DataFrame, *, log: bool = False, ax: Any = None, trend: bool = True) -> Figure:
    """DV against PRED with the identity line and a LOWESS trend (BLQ records left out).

    Parameters
    ----------
    table
        :func:`poppk.diagnostics.gof_table`.
    log
        Log-log axes.
    ax
        Draw into this Axes instead of a new figure.
    trend
        Draw the LOWESS trend.
    """
    return _dv_vs(table, "PRED", log=log, ax=ax, trend=trend)


def plot_dv_vs_ipred(table: pd.DataFrame, *, log: bool = False, ax: Any = None, trend: bool = True) -> Figure:
    """DV against IPRED with the identity line and a LOWESS trend (BLQ records left out)."""
    return _dv_vs(table, "IPRED", log=log, ax=ax, trend=trend)


def plot_residuals(
    table: pd.DataFrame,
    x: str = "TAFD",
    residual: str = "NPDE",
    *,
    log_x: bool = False,
    ax: Any = None,
    trend: bool = True,
) -> Figure:
    """A residual (NPDE, NPD, PWRES, IWRES) against time or a prediction.

    Reference lines at 0 and ±1.96; LOWESS trend in red; BLQ records (NPDE
    from imputed values) drawn as orange triangles.

    Parameters
    ----------
    table
        :func:`poppk.diagnostics.gof_table` (or :func:`~poppk.diagnostics.npde_table`).
    x
        Column for the x axis: ``TAFD``, ``TIME``, ``TAD``, ``PRED``, ``EPRED``, ``IPRED``.
    residual
        ``NPDE`` (default), ``NPD``, ``PWRES`` or ``IWRES``.
    log_x
        Logarithmic x axis (for PRED).
    """
    fig, ax = _axis(ax)
    blq = table["BLQ"].astype(bool).to_numpy()
    xv = table[x].to_numpy(dtype=float)
    rv = table[residual].to_numpy(dtype=float)
    ok = np.isfinite(xv) & np.isfinite(rv)
    if log_x:
        ok &= xv > 0
    ax.scatter(xv[ok & ~blq], rv[ok & ~blq], s=12, facecolor="none", edgecolor=COLORS["obs"], lw=0.6, alpha=0.7,
               label="Observations", zorder=3)
    if (ok & blq).any():
        ax.scatter(xv[ok & blq], rv[ok & blq], s=16, marker="^", facecolor="none", edgecolor=COLORS["blq"], lw=0.8,
                   label="BLQ (imputed)", zorder=3)
    ax.axhline(0, color=COLORS["ref"], lw=1, zorder=2)
    for h in (-1.96, 1.96):
        ax.axhline(h, color=COLORS["ref"], lw=0.8, ls="--", zorder=2)
    if trend:
        add_trend(ax, xv[ok], rv[ok], log_x=log_x)
    if log_x:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    lim = max(3.0, float(np.nanmax(np.abs(rv[ok]))) * 1.05) if ok.any() else 3.0
    ax.set_ylim(-lim, lim)
    ax.set_xlabel(_xlabel(table, x))
    ax.set_ylabel(_R_LABELS.get(residual, residual))
    ax.grid(alpha=0.25, lw=0.5)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    return fig


def plot_gof(table: pd.DataFrame, *, log: bool = False, residual: str = "NPDE", time: str = "TAFD",
             title: str | None = "Goodness of fit") -> Figure:
    """The basic 2×2 goodness-of-fit panel (xpose's ``basic_gof``).

    DV vs PRED, DV vs IPRED (log-log with ``log``), ``residual`` vs time and vs PRED.
    """
    fig, axes = new_figure(2, 2, panel=(5.0, 4.4))
    plot_dv_vs_pred(table, log=log, ax=axes[0, 0])
    plot_dv_vs_ipred(table, log=log, ax=axes[0, 1])
    plot_residuals(table, time, residual, ax=axes[1, 0])
    plot_residuals(table, "PRED", residual, log_x=log, ax=axes[1, 1])
    return finish(fig, title)


def plot_individual_fits(
    curves: Any,
    points: pd.DataFrame | None = None,
    ids: Sequence[Any] | None = None,
    *,
    log_y: bool = False,
    ncols: int = 4,
    max_panels: int = 16,
    title: str | None = None,
) -> Figure:
    """Individual fits: observations, IPRED median with its credible band, PRED.

    Parameters
    ----------
    curves
        The ``curves`` table of :func:`poppk.diagnostics.individual_fit_table`,
        or a :class:`~poppk.model.Fit` (the table is then computed for ``ids``).
    points
        The ``points`` table of the same call (required with a table).
    ids
        Subjects to draw (default: the first ``max_panels`` in the table).
    log_y
        Logarithmic concentration axis.
    ncols
        Panels per row.
    max_panels
        At most this many subjects per figure (page through ``ids`` for more).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(curves, pd.DataFrame):
        from poppk.diagnostics.gof import individual_fit_table

        sel = list(ids) if ids is not None else [
            str(s) for s in list(curves.design.subject_ids)[:max_panels]
        ]
        curves, points = individual_fit_table(curves, sel)
    if points is None:
        raise ValueError("points= is required when curves is a table (see individual_fit_table)")
    all_ids = list(pd.unique(curves["ID"]))
    if ids is not None:
        wanted = {str(i) for i in ids}
        all_ids = [i for i in all_ids if str(i) in wanted]
    show = all_ids[:max_panels]
    n = len(show)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = new_figure(nrows, ncols, panel=(3.4, 2.8), sharex=False)
    a = curves.attrs
    interval = a.get("interval", 0.9)
    for k, sid in enumerate(show):
        ax = axes[k // ncols, k % ncols]
        c = curves[curves["ID"] == sid]
        p = points[points["ID"] == sid]
        for _, seg in c.groupby("SEGMENT", sort=True):
            seg = seg.sort_values("TIME")
            ax.fill_between(seg["TIME"], seg["IPRED_LOWER"], seg["IPRED_UPPER"], color=COLORS["outer_fill"],
                            alpha=0.25, lw=0)
            ax.plot(seg["TIME"], seg["IPRED"], color=COLORS["outer"], lw=1.4)
            ax.plot(seg["TIME"], seg["PRED"], color=COLORS["pred"], lw=1.1, ls="--")
        q = p[~p["BLQ"].astype(bool)]
        ax.scatter(q["TIME"], q["DV"], s=14, color="black", zorder=5)
        b = p[p["BLQ"].astype(bool)]
        if len(b):
            ax.scatter(b["TIME"], b["LLOQ"], s=18, marker="v", facecolor="none", edgecolor=COLORS["blq"], zorder=5)
        if log_y:
            ax.set_yscale("log")
            lo = np.nanmin(np.concatenate([q["DV"].to_numpy(dtype=float), c["IPRED_LOWER"].to_numpy(dtype=float)]))
            pos = c["IPRED_LOWER"].to_numpy(dtype=float)
            pos = pos[pos > 0]
            floor = max(lo if lo > 0 else np.inf, pos.min() if pos.size else 1e-6)
            floor = min(floor, np.nanmin(q["DV"]) if len(q) else floor)
            ax.set_ylim(bottom=floor / 2)
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(f"ID {sid}", fontsize=9)
        ax.grid(alpha=0.25, lw=0.5)
        ax.tick_params(labelsize=8)
        if k + ncols >= n:  # last panel of its column
            ax.set_xlabel("Time" + unit_suffix(a.get("time_unit")), fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("Concentration" + unit_suffix(a.get("concentration_unit")), fontsize=9)
    for k in range(n, nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    handles = [
        Line2D([], [], color="black", lw=0, marker="o", ms=4, label="Observed"),
        Line2D([], [], color=COLORS["outer"], lw=1.4, label=f"IPRED (posterior median, {100 * interval:g}% band)"),
        Line2D([], [], color=COLORS["pred"], lw=1.1, ls="--", label="PRED (typical subject)"),
    ]
    if points["BLQ"].astype(bool).any():
        handles.append(Line2D([], [], color=COLORS["blq"], lw=0, marker="v", mfc="none", label="BLQ (at LLOQ)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    return finish(fig, title or "Individual fits")
