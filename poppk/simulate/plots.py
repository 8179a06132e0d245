"""Figures of dosing-strategy simulations; each draws a table computed here.

Every ``plot_*`` has a compute twin that returns its numbers:

=============================  ======================================
figure                         table
=============================  ======================================
:func:`plot_exposure_by_strategy`  :func:`exposure_distribution_table`
:func:`plot_exposure_vs_weight`    :func:`exposure_by_covariate`
:func:`plot_variance_ratio`        :func:`variance_ratio_table`
:func:`plot_incidence`             the output of ``predict_incidence``
:func:`plot_exposure_response`     ``ExposureToxicity.curve`` / ``.observed``
=============================  ======================================
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError

__all__ = [
    "exposure_distribution_table",
    "exposure_by_covariate",
    "variance_ratio_table",
    "dose_table",
    "plot_exposure_by_strategy",
    "plot_exposure_vs_weight",
    "plot_variance_ratio",
    "plot_incidence",
    "plot_exposure_response",
]


def _labels(sim: xr.Dataset) -> dict[str, str]:
    if "strategy_label" in sim.coords:
        return {str(k): str(v) for k, v in zip(sim.strategy.values, sim["strategy_label"].values)}
    return {str(k): str(k) for k in sim.strategy.values}


def _unit(sim: xr.Dataset, metric: str) -> str:
    return str(sim["metric_unit"].sel(metric=metric).values) if "metric_unit" in sim.coords else ""


def _check_metric(sim: xr.Dataset, metric: str) -> None:
    if metric not in sim.metric.values:
        raise ConfigError(f"metric {metric!r} was not simulated; metrics: {list(sim.metric.values)}")


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------


def exposure_distribution_table(sim: xr.Dataset, metric: str = "auc_c1", *, ci: float = 0.9) -> pd.DataFrame:
    """Between-patient distribution of exposure per strategy, with parameter uncertainty.

    Columns ``q05``, ``q25``, ``q50``, ``q75``, ``q95``: posterior medians of
    the per-draw quantiles over patients; ``q50_lo``, ``q50_hi``: credible
    interval of the median (parameter uncertainty); ``label``, ``unit``.
    """
    _check_metric(sim, metric)
    q = sim["quantiles"].sel(metric=metric)
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    labels = _labels(sim)
    rows = []
    for s in sim.strategy.values:
        qs = q.sel(strategy=s)
        row: dict[str, Any] = {"strategy": str(s), "label": labels[str(s)], "unit": _unit(sim, metric)}
        for level in qs["quantile"].values:
            v = np.asarray(qs.sel(quantile=level).values, dtype=float)
            row[f"q{int(round(level * 100)):02d}"] = float(np.median(v))
            if np.isclose(level, 0.5):
                row["q50_lo"] = float(np.quantile(v, lo))
                row["q50_hi"] = float(np.quantile(v, hi))
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def exposure_by_covariate(
    sim: xr.Dataset,
    covariate: str = "TBW",
    metric: str = "auc_c1",
    *,
    bins: int | Sequence[float] = 8,
    population: Any = None,
) -> pd.DataFrame:
    """Exposure against a covariate: per covariate bin and strategy, pooled over draws.

    Needs per-patient exposures (``keep_exposure``).  Bins are quantiles of
    the covariate (an int) or explicit edges.

    Returns
    -------
    DataFrame with columns ``strategy``, ``label``, ``bin``, ``covariate_median``,
    ``n_patients``, ``p05``, ``p25``, ``p50``, ``p75``, ``p95``.
    """
    _check_metric(sim, metric)
    if "exposure" not in sim or sim.sizes.get("patient", 0) == 0:
        raise ConfigError("exposure vs covariate needs per-patient exposures: simulate with keep_exposure=True")
    if covariate in sim.coords:
        x = np.asarray(sim[covariate].values, dtype=float)
    elif population is not None:
        x = np.asarray(population[covariate], dtype=float)[: sim.sizes["patient"]]
    else:
        raise ConfigError(f"the simulation has no patient covariate {covariate!r}; pass population=")
    if isinstance(bins, int):
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    else:
        edges = np.asarray(bins, dtype=float)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    E = sim["exposure"].sel(metric=metric).transpose("draw", "patient", "strategy").values
    labels = _labels(sim)
    rows = []
    for j, s in enumerate(sim.strategy.values):
        for b in range(len(edges) - 1):
            m = which == b
            if not m.any():
                continue
            v = E[:, m, j].ravel()
            qs = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
            rows.append({"strategy": str(s), "label": labels[str(s)], "bin": b,
                         "bin_lo": float(edges[b]), "bin_hi": float(edges[b + 1]),
                         "covariate_median": float(np.median(x[m])), "n_patients": int(m.sum()),
                         "p05": qs[0], "p25": qs[1], "p50": qs[2], "p75": qs[3], "p95": qs[4]})
    out = pd.DataFrame(rows)
    out.attrs.update({"covariate": covariate, "metric": metric, "unit": _unit(sim, metric)})
    return out


def variance_ratio_table(summary: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Variance ratios vs the reference (the reference's own rows left out).

    Columns ``strategy``, ``metric``, ``label``, ``var_ratio_median``,
    ``var_ratio_lo``, ``var_ratio_hi``, ``prob_var_ratio_below_1``.
    """
    ref = summary.attrs.get("reference")
    df = summary.reset_index()
    if ref is not None:
        df = df[df["strategy"] != ref]
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    cols = ["strategy", "metric", "label", "var_ratio_median", "var_ratio_lo", "var_ratio_hi", "prob_var_ratio_below_1"]
    out = df[cols].reset_index(drop=True)
    out.attrs.update(summary.attrs)
    return out


def dose_table(sim: xr.Dataset) -> pd.DataFrame:
    """Dose distribution (mg) per strategy over the (kept) virtual patients.

    Doses are the maintenance doses; with a loading dose in the schedule a
    column ``loading_median_mg`` gives the median first dose.
    """
    import json

    d = sim["dose"]
    labels = _labels(sim)
    loading = float(json.loads(sim.attrs["schedule"]).get("loading", 1.0)) if "schedule" in sim.attrs else 1.0
    rows = []
    for s in sim.strategy.values:
        v = np.asarray(d.sel(strategy=s).values, dtype=float)
        row = {"strategy": str(s), "label": labels[str(s)], "median_mg": float(np.median(v)),
               "p05_mg": float(np.quantile(v, 0.05)), "p95_mg": float(np.quantile(v, 0.95)),
               "min_mg": float(v.min()), "max_mg": float(v.max()), "n_patients": int(v.size)}
        if loading != 1.0:
            row["loading_median_mg"] = loading * row["median_mg"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------


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
