"""Shared fixtures of the diagnostics tests (imported by the test modules).

Two kinds of fit:

* *oracle fits* (:func:`oracle_fit`): a :class:`~poppk.model.Fit` whose
  "posterior" is the simulation truth repeated over every draw (population
  parameters, the subjects' true log parameters as ``theta``).  No MCMC; the
  posterior predictive distribution is then exactly the data-generating
  distribution, so NPDE must be N(0, 1), VPC percentiles must fall inside
  their bands, etc.  Cheap enough for unit tests.
* *real fits* (:func:`good_fit`, :func:`bad_fit`): NUTS fits of a small
  simulated study, compiled once per session (``functools.lru_cache``).  The
  study is simulated from a 2-compartment model with an allometric weight
  effect on CL; ``good_fit`` is the true model, ``bad_fit`` is a
  1-compartment model without the weight effect (doubly misspecified).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from poppk.data import read_nonmem
from poppk.model import CovariateEffect, Fit, ModelSpec
from poppk.pk import concentration

#: Sampling times (h); doses of 100 mg at 0 and 24 h.
TIMES = np.array([0.25, 0.5, 1, 2, 4, 8, 12, 23.5, 24.5, 25, 26, 28, 32, 40, 48], dtype=float)
DOSE_TIMES = np.array([0.0, 24.0])
DOSE = 100.0
LLOQ = 0.4

TRUTH_2CMT = {"CL": 2.0, "V1": 10.0, "Q": 4.0, "V2": 25.0, "beta_CL_WT": 0.75,
              "omega_CL": 0.3, "omega_V1": 0.25, "sigma_prop": 0.15}
TRUTH_1CMT = {"CL": 2.0, "V1": 20.0, "omega_CL": 0.3, "omega_V1": 0.25, "sigma_prop": 0.15}


def simulate_study(
    n: int = 24,
    *,
    structure: str = "2cmt",
    truth: dict[str, float] | None = None,
    wt_effect: bool = True,
    lloq: float | None = LLOQ,
    seed: int = 1,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A NONMEM-style DataFrame simulated from known truth, and the true log parameters.

    Returns
    -------
    df, log_params
        ``log_params`` maps each structural parameter to the subjects' true
        log values (with η).
    """
    truth = dict(truth or (TRUTH_2CMT if structure == "2cmt" else TRUTH_1CMT))
    rng = np.random.default_rng(seed)
    wt = np.round(70 * np.exp(rng.normal(0, 0.3, n)), 1)
    age = np.round(rng.uniform(20, 80, n))
    sex = rng.integers(0, 2, n)
    n_cmt = {"1cmt": 1, "2cmt": 2}[structure]
    params = ("CL", "V1") + (("Q", "V2") if n_cmt == 2 else ())
    logp = {p: np.full(n, np.log(truth[p])) for p in params}
    if wt_effect:
        logp["CL"] = logp["CL"] + truth.get("beta_CL_WT", 0.75) * np.log(wt / 70.0)
    logp["CL"] = logp["CL"] + rng.normal(0, truth["omega_CL"], n)
    logp["V1"] = logp["V1"] + rng.normal(0, truth["omega_V1"], n)
    dt = TIMES[:, None] - DOSE_TIMES[None, :]
    amt = np.where(dt >= 0, DOSE, 0.0)
    rows = []
    for i in range(n):
        p = {k: np.exp(v[i]) for k, v in logp.items()}
        c = concentration(dt, amt, p, n_cmt=n_cmt)
        dv = c * (1 + truth["sigma_prop"] * rng.normal(size=c.shape))
        for t in DOSE_TIMES:
            rows.append({"ID": i + 1, "TIME": t, "AMT": DOSE, "DV": np.nan, "EVID": 1, "MDV": 1, "CMT": 1})
        for t, y in zip(TIMES, dv):
            rows.append({"ID": i + 1, "TIME": t, "AMT": 0.0, "DV": y, "EVID": 0, "MDV": 0, "CMT": 1})
    df = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], ascending=[True, True, False], kind="stable")
    if lloq is not None:
        df["LLOQ"] = lloq
        obs = df["EVID"] == 0
        df["BLQ"] = (obs & (df["DV"] < lloq)).astype(int)
        df.loc[df["BLQ"] == 1, "DV"] = lloq
    cov = pd.DataFrame({"ID": np.arange(1, n + 1), "WT": wt, "AGE": age, "SEX": sex})
    df = df.merge(cov, on="ID").reset_index(drop=True)
    return df, logp


def read(df: pd.DataFrame) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_nonmem(df)


def spec_2cmt_wt() -> ModelSpec:
    return ModelSpec(
        structure="2cmt", typical={"CL": 2.0, "V1": 10.0, "Q": 4.0, "V2": 25.0},
        covariates=(CovariateEffect("CL", "WT", "power", reference=70.0),),
        iiv=("CL", "V1"), error="proportional", units={"time": "h"},
    )


def spec_1cmt() -> ModelSpec:
    return ModelSpec(structure="1cmt", typical={"CL": 2.0, "V1": 20.0}, iiv=("CL", "V1"), error="proportional",
                     units={"time": "h"})


# ------------------------------------------------------------- oracle fits
def oracle_fit(
    spec: ModelSpec,
    data: Any,
    population: dict[str, float],
    log_params: dict[str, np.ndarray],
    *,
    n_draws: int = 100,
) -> Fit:
    """A Fit whose posterior is the truth repeated over ``n_draws`` draws (one chain)."""
    spec = spec.resolved(data.covariates)
    ids = [str(s) for s in data.subjects]
    post: dict[str, Any] = {}
    for name, value in population.items():
        if name in spec.parameters or name.startswith(("omega_", "sigma_", "beta_")):
            post[name] = (("chain", "draw"), np.full((1, n_draws), float(value)))
    if spec.iiv:
        theta = np.stack([log_params[p] for p in spec.iiv], axis=-1)
        post["theta"] = (("chain", "draw", "id", "iiv"), np.broadcast_to(theta, (1, n_draws) + theta.shape).copy())
    posterior = xr.Dataset(post, coords={"chain": [0], "draw": np.arange(n_draws), "id": ids, "iiv": list(spec.iiv)})
    import arviz as az

    idata = az.InferenceData(posterior=posterior)
    from poppk.model.design import build_design
    from poppk.model.fit import _tidy_idata, population_variables

    design = build_design(spec, data)
    idata = _tidy_idata(idata, spec, design, population_variables(spec) + ["theta"])
    f = Fit(idata=idata, spec=spec, data=data, settings={"oracle": True}, _design=design)
    f.add_log_likelihood()
    return f


@functools.lru_cache(maxsize=None)
def oracle_study(n: int = 40, seed: int = 3, lloq: float | None = LLOQ) -> tuple[Fit, pd.DataFrame]:
    """Oracle fit of the true 2-cmt + WT model on a simulated study, and its DataFrame."""
    df, logp = simulate_study(n, seed=seed, lloq=lloq)
    data = read(df)
    return oracle_fit(spec_2cmt_wt(), data, TRUTH_2CMT, logp), df


# ---------------------------------------------------------------- real fits
@functools.lru_cache(maxsize=None)
def study() -> tuple[pd.DataFrame, Any]:
    df, _ = simulate_study(24, seed=11)
    return df, read(df)


def _fit(spec: ModelSpec) -> Fit:
    from poppk.model import fit

    _, data = study()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(spec, data, draws=150, tune=150, chains=2, progress=False, seed=1, warn=False)


@functools.lru_cache(maxsize=None)
def good_fit() -> Fit:
    """NUTS fit of the true model (2-cmt, WT on CL) to :func:`study`."""
    return _fit(spec_2cmt_wt())


@functools.lru_cache(maxsize=None)
def bad_fit() -> Fit:
    """NUTS fit of a 1-cmt model without the weight effect to the same study."""
    return _fit(spec_1cmt())
