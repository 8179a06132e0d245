"""Exposure-toxicity: a Bayesian logistic model of a binary adverse event on exposure.

1. :func:`trial_exposures` -- each trial patient's exposure metric (e.g.
   cycle-1 Cmax) for every posterior draw of the PK fit: the patient's
   posterior individual parameters (``Fit.individual_parameters``) and their
   actual cycle-1 doses (``PKData.doses``), through the same kernel and
   metric code as the simulations.
2. :func:`fit_exposure_toxicity` -- ``logit P(event) = α + β (log E - log
   E_ref)`` fitted with PyMC.  PK uncertainty is propagated by integrating
   over the exposure draws: each patient's likelihood is the average of the
   Bernoulli likelihood over the M PK draws of their exposure
   (``uncertainty="marginal"``, the default; the PK posterior acts as the
   prior of the exposure, so this is the joint model with the PK part
   held at its posterior), or uses the posterior-mean log exposure
   (``"plugin"``; ignores exposure uncertainty).
3. :func:`predict_incidence` -- the expected incidence in a simulated
   population under each dosing strategy: per simulation draw, the mean over
   virtual patients of P(event | their exposure) with a logistic draw;
   posterior median and credible interval, and the difference from a
   reference strategy.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError, DatasetError, DataWarning
from poppk.model.elimination import uses_ode
from poppk.simulate.draws import draw_subset
from poppk.simulate.exposure import DOSE_LINEAR_METRICS, ExposurePlan, compute_exposures, metric_units
from poppk.simulate.schedule import Schedule, convert_time
from poppk.simulate.summaries import patient_weights

__all__ = ["trial_exposures", "fit_exposure_toxicity", "ExposureToxicity", "predict_incidence", "infer_cycle"]


def infer_cycle(doses: pd.DataFrame) -> float:
    """Cycle length from dose records: the median over subjects of the first interval between doses."""
    gaps = []
    for _, d in doses.groupby("ID", sort=False):
        t = np.unique(d["TIME"].to_numpy(dtype=float))
        if t.size >= 2:
            gaps.append(t[1] - t[0])
    if not gaps:
        raise ConfigError("no subject has two doses, so the cycle length cannot be inferred; pass cycle=")
    return float(np.median(gaps))


def _cycle(fit: Any, cycle: Any) -> float:
    tu = dict(fit.spec.units)["time"]
    if cycle is None:
        return infer_cycle(fit.data.doses)
    if isinstance(cycle, Schedule):
        return float(convert_time(cycle.cycle, cycle.unit, tu))
    c = float(cycle)
    if not c > 0:
        raise ConfigError(f"cycle must be > 0, got {cycle!r}")
    return c


def trial_exposures(
    fit: Any,
    metric: str = "cmax_c1",
    *,
    cycle: Any = None,
    n_draws: int | None = 200,
    seed: int = 0,
    **options: Any,
) -> xr.DataArray:
    """Exposure of every trial patient per posterior draw, from their actual doses.

    Parameters
    ----------
    fit
        A fit (``spec``, ``data``, ``individual_parameters()``).
    metric
        A dose-proportional metric (cycle-1 metrics use the doses of the
        patient's first cycle; ``*_ss`` metrics repeat them every cycle).
    cycle
        Cycle length in the model's time unit, or a :class:`Schedule` (its
        cycle); default: inferred from the dose records (:func:`infer_cycle`).
    n_draws, seed
        Posterior draws used (at random without replacement).
    **options
        Passed to :func:`~poppk.simulate.exposure.compute_exposures`.

    Returns
    -------
    xarray.DataArray
        Dims ``draw``, ``id`` (the fit's subject labels), with ``units``.
    """
    if metric not in DOSE_LINEAR_METRICS:
        raise ConfigError(f"metric must be one of {DOSE_LINEAR_METRICS}, got {metric!r}")
    if uses_ode(fit.spec):
        raise ConfigError(
            "the trial subjects' exposures are computed in closed form from one parameter set per subject "
            "and draw; a model with nonlinear elimination, time-varying covariates or occasion effects is not "
            "covered yet (fit the exposure-toxicity model on a fit without them)")
    ind = fit.individual_parameters()
    ind = ind.stack(sample=("chain", "draw")).transpose("sample", "id")
    idx = draw_subset(ind.sizes["sample"], n_draws, [int(seed), 2])
    ind = ind.isel(sample=idx)
    ids = [str(i) for i in ind["id"].values]
    subjects = list(fit.data.subjects)
    if [str(s) for s in subjects] != ids:
        raise ConfigError("the posterior's subjects do not match the dataset's (in order)")
    tau = _cycle(fit, cycle)
    oral = fit.spec.absorption is not None
    plan = ExposurePlan.from_dose_table(fit.data.doses, subjects, tau, oral=oral)
    n, k = len(idx), len(ids)
    tiled = dataclasses.replace(
        plan, **{f: np.tile(getattr(plan, f), (n, 1)) for f in
                 ("c1_time", "c1_amt", "c1_dur", "ss_time", "ss_amt", "ss_dur", "all_time", "all_amt", "all_dur")}
    )
    params = {p: np.asarray(ind[p].values, dtype=float).reshape(-1) for p in fit.spec.parameters}
    values = compute_exposures(params, tiled, [metric], n_cmt=fit.spec.n_cmt, **options)[metric].reshape(n, k)
    da = xr.DataArray(values, dims=("draw", "id"), coords={"draw": np.arange(n), "id": ids}, name=metric)
    da.attrs["units"] = metric_units(fit.spec.unit)[metric]
    da.attrs["cycle"] = tau
    return da


def _outcomes(fit: Any, column: str, outcomes: Any) -> pd.Series:
    subjects = list(fit.data.subjects)
    if outcomes is not None:
        s = pd.Series(outcomes) if not isinstance(outcomes, pd.Series) else outcomes.copy()
        s.index = [str(i) for i in s.index]
    else:
        cov = fit.data.covariates
        if column in cov.columns:
            s = cov[column]
        else:
            rec = fit.data.records
            if column not in rec.columns:
                raise DatasetError(
                    f"no outcome column {column!r} in the dataset", column=column,
                    valid=f"one of the covariates {list(cov.columns)}, or pass outcomes= (a Series by ID)",
                )
            s = rec.groupby("ID", sort=False)[column].apply(lambda x: x.dropna().iloc[0] if x.notna().any() else np.nan)
        s.index = [str(i) for i in s.index]
    s = s.reindex([str(i) for i in subjects])
    values = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & ~values.isin([0, 1])
    if bad.any():
        i = bad.idxmax()
        raise DatasetError(f"outcome of subject {i} is not 0/1", column=column, value=s[i], valid="0 (no event) or 1")
    missing = values.isna()
    if missing.any():
        warnings.warn(
            f"{int(missing.sum())} subject(s) without an outcome {column!r} are left out of the exposure-toxicity "
            f"model: {', '.join(map(str, s.index[missing][:20]))}",
            DataWarning,
            stacklevel=3,
        )
    return values[~missing].astype(int)


@dataclass(frozen=True, eq=False)
class ExposureToxicity:
    """A fitted logistic exposure-toxicity model.

    ``logit P(event) = alpha + beta * (log E - log_reference)``.

    Attributes
    ----------
    metric, unit
        The exposure metric and its unit.
    idata
        ArviZ InferenceData with ``alpha`` and ``beta``.
    log_reference
        log of the reference exposure (median over trial patients).
    exposures
        Trial exposures (draw, id) used.
    outcomes
        0/1 outcomes by subject (as used).
    uncertainty
        ``"marginal"`` or ``"plugin"``.
    """

    metric: str
    unit: str
    idata: Any
    log_reference: float
    exposures: xr.DataArray
    outcomes: pd.Series
    uncertainty: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> float:
        """The reference exposure (natural scale)."""
        return float(np.exp(self.log_reference))

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior draws of (alpha, beta), flattened over chains."""
        post = self.idata.posterior
        return np.asarray(post["alpha"].values).reshape(-1), np.asarray(post["beta"].values).reshape(-1)

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """alpha, beta, incidence at the reference exposure and odds ratio per doubling of exposure."""
        a, b = self.draws()
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        rows = {
            "alpha": a,
            "beta": b,
            "incidence_at_reference": 1 / (1 + np.exp(-a)),
            "odds_ratio_per_doubling": np.exp(b * np.log(2.0)),
        }
        return pd.DataFrame({k: {"median": float(np.median(v)), "lo": float(np.quantile(v, lo)),
                                 "hi": float(np.quantile(v, hi))} for k, v in rows.items()}).T

    def curve(self, exposure: Sequence[float] | None = None, *, ci: float = 0.9, n: int = 50) -> pd.DataFrame:
        """P(event) against exposure: posterior median and credible band (a plot's table)."""
        if exposure is None:
            e = np.asarray(self.exposures.median("draw").values)
            exposure = np.geomspace(e.min() / 1.5, e.max() * 1.5, n)
        x = np.log(np.asarray(exposure, dtype=float)) - self.log_reference
        a, b = self.draws()
        p = 1 / (1 + np.exp(-(a[:, None] + b[:, None] * x[None, :])))
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        return pd.DataFrame({"exposure": np.asarray(exposure, dtype=float), "p_median": np.median(p, 0),
                             "p_lo": np.quantile(p, lo, 0), "p_hi": np.quantile(p, hi, 0)})

    def observed(self) -> pd.DataFrame:
        """Per trial patient: posterior median exposure, 90% interval and outcome."""
        e = self.exposures.sel(id=list(self.outcomes.index))
        return pd.DataFrame({
            "exposure_median": e.median("draw").values,
            "exposure_lo": e.quantile(0.05, "draw").values,
            "exposure_hi": e.quantile(0.95, "draw").values,
            "outcome": self.outcomes.values,
        }, index=pd.Index(self.outcomes.index, name="ID"))


def fit_exposure_toxicity(
    fit: Any,
    outcome_column: str = "AE_OCULAR",
    metric: str = "cmax_c1",
    *,
    outcomes: Any = None,
    cycle: Any = None,
    n_pk_draws: int = 200,
    uncertainty: str = "marginal",
    intercept_prior: tuple[float, float] = (0.0, 1.5),
    slope_prior: tuple[float, float] = (0.0, 2.5),
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> ExposureToxicity:
    """Fit a Bayesian logistic model of a binary adverse event on exposure.

    Parameters
    ----------
    fit
        The PK fit.
    outcome_column
        Per-subject 0/1 column of the dataset (a covariate, or a record
        column: the subject's first non-missing value).
    metric
        Exposure metric (e.g. ``"cmax_c1"``, ``"auc_c1"``).
    outcomes
        0/1 outcomes by subject ID instead of a column.
    cycle
        Cycle length (model time unit) or a Schedule; default inferred.
    n_pk_draws
        PK posterior draws integrated over.
    uncertainty
        ``"marginal"`` (integrate each patient's likelihood over the PK draws
        of their exposure) or ``"plugin"`` (posterior-mean log exposure).
    intercept_prior, slope_prior
        Normal (mean, sd) of alpha (logit incidence at the reference
        exposure) and beta (per unit of log exposure).
    draws, tune, chains, seed, progress
        PyMC NUTS settings.

    Returns
    -------
    ExposureToxicity
    """
    import pymc as pm
    import pytensor.tensor as pt

    if uncertainty not in ("marginal", "plugin"):
        raise ConfigError(f"uncertainty must be 'marginal' or 'plugin', got {uncertainty!r}")
    y = _outcomes(fit, outcome_column, outcomes)
    if len(y) < 2 or y.nunique() < 2:
        raise DatasetError(
            f"the outcome {outcome_column!r} needs events and non-events to fit a logistic model "
            f"(got {int(y.sum())} events in {len(y)} subjects)", column=outcome_column,
        )
    exp = trial_exposures(fit, metric, cycle=cycle, n_draws=n_pk_draws, seed=seed, **options)
    e = exp.sel(id=list(y.index))
    loge = np.log(np.asarray(e.values, dtype=float))
    if not np.all(np.isfinite(loge)):
        raise ConfigError(f"some trial exposures ({metric}) are zero or not finite")
    log_ref = float(np.round(np.median(np.median(loge, axis=0)), 6))
    x = loge - log_ref  # (M, n)
    yv = y.to_numpy(dtype=float)
    with pm.Model(coords={"id": list(y.index)}):
        alpha = pm.Normal("alpha", mu=intercept_prior[0], sigma=intercept_prior[1])
        beta = pm.Normal("beta", mu=slope_prior[0], sigma=slope_prior[1])
        if uncertainty == "marginal":
            eta = alpha + beta * pt.as_tensor_variable(x)
            ll = yv[None, :] * eta - pt.softplus(eta)  # Bernoulli log-likelihood on the logit scale
            per_patient = pm.math.logsumexp(ll, axis=0) - np.log(x.shape[0])
            pm.Potential("loglik", per_patient.sum())
        else:
            pm.Bernoulli("y", logit_p=alpha + beta * x.mean(axis=0), observed=yv, dims="id")
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed,
                          progressbar=progress, compute_convergence_checks=False)
    idata = idata.copy()
    idata.posterior = idata.posterior[["alpha", "beta"]]
    return ExposureToxicity(
        metric=metric, unit=str(exp.attrs.get("units", "")), idata=idata, log_reference=log_ref, exposures=exp,
        outcomes=y, uncertainty=uncertainty,
        settings={"n_pk_draws": int(exp.sizes["draw"]), "draws": draws, "tune": tune, "chains": chains,
                  "seed": seed, "cycle": float(exp.attrs["cycle"]), "intercept_prior": intercept_prior,
                  "slope_prior": slope_prior, "outcome_column": outcome_column},
    )


def predict_incidence(
    tox: ExposureToxicity,
    sim: xr.Dataset,
    *,
    reference: str | None = None,
    ci: float = 0.9,
    seed: int = 0,
) -> pd.DataFrame:
    """Predicted incidence of the event under each simulated strategy.

    For each simulation draw d (PK posterior draw, fresh random effects) a
    logistic posterior draw k is paired at random; the incidence is the mean
    over virtual patients of expit(α_k + β_k (log E_dp - log E_ref)) -- weighted
    by draw d's patient weights when the simulation carries the population's
    Bayesian bootstrap (:func:`~poppk.simulate.summaries.patient_weights`),
    so the interval also holds the uncertainty of the population.

    Parameters
    ----------
    tox
        The exposure-toxicity model.
    sim
        A simulation with per-patient exposures of ``tox.metric``
        (``keep_exposure``); the kept patients are used.
    reference
        Strategy the differences are taken against (default: the first).
    ci
        Credible-interval mass.

    Returns
    -------
    pandas.DataFrame
        Index ``strategy``; columns ``incidence_median``, ``incidence_lo``,
        ``incidence_hi``, ``difference_median``, ``difference_lo``,
        ``difference_hi`` (vs reference, paired by draw), ``label``.
    """
    if "exposure" not in sim or sim.sizes.get("patient", 0) == 0:
        raise ConfigError("predict_incidence needs per-patient exposures: simulate with keep_exposure=True")
    if tox.metric not in sim.metric.values:
        raise ConfigError(f"the simulation lacks the metric {tox.metric!r}; it has {list(sim.metric.values)}")
    if "metric_unit" in sim.coords:
        u = str(sim["metric_unit"].sel(metric=tox.metric).values)
        if tox.unit and u != tox.unit:
            warnings.warn(f"units differ: simulation {u!r}, exposure-toxicity model {tox.unit!r}", UserWarning, stacklevel=2)
    E = sim["exposure"].sel(metric=tox.metric).transpose("draw", "patient", "strategy").values
    a, b = tox.draws()
    k = np.random.default_rng(seed).choice(a.size, size=E.shape[0], replace=a.size < E.shape[0])
    x = np.log(E) - tox.log_reference
    p = 1 / (1 + np.exp(-(a[k][:, None, None] + b[k][:, None, None] * x)))
    w = patient_weights(sim)
    if w is None:
        inc = p.mean(axis=1)  # (draw, strategy)
    else:
        inc = np.einsum("dp,dps->ds", np.asarray(w.transpose("draw", "patient").values, dtype=float), p)
    names = [str(s) for s in sim.strategy.values]
    ref = names[0] if reference is None else reference
    if ref not in names:
        raise ConfigError(f"reference strategy {ref!r} is not one of {names}")
    diff = inc - inc[:, [names.index(ref)]]
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    labels = list(sim["strategy_label"].values) if "strategy_label" in sim.coords else names
    df = pd.DataFrame({
        "label": labels,
        "incidence_median": np.median(inc, 0), "incidence_lo": np.quantile(inc, lo, 0),
        "incidence_hi": np.quantile(inc, hi, 0),
        "difference_median": np.median(diff, 0), "difference_lo": np.quantile(diff, lo, 0),
        "difference_hi": np.quantile(diff, hi, 0),
    }, index=pd.Index(names, name="strategy"))
    df.attrs.update({"reference": ref, "ci": ci, "metric": tox.metric, "n_draws": int(E.shape[0]),
                     "n_patients": int(E.shape[1]), "weighted": w is not None})
    return df
