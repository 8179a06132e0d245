"""The forest plot of covariate effects: draws :func:`poppk.report.covariate_effects`' table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["plot_forest"]


def _mathtext_safe(text: str) -> str:
    """Escape ``$`` so that user strings are never read as matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def plot_forest(
    table: pd.DataFrame,
    *,
    band: tuple[float, float] | None = None,
    title: str | None = None,
    width: float = 9.0,
) -> Any:
    """Forest plot of :func:`poppk.report.covariate_effects` (draws the table only).

    One row per compared subject, grouped by parameter / exposure metric; the
    median ratio as a point and the credible interval as a line, on a log
    axis with the reference band shaded and the value printed at the right.

    Parameters
    ----------
    table
        Output of :func:`poppk.report.covariate_effects` (columns ``paramname``, ``label``,
        ``mid``, ``lower``, ``upper``; ``in_band`` optional).
    band
        Shaded reference band (default ``table.attrs["band"]`` or 0.8–1.25).
    title
        Figure title.
    width
        Figure width in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    from poppk.report.covariates import REFERENCE_BAND

    band = tuple(band or table.attrs.get("band", REFERENCE_BAND))  # type: ignore[assignment]
    ci = table.attrs.get("ci")
    groups = list(dict.fromkeys(table["paramname"].astype(str))) if len(table) else []
    n_rows = len(table) + len(groups)
    fig = Figure(figsize=(width, 1.3 + 0.3 * max(n_rows, 2)), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    if not len(table):
        ax.text(0.5, 0.5, "no covariate effects in the model", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return fig
    y = 0.0
    ticks, tick_labels, bold = [], [], []
    colors = {True: "#1f4e79", False: "#c0392b"}
    for g in groups:
        ticks.append(y)
        tick_labels.append(_mathtext_safe(g))
        bold.append(True)
        y -= 1
        sub = table[table["paramname"].astype(str) == g]
        for _, r in sub.iterrows():
            inside = bool(r["in_band"]) if "in_band" in r and pd.notna(r["in_band"]) else (
                r["lower"] >= band[0] and r["upper"] <= band[1])
            c = colors[inside]
            ax.plot([r["lower"], r["upper"]], [y, y], color=c, lw=2.2, solid_capstyle="butt", zorder=3)
            ax.plot([r["mid"]], [y], marker="o", ms=6.5, color=c, mec="white", mew=0.8, zorder=4)
            ax.text(1.01, y, f"{r['mid']:.2f} [{r['lower']:.2f}, {r['upper']:.2f}]", transform=ax.get_yaxis_transform(),
                    va="center", ha="left", fontsize=8.5, family="monospace", color="#333333")
            ticks.append(y)
            tick_labels.append(_mathtext_safe(str(r["label"])))
            bold.append(False)
            y -= 1
    lo = float(np.nanmin([table["lower"].min(), band[0]]))
    hi = float(np.nanmax([table["upper"].max(), band[1]]))
    lo, hi = lo / 1.12, hi * 1.12
    ax.set_xlim(lo, hi)
    ax.set_ylim(y + 0.4, 0.6)
    ax.axvspan(band[0], band[1], color="#dfe9f3", zorder=0, label=f"reference band {band[0]:g}–{band[1]:g}")
    ax.axvline(1.0, color="#444444", lw=0.9, zorder=1)
    for b in band:
        ax.axvline(b, color="#8aa9c8", lw=0.8, ls="--", zorder=1)
    cands = [0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0]
    xt = [t for t in cands if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(xt))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in xt])
    ax.set_yticks(ticks)
    ax.set_yticklabels(tick_labels)
    for lab, b in zip(ax.get_yticklabels(), bold):
        if b:
            lab.set_fontweight("bold")
            lab.set_color("#1f4e79")
        else:
            lab.set_fontsize(9)
    ax.tick_params(axis="y", length=0)
    for g_y, b in zip(ticks, bold):
        if b and g_y != 0:
            ax.axhline(g_y + 0.5, color="#d9e0e7", lw=0.6, zorder=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", color="#eeeeee", lw=0.6, zorder=0)
    ax.set_xlabel("Ratio to the reference subject" + (f" (median and {100 * ci:g}% CrI)" if ci else "") + ", log scale")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="#dfe9f3", edgecolor="#8aa9c8", label=f"reference band {band[0]:g}–{band[1]:g}"),
        Line2D([], [], color=colors[True], marker="o", lw=2, label="interval inside the band"),
        Line2D([], [], color=colors[False], marker="o", lw=2, label="interval outside the band"),
    ]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False, fontsize=8.5, ncols=3)
    ax.text(1.01, 1.0, "ratio" + (f" [{100 * ci:g}% CrI]" if ci else " [CrI]"), transform=ax.transAxes,
            va="bottom", ha="left", fontsize=8.5, fontweight="bold", color="#333333")
    if title:
        fig.suptitle(_mathtext_safe(title), fontsize=12, x=0.02, ha="left")
    return fig
