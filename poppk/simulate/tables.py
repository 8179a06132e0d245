"""Tables of dosing-strategy simulations: the numbers every strategy figure draws.

Each is the compute twin of a figure of :mod:`poppk.plots.strategies`:

=================================  ======================================
table                              figure
=================================  ======================================
:func:`exposure_distribution_table`  :func:`~poppk.plots.plot_exposure_by_strategy`
:func:`exposure_by_covariate`        :func:`~poppk.plots.plot_exposure_vs_weight`
:func:`variance_ratio_table`         :func:`~poppk.plots.plot_variance_ratio`
:func:`dose_table`                   (the dose of each strategy per virtual patient)
=================================  ======================================
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
