"""Summaries of a simulation: between-patient variability and parameter uncertainty apart.

:func:`~poppk.simulate.engine.simulate_strategies` stores, for every posterior
draw, statistics over the virtual patients (quantiles, mean, SD, moments of log
exposure, fractions above thresholds).  :func:`per_draw_statistics` turns them
into the between-patient statistics of each draw (median, 5th/95th
percentiles, CV, variance of log exposure); :func:`summarize_strategies`
reports each as its posterior median and credible interval across draws, with
the variance ratio against a reference strategy.

When the simulation carries the population's Bayesian bootstrap
(``attrs["population_uncertainty"] == "bootstrap"``), every statistic over
patients is weighted by that draw's patient weights
(:func:`patient_weights`), and the interval across draws holds the
uncertainty of the parameters and of the population distribution.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError
from poppk.simulate.weighting import expand_weights, weight_parts

__all__ = ["patient_weights", "per_draw_statistics", "summarize_strategies", "resolve_strategy"]


def _source_parts(sim: xr.Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """(source weights (draw, source), each patient's source position), or None without the bootstrap."""
    if "source_weight" not in sim or "source_index" not in sim.coords:
        return None
    g = np.asarray(sim["source_weight"].transpose("draw", "source").values, dtype=float)
    return g, np.asarray(sim["source_index"].values, dtype=np.intp)


def patient_weights(sim: xr.Dataset) -> xr.DataArray | None:
    """Per-draw weights of the virtual patients (the population's Bayesian bootstrap), or None.

    Patient ``j`` of draw ``d`` weighs ``source_weight[d, s_j] / c_{s_j}``
    (``c_s``: the patients of the simulation's ``patient`` dimension drawn
    from source ``s``), normalised to sum 1 per draw: the statistic of draw
    ``d`` over patients is the weighted one, and its spread across draws
    carries the uncertainty of the population distribution.  When only the
    first patients were kept the weights are those of the kept patients
    (the bootstrap restricted to their sources, again summing to 1).

    Parameters
    ----------
    sim
        Output of :func:`~poppk.simulate.engine.simulate_strategies`.

    Returns
    -------
    xarray.DataArray or None
        Dims (draw, patient), each draw summing to 1 (a draws × patients
        array in memory); None when the simulation has no population
        weights (``population_uncertainty`` off, a sampled population or a
        user's table).

    Examples
    --------
    >>> from poppk.model import ModelSpec, CovariateEffect
    >>> from poppk.simulate import (PosteriorDraws, PerKg, Schedule, resample_population, sample_population,
    ...                             simulate_strategies)
    >>> spec = ModelSpec("1cmt", {"CL": 0.03, "V1": 4.0}, covariates=(CovariateEffect("CL", "TBW", reference=70.0),),
    ...                  iiv=("CL",), units={"time": "day"})
    >>> draws = PosteriorDraws.from_values(spec, typical={"CL": 0.03, "V1": 4.0}, betas={"beta_CL_TBW": 0.75},
    ...                                    omega={"CL": 0.3}, n_draws=3)
    >>> trial = sample_population(40, seed=1).covariates
    >>> sim = simulate_strategies(draws, {"TBW": PerKg(5)}, Schedule.q3w(2), resample_population(trial, 500),
    ...                           metrics=["auc_ss"])
    >>> w = patient_weights(sim)
    >>> w.dims, bool(np.allclose(w.sum("patient"), 1.0))
    (('draw', 'patient'), True)
    """
    parts = _source_parts(sim)
    if parts is None:
        return None
    g, src = parts
    w = expand_weights(g, src) if src.size else np.zeros((g.shape[0], 0))
    coords: dict[str, Any] = {}
    if "draw" in sim.coords:
        coords["draw"] = sim["draw"].values
    if "patient" in sim.coords:
        coords["patient"] = sim["patient"].values
    return xr.DataArray(w, dims=("draw", "patient"), coords=coords, name="patient_weight")


def _lazy_patient_weights(sim: xr.Dataset, like: xr.DataArray) -> xr.DataArray | None:
    """:func:`patient_weights` as a dask array chunked like ``like``'s (draw, patient) axes (computed per chunk)."""
    parts = _source_parts(sim)
    if parts is None:
        return None
    import dask.array as da

    g, src = parts
    count, total = weight_parts(g, src)
    axes = [like.dims.index("draw"), like.dims.index("patient")]
    chunks = (like.data.chunks[axes[0]], like.data.chunks[axes[1]])

    def block(block_info: Any = None) -> np.ndarray:
        (d0, d1), (p0, p1) = block_info[None]["array-location"]
        return g[d0:d1][:, src[p0:p1]] / count[None, p0:p1] / total[d0:d1, None]

    w = da.map_blocks(block, dtype=float, chunks=chunks, meta=np.empty((0, 0)))
    return xr.DataArray(w, dims=("draw", "patient"), coords={"draw": sim["draw"].values, "patient": sim["patient"].values})


def per_draw_statistics(sim: xr.Dataset, *, exceed: Mapping[str, float] | None = None) -> xr.Dataset:
    """Between-patient statistics of every draw, dims (draw, strategy, metric).

    Variables: ``median`` (median exposure over patients), ``p05``, ``p95``,
    ``bpv_cv`` (SD / mean over patients), ``bpv_var_log`` (variance of log
    exposure), ``log_mean`` and ``p_exceed``.  With ``exceed`` the fractions
    above new thresholds are recomputed from the per-patient exposures (all
    patients must have been kept), weighted by :func:`patient_weights` when
    the simulation carries the population bootstrap.
    """
    q = sim["quantiles"]
    out = xr.Dataset({
        "median": _q(q, 0.5),
        "p05": _q(q, 0.05),
        "p95": _q(q, 0.95),
        "bpv_cv": sim["sd"] / sim["mean"],
        "bpv_var_log": sim["log_var"],
        "log_mean": sim["log_mean"],
        "p_exceed": sim["p_exceed"],
    })
    if exceed:
        if "exposure" not in sim or sim.attrs.get("n_patients_kept") != sim.attrs.get("n_patients"):
            raise ConfigError(
                "new exceed thresholds need every patient's exposure; simulate with keep_exposure=True or pass "
                "exceed= to simulate_strategies"
            )
        thr = xr.DataArray([float(exceed.get(m, np.nan)) for m in sim.metric.values], dims="metric",
                           coords={"metric": sim.metric.values})
        above = sim["exposure"] > thr.fillna(0.0)
        lazy = not isinstance(sim["exposure"].data, np.ndarray)
        w = _lazy_patient_weights(sim, sim["exposure"]) if lazy else patient_weights(sim)
        if w is None:
            frac = above.mean("patient")
        else:
            frac = (above * w).sum("patient")
        frac = frac.compute()  # one pass over lazy exposures
        out["p_exceed"] = frac.where(thr.notnull())
        out = out.assign_coords(exceed_threshold=thr)
    return out


def _q(q: xr.DataArray, level: float) -> xr.DataArray:
    levels = np.asarray(q["quantile"].values, dtype=float)
    j = np.flatnonzero(np.isclose(levels, level))
    if j.size:
        return q.isel(quantile=int(j[0])).drop_vars("quantile")
    return q.isel(quantile=0).drop_vars("quantile") * np.nan


def _default_reference(sim: xr.Dataset) -> str:
    labels = list(sim["strategy_label"].values) if "strategy_label" in sim.coords else list(sim.strategy.values)
    for name, lab in zip(sim.strategy.values, labels):
        if "mg/kg TBW" in str(lab) and "," not in str(lab):
            return str(name)
    return str(sim.strategy.values[0])


def resolve_strategy(sim: xr.Dataset, key: str, *, role: str = "strategy") -> str:
    """The name of the simulated strategy called ``key`` (its name or its label).

    Raises :class:`~poppk.errors.ConfigError` naming the strategies there are.
    """
    names = [str(s) for s in sim.strategy.values]
    if key in names:
        return key
    labels = [str(x) for x in sim["strategy_label"].values] if "strategy_label" in sim.coords else []
    if key in labels:
        return names[labels.index(key)]
    known = ", ".join(f"{n!r}" + (f" ({lab!r})" if lab != n else "") for n, lab in zip(names, labels or names))
    raise ConfigError(f"{role} {key!r} is not one of the simulated strategies: {known}")


def _resolve_reference(sim: xr.Dataset, reference: str | None) -> str:
    if reference is None:
        return _default_reference(sim)
    return resolve_strategy(sim, reference, role="reference strategy")


def summarize_strategies(
    sim: xr.Dataset,
    *,
    reference: str | None = None,
    exceed: Mapping[str, float] | None = None,
    ci: float = 0.9,
    stats: xr.Dataset | None = None,
) -> pd.DataFrame:
    """Exposure summary per strategy and metric, with BPV and uncertainty apart.

    For every draw the between-patient statistics are computed over patients
    (:func:`per_draw_statistics`); each is reported as its posterior median
    and equal-tailed ``ci`` credible interval across draws (parameter
    uncertainty; with the population's Bayesian bootstrap, also the
    uncertainty of the population distribution, whose support is the
    covariate vectors of the trial the population was resampled from --
    see ``population_uncertainty`` of
    :func:`~poppk.simulate.engine.simulate_strategies`; a user's table is
    taken as the population itself).

    Parameters
    ----------
    sim
        Output of :func:`~poppk.simulate.engine.simulate_strategies`.
    reference
        Strategy (name or label) the variance ratios are taken against;
        default: the first plain "mg/kg TBW" strategy, else the first.
    exceed
        New ``{metric: threshold}`` for the exceedance probabilities (needs
        all per-patient exposures); default: those given at simulation.
    ci
        Credible-interval mass (0.9 = 5th-95th percentiles across draws).
    stats
        ``per_draw_statistics(sim, exceed=exceed)`` if already computed.

    Returns
    -------
    pandas.DataFrame
        Index (``strategy``, ``metric``).  Columns, each ``_median``, ``_lo``,
        ``_hi`` across draws:

        * ``median_exposure`` -- median over patients (typical exposure);
        * ``p05``, ``p95`` -- 5th/95th percentiles over patients;
        * ``bpv_cv`` -- between-patient CV (SD/mean over patients);
        * ``bpv_var_log`` -- between-patient variance of log exposure;
        * ``var_ratio`` -- ``bpv_var_log`` / the reference's, per draw;
        * ``p_exceed`` -- fraction of patients above ``threshold``;

        and ``prob_var_ratio_below_1`` (posterior probability that the
        strategy has less between-patient variance than the reference),
        ``var_log_bpv`` (mean over draws of the BPV variance of log exposure),
        ``var_log_param`` (variance over draws of the mean log exposure: the
        parameter-uncertainty part, and the population's with the bootstrap), ``label``, ``unit``, ``threshold``.
        ``attrs`` holds ``reference``, ``ci``, ``n_draws``, ``n_patients``,
        ``population_uncertainty``.
    """
    if not 0 < ci < 1:
        raise ConfigError(f"ci must be in (0, 1), got {ci}")
    ref = _resolve_reference(sim, reference)
    st = (per_draw_statistics(sim, exceed=exceed) if stats is None else stats).copy()
    st["var_ratio"] = st["bpv_var_log"] / st["bpv_var_log"].sel(strategy=ref)
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    rows = []
    labels = dict(zip(sim.strategy.values, sim["strategy_label"].values)) if "strategy_label" in sim.coords else {}
    units = dict(zip(sim.metric.values, sim["metric_unit"].values)) if "metric_unit" in sim.coords else {}
    thr = st["exceed_threshold"] if "exceed_threshold" in st.coords else sim.get("exceed_threshold")
    thr_map = dict(zip(sim.metric.values, np.asarray(thr.values if thr is not None else [np.nan] * sim.sizes["metric"])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for s in sim.strategy.values:
            for m in sim.metric.values:
                row: dict[str, Any] = {"strategy": str(s), "metric": str(m), "label": str(labels.get(s, s)),
                                       "unit": str(units.get(m, ""))}
                for name, var in (("median_exposure", "median"), ("p05", "p05"), ("p95", "p95"),
                                  ("bpv_cv", "bpv_cv"), ("bpv_var_log", "bpv_var_log"),
                                  ("var_ratio", "var_ratio"), ("p_exceed", "p_exceed")):
                    v = np.asarray(st[var].sel(strategy=s, metric=m).values, dtype=float)
                    v = v[np.isfinite(v)]
                    if v.size:
                        row[f"{name}_median"] = float(np.median(v))
                        row[f"{name}_lo"] = float(np.quantile(v, lo_q))
                        row[f"{name}_hi"] = float(np.quantile(v, hi_q))
                    else:
                        row[f"{name}_median"] = row[f"{name}_lo"] = row[f"{name}_hi"] = np.nan
                r = np.asarray(st["var_ratio"].sel(strategy=s, metric=m).values, dtype=float)
                r = r[np.isfinite(r)]
                row["prob_var_ratio_below_1"] = float(np.mean(r < 1)) if r.size else np.nan
                lv = np.asarray(st["bpv_var_log"].sel(strategy=s, metric=m).values, dtype=float)
                lm = np.asarray(st["log_mean"].sel(strategy=s, metric=m).values, dtype=float)
                row["var_log_bpv"] = float(np.nanmean(lv)) if np.isfinite(lv).any() else np.nan
                row["var_log_param"] = float(np.nanvar(lm, ddof=1)) if np.isfinite(lm).sum() > 1 else 0.0
                row["threshold"] = float(thr_map.get(m, np.nan))
                rows.append(row)
    df = pd.DataFrame(rows).set_index(["strategy", "metric"])
    df.attrs.update({"reference": ref, "ci": ci, "n_draws": int(sim.sizes["draw"]),
                     "n_patients": int(sim.attrs.get("n_patients", sim.sizes.get("patient", 0))),
                     "population_uncertainty": str(sim.attrs.get("population_uncertainty", "none"))})
    return df

