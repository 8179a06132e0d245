"""Goodness-of-fit tables: predictions and residuals per observation, individual fits.

Residuals reported (all computed from the posterior):

* ``IWRES`` -- individual weighted residual ``(DV − IPRED) / SD(IPRED)`` with
  the posterior mean IPRED and the posterior median residual-error magnitudes
  (``(log DV − log IPRED)/σ`` for the exponential model); used for
  ε-shrinkage.  Conditional on the subjects' own data.
* ``PWRES`` -- population weighted residual from the posterior predictive
  distribution of new subjects: ``(DV − EPRED) / SD`` of the simulated values
  of the record (not decorrelated).
* ``NPDE`` -- normalised prediction distribution errors (decorrelated), see
  :mod:`poppk.diagnostics.npde`; the residual to plot against time and PRED.

BLQ records keep their row (DV = LLOQ, ``BLQ`` True); their IWRES and PWRES
are NaN and their NPDE is computed from an imputed value.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from poppk.diagnostics._common import (
    DiagnosticsError,
    flat_draw_count,
    grid_design,
    median_predictions,
    observation_frame,
    unit_labels,
)
from poppk.diagnostics.npde import npde_table
from poppk.model.likelihood import residual_sd
from poppk.model.predict import predict_draws
from poppk.model.analytes import error_terms

__all__ = ["gof_table", "iwres", "individual_fit_table"]


def iwres(dv: np.ndarray, ipred: np.ndarray, sigma: dict[str, float], error: str) -> np.ndarray:
    """Individual weighted residuals given IPRED and residual-error magnitudes.

    ``(DV − IPRED) / SD(IPRED)`` with :func:`poppk.model.likelihood.residual_sd`;
    ``(log DV − log IPRED) / σ_exp`` for the exponential model.
    """
    ip = np.maximum(np.asarray(ipred, dtype=float), 1e-12)
    dv = np.asarray(dv, dtype=float)
    if error == "exponential":
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.log(dv) - np.log(ip)) / sigma["exp"]
    sd = residual_sd(ip, sigma, error)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dv - ip) / sd


def gof_table(
    fit: Any,
    *,
    n_draws: int = 1000,
    seed: int = 0,
    blq: str = "impute",
    simulations: Any = None,
) -> pd.DataFrame:
    """Per-observation predictions and residuals.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    n_draws, seed, blq, simulations
        Passed to :func:`~poppk.diagnostics.npde.npde_table` (replicate studies
        with new subjects for EPRED, PWRES and NPDE).

    Returns
    -------
    pandas.DataFrame
        One row per observation: ``OBS, ID, TIME, TAFD, TAD, DV, BLQ, LLOQ``,
        ``PRED`` (posterior median of the typical-parameter prediction),
        ``IPRED`` (posterior median of the individual prediction),
        ``IPRED_MEAN``, ``IWRES``, ``EPRED``, ``PWRES``, ``NPDE``, ``NPD``.
        ``attrs`` carries axis labels with units.
    """
    obs = observation_frame(fit)
    preds = median_predictions(fit)
    sig = {k: float(np.median(v)) for k, v in fit.sigma_draws().items()}
    nt = npde_table(fit, n_draws=n_draws, seed=seed, blq=blq, simulations=simulations)
    out = obs[["OBS", "ID", "TIME", "TAFD", "TAD", "DV", "BLQ", "LLOQ", *(["ANALYTE"] if "ANALYTE" in obs else [])]].copy()
    out["PRED"] = preds["PRED"].to_numpy()
    out["IPRED"] = preds["IPRED"].to_numpy()
    out["IPRED_MEAN"] = preds["IPRED_MEAN"].to_numpy()
    sig_obs, error = error_terms(fit.spec, sig, fit.design.obs_analyte)
    w = iwres(out["DV"].to_numpy(), out["IPRED_MEAN"].to_numpy(), sig_obs, error)
    out["IWRES"] = np.where(out["BLQ"].to_numpy() | ~np.isfinite(w), np.nan, w)
    for c in ("EPRED", "PWRES", "NPDE", "NPD"):
        out[c] = nt[c].to_numpy()
    units = unit_labels(fit)
    out.attrs.update(
        {
            "time_unit": units["time_unit"],
            "concentration_unit": units["concentration_unit"],
            "n_draws": nt.attrs.get("n_draws"),
            "blq": blq,
        }
    )
    return out


def individual_fit_table(
    fit: Any,
    ids: Sequence[Any] | None = None,
    *,
    n_grid: int = 300,
    interval: float = 0.9,
    max_draws: int = 400,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Individual predictions on a dense time grid, and the observations.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    ids
        Subject IDs (default: all).
    n_grid
        Grid points per subject (and segment), evenly spaced from the first
        dose (or first observation) to the last observation, plus the dose
        times, infusion end times and observation times themselves.
    interval
        Probability of the credible band of IPRED.
    max_draws
        Posterior draws used (a random subset when there are more).
    seed
        Seed of the draw subset.

    Returns
    -------
    curves, points
        ``curves``: ``ID, TIME, IPRED`` (posterior median), ``IPRED_LOWER``,
        ``IPRED_UPPER`` (equal-tailed ``interval``), ``PRED`` (posterior median
        of the typical-parameter prediction), ``SEGMENT``.  ``points``: the
        observations with ``ID, TIME, DV, BLQ, LLOQ, IPRED, PRED``.  Both carry
        unit attrs.
    """
    from poppk.diagnostics._common import select_draws

    design = fit.design
    sid = np.asarray(design.subject_ids)
    if ids is None:
        wanted = np.arange(len(sid))
    else:
        lookup = {str(s): i for i, s in enumerate(sid.tolist())}
        missing = [i for i in ids if str(i) not in lookup]
        if missing:
            raise DiagnosticsError(f"unknown subject IDs {missing[:5]}; the fit has {sid[:5].tolist()}...")
        wanted = np.array([lookup[str(i)] for i in ids], dtype=int)
    obs = fit.data.observations
    doses = fit.data.doses
    g_sub, g_time, g_seg = [], [], []
    for s in wanted:
        sub_id = sid[s]
        o = obs[obs["ID"] == sub_id]
        d = doses[doses["ID"] == sub_id]
        for seg in sorted(set(o["SEGMENT"].tolist())):
            os_ = o[o["SEGMENT"] == seg]["TIME"].to_numpy(dtype=float)
            dseg = d[d["SEGMENT"] == seg]
            ds_ = dseg["TIME"].to_numpy(dtype=float)
            lo = min(os_.min(), ds_.min()) if ds_.size else os_.min()
            hi = os_.max()
            # dose starts and infusion ends, so that peaks are drawn where they are
            events = np.concatenate([ds_, ds_ + dseg["DUR"].to_numpy(dtype=float)])
            grid = np.unique(np.concatenate([np.linspace(lo, hi, n_grid), os_, events[(events >= lo) & (events <= hi)]]))
            g_sub.append(np.full(grid.size, s))
            g_time.append(grid)
            g_seg.append(np.full(grid.size, seg))
    sub_a = np.concatenate(g_sub)
    time_a = np.concatenate(g_time)
    seg_a = np.concatenate(g_seg)
    names = [a.name for a in fit.spec.analytes] or [None]
    # a multi-analyte model: the grid once per analyte
    ana_a = np.repeat(np.arange(len(names)), sub_a.size)
    sub_a, time_a, seg_a = (np.tile(x, len(names)) for x in (sub_a, time_a, seg_a))
    gd = grid_design(fit, sub_a, time_a, seg_a, ana_a)
    rng = np.random.default_rng(seed)
    total = flat_draw_count(fit)
    idx = select_draws(fit, min(max_draws, total), rng)
    p_ind = fit.parameter_draws(index=idx)
    p_typ = fit.parameter_draws(typical=True, index=idx)
    ip = predict_draws(fit.spec, gd, p_ind)
    pr = predict_draws(fit.spec, gd, p_typ)
    a = (1 - interval) / 2
    curves = pd.DataFrame(
        {
            "ID": sid[sub_a],
            "TIME": time_a,
            "SEGMENT": seg_a,
            "IPRED": np.median(ip, axis=0),
            "IPRED_LOWER": np.quantile(ip, a, axis=0),
            "IPRED_UPPER": np.quantile(ip, 1 - a, axis=0),
            "PRED": np.median(pr, axis=0),
        }
    )
    if names[0] is not None:
        curves["ANALYTE"] = np.array(names, dtype=object)[ana_a]
    ob = observation_frame(fit)
    preds = median_predictions(fit)
    ob["IPRED"] = preds["IPRED"].to_numpy()
    ob["PRED"] = preds["PRED"].to_numpy()
    cols = ["ID", "TIME", "DV", "BLQ", "LLOQ", "IPRED", "PRED", *(["ANALYTE"] if "ANALYTE" in ob else [])]
    points = ob[ob["SUBJECT"].isin(wanted)][cols].reset_index(drop=True)
    units = unit_labels(fit)
    for t in (curves, points):
        t.attrs.update({**units, "interval": float(interval)})
    return curves, points
