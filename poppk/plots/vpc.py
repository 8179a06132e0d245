"""VPC / pcVPC figure, drawn from :func:`poppk.diagnostics.vpc_table`."""

from __future__ import annotations


import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from poppk.plots._style import COLORS, finish

__all__ = ["plot_vpc"]


def _pct_label(p: float) -> str:
    p_txt = f"{p:g}"
    suffix = "th"
    if p_txt.endswith("1") and not p_txt.endswith("11"):
        suffix = "st"
    elif p_txt.endswith("2") and not p_txt.endswith("12"):
        suffix = "nd"
    elif p_txt.endswith("3") and not p_txt.endswith("13"):
        suffix = "rd"
    return "median" if p == 50 else f"{p_txt}{suffix}"


def plot_vpc(
    table: pd.DataFrame,
    observations: pd.DataFrame | None = None,
    *,
    log_y: bool = False,
    show_bins: bool = True,
    title: str | None = None,
    panel_size: tuple[float, float] = (6.0, 4.2),
) -> Figure:
    """Draw a VPC (or pcVPC) from its table.

    Observed percentiles are lines with points (median solid red, outer
    percentiles dashed blue; points outside the simulated interval are
    filled); the interval of each simulated percentile is a shaded band (red
    for the median, blue for the others).  With BLQ data a lower panel
    shows the observed fraction BLQ per bin against its simulated median and
    interval (censored VPC).  One column per stratum.

    Parameters
    ----------
    table
        Output of :func:`poppk.diagnostics.vpc_table`.
    observations
        Optional :func:`poppk.diagnostics.vpc_observations` (same settings)
        to draw the observations as grey points.
    log_y
        Logarithmic concentration axis.
    show_bins
        Mark the bin boundaries with light vertical lines.
    title
        Figure title (default: kind and number of simulated studies).
    panel_size
        Width and height of each concentration panel (inches).

    Returns
    -------
    matplotlib.figure.Figure
    """
    attrs = table.attrs
    strata = list(pd.unique(table["strata"]))
    blq_panel = bool(attrs.get("has_lloq")) and (
        (table["blq_observed"] > 0).any() or (table["blq_sim_upper"] > 0).any()
    )
    nrows = 2 if blq_panel else 1
    fig = Figure(figsize=(max(8.0, panel_size[0] * len(strata)), panel_size[1] * (1.35 if blq_panel else 1) + 1.0),
                 layout="constrained")
    axes = fig.subplots(nrows, len(strata), squeeze=False, sharex="col",
                        gridspec_kw={"height_ratios": [3, 1] if blq_panel else [1]})
    ci_pct = f"{100 * attrs.get('ci', 0.9):g}%"
    pcts = sorted(table["percentile"].unique())
    for j, s in enumerate(strata):
        ax = axes[0, j]
        t = table[table["strata"] == s]
        if observations is not None and len(observations):
            o = observations[observations["STRATUM"] == s] if "STRATUM" in observations else observations
            q = o[~o["BLQ"]]
            ax.scatter(q["X"], q["DV"], s=7, color=COLORS["obs_light"], alpha=0.55, lw=0, zorder=1)
        lloq = t["lloq"].to_numpy()
        for p in pcts:
            r = t[t["percentile"] == p].sort_values("bin_mid")
            x = r["bin_mid"].to_numpy()
            lo = r["sim_lower"].to_numpy()
            hi = r["sim_upper"].to_numpy()
            floor = np.where(np.isfinite(r["lloq"].to_numpy()), r["lloq"].to_numpy(), np.nan)
            lo_draw = np.where(np.isnan(lo) & np.isfinite(hi), floor, lo)
            is_med = p == 50
            fill = COLORS["median_fill"] if is_med else COLORS["outer_fill"]
            line = COLORS["median"] if is_med else COLORS["outer"]
            ax.fill_between(x, lo_draw, hi, color=fill, alpha=0.28 if is_med else 0.22, lw=0, zorder=2)
            obs = r["observed"].to_numpy()
            ax.plot(x, obs, color=line, lw=1.8, ls="-" if is_med else "--", zorder=4)
            out = r["outside"].to_numpy(dtype=bool)
            ax.scatter(x[~out], obs[~out], s=22, facecolor="white", edgecolor=line, lw=1.3, zorder=5)
            ax.scatter(x[out], obs[out], s=30, facecolor=line, edgecolor=line, lw=1.3, zorder=6)
        if np.isfinite(lloq).any():
            ll = float(np.nanmedian(lloq))
            ax.axhline(ll, color="black", ls=":", lw=1, zorder=3)
        if show_bins:
            edges = np.unique(np.concatenate([t["bin_lower"].to_numpy(), t["bin_upper"].to_numpy()]))
            for e in edges:
                for a in axes[:, j]:
                    a.axvline(e, color="#cccccc", lw=0.6, zorder=0)
        if log_y:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        if len(strata) > 1 or attrs.get("stratify"):
            ax.set_title(str(s), fontsize=10)
        per_stratum = attrs.get("y_labels") or {}
        if str(s) in per_stratum:  # several analytes: each panel in its own unit
            ax.set_ylabel(per_stratum[str(s)])
        elif j == 0:
            ax.set_ylabel(attrs.get("y_label", "Concentration"))
        ax.grid(alpha=0.25, lw=0.5)
        if blq_panel:
            b = t.drop_duplicates("bin").sort_values("bin_mid")
            axb = axes[1, j]
            axb.fill_between(b["bin_mid"], b["blq_sim_lower"], b["blq_sim_upper"], color=COLORS["outer_fill"],
                             alpha=0.25, lw=0)
            axb.plot(b["bin_mid"], b["blq_sim_median"], color=COLORS["outer"], lw=1.2, ls="--")
            axb.plot(b["bin_mid"], b["blq_observed"], color="black", lw=1.5, marker="o", ms=4)
            axb.set_ylim(0, max(0.05, float(np.nanmax(table[["blq_observed", "blq_sim_upper"]].to_numpy())) * 1.15))
            if j == 0:
                axb.set_ylabel("Fraction BLQ")
            axb.set_xlabel(attrs.get("x_label", "Time"))
            axb.grid(alpha=0.25, lw=0.5)
        else:
            ax.set_xlabel(attrs.get("x_label", "Time"))
    outer = [p for p in pcts if p != 50]
    outer_txt = "/".join(_pct_label(p) for p in outer)
    handles = []
    if 50 in pcts:
        handles += [Line2D([], [], color=COLORS["median"], lw=1.8, marker="o", mfc="white", label="Observed median"),
                    Patch(color=COLORS["median_fill"], alpha=0.35, label=f"Simulated median, {ci_pct} CI")]
    if outer:
        handles += [Line2D([], [], color=COLORS["outer"], lw=1.8, ls="--", marker="o", mfc="white",
                           label=f"Observed {outer_txt} percentiles"),
                    Patch(color=COLORS["outer_fill"], alpha=0.3, label=f"Simulated {outer_txt} percentiles, {ci_pct} CI")]
    handles.append(Line2D([], [], color="#333333", lw=0, marker="o", label="Observed percentile outside simulated CI (filled)"))
    if observations is not None:
        handles.append(Line2D([], [], color=COLORS["obs_light"], lw=0, marker="o", ms=4, label="Observations"))
    if bool(np.isfinite(table["lloq"]).any()):
        handles.append(Line2D([], [], color="black", ls=":", lw=1, label="LLOQ"))
    if blq_panel:
        handles += [Line2D([], [], color="black", lw=1.5, marker="o", ms=4, label="Observed fraction BLQ"),
                    Patch(color=COLORS["outer_fill"], alpha=0.3, label=f"Simulated fraction BLQ, {ci_pct} CI")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3 if len(strata) > 1 else 2, len(handles)), fontsize=8, frameon=False)
    if title is None:
        title = f"{attrs.get('kind', 'VPC')} ({attrs.get('n_draws', '?')} simulated studies)"
    return finish(fig, title)
