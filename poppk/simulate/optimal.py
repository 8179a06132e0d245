r"""The dosing basis that minimises between-patient exposure variance.

A sponsor choosing how to dose in mg/kg asks: on which size should the
mg/kg be applied?  Among the doses

.. math:: D_j(f) = d \cdot S_j(f), \qquad S_j(f) = \mathrm{IBW}_j + f\,(\mathrm{TBW}_j - \mathrm{IBW}_j),

(``f = 1``: total body weight, ``f = 0.4``: the label's adjusted ideal body
weight, ``f = 0``: ideal body weight), the factor ``f*`` that makes the
between-patient variance of log exposure smallest.  With linear PK the
exposure of patient j is ``u_j · D_j`` with ``u_j`` the exposure per mg (same
schedule and infusion), so for every posterior draw

.. math:: f^*(\text{draw}) = \arg\min_f \operatorname{Var}_j\bigl[\log u_j + \log S_j(f)\bigr]

is a one-dimensional search on exposures already simulated.  Its posterior
across draws (and across models, see :mod:`poppk.simulate.averaging`) is the
answer with its uncertainty; the variance ratios at ``f*`` against ``f =
0.4`` and ``f = 1`` say how much is gained, and the mg/kg level at ``f*``
that gives a target median exposure says what dose goes with it.

``f*`` answers a different question from the fraction estimated by the
adjusted size *model* (:meth:`poppk.model.ModelSpec.with_size_model`): that
one says which size the PK parameters follow; ``f*`` which size the dose
should follow, random effects, other covariates and exposure metric
included.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError
from poppk.simulate.exposure import DOSE_LINEAR_METRICS
from poppk.simulate.summaries import patient_weights, resolve_strategy
from poppk.simulate.weighting import weighted_quantiles, weighted_variance

__all__ = ["optimal_size_fraction", "summarize_optimal_fraction", "unit_exposure"]

#: Fractions compared with f* in the output: the label's AIBW (changed with ``aibw_factor=``) and TBW.
AIBW_FRACTION = 0.4
TBW_FRACTION = 1.0


def unit_exposure(sim: xr.Dataset, strategy: str | None = None) -> xr.DataArray:
    """Exposure per mg of dose, dims (draw, patient, metric), from a simulated strategy.

    Parameters
    ----------
    sim
        A simulation with every patient's exposure kept
        (:func:`~poppk.simulate.simulate_strategies` with ``keep_exposure=True``).
    strategy
        Strategy (name or label) whose exposures are divided by its doses;
        default: the first strategy whose doses are all positive.  Under
        linear PK every dose-proportional metric (all but ``time_above``) is
        exposure per mg times the dose, whatever the strategy (schedules fix
        the infusion time, not the rate).
    """
    if "exposure" not in sim or sim.attrs.get("n_patients_kept", sim.sizes.get("patient")) != sim.attrs.get(
        "n_patients", sim.sizes.get("patient")
    ):
        raise ConfigError(
            "the optimal size fraction needs every patient's exposure; simulate with keep_exposure=True"
        )
    if strategy is None:
        for name in map(str, sim.strategy.values):
            if np.all(np.asarray(sim["dose"].sel(strategy=name).values, dtype=float) > 0):
                strategy = name
                break
        if strategy is None:
            raise ConfigError("every simulated strategy gives a zero dose to some patient; f* needs one that does not")
    else:
        strategy = resolve_strategy(sim, strategy)
    dose = sim["dose"].sel(strategy=strategy)
    if np.any(np.asarray(dose.values) <= 0):
        raise ConfigError(f"strategy {strategy!r} gives a zero dose to some patients; choose another")
    u = sim["exposure"].sel(strategy=strategy).drop_vars("strategy") / dose.drop_vars("strategy")
    return u.transpose("draw", "patient", "metric").astype(float)


def _weights(sim: xr.Dataset, n_draws: int, n_patients: int) -> np.ndarray:
    """(draw, patient) weights summing to 1 per draw: the population's Bayesian bootstrap, or uniform."""
    w = patient_weights(sim)
    if w is None:
        return np.full((n_draws, n_patients), 1.0 / n_patients)
    return np.asarray(w.transpose("draw", "patient").values, dtype=float)


def _variance_profile(lu: np.ndarray, log_size: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted variance of ``lu + log_size[k]`` for every grid row k, (draw, K), by moments.

    ``Var(u + s) = Var(u) + Var(s) + 2 Cov(u, s)`` with weighted moments as
    matrix products (one pass instead of one per grid point); both parts are
    centred first, so no precision is lost to large means.  The correction is
    that of :func:`~poppk.simulate.weighting.weighted_variance`.
    """
    u = lu - np.sum(w * lu, axis=1, keepdims=True)
    s = log_size - log_size.mean(axis=1, keepdims=True)
    e_s = w @ s.T  # (D, K)
    var = np.sum(w * u * u, axis=1)[:, None] + (w @ (s * s).T - e_s**2) + 2.0 * ((w * u) @ s.T)
    s2 = np.sum(w * w, axis=1)
    return var / np.where(s2 < 1.0, 1.0 - s2, 1.0)[:, None]


def optimal_size_fraction(
    sim: xr.Dataset,
    *,
    metrics: Sequence[str] | None = None,
    strategy: str | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    target: Mapping[str, float] | str | None = None,
    total: str = "TBW",
    base: str = "IBW",
    aibw_factor: float = AIBW_FRACTION,
    n_grid: int = 201,
) -> xr.Dataset:
    """Posterior of the size fraction ``f*`` whose mg/kg dosing minimises exposure variance.

    Parameters
    ----------
    sim
        Simulation with every patient's exposure kept and the patients'
        ``TBW`` and ``IBW`` as coordinates (as
        :func:`~poppk.simulate.simulate_strategies` writes them).  Per-draw
        patient weights (the population's Bayesian bootstrap,
        :func:`~poppk.simulate.summaries.patient_weights`), when present,
        are used in every variance and median.
    metrics
        Dose-proportional metrics to optimise (default: every simulated one
        but ``time_above``, which is not proportional to dose).
    strategy
        Strategy the exposure per mg is taken from (see :func:`unit_exposure`).
    bounds
        Range of ``f`` searched (default [0, 1]: from IBW to TBW); the share
        of draws whose optimum sits on a bound is reported.
    target
        Median exposure to match at ``f*``: ``{metric: value}``, or the name
        or label of a simulated strategy whose median exposure (per draw) is
        matched.  Gives ``dose_per_kg``, the mg per kg of ``S(f*)`` that does it.
    total, base
        Coordinates of the upper and lower size (default TBW and IBW).
    aibw_factor
        The AIBW fraction compared with ``f*`` (default 0.4, the label's).
    n_grid
        Grid points over ``bounds``; the minimum is refined by a parabola
        through the best grid point and its neighbours.

    Returns
    -------
    xarray.Dataset
        Dims (draw, metric): ``f_opt``; ``var_log_opt``, ``var_log_aibw``,
        ``var_log_tbw`` (between-patient variance of log exposure at ``f*``,
        ``aibw_factor`` and 1); ``ratio_opt_vs_aibw``, ``ratio_opt_vs_tbw``,
        ``ratio_aibw_vs_tbw``; ``at_bound``; and ``dose_per_kg`` with
        ``target``.  ``attrs``: bounds, strategy, n_patients, aibw_factor.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> tbw, ibw = rng.uniform(50, 120, 400), rng.uniform(45, 65, 400)
    >>> size = ibw + 0.3 * (tbw - ibw)  # clearance follows IBW + 0.3·(TBW − IBW)
    >>> dose = 5.0 * tbw
    >>> auc = dose / size * np.exp(rng.normal(0, 0.01, (3, 400)))
    >>> sim = xr.Dataset({"exposure": (("draw", "patient", "strategy", "metric"), auc[:, :, None, None]),
    ...                   "dose": (("patient", "strategy"), dose[:, None])},
    ...                  coords={"strategy": ["tbw"], "metric": ["auc_c1"], "TBW": ("patient", tbw),
    ...                          "IBW": ("patient", ibw)})
    >>> res = optimal_size_fraction(sim)
    >>> np.round(res["f_opt"].values.ravel(), 2)
    array([0.3, 0.3, 0.3])
    """
    lo, hi = (float(bounds[0]), float(bounds[1]))
    if not lo < hi:
        raise ConfigError(f"bounds must be increasing, got {bounds}")
    for col in (total, base):
        if col not in sim.coords:
            raise ConfigError(f"the simulation has no patient coordinate {col!r}; coordinates: {list(sim.coords)}")
    x = np.asarray(sim[total].values, dtype=float)
    b = np.asarray(sim[base].values, dtype=float)
    if np.any(b + lo * (x - b) <= 0) or np.any(b + hi * (x - b) <= 0):
        raise ConfigError(f"{base} + f·({total} − {base}) is not positive for every patient over f in {bounds}")
    u = unit_exposure(sim, strategy)
    simulated = [str(m) for m in u.metric.values]
    if metrics is None:
        metrics = [m for m in simulated if m in DOSE_LINEAR_METRICS]
        if not metrics:
            raise ConfigError(f"none of the simulated metrics {simulated} is proportional to dose")
    metrics = list(metrics)
    bad = [m for m in metrics if m not in simulated or m not in DOSE_LINEAR_METRICS]
    if bad:
        raise ConfigError(f"metrics {bad}: f* needs dose-proportional metrics that were simulated; simulated "
                          f"dose-proportional ones: {[m for m in simulated if m in DOSE_LINEAR_METRICS]}")
    w = _weights(sim, u.sizes["draw"], u.sizes["patient"])
    grid = np.linspace(lo, hi, int(n_grid))
    log_size = np.log(b[None, :] + grid[:, None] * (x - b)[None, :])  # (K, patient)
    out: dict[str, list[np.ndarray]] = {k: [] for k in (
        "f_opt", "var_log_opt", "var_log_aibw", "var_log_tbw", "at_bound", "dose_per_kg")}
    for m in metrics:
        lu = np.log(np.asarray(u.sel(metric=m).values, dtype=float))  # (draw, patient)
        ok = np.all(np.isfinite(lu), axis=1)
        lu = np.where(np.isfinite(lu), lu, 0.0)
        v = _variance_profile(lu, log_size, w)  # (draw, grid)
        k = np.argmin(v, axis=1)
        f_opt = grid[k].copy()
        inner = np.flatnonzero((k > 0) & (k < grid.size - 1))
        if inner.size:
            y0, y1, y2 = v[inner, k[inner] - 1], v[inner, k[inner]], v[inner, k[inner] + 1]
            denom = y0 - 2 * y1 + y2
            step = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
            f_opt[inner] = grid[k[inner]] + np.clip(step, -1, 1) * (grid[1] - grid[0])

        def var_at(f: np.ndarray | float) -> np.ndarray:
            f = np.broadcast_to(np.asarray(f, dtype=float), (lu.shape[0],))
            return weighted_variance(lu + np.log(b[None, :] + f[:, None] * (x - b)[None, :]), w)

        out["f_opt"].append(np.where(ok, f_opt, np.nan))
        out["var_log_opt"].append(np.where(ok, var_at(f_opt), np.nan))
        out["var_log_aibw"].append(np.where(ok, var_at(float(aibw_factor)), np.nan))
        out["var_log_tbw"].append(np.where(ok, var_at(TBW_FRACTION), np.nan))
        out["at_bound"].append(np.where(ok, (k == 0) | (k == grid.size - 1), False).astype(float))
        out["dose_per_kg"].append(_dose_per_kg(sim, m, lu, x, b, f_opt, w, target))
    dims = ("draw", "metric")
    ds = xr.Dataset(
        {k: (dims, np.stack(v, axis=1)) for k, v in out.items()},
        coords={"draw": sim.draw.values if "draw" in sim.coords else np.arange(u.sizes["draw"]), "metric": metrics},
    )
    ds["ratio_opt_vs_aibw"] = ds["var_log_opt"] / ds["var_log_aibw"]
    ds["ratio_opt_vs_tbw"] = ds["var_log_opt"] / ds["var_log_tbw"]
    ds["ratio_aibw_vs_tbw"] = ds["var_log_aibw"] / ds["var_log_tbw"]
    if target is None:
        ds = ds.drop_vars("dose_per_kg")
    ds.attrs.update({"bounds": [lo, hi], "strategy": str(strategy) if strategy else "auto",
                     "n_patients": int(u.sizes["patient"]), "total": total, "base": base,
                     "aibw_factor": float(aibw_factor),
                     "target": target if isinstance(target, str) else str(dict(target or {}))})
    return ds


def _median(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return weighted_quantiles(x, w, np.array([0.5]))[..., 0]


def _dose_per_kg(sim: xr.Dataset, metric: str, lu: np.ndarray, x: np.ndarray, b: np.ndarray,
                 f_opt: np.ndarray, w: np.ndarray, target: Mapping[str, float] | str | None) -> np.ndarray:
    """mg per kg of S(f*) whose (weighted) median exposure equals the target, per draw."""
    n = lu.shape[0]
    if target is None:
        return np.full(n, np.nan)
    if isinstance(target, str):
        name = resolve_strategy(sim, target, role="target strategy")
        goal = _median(np.asarray(sim["exposure"].sel(strategy=name, metric=metric).values, dtype=float), w)
    else:
        if metric not in target:
            return np.full(n, np.nan)
        goal = np.full(n, float(target[metric]))
    s = b[None, :] + np.where(np.isfinite(f_opt), f_opt, 0.0)[:, None] * (x - b)[None, :]
    return goal / _median(np.exp(lu) * s, w)  # exposure of 1 mg per kg of S(f*)


def summarize_optimal_fraction(opt: xr.Dataset, *, ci: float = 0.9) -> pd.DataFrame:
    """Posterior median and ``ci`` interval of f* and its variance ratios, per metric.

    Returns
    -------
    pandas.DataFrame
        Index ``metric``; for each of ``f_opt``, ``ratio_opt_vs_aibw``,
        ``ratio_opt_vs_tbw``, ``ratio_aibw_vs_tbw`` (and ``dose_per_kg``)
        the columns ``_median``, ``_lo``, ``_hi``; ``p_at_bound`` (share of
        draws whose optimum is on a bound of the search) and ``n_draws``.
    """
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    names = [v for v in ("f_opt", "ratio_opt_vs_aibw", "ratio_opt_vs_tbw", "ratio_aibw_vs_tbw", "dose_per_kg")
             if v in opt]
    rows = []
    for m in opt.metric.values:
        row: dict[str, Any] = {"metric": str(m)}
        for v in names:
            a = np.asarray(opt[v].sel(metric=m).values, dtype=float)
            a = a[np.isfinite(a)]
            row[f"{v}_median"] = float(np.median(a)) if a.size else np.nan
            row[f"{v}_lo"] = float(np.quantile(a, lo_q)) if a.size else np.nan
            row[f"{v}_hi"] = float(np.quantile(a, hi_q)) if a.size else np.nan
        row["p_at_bound"] = float(np.nanmean(opt["at_bound"].sel(metric=m).values))
        row["n_draws"] = int(np.isfinite(opt["f_opt"].sel(metric=m).values).sum())
        rows.append(row)
    df = pd.DataFrame(rows).set_index("metric")
    df.attrs.update({"ci": ci, **{k: v for k, v in opt.attrs.items() if k in ("bounds", "strategy")}})
    return df
