"""Helpers shared by the diagnostics: draws, per-observation times, dose arrays.

Nothing here is public API; the public functions live in the sibling modules.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from poppk.errors import PopPKError
from poppk.pk import padded_dose_matrix

__all__ = [
    "DiagnosticsError",
    "flat_draw_count",
    "select_draws",
    "time_after_dose",
    "observation_frame",
    "median_predictions",
    "grid_design",
    "unit_labels",
]


from poppk.errors import DiagnosticsError  # noqa: E402  (re-exported)

def flat_draw_count(fit: Any) -> int:
    """Number of posterior draws over all chains."""
    post = fit.idata.posterior
    return int(post.sizes["chain"] * post.sizes["draw"])


def select_draws(fit: Any, n_draws: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices into the flattened (chain, draw) posterior.

    All draws (in order) when ``n_draws`` is ``None``; a random subset without
    replacement when ``n_draws`` is at most the number of draws; with
    replacement otherwise.
    """
    total = flat_draw_count(fit)
    if n_draws is None:
        return np.arange(total)
    n_draws = int(n_draws)
    if n_draws < 1:
        raise DiagnosticsError(f"n_draws must be >= 1, got {n_draws}")
    if n_draws <= total:
        return np.sort(rng.choice(total, size=n_draws, replace=False))
    return rng.choice(total, size=n_draws, replace=True)


def time_after_dose(design: Any) -> np.ndarray:
    """Time since the most recent dose (start of dose) of every observation.

    Computed from the padded dose matrix of the design (doses of the same
    subject and segment that precede the observation); NaN for an
    observation that no dose precedes.
    """
    dt = np.where(design.doses["mask"], design.doses["dt"], np.inf)
    tad = dt.min(axis=1) if dt.shape[1] else np.full(design.n_obs, np.inf)
    return np.where(np.isfinite(tad), tad, np.nan)


def _last_dose_amount(design: Any) -> np.ndarray:
    mask = design.doses["mask"]
    if not mask.shape[1]:
        return np.full(design.n_obs, np.nan)
    dt = np.where(mask, design.doses["dt"], np.inf)
    j = np.argmin(dt, axis=1)
    amt = design.doses["amt"][np.arange(design.n_obs), j]
    return np.where(mask.any(axis=1), amt, np.nan)


def observation_frame(fit: Any) -> pd.DataFrame:
    """One row per observation of the design (in ``obs`` order).

    Columns: ``OBS`` (index into the ``obs`` dimension), ``ID``, ``SUBJECT``
    (integer index), ``TIME``, ``TAFD`` (time after the subject's first dose),
    ``TAD`` (time after the most recent dose), ``DOSE`` (amount of the most
    recent dose), ``DV``, ``BLQ``, ``LLOQ`` (NaN where none), ``ROW`` (data
    row of the record); for a multi-analyte model also ``ANALYTE`` (its name).
    """
    d = fit.design
    doses = fit.data.doses
    ids = np.asarray(d.subject_ids)
    first = doses.groupby("ID", sort=False)["TIME"].min()
    first_by_subject = np.array([first.get(s, np.nan) for s in ids.tolist()], dtype=float)
    lloq = np.where(d.lloq > 0, d.lloq, np.nan)
    analyte = {} if d.obs_analyte is None else {
        "ANALYTE": np.array([a.name for a in fit.spec.analytes], dtype=object)[d.obs_analyte]}
    return pd.DataFrame(
        {
            "OBS": np.arange(d.n_obs),
            "ID": ids[d.obs_subject],
            "SUBJECT": d.obs_subject,
            "TIME": d.obs_time,
            "TAFD": d.obs_time - first_by_subject[d.obs_subject],
            "TAD": time_after_dose(d),
            "DOSE": _last_dose_amount(d),
            "DV": d.dv,
            "BLQ": d.blq.astype(bool),
            "LLOQ": lloq,
            "ROW": d.obs_row,
            **analyte,
        }
    )


def median_predictions(fit: Any, *, max_draws: int = 1000) -> pd.DataFrame:
    """Posterior median of PRED and IPRED at every observation (and the mean of IPRED).

    PRED is the prediction of a subject's typical parameters (covariates, η =
    0) and IPRED of its individual parameters; both are computed per draw
    and summarised by the posterior median.  At most ``max_draws`` draws are
    used (the chains are thinned evenly).  The table is computed once per fit
    (kept in ``fit._cache``; the checks call it several times) and a copy is
    returned.
    """
    cache = getattr(fit, "_cache", None)
    key = ("median_predictions", int(max_draws))
    if cache is not None and key in cache:
        return cache[key].copy()
    total = flat_draw_count(fit)
    n_per_chain = fit.idata.posterior.sizes["draw"]
    thin = max(1, int(np.ceil(total / max_draws)))
    thin = min(thin, n_per_chain)
    pr = fit.predictions(thin=thin)
    ipred = pr["ipred"].values.reshape(-1, pr.sizes["obs"])
    pred = pr["pred"].values.reshape(-1, pr.sizes["obs"])
    table = pd.DataFrame(
        {
            "PRED": np.median(pred, axis=0),
            "IPRED": np.median(ipred, axis=0),
            "IPRED_MEAN": ipred.mean(axis=0),
        }
    )
    if cache is not None:
        cache[key] = table
    return table.copy()


def dose_arrays(fit: Any) -> dict[str, np.ndarray]:
    """Dose events of the data as arrays for :func:`poppk.pk.padded_dose_matrix`.

    Follows the conventions of :func:`poppk.model.design.build_design`
    (doses into CMT 1 are oral when the spec has first-order absorption).
    """
    doses = fit.data.doses
    index = {sid: i for i, sid in enumerate(np.asarray(fit.design.subject_ids).tolist())}
    cmt = doses["CMT"].to_numpy(dtype=np.int64)
    oral = (cmt == 1) if fit.spec.absorption == "first-order" else np.zeros(len(doses), dtype=bool)
    return {
        "subject": np.array([index[s] for s in doses["ID"].tolist()], dtype=np.int64),
        "time": doses["TIME"].to_numpy(dtype=float),
        "segment": doses["SEGMENT"].to_numpy(dtype=np.int64),
        "order": doses["ROW"].to_numpy(dtype=float)
        + 1e-3 * doses.get("ADDL_INDEX", 0 * doses["ROW"]).to_numpy(dtype=float),
        "amt": doses["AMT"].to_numpy(dtype=float),
        "dur": doses["DUR"].to_numpy(dtype=float),
        "oral": oral,
        "ss": doses["SS"].to_numpy(dtype=np.int64),
        "ii": doses["II"].to_numpy(dtype=float),
    }


def grid_design(fit: Any, subject: np.ndarray, time: np.ndarray, segment: np.ndarray,
                analyte: np.ndarray | None = None) -> Any:
    """A copy of the fit's design whose "observations" are arbitrary (subject, time) points.

    Used to predict on a dense time grid with the same code that made the
    fitted predictions (:func:`poppk.model.predict.predict_draws`).  A dose at
    exactly a grid time counts as given (the grid point follows it).  In a
    multi-analyte model ``analyte`` gives each point's analyte index (default:
    the parent).
    """
    from poppk.pk.recursion import recursion_plan

    dz = dose_arrays(fit)
    n = len(time)
    mat = padded_dose_matrix(
        subject, time, segment, np.full(n, np.inf),
        dz["subject"], dz["time"], dz["segment"], dz["order"], dz["amt"], dz["dur"], dz["oral"],
        dz["ss"], dz["ii"],
    )
    plan = None
    if fit.design.plan is not None:
        plan = recursion_plan(subject, mat, dz["subject"], dz["time"], fit.design.n_subjects)
    ode = fit.design.ode
    if ode is not None:  # the solver's own design on the grid: same doses and parameter segments
        from poppk.pk.ode import ode_design

        seg = fit.design.segments
        ode = ode_design(subject, time, dz["subject"], dz["time"], dz["amt"], dz["dur"], dz["oral"],
                         n_subjects=fit.design.n_subjects,
                         seg_subject=None if seg is None else seg.subject, seg_time=None if seg is None else seg.time)
    return dataclasses.replace(
        fit.design,
        obs_subject=np.asarray(subject, dtype=np.int64),
        obs_time=np.asarray(time, dtype=float),
        dv=np.zeros(n),
        blq=np.zeros(n, dtype=bool),
        lloq=np.zeros(n),
        obs_row=np.full(n, -1, dtype=np.int64),
        doses=mat,
        plan=plan,
        ode=ode,
        obs_analyte=None if fit.design.obs_analyte is None else (
            np.zeros(n, dtype=np.int64) if analyte is None else np.asarray(analyte, dtype=np.int64)),
    )


def unit_labels(fit: Any) -> dict[str, str]:
    """Axis labels with units: ``time``, ``concentration``."""
    u = fit.spec.unit
    return {
        "time_unit": u.get("time", ""),
        "concentration_unit": u.get("concentration", ""),
    }
