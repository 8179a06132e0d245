"""Figures of dosing-strategy simulations; each draws a table of :mod:`poppk.simulate.tables`.

=================================  ======================================
figure                             table
=================================  ======================================
:func:`plot_exposure_by_strategy`  :func:`~poppk.simulate.exposure_distribution_table`
:func:`plot_exposure_vs_weight`    :func:`~poppk.simulate.exposure_by_covariate`
:func:`plot_variance_ratio`        :func:`~poppk.simulate.variance_ratio_table`
:func:`plot_model_answers`         :func:`~poppk.simulate.model_answers_table`
:func:`plot_incidence`             the output of ``predict_incidence``
:func:`plot_exposure_response`     ``ExposureToxicity.curve`` / ``.observed``
=================================  ======================================

Unlike the diagnostics figures, these draw on a matplotlib ``Axes`` (``ax=``,
or a new figure's) and return it, so several can share one figure.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.simulate.tables import exposure_by_covariate, exposure_distribution_table, variance_ratio_table

__all__ = [
    "plot_exposure_by_strategy",
    "plot_exposure_vs_weight",
    "plot_variance_ratio",
    "plot_model_answers",
    "plot_incidence",
    "plot_exposure_response",
]




def _ax(ax: Any, figsize: tuple[float, float] = (6.4, 4.0)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_exposure_by_strategy(sim: xr.Dataset, metric: str = "auc_c1", *, ci: float = 0.9, ax: Any = None,
                              log: bool = True) -> Any:
    """Between-patient exposure distribution per strategy (box: 25-75%, whiskers: 5-95%).

    The dot and its bar are the median and its credible interval (parameter
    uncertainty).  Draws :func:`exposure_distribution_table`.
    """
    from matplotlib.patches import Rectangle

    t = exposure_distribution_table(sim, metric, ci=ci)
    ax = _ax(ax)
    y = np.arange(len(t))[::-1]
    for yi, (_, r) in zip(y, t.iterrows()):
        ax.plot([r["q05"], r["q95"]], [yi, yi], color="0.4", lw=1)
        ax.add_patch(Rectangle((r["q25"], yi - 0.25), r["q75"] - r["q25"], 0.5, facecolor="C0", alpha=0.35,
                               edgecolor="C0"))
        ax.plot([r["q50_lo"], r["q50_hi"]], [yi, yi], color="C3", lw=3, solid_capstyle="butt")
        ax.plot(r["q50"], yi, "o", color="C3")
    ax.set_yticks(y)
    ax.set_yticklabels(t["label"])
    if log:
        ax.set_xscale("log")
    unit = t["unit"].iloc[0] if len(t) else ""
    ax.set_xlabel(f"{metric} ({unit})")
    ax.set_title("Exposure by dosing strategy: box 25-75%, whiskers 5-95% of patients;\n"
                 f"red: median and its {int(ci * 100)}% credible interval", fontsize=9)
    return ax


def plot_exposure_vs_weight(sim: xr.Dataset, population: Any = None, metric: str = "auc_c1", *,
                            covariate: str = "TBW", bins: int | Sequence[float] = 8, ax: Any = None) -> Any:
    """Median and 5-95% band of exposure against a body-size covariate, per strategy.

    Draws :func:`exposure_by_covariate`.
    """
    t = exposure_by_covariate(sim, covariate, metric, bins=bins, population=population)
    ax = _ax(ax)
    for j, (s, g) in enumerate(t.groupby("strategy", sort=False)):
        c = f"C{j}"
        ax.plot(g["covariate_median"], g["p50"], "-o", color=c, label=g["label"].iloc[0], ms=3)
        ax.fill_between(g["covariate_median"], g["p05"], g["p95"], color=c, alpha=0.15)
    ax.set_xlabel(covariate)
    ax.set_ylabel(f"{metric} ({t.attrs.get('unit', '')})")
    ax.legend(fontsize=8)
    ax.set_title("Exposure vs body size (median, 5-95% over patients and draws)", fontsize=9)
    return ax


def plot_variance_ratio(summary: pd.DataFrame, metrics: Sequence[str] | None = None, *, ax: Any = None) -> Any:
    """Forest plot of the between-patient variance ratio of log exposure vs the reference.

    Draws :func:`variance_ratio_table`.
    """
    t = variance_ratio_table(summary, metrics)
    own = ax is None
    ax = _ax(ax, (6.4, 0.4 * max(len(t), 3) + 1.6))
    if own:  # room for the two-line x label and the long tick labels when saved without bbox_inches="tight"
        ax.figure.set_layout_engine("constrained")
    y = np.arange(len(t))[::-1]
    ax.errorbar(t["var_ratio_median"], y,
                xerr=[t["var_ratio_median"] - t["var_ratio_lo"], t["var_ratio_hi"] - t["var_ratio_median"]],
                fmt="o", color="C0", capsize=3)
    ax.axvline(1.0, color="0.5", ls="--", lw=1)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{lab} | {m}" for lab, m in zip(t["label"], t["metric"])], fontsize=8)
    ci = summary.attrs.get("ci", 0.9)
    ax.set_xlabel(f"variance ratio: variance of log exposure / reference's ({summary.attrs.get('reference', '')})"
                  f"\nno unit; median and {int(ci * 100)}% CrI (credible interval)")
    return ax


def plot_model_answers(table: pd.DataFrame, strategy: str, metric: str, *, ax: Any = None) -> Any:
    """Each model's variance ratio and the stacking-weighted average, with the weights.

    Draws :func:`~poppk.simulate.averaging.model_answers_table` of an
    :func:`~poppk.simulate.averaging.averaged_strategy_summary` table: one
    interval per candidate fit (marker size by weight) and the averaged
    answer on top, against the no-change line at 1.
    """
    from poppk.simulate.averaging import model_answers_table

    t = model_answers_table(table, strategy, metric)
    ax = _ax(ax, (6.4, 0.45 * len(t) + 1.3))
    y = np.arange(len(t))[::-1]
    for yi, (name, r) in zip(y, t.iterrows()):
        avg = name == "averaged"
        ax.errorbar(r["median"], yi, xerr=[[r["median"] - r["lo"]], [r["hi"] - r["median"]]], fmt="D" if avg else "o",
                    color="C3" if avg else "C0", capsize=3, ms=7 if avg else 3 + 6 * float(r["weight"]))
    ax.axvline(1.0, color="0.5", ls="--", lw=1)
    ax.set_yticks(y)
    ax.set_yticklabels([("averaged" if n == "averaged" else f"{n} (weight {w:.2f})") for n, w in
                        zip(t.index, t["weight"])], fontsize=8)
    ci = t.attrs.get("ci", 0.9)
    ax.set_xlabel(f"variance ratio, {t.attrs['label']} vs {t.attrs.get('reference', '')} ({metric}); "
                  f"median, {int(ci * 100)}% CrI", fontsize=8)
    return ax


def plot_incidence(incidence: pd.DataFrame, *, ax: Any = None) -> Any:
    """Predicted incidence per strategy with credible intervals (the table of ``predict_incidence``)."""
    ax = _ax(ax)
    y = np.arange(len(incidence))[::-1]
    m = incidence["incidence_median"]
    ax.errorbar(m, y, xerr=[m - incidence["incidence_lo"], incidence["incidence_hi"] - m], fmt="o", capsize=3)
    ax.set_yticks(y)
    ax.set_yticklabels(incidence["label"] if "label" in incidence else incidence.index)
    ax.set_xlabel(f"predicted incidence ({incidence.attrs.get('metric', '')}-driven); "
                  f"median, {int(incidence.attrs.get('ci', 0.9) * 100)}% CrI")
    ax.set_xlim(0, None)
    return ax


def plot_exposure_response(tox: Any, *, ci: float = 0.9, ax: Any = None) -> Any:
    """Fitted P(event) vs exposure (band) with the trial patients' outcomes (points)."""
    curve = tox.curve(ci=ci)
    obs = tox.observed()
    ax = _ax(ax)
    ax.fill_between(curve["exposure"], curve["p_lo"], curve["p_hi"], alpha=0.25, color="C0")
    ax.plot(curve["exposure"], curve["p_median"], color="C0")
    jitter = np.random.default_rng(0).uniform(-0.02, 0.02, len(obs))
    ax.errorbar(obs["exposure_median"], obs["outcome"] + jitter,
                xerr=[obs["exposure_median"] - obs["exposure_lo"], obs["exposure_hi"] - obs["exposure_median"]],
                fmt="o", ms=3, color="k", alpha=0.5, lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel(f"{tox.metric} ({tox.unit})")
    ax.set_ylabel("P(event)")
    return ax
