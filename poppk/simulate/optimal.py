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

__all__ = ["optimal_size_fraction", "summarize_optimal_fraction", "unit_exposure"]

#: Fractions compared with f* in the output.
AIBW_FRACTION = 0.4
TBW_FRACTION = 1.0


def unit_exposure(sim: xr.Dataset, strategy: str | None = None) -> xr.DataArray:
    """Exposure per mg of dose, dims (draw, patient, metric), from a linear strategy.

    Parameters
    ----------
    sim
        A simulation with every patient's exposure kept
        (:func:`~poppk.simulate.simulate_strategies` with ``keep_exposure=True``).
    strategy
        Strategy whose exposures are divided by its doses; default: the first
        strategy whose doses are all positive and whose label does not say
        capped or rounded.  Exposure must be proportional to dose (linear PK,
        the same schedule and infusion time for every dose level).
    """
    if "exposure" not in sim or sim.attrs.get("n_patients_kept", sim.sizes.get("patient")) != sim.attrs.get(
        "n_patients", sim.sizes.get("patient")
    ):
        raise ConfigError(
            "the optimal size fraction needs every patient's exposure; simulate with keep_exposure=True"
        )
    names = [str(s) for s in sim.strategy.values]
    labels = [str(x) for x in sim["strategy_label"].values] if "strategy_label" in sim.coords else names
    if strategy is None:
        for name, lab in zip(names, labels):
            dose = np.asarray(sim["dose"].sel(strategy=name).values, dtype=float)
            if np.all(dose > 0) and not any(w in lab.lower() for w in ("cap", "round", "vial")):
                strategy = name
                break
        if strategy is None:
            raise ConfigError(f"no strategy with positive, unrounded doses among {labels}")
    elif strategy not in names:
        if strategy in labels:
            strategy = names[labels.index(strategy)]
        else:
            raise ConfigError(f"strategy {strategy!r} is not one of {names}")
    dose = sim["dose"].sel(strategy=strategy)
    if np.any(np.asarray(dose.values) <= 0):
        raise ConfigError(f"strategy {strategy!r} gives a zero dose to some patients; choose another")
    u = sim["exposure"].sel(strategy=strategy).drop_vars("strategy") / dose.drop_vars("strategy")
    return u.transpose("draw", "patient", "metric").astype(float)


def _patient_weights(sim: xr.Dataset) -> np.ndarray | None:
    """Per-draw patient weights (draw, patient) summing to 1, if the simulation carries them."""
    from poppk.simulate import summaries

    getter = getattr(summaries, "patient_weights", None)
    if getter is None:
        return None
    w = getter(sim)
    return None if w is None else np.asarray(w.transpose("draw", "patient").values, dtype=float)


def _weighted_var(y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Variance over the last axis (weights normalised per row), NaN where a value is not finite."""
    if w is None:
        return y.var(axis=-1, ddof=1) if y.shape[-1] > 1 else np.zeros(y.shape[:-1])
    m = np.sum(w * y, axis=-1, keepdims=True)
    return np.sum(w * (y - m) ** 2, axis=-1)


def _weighted_median(y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    if w is None:
        return np.median(y, axis=-1)
    order = np.argsort(y, axis=-1)
    ys = np.take_along_axis(y, order, axis=-1)
    ws = np.take_along_axis(np.broadcast_to(w, y.shape), order, axis=-1)
    cw = np.cumsum(ws, axis=-1)
    idx = np.argmax(cw >= 0.5 * cw[..., -1:], axis=-1)
    return np.take_along_axis(ys, idx[..., None], axis=-1)[..., 0]


def optimal_size_fraction(
    sim: xr.Dataset,
    *,
    metrics: Sequence[str] | None = None,
    strategy: str | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    target: Mapping[str, float] | str | None = None,
    total: str = "TBW",
    base: str = "IBW",
    n_grid: int = 201,
) -> xr.Dataset:
    """Posterior of the size fraction ``f*`` whose mg/kg dosing minimises exposure variance.

    Parameters
    ----------
    sim
        Simulation with every patient's exposure kept and the patients'
        ``TBW`` and ``IBW`` as coordinates (as
        :func:`~poppk.simulate.simulate_strategies` writes them).  Per-draw
        patient weights (the population's Bayesian bootstrap), when present,
        are used in every variance and median.
    metrics
        Metrics to optimise (default: all simulated).
    strategy
        Linear strategy the exposure per mg is taken from (see
        :func:`unit_exposure`).
    bounds
        Range of ``f`` searched (default [0, 1]: from IBW to TBW); the share
        of draws whose optimum sits on a bound is reported.
    target
        Median exposure to match at ``f*``: ``{metric: value}``, or the name
        or label of a simulated strategy whose median exposure (per draw) is
        matched.  Gives ``dose_per_kg``, the mg per kg of
        ``S(f*)`` that does it.
    total, base
        Coordinates of the upper and lower size (default TBW and IBW).
    n_grid
        Grid points over ``bounds``; the minimum is refined by a parabola
        through the best grid point and its neighbours.

    Returns
    -------
    xarray.Dataset
        Dims (draw, metric): ``f_opt``; ``var_log_opt``, ``var_log_aibw``,
        ``var_log_tbw`` (between-patient variance of log exposure at ``f*``,
        0.4 and 1); ``ratio_opt_vs_aibw``, ``ratio_opt_vs_tbw``,
        ``ratio_aibw_vs_tbw``; ``at_bound``; and ``dose_per_kg`` with
        ``target``.  ``attrs``: bounds, strategy, n_patients.

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
    metrics = list(u.metric.values) if metrics is None else list(metrics)
    missing = [m for m in metrics if m not in u.metric.values]
    if missing:
        raise ConfigError(f"metrics {missing} were not simulated; simulated: {list(u.metric.values)}")
    w = _patient_weights(sim)
    grid = np.linspace(lo, hi, int(n_grid))
    out: dict[str, list[np.ndarray]] = {k: [] for k in (
        "f_opt", "var_log_opt", "var_log_aibw", "var_log_tbw", "at_bound", "dose_per_kg")}
    for m in metrics:
        lu = np.log(np.asarray(u.sel(metric=m).values, dtype=float))  # (draw, patient)
        ok = np.all(np.isfinite(lu), axis=1)

        def var_at(f: float | np.ndarray) -> np.ndarray:
            f = np.asarray(f, dtype=float)
            s = np.log(b[None, :] + f.reshape(-1, 1) * (x - b)[None, :])  # (draw or 1, patient)
            return _weighted_var(lu + s, w)

        v = np.stack([var_at(f) for f in grid], axis=1)  # (draw, grid)
        k = np.argmin(np.where(np.isfinite(v), v, np.inf), axis=1)
        f_opt = grid[k].copy()
        inner = (k > 0) & (k < grid.size - 1)
        if inner.any():
            rows = np.flatnonzero(inner)
            y0, y1, y2 = v[rows, k[rows] - 1], v[rows, k[rows]], v[rows, k[rows] + 1]
            denom = y0 - 2 * y1 + y2
            step = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
            f_opt[rows] = grid[k[rows]] + np.clip(step, -1, 1) * (grid[1] - grid[0])
        v_opt = _weighted_var(lu + np.log(b[None, :] + f_opt[:, None] * (x - b)[None, :]), w)
        f_opt = np.where(ok, f_opt, np.nan)
        out["f_opt"].append(f_opt)
        out["var_log_opt"].append(np.where(ok, v_opt, np.nan))
        out["var_log_aibw"].append(np.where(ok, var_at(AIBW_FRACTION), np.nan))
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
                     "target": target if isinstance(target, str) else str(dict(target or {}))})
    return ds


def _dose_per_kg(sim: xr.Dataset, metric: str, lu: np.ndarray, x: np.ndarray, b: np.ndarray,
                 f_opt: np.ndarray, w: np.ndarray | None, target: Mapping[str, float] | str | None) -> np.ndarray:
    """mg per kg of S(f*) whose median exposure equals the target, per draw."""
    n = lu.shape[0]
    if target is None:
        return np.full(n, np.nan)
    if isinstance(target, str):
        names = [str(s) for s in sim.strategy.values]
        labels = [str(v) for v in sim["strategy_label"].values] if "strategy_label" in sim.coords else names
        name = target if target in names else (names[labels.index(target)] if target in labels else None)
        if name is None:
            raise ConfigError(f"target strategy {target!r} is not one of {names}")
        e = np.asarray(sim["exposure"].sel(strategy=name, metric=metric).values, dtype=float)
        goal = _weighted_median(e, w)
    else:
        if metric not in target:
            return np.full(n, np.nan)
        goal = np.full(n, float(target[metric]))
    s = b[None, :] + np.where(np.isfinite(f_opt), f_opt, 0.0)[:, None] * (x - b)[None, :]
    per_mgkg = np.exp(lu) * s  # exposure of 1 mg per kg of S(f*)
    return goal / _weighted_median(per_mgkg, w)


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
