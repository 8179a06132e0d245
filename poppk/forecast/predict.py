"""``forecast``: a new patient's concentrations, exposure and parameters from her data.

:func:`forecast` checks the patient (:mod:`poppk.forecast.patient`), computes
her individual posterior (:mod:`poppk.forecast.posterior`) and, from an
equally weighted resample of it, her concentration-time curve (the fit's
kernel on her dosing history, :func:`poppk.model.predict.predict_design`),
her exposure metrics (:func:`poppk.simulate.exposure.compute_exposures`, the
simulation's metrics on her first cycle) and her parameters, each reduced to
quantiles.  Beside the individual forecast it keeps the *population*
prediction for the same patient (same covariates and doses, no
concentrations used): what the label's covariate model alone expects.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk import defaults
from poppk.errors import ConfigError
from poppk.forecast.patient import PatientRecord, make_patient
from poppk.forecast.posterior import IndividualPosterior, _design_spec, individual_posterior
from poppk.model.design import build_design
from poppk.model.predict import predict_design
from poppk.model.spec import ModelSpec
from poppk.simulate.exposure import ExposurePlan, check_metrics, compute_exposures, metric_units
from poppk.simulate.schedule import convert_time

__all__ = ["Forecast", "forecast", "DEFAULT_FORECAST_METRICS", "FORECAST_QUANTILES"]

#: Exposure metrics of a forecast by default (cycle 1 of her doses, and steady state of that cycle).
DEFAULT_FORECAST_METRICS: tuple[str, ...] = ("ceoi_c1", "cmax_c1", "ctrough_c1", "auc_c1", "cmax_ss", "auc_ss")
#: Quantiles kept of every forecast quantity.
FORECAST_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
_PREDICTIONS = ("individual", "population")


@dataclass(frozen=True, eq=False)
class Forecast:
    """The forecast of one patient (build it with :func:`forecast`).

    Attributes
    ----------
    spec
        The fitted spec.
    record
        The checked patient (covariates, doses, observations).
    posterior
        Her individual posterior (weighted samples, Pareto k̂, ESS).
    prior
        The population prediction for her (no observations used).
    summary
        ``xarray.Dataset`` with dims ``prediction`` (``individual``,
        ``population``), ``time``, ``metric``, ``parameter``, ``quantile``:
        ``conc`` (prediction, time, quantile; the model concentration),
        ``conc_pi`` (the same with residual error: where a measured
        concentration would fall), ``exposure`` and ``exposure_mean``
        (prediction, metric[, quantile]), ``parameter_q`` and
        ``parameter_mean`` (prediction, parameter[, quantile]).
    samples
        Equally weighted resample, dims ``prediction, sample``: individual
        parameters (``CL``, ``V1``, ...), the residual-error magnitudes
        (``sigma_<name>``) and ``exposure`` (prediction, sample, metric).
    cycle
        Cycle length τ of the metrics, model time unit.
    elapsed_s
        Wall time of the forecast.
    """

    spec: ModelSpec
    record: PatientRecord
    posterior: IndividualPosterior = field(repr=False)
    prior: IndividualPosterior = field(repr=False)
    summary: xr.Dataset = field(repr=False)
    samples: xr.Dataset = field(repr=False)
    cycle: float = float("nan")
    elapsed_s: float = float("nan")
    seed: int = 0

    @property
    def time_unit(self) -> str:
        """The model's time unit."""
        return str(self.record.time_unit)

    def parameters(self, prediction: str = "individual") -> dict[str, np.ndarray]:
        """Resampled individual parameters ``{name: (n_samples,)}``."""
        s = self.samples.sel(prediction=prediction)
        return {p: np.asarray(s[p].values, dtype=float) for p in self.spec.parameters}

    def sigma(self, prediction: str = "individual") -> dict[str, np.ndarray]:
        """Residual-error magnitudes of the resampled samples."""
        s = self.samples.sel(prediction=prediction)
        return {k: np.asarray(s[f"sigma_{k}"].values, dtype=float) for k in self.spec.sigma_names}

    def predict(self, times: Sequence[float], *, prediction: str = "individual", residual: bool = True,
                quantiles: Sequence[float] = FORECAST_QUANTILES) -> xr.Dataset:
        """Concentrations at ``times`` (model unit) under her dosing history, as quantiles.

        Parameters
        ----------
        times
            Times after the first dose, in the model's time unit.
        prediction
            ``"individual"`` (her posterior) or ``"population"``.
        residual
            Include residual error (where a measurement would fall), or not
            (the model concentration).
        quantiles
            Quantiles returned.

        Returns
        -------
        xarray.Dataset
            ``quantiles`` (time, quantile), ``mean`` (time) and ``samples``
            (sample, time).
        """
        if prediction not in _PREDICTIONS:
            raise ConfigError(f"prediction must be one of {_PREDICTIONS}, got {prediction!r}")
        t = np.asarray(times, dtype=float)
        conc = _concentrations(self.spec, self.record, self.parameters(prediction), t)
        if residual:
            conc = _add_residual(self.spec, conc, self.sigma(prediction), np.random.default_rng([self.seed, 11]))
        return xr.Dataset(
            {"quantiles": (("time", "quantile"), np.quantile(conc, quantiles, axis=0).T),
             "mean": (("time",), conc.mean(axis=0)), "samples": (("sample", "time"), conc)},
            coords={"time": t, "quantile": list(quantiles)},
        )

    def exposure_per_dose(self, schedule: Any, metrics: Sequence[str], *, prediction: str = "individual",
                          **options: Any) -> dict[str, np.ndarray]:
        """Exposure metrics of each resampled sample on ``schedule`` for a unit (1 model-unit) dose."""
        oral = self.spec.absorption is not None
        plan = ExposurePlan.from_schedule(schedule, self.time_unit, oral=oral)
        return compute_exposures(self.parameters(prediction), plan, check_metrics(metrics), n_cmt=self.spec.n_cmt,
                                 **options)

    def table(self) -> pd.DataFrame:
        """Exposure and parameters, individual beside population: median and 90% interval."""
        rows = []
        s = self.summary
        for var, dim in (("exposure", "metric"), ("parameter_q", "parameter")):
            for name in s[dim].values:
                row = {"quantity": str(name)}
                for pred in _PREDICTIONS:
                    q = s[var].sel({dim: name, "prediction": pred})
                    row[f"{pred}_median"] = float(q.sel(quantile=0.5))
                    row[f"{pred}_5%"] = float(q.sel(quantile=0.05))
                    row[f"{pred}_95%"] = float(q.sel(quantile=0.95))
                rows.append(row)
        return pd.DataFrame(rows).set_index("quantity")

    def __repr__(self) -> str:
        return (f"<Forecast: {self.record.n_obs} observations, {len(self.record.doses)} doses; "
                f"Pareto k {self.posterior.pareto_k:.2f}, ESS {self.posterior.ess:.0f}; {self.elapsed_s:.2f} s>")


# --------------------------------------------------------------------------
# predictions with the fit's kernel
# --------------------------------------------------------------------------


def _concentrations(spec: ModelSpec, record: PatientRecord, params: Mapping[str, np.ndarray],
                    times: np.ndarray) -> np.ndarray:
    """(n_samples, n_times) concentrations at ``times`` under the patient's doses (the fit's kernel)."""
    from poppk.data import read_nonmem
    from poppk.forecast.patient import _nonmem_table

    if record.data is None:
        raise ConfigError("the patient has no doses: nothing to predict")
    first = float(record.doses["TIME"].min())
    t = np.asarray(times, dtype=float)
    out = np.zeros((len(next(iter(params.values()))), t.size))
    after = t > first
    if not after.any():
        return out
    grid = pd.DataFrame({"TIME": t[after], "DV": 0.0, "BLQ": 0, "LLOQ": np.nan})
    doses = record.data.records
    doses = doses.loc[doses["EVID"] != 0, [c for c in ("TIME", "AMT", "DUR", "ADDL", "II", "SS", "CMT")
                                         if c in doses.columns]]
    data = read_nonmem(_nonmem_table(doses.reset_index(drop=True), grid), covariates=[],
                       time_unit=record.time_unit)
    design = build_design(_design_spec(spec), data, fast=True)
    order = np.argsort(design.obs_row)
    pred = np.asarray(predict_design(spec, design, {k: np.asarray(v)[:, None] for k, v in params.items()}))
    # observation rows come back in time order, as the grid was given sorted below
    sorted_t = np.sort(t[after])
    res = pred[:, order]
    idx = np.searchsorted(sorted_t, t[after])
    out[:, after] = res[:, idx]
    return out


def _add_residual(spec: ModelSpec, conc: np.ndarray, sigma: Mapping[str, np.ndarray],
                  rng: np.random.Generator) -> np.ndarray:
    """Concentrations with residual error drawn from the fit's error model (one σ per sample row).

    The one residual-error simulator of the VPC and NPDE
    (:func:`poppk.diagnostics.simulate.add_residual_error`): the same IPRED floor
    and truncation at zero as the likelihood.
    """
    from poppk.diagnostics.simulate import add_residual_error

    return add_residual_error(conc, {k: np.asarray(v)[:, None] for k, v in sigma.items()}, spec, rng)


def _curve_times(record: PatientRecord, horizon: float, n_times: int) -> np.ndarray:
    d = record.doses
    first = float(d["TIME"].min())
    base = np.linspace(first, horizon, int(n_times))
    dt = d["TIME"].to_numpy(dtype=float)
    dur = d["DUR"].to_numpy(dtype=float) if "DUR" in d else np.zeros(len(d))
    eps = 1e-6 * max(horizon - first, 1e-9)
    extra = np.concatenate([dt + eps, dt + dur, record.observations["TIME"].to_numpy(dtype=float)])
    t = np.unique(np.concatenate([base, extra[(extra > first) & (extra <= horizon)]]))
    return t[t > first]


def _cycle(record: PatientRecord, cycle: float | None, spec: ModelSpec) -> float:
    if cycle is not None:
        if not (np.isfinite(cycle) and cycle > 0):
            raise ConfigError(f"cycle must be a positive time, got {cycle!r}")
        return float(cycle)
    d = record.doses
    ii = d["II"].to_numpy(dtype=float) if "II" in d else np.zeros(0)
    if ii.size and ii[0] > 0:
        return float(ii[0])
    t = np.unique(d["TIME"].to_numpy(dtype=float))
    if t.size >= 2:
        return float(t[1] - t[0])
    return float(convert_time(21.0, "day", str(spec.time_unit)))  # the q3w label regimen


def _sample_dataset(spec: ModelSpec, post: IndividualPosterior, n: int, seed: int) -> dict[str, np.ndarray]:
    d, j = post.resample(n, seed)
    out = {p: np.exp(post.log_params[d, j, i]) for i, p in enumerate(spec.parameters)}
    for k, v in post.sigma.items():
        out[f"sigma_{k}"] = np.asarray(v)[d]
    return out


def forecast(
    fit: Any,
    patient: Mapping[str, Any] | str,
    doses: Any = None,
    observations: Any = None,
    *,
    metrics: Sequence[str] = DEFAULT_FORECAST_METRICS,
    cycle: float | None = None,
    horizon: float | None = None,
    n_times: int = 200,
    n_draws: int | None = defaults.FORECAST_DRAWS,
    n_samples: int = 64,
    n_resample: int = 1000,
    time_unit: str | None = None,
    seed: int = 0,
    warn: bool = True,
    **patient_options: Any,
) -> Forecast:
    """Forecast a new patient from the population posterior and her own data.

    Her individual posterior integrates over the population posterior: for
    ``n_draws`` population draws, the Laplace approximation of her random
    effects corrected by importance sampling, her data reweighting the
    draws (:mod:`poppk.forecast.posterior`).  Concentrations below the LLOQ
    enter by M3, as in the fit.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` (or a ``(spec, posterior Dataset)`` pair).
    patient
        Covariates, ``{"WT": 82, "HT": 165, "SEX": "F", "ALB": 3.6}`` or the
        same as text ``"WT=82 HT=165 SEX=F ALB=3.6"``: every covariate the
        model uses (body-size descriptors come from WT in kg, HT in cm, SEX).
    doses
        Her doses (given and planned): a DataFrame, list of mappings or CSV
        path with ``TIME``, ``AMT`` and optionally ``RATE``/``DUR``,
        ``ADDL``/``II``, ``SS``, ``CMT`` (model units; time from any origin).
    observations
        Her measured concentrations: ``TIME``, ``DV``, and ``BLQ=1`` with
        ``LLOQ`` for a sample below the limit of quantification.
    metrics
        Exposure metrics (:data:`poppk.simulate.exposure.METRICS`) of her
        first cycle (and the steady state of that cycle).
    cycle
        Cycle length τ of the metrics (model unit); default: her doses' II,
        else the interval between her first two doses, else 21 days.
    horizon
        End of the curve (model unit); default: the last dose or sample plus
        one cycle.
    n_times
        Points of the curve (dose and sample times are added).
    n_draws, n_samples
        Population draws and random-effect samples per draw.
    n_resample
        Size of the equally weighted resample the curves and metrics use.
    time_unit
        Unit of the times given (default: the model's).
    seed
        Seed of everything random.
    warn
        Warn when the importance weights are poor (Pareto k̂ > 0.7, ESS < 100).
    **patient_options
        ``ibw_method``, ``aibw_factor``, ``female_code`` (default: the fit's).

    Returns
    -------
    Forecast

    Raises
    ------
    ConfigError, DatasetError
        On bad patient input (a missing or impossible covariate, an
        observation before any dose, a negative concentration...).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from poppk.model import ModelSpec
    >>> spec = ModelSpec("1cmt", {"CL": 2.0, "V1": 20.0}, iiv=("CL", "V1"), error="proportional",
    ...                  units={"time": "h"})
    >>> post = xr.Dataset({"CL": (("chain", "draw"), np.full((1, 50), 2.0)),
    ...                    "V1": (("chain", "draw"), np.full((1, 50), 20.0)),
    ...                    "omega_CL": (("chain", "draw"), np.full((1, 50), 0.3)),
    ...                    "omega_V1": (("chain", "draw"), np.full((1, 50), 0.2)),
    ...                    "sigma_prop": (("chain", "draw"), np.full((1, 50), 0.1))})
    >>> fc = forecast((spec, post), {}, [{"TIME": 0, "AMT": 100}], [{"TIME": 12, "DV": 0.5}], n_draws=20)
    >>> med = fc.summary["parameter_q"].sel(quantile=0.5)
    >>> bool(med.sel(parameter="CL", prediction="individual") > med.sel(parameter="CL", prediction="population"))
    True
    """
    t0 = _time.perf_counter()
    spec = fit[0] if isinstance(fit, tuple) else fit.spec
    data = None if isinstance(fit, tuple) else getattr(fit, "data", None)
    metrics = check_metrics(metrics)
    if "time_above" in metrics:
        raise ConfigError("forecast metrics: time_above is not available here; use the dose-proportional metrics")
    record = make_patient(spec, patient, doses, observations, data=data, time_unit=time_unit, **patient_options)
    if len(record.doses) == 0:
        raise ConfigError("forecast: give her doses (given and planned); without doses there is nothing to forecast")
    post = individual_posterior(fit, record, n_draws=n_draws, n_samples=n_samples, seed=seed, warn=warn)
    prior = post if record.n_obs == 0 else individual_posterior(
        fit, _without_observations(record), n_draws=n_draws, n_samples=n_samples, seed=seed + 1, warn=False)
    tau = _cycle(record, cycle, spec)
    last = max(float(record.doses["TIME"].max()),
               float(record.observations["TIME"].max()) if record.n_obs else -np.inf)
    horizon = float(horizon) if horizon is not None else last + tau
    times = _curve_times(record, horizon, n_times)
    oral = spec.absorption is not None
    plan = ExposurePlan.from_dose_table(record.doses.assign(ID=1), [1], tau, oral=oral)
    q = np.asarray(FORECAST_QUANTILES)
    rng = np.random.default_rng([int(seed), 3])
    sample_vars: dict[str, list[np.ndarray]] = {}
    conc_q, conc_pi, exp_q, exp_mean, par_q, par_mean, exposures = [], [], [], [], [], [], []
    both = [_sample_dataset(spec, p, n_resample, seed + 17 * k) for k, p in enumerate((post, prior))]
    # one kernel call (one design) for both curves
    curves = _concentrations(spec, record, {n: np.concatenate([b[n] for b in both]) for n in spec.parameters}, times)
    for k, s in enumerate(both):
        for name, v in s.items():
            sample_vars.setdefault(name, []).append(v)
        params = {n: s[n] for n in spec.parameters}
        c = curves[k * n_resample:(k + 1) * n_resample]
        conc_q.append(np.quantile(c, q, axis=0).T)
        cpi = _add_residual(spec, c, {n: s[f"sigma_{n}"] for n in spec.sigma_names}, rng)
        conc_pi.append(np.quantile(cpi, q, axis=0).T)
        ex = compute_exposures(params, plan, metrics, n_cmt=spec.n_cmt)
        e = np.column_stack([ex[m] for m in metrics])
        exposures.append(e)
        exp_q.append(np.quantile(e, q, axis=0).T)
        exp_mean.append(e.mean(axis=0))
        P = np.column_stack([params[n] for n in spec.parameters])
        par_q.append(np.quantile(P, q, axis=0).T)
        par_mean.append(P.mean(axis=0))
    units = metric_units(spec.unit)
    summary = xr.Dataset(
        {
            "conc": (("prediction", "time", "quantile"), np.stack(conc_q)),
            "conc_pi": (("prediction", "time", "quantile"), np.stack(conc_pi)),
            "exposure": (("prediction", "metric", "quantile"), np.stack(exp_q)),
            "exposure_mean": (("prediction", "metric"), np.stack(exp_mean)),
            "parameter_q": (("prediction", "parameter", "quantile"), np.stack(par_q)),
            "parameter_mean": (("prediction", "parameter"), np.stack(par_mean)),
        },
        coords={"prediction": list(_PREDICTIONS), "time": times, "quantile": q, "metric": list(metrics),
                "metric_unit": ("metric", [units[m] for m in metrics]), "parameter": list(spec.parameters),
                "parameter_unit": ("parameter", [spec.unit.get(p, "") for p in spec.parameters])},
    )
    summary["conc"].attrs["description"] = "model concentration (no residual error)"
    summary["conc_pi"].attrs["description"] = "concentration with residual error (where a measurement would fall)"
    samples = xr.Dataset({n: (("prediction", "sample"), np.stack(v)) for n, v in sample_vars.items()},
                         coords={"prediction": list(_PREDICTIONS), "sample": np.arange(n_resample),
                                 "metric": list(metrics)})
    samples["exposure"] = (("prediction", "sample", "metric"), np.stack(exposures))
    elapsed = _time.perf_counter() - t0
    summary.attrs.update({"time_unit": record.time_unit, "cycle": tau, "pareto_k": float(post.pareto_k),
                          "ess": float(post.ess), "n_draws": post.n_draws, "n_observations": record.n_obs,
                          "elapsed_s": round(elapsed, 4)})
    return Forecast(spec, record, post, prior, summary, samples, tau, elapsed, int(seed))


def _without_observations(record: PatientRecord) -> PatientRecord:
    import dataclasses

    return dataclasses.replace(record, observations=record.observations.iloc[:0])
