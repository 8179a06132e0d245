"""Simulation of dosing strategies over posterior draws: the entry points.

For each posterior draw (sub-sampled to ``n_draws``) every virtual patient
gets *fresh* random effects η ~ MVN(0, Ω_draw); individual parameters come
from the spec's covariate model with that draw's typical values and
coefficients (:func:`poppk.model.parameters.log_individual_parameters`, the
code of the likelihood); exposures come from the PK kernel
(:mod:`poppk.simulate.exposure`).  Within a draw, all strategies share the
same patients and η (common random numbers), so differences between
strategies are not blurred by simulation noise.

Two levels of variability are kept apart:

* **between-patient variability (BPV)** -- a statistic over patients *within*
  one draw (CV, variance of log exposure, fraction above a threshold);
* **parameter uncertainty** -- the spread of that statistic *across* draws,
  reported as a credible interval (:mod:`poppk.simulate.summaries`).

A population resampled from the trial (``SOURCE_ID`` column) is by default
given a Bayesian bootstrap per draw (``population_uncertainty``,
:mod:`poppk.simulate.weighting`): each draw weighs the trial's covariate
vectors by fresh Dirichlet(1, ..., 1) weights, so the interval across draws
also carries the uncertainty of the population distribution that a few dozen
trial patients leave.

Memory is bounded: draws are processed in blocks (``chunk_draws``), patients
within a block in chunks (``chunk_patients``), and per-draw statistics are
computed on the fly; per-patient exposures are kept only if they fit
(``keep_exposure``), or kept as a lazy dask array (``keep_exposure="lazy"``)
that recomputes any chunk on demand.  This module checks the inputs, builds
the shared context and assembles the result; how blocks are computed and
where they run (serially, on an executor, a ``dask.distributed`` Client or
with ``dask.delayed``) is :mod:`poppk.simulate.execution`.  Random numbers
depend only on ``seed``, the draw and the patient, never on chunking or on
where a task runs.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk import defaults
from poppk.errors import ConfigError, ModelSpecError
from poppk.model.analytes import analyte_unit, target_analyte
from poppk.model.parameters import base_key, covariate_columns
from poppk.model.spec import ModelSpec
from poppk.simulate.draws import PosteriorDraws
from poppk.simulate.execution import BlockContext, lazy_exposure, progress_printer, run_blocks
from poppk.simulate.exposure import DEFAULT_METRICS, ExposurePlan, check_metrics, metric_units
from poppk.simulate.population import VirtualPopulation, population_from_table
from poppk.simulate.schedule import Schedule
from poppk.simulate.strategies import DosingStrategy, parse_strategy
from poppk.simulate.weighting import source_weights

__all__ = [
    "simulate_strategies",
    "simulate_posterior",
    "as_strategies",
    "as_draws",
    "DEFAULT_QUANTILES",
]

#: Quantiles of exposure across patients stored per draw.
DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)

_AMOUNT_PER_MG = {"mg": 1.0, "g": 1e-3, "ug": 1e3, "µg": 1e3, "mcg": 1e3, "ng": 1e6, "nmol": None, "umol": None}


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------


def as_strategies(strategies: Any) -> dict[str, DosingStrategy]:
    """Normalise strategies: a mapping name -> strategy (or text), a list, or one strategy."""
    if isinstance(strategies, (DosingStrategy, str)):
        strategies = [strategies]
    if isinstance(strategies, Mapping):
        items = list(strategies.items())
    else:
        items = []
        for s in strategies:
            st = parse_strategy(s) if isinstance(s, str) else s
            items.append((st.label if isinstance(st, DosingStrategy) else str(st), st))
    out: dict[str, DosingStrategy] = {}
    for name, s in items:
        st = parse_strategy(s) if isinstance(s, str) else s
        if not isinstance(st, DosingStrategy):
            raise ConfigError(f"strategy {name!r}: expected a DosingStrategy or text, got {s!r}")
        if str(name) in out:
            raise ConfigError(f"strategy name {name!r} is given twice")
        out[str(name)] = st
    if not out:
        raise ConfigError("no dosing strategy given")
    return out


def as_draws(fit: Any, n_draws: int | None, seed: int) -> PosteriorDraws:
    """The posterior draws of a Fit, a (spec, posterior) pair or PosteriorDraws (``n_draws`` chosen with ``seed``)."""
    if isinstance(fit, PosteriorDraws):
        return fit if n_draws is None or n_draws >= fit.n else fit.subset(
            np.sort(np.random.default_rng([int(seed), 0]).choice(fit.n, size=int(n_draws), replace=False))
        )
    if isinstance(fit, tuple) and len(fit) == 2 and isinstance(fit[0], ModelSpec):
        return PosteriorDraws.from_posterior(fit[0], fit[1], n_draws=n_draws, seed=seed)
    if hasattr(fit, "spec") and hasattr(fit, "idata"):
        return PosteriorDraws.from_fit(fit, n_draws=n_draws, seed=seed)
    raise ConfigError(
        f"expected a Fit, PosteriorDraws or (spec, posterior) pair; got {type(fit).__name__}"
    )


def _as_population(population: Any) -> VirtualPopulation:
    if isinstance(population, VirtualPopulation):
        return population
    if isinstance(population, pd.DataFrame):
        return population_from_table(population)
    raise ConfigError(f"expected a VirtualPopulation or a covariate DataFrame, got {type(population).__name__}")


def _amount_factor(spec: ModelSpec) -> float:
    unit = dict(spec.units).get("amount", "mg")
    f = _AMOUNT_PER_MG.get(str(unit).strip().lower().replace("μ", "µ"))
    if f is None:
        raise ModelSpecError(
            f"the model's amount unit is {unit!r}; dosing strategies give mg, which can be converted to "
            "mg, g, ug/mcg or ng only"
        )
    return f


def _population_covariates(spec: ModelSpec, population: VirtualPopulation) -> dict[str, np.ndarray]:
    table = population.covariates
    missing = [col for c in spec.covariates for col in c.columns if col not in table.columns]
    if missing:
        raise ConfigError(
            f"the model uses covariates {sorted(set(missing))} that the virtual population lacks; its columns: "
            f"{list(table.columns)} (add them to the table, or sample them, e.g. sample_population(albumin=...))"
        )
    covs = covariate_columns(spec, table)
    for c in spec.covariates:
        v = covs[c.name]
        if not np.all(np.isfinite(v)):
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise ConfigError(f"virtual patient {i}: covariate {c.covariate} is missing or not numeric")
        if c.form == "adjusted":
            for col, x in ((c.covariate, v), (c.base, covs[base_key(c)])):
                bad = ~(np.isfinite(x) & (x > 0))
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise ConfigError(f"virtual patient {i}: {col} = {x[i]!r}; the adjusted size model "
                                      f"{c.base} + f·({c.covariate} − {c.base}) needs both > 0")
        if c.form != "categorical" and c.reference:
            ratio = float(np.median(v)) / float(c.reference)
            if not 0.5 <= ratio <= 2.0:
                warnings.warn(
                    f"the virtual population's median {c.covariate} ({np.median(v):.3g}) is far from the model's "
                    f"reference ({c.reference:.3g}); check that the units match the fitted data",
                    UserWarning,
                    stacklevel=4,
                )
    return covs


#: Values of ``population_uncertainty``.
POPULATION_UNCERTAINTY = ("auto", "bootstrap", "none")


def _population_sources(population: VirtualPopulation, mode: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(position of each patient's source, the source ids) when the population is bootstrapped, else None."""
    if mode is None or mode is False:
        mode = "none"
    if not isinstance(mode, str) or mode.strip().lower() not in POPULATION_UNCERTAINTY:
        raise ConfigError(
            f"population_uncertainty must be 'auto', 'bootstrap' or None/'none', got {mode!r}"
        )
    mode = mode.strip().lower()
    has = "SOURCE_ID" in population.columns
    if mode == "none" or (mode == "auto" and not has):
        return None
    if not has:
        raise ConfigError(
            "population_uncertainty='bootstrap' needs a population resampled from observed subjects (a SOURCE_ID "
            f"column, as resample_population writes); this population ({population.source!r}) has the columns "
            f"{list(population.columns)}. Use resample_population(fit, n), or population_uncertainty=None to take "
            "the population as given"
        )
    ids = population.covariates["SOURCE_ID"]
    if ids.isna().any():
        i = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise ConfigError(f"virtual patient {i}: SOURCE_ID is missing; every resampled patient needs its source")
    try:
        codes, uniques = pd.factorize(ids, sort=True)
    except TypeError:  # ids of mixed types: in order of appearance
        codes, uniques = pd.factorize(ids, sort=False)
    values = np.asarray(uniques)
    if values.dtype == object:
        values = values.astype(str)
    return np.asarray(codes, dtype=np.intp), values


# --------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------


def simulate_posterior(
    draws: PosteriorDraws,
    strategies: Any,
    schedule: Schedule,
    population: Any,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    seed: int = 0,
    threshold: float | None = None,
    exceed: Mapping[str, float] | None = None,
    chunk_patients: int = 50_000,
    chunk_draws: int | None = None,
    keep_exposure: bool | str = "auto",
    max_exposure_mb: float = 512.0,
    random_effects: bool = True,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    progress: bool | Callable[[int, int], None] = False,
    executor: Any = None,
    use_dask: bool = False,
    n_search: int = 5,
    n_grid: int = 48,
    auc_method: str = "auto",
    population_uncertainty: str | None = "auto",
    analyte: str | None = None,
) -> xr.Dataset:
    """Simulate strategies for given population-parameter draws.

    The engine under :func:`simulate_strategies` (which takes a fit); see
    there for the parameters.  ``draws`` is a :class:`PosteriorDraws`, used
    whole.
    """
    t0 = time.perf_counter()
    spec = draws.spec
    strategies = as_strategies(strategies)
    population = _as_population(population)
    if not isinstance(schedule, Schedule):
        raise ConfigError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    metrics = list(check_metrics(metrics))
    if threshold is not None:
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
            raise ConfigError(f"threshold must be a positive concentration, got {threshold!r}")
        if "time_above" not in metrics:
            metrics.append("time_above")
    elif "time_above" in metrics:
        raise ConfigError("the time_above metric needs threshold= (a concentration in the model's units)")
    metrics_t = tuple(metrics)
    exceed = dict(exceed or {})
    bad = [m for m in exceed if m not in metrics_t]
    if bad:
        raise ConfigError(f"exceed thresholds given for {bad}, which are not simulated metrics {list(metrics_t)}")
    exceed_arr = np.array([float(exceed[m]) if m in exceed else np.nan for m in metrics_t])
    for name, v in (("chunk_patients", chunk_patients), ("chunk_draws", chunk_draws)):
        if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")

    try:
        target, formation = target_analyte(spec, analyte)
    except ModelSpecError as e:
        raise ConfigError(str(e)) from None
    time_unit = dict(spec.units)["time"]
    oral = spec.absorption is not None
    plan = ExposurePlan.from_schedule(schedule, time_unit, oral=oral)
    covs = _population_covariates(spec, population)
    sources = _population_sources(population, population_uncertainty)
    names = list(strategies)
    dose_mg = np.empty((population.n, len(names)))
    for j, name in enumerate(names):
        d = np.asarray(strategies[name].dose(population), dtype=float)
        if d.shape != (population.n,) or not np.all(np.isfinite(d) & (d > 0)):
            i = int(np.flatnonzero(~(np.isfinite(d) & (d > 0)))[0]) if d.shape == (population.n,) else 0
            raise ConfigError(f"strategy {name!r} gives patient {i} the dose {d.ravel()[i]!r} mg; doses must be > 0")
        dose_mg[:, j] = d
    doses = dose_mg * _amount_factor(spec)

    npat, S, M, n = population.n, len(names), len(metrics_t), draws.n
    per_draw_bytes = npat * S * M * 8
    if keep_exposure == "auto":
        keep = npat if n * per_draw_bytes <= max_exposure_mb * 2**20 else max(
            0, int(max_exposure_mb * 2**20 // (n * S * M * 8)))
        if keep < npat:
            warnings.warn(
                f"per-patient exposures of all {npat} patients x {n} draws would take "
                f"{n * per_draw_bytes / 2**30:.1f} GiB; keeping the first {keep} patients (per-draw statistics use "
                "all of them). Pass keep_exposure='lazy' for all of them as a dask array computed on demand, True to "
                "keep all in memory, False for none.",
                UserWarning,
                stacklevel=3,
            )
    elif keep_exposure is True or keep_exposure == "lazy":
        keep = npat
    elif keep_exposure is False:
        keep = 0
    else:
        raise ConfigError(f"keep_exposure must be True, False, 'auto' or 'lazy', got {keep_exposure!r}")
    lazy = keep_exposure == "lazy"
    if chunk_draws is None:
        chunk_draws = int(max(1, min(n, 8_000_000 // max(npat * S * M, 1))))
        if executor is not None or use_dask:  # enough tasks to keep every worker busy
            chunk_draws = min(chunk_draws, max(1, math.ceil(n / 16)))
    ctx = BlockContext(
        draws=draws, covs=covs, doses=doses, plan=plan, metrics=metrics_t, threshold=threshold,
        exceed=exceed_arr, quantiles=np.asarray(quantiles, dtype=float), seed=int(seed),
        chunk_patients=int(chunk_patients), keep=0 if lazy else keep, random_effects=bool(random_effects),
        options={"n_search": int(n_search), "n_grid": int(n_grid), "auc_method": auc_method,
                 **({"formation": formation, "analyte": target} if target else {})},
        source=None if sources is None else sources[0],
        n_sources=0 if sources is None else len(sources[1]),
    )
    blocks = [np.arange(a, min(n, a + chunk_draws)) for a in range(0, n, chunk_draws)]
    report = progress if callable(progress) else (progress_printer(n, npat) if progress else None)

    Q = len(ctx.quantiles)
    res = {
        "log_mean": np.empty((n, S, M)), "log_var": np.empty((n, S, M)), "mean": np.empty((n, S, M)),
        "sd": np.empty((n, S, M)), "quantiles": np.empty((n, S, M, Q)), "p_exceed": np.empty((n, S, M)),
    }
    exposure: Any = np.empty((n, keep, S, M)) if keep and not lazy else None
    filled = np.zeros(n, dtype=bool)
    done = 0

    def store(out: dict[str, Any]) -> None:
        idx = out["idx"]
        for k in res:
            res[k][idx] = out[k]
        if exposure is not None:
            exposure[idx] = out["exposure"]
        filled[idx] = True

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if report is not None:
            report(done, n)

    how = run_blocks(ctx, blocks, store, advance, executor=executor, use_dask=use_dask)
    if not filled.all():  # pragma: no cover - a scheduler that lost tasks
        raise RuntimeError(f"simulation tasks returned {int(filled.sum())} of {n} draws ({how})")
    if lazy:
        exposure = lazy_exposure(ctx, n, chunk_draws)
    elapsed = time.perf_counter() - t0
    ds = _assemble(ctx, draws, names, strategies, dose_mg, population, schedule, res, exposure, elapsed,
                   time_unit=time_unit, n_draws=n, seed=seed, threshold=threshold, exceed=exceed,
                   source_ids=None if sources is None else sources[1])
    ds.attrs["executed_by"] = how
    return ds


def _assemble(ctx, draws, names, strategies, dose_mg, population, schedule, res, exposure, elapsed, *,
              time_unit, n_draws, seed, threshold, exceed, source_ids=None) -> xr.Dataset:
    spec = draws.spec
    metrics = ctx.metrics
    target = int(ctx.options.get("analyte", 0))
    analyte = spec.analytes[target].name if spec.analytes else None
    units = metric_units({**spec.unit, "concentration": analyte_unit(spec, analyte)} if target else spec.unit)
    dims3 = ("draw", "strategy", "metric")
    keep = int(exposure.shape[1]) if exposure is not None else 0
    data: dict[str, Any] = {
        "dose": (("patient", "strategy"), dose_mg[:keep]),
        "log_mean": (dims3, res["log_mean"]),
        "log_var": (dims3, res["log_var"]),
        "mean": (dims3, res["mean"]),
        "sd": (dims3, res["sd"]),
        "quantiles": (dims3 + ("quantile",), res["quantiles"]),
        "p_exceed": (dims3, res["p_exceed"]),
    }
    if exposure is not None:
        data["exposure"] = (("draw", "patient", "strategy", "metric"), exposure)
    for p in spec.parameters:
        data[f"typical_{p}"] = (("draw",), np.exp(np.asarray(draws.log_typical[p], dtype=float)))
    om = draws.omega
    for j, p in enumerate(spec.iiv):
        data[f"omega_{p}"] = (("draw",), om[:, j])
    table = population.covariates.iloc[:keep]
    coords: dict[str, Any] = {
        "draw": np.arange(n_draws),
        "source_chain": ("draw", draws.source_chain),
        "source_draw": ("draw", draws.source_draw),
        "patient": np.arange(keep),
        "strategy": names,
        "strategy_label": ("strategy", [strategies[s].label for s in names]),
        "metric": list(metrics),
        "metric_unit": ("metric", [units[m] for m in metrics]),
        "exceed_threshold": ("metric", ctx.exceed),
        "quantile": np.asarray(ctx.quantiles),
    }
    if ctx.source is not None:
        # the Bayesian bootstrap of the population, stored per source (not per patient): see patient_weights
        data["source_weight"] = (("draw", "source"), source_weights(ctx.seed, np.arange(n_draws), ctx.n_sources))
        coords["source"] = source_ids
        coords["source_count"] = ("source", np.bincount(ctx.source, minlength=ctx.n_sources))
        coords["source_index"] = ("patient", np.asarray(ctx.source[:keep]))
    taken = set(data) | set(coords)
    for c in table.columns:
        col = table[c]
        name = str(c) if str(c) not in taken else f"cov_{c}"
        coords[name] = ("patient", col.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(col)
                          else col.astype(str).to_numpy())
    ds = xr.Dataset(data, coords=coords)
    ds["dose"].attrs["units"] = "mg"
    for v in ("exposure", "mean", "sd", "quantiles"):
        if v in ds:
            ds[v].attrs["units"] = "see metric_unit"
    ds["log_var"].attrs["description"] = "between-patient variance of log exposure, per draw"
    ds["p_exceed"].attrs["description"] = "fraction of patients above exceed_threshold, per draw"
    if "source_weight" in ds:
        ds["source_weight"].attrs["description"] = (
            "Bayesian bootstrap of the population: Dirichlet(1, ..., 1) weight of each source subject per draw; "
            "a virtual patient weighs its source's weight / source_count (summaries.patient_weights)")
    n_pd = n_draws * population.n
    ds.attrs.update({
        "description": "poppk dosing-strategy simulation",
        "spec": spec.to_json(),
        "schedule": json.dumps(schedule.to_dict()),
        "schedule_label": schedule.label,
        "strategies": json.dumps({s: strategies[s].to_dict() for s in names}),
        "time_unit": time_unit,
        "n_draws": int(n_draws),
        "n_patients": int(population.n),
        "n_patients_kept": int(keep),
        "population": population.source,
        "analyte": analyte or "",
        "seed": int(seed),
        "random_effects": int(ctx.random_effects),
        "threshold": float(threshold) if threshold is not None else float("nan"),
        "population_uncertainty": "bootstrap" if ctx.source is not None else "none",
        "n_sources": int(ctx.n_sources),
        "elapsed_s": round(float(elapsed), 4),
        "patient_draws_per_s": round(float(n_pd / max(elapsed, 1e-9)), 1),
    })
    return ds


def simulate_strategies(
    fit: Any,
    strategies: Any,
    schedule: Schedule,
    population: Any,
    *,
    n_draws: int | None = defaults.SIMULATION_DRAWS,
    seed: int = 0,
    metrics: Sequence[str] = DEFAULT_METRICS,
    threshold: float | None = None,
    exceed: Mapping[str, float] | None = None,
    chunk_patients: int = 50_000,
    chunk_draws: int | None = None,
    keep_exposure: bool | str = "auto",
    max_exposure_mb: float = 512.0,
    random_effects: bool = True,
    progress: bool | Callable[[int, int], None] = False,
    executor: Any = None,
    use_dask: bool = False,
    population_uncertainty: str | None = "auto",
    analyte: str | None = None,
    **options: Any,
) -> xr.Dataset:
    """Simulate dosing strategies for a virtual population over posterior draws.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`, a :class:`PosteriorDraws`, or a
        ``(spec, posterior Dataset)`` pair.
    strategies
        ``{name: DosingStrategy or text}``, a list of them (named by label),
        or one strategy.
    schedule
        The :class:`~poppk.simulate.schedule.Schedule` (converted to the
        model's time unit).
    population
        A :class:`~poppk.simulate.population.VirtualPopulation` (or a
        covariate DataFrame).  It must hold every covariate of the model.
    n_draws
        Posterior draws used (chosen at random without replacement with
        ``seed``); ``None``: all.
    seed
        Seed of the draw choice and of the random effects (η of draw i
        depends only on ``seed`` and i, not on chunking or executors).
    metrics
        Exposure metrics (:data:`~poppk.simulate.exposure.METRICS`).
    threshold
        Concentration threshold of ``time_above`` (added to the metrics).
    exceed
        ``{metric: value}``: per draw, the fraction of patients whose metric
        exceeds the value (``p_exceed``).
    chunk_patients
        Patient-draws evaluated per kernel batch.
    chunk_draws
        Draws per task (default: as many as keep a task's exposure array
        near 64 MB, and at most 1/16 of the draws when tasks run on an
        executor or with dask).
    keep_exposure
        Keep per-patient exposures (``exposure`` variable): ``True`` (in
        memory), ``False``, ``"auto"`` (all if they fit in
        ``max_exposure_mb``, else the first patients that do, with a
        warning), or ``"lazy"``: a dask array over all patients, chunked by
        draw and patient (about 64 MB a chunk), whose chunks are recomputed
        on demand with the same random numbers -- reductions such as
        ``sim.exposure.mean("patient")`` or ``to_netcdf`` then run chunk by
        chunk in bounded memory, at the price of simulating each chunk
        again.
    random_effects
        ``False`` simulates every patient at η = 0 (covariate effects only).
    progress
        ``True`` prints progress to stderr; a callable gets ``(done, total)``
        draws after each task.
    executor
        Anything with ``submit(fn, *args)`` returning a future with
        ``result()``: a ``concurrent.futures`` executor (results taken as
        they finish), a ``dask.distributed.Client`` (the shared inputs are
        scattered to its workers once), or any other (results taken in
        order).  Tasks are blocks of ``chunk_draws`` draws.
    use_dask
        Run the tasks as ``dask.delayed`` on the active dask scheduler: the
        default ``dask.distributed`` client if one exists, else dask's local
        scheduler.  The way the tasks ran is kept in ``attrs["executed_by"]``.
    population_uncertainty
        ``"auto"`` (default): a Bayesian bootstrap of the population when it
        was resampled from observed subjects (it has a ``SOURCE_ID`` column,
        as :func:`~poppk.simulate.population.resample_population` writes),
        none otherwise; ``"bootstrap"``: require it; ``None`` or ``"none"``:
        the population is held fixed.  With the bootstrap, draw ``d`` weighs
        the source subjects by Dirichlet(1, ..., 1) weights (depending only
        on ``seed`` and ``d``) shared equally among the virtual patients
        drawn from each, who keep their own random effects; every per-draw
        statistic over patients is the weighted one.  The credible interval
        across draws then holds parameter uncertainty *and* the uncertainty
        of the population distribution, whose support is the trial's
        covariate vectors -- the trial's patients are a sample of the
        population the dose will be used in, not the population itself.
        Without it (a sampled population, or a user's table from
        :func:`~poppk.simulate.population.population_from_table`, which is
        taken as the population itself) the interval holds parameter
        uncertainty only.  The choice is kept in
        ``attrs["population_uncertainty"]``.
    analyte
        With a multi-analyte model: the name of the analyte whose exposure is
        simulated (e.g. ``"DM4"``, the payload, after doses of the conjugate),
        in its own concentration unit (``metric_unit``); ``None``: the parent.
        Kept in ``attrs["analyte"]``.
    **options
        ``n_search`` (points per infusion searched for Cmax, default 5),
        ``n_grid`` (grid per cycle for oral Cmax and time above, 48),
        ``auc_method`` (``"auto"``, ``"analytic"``, ``"quadrature"``).

    Returns
    -------
    xarray.Dataset
        Dimensions ``draw``, ``patient``, ``strategy``, ``metric``,
        ``quantile``.  Variables: ``exposure`` (draw, patient, strategy,
        metric; when kept), ``dose`` (patient, strategy; mg), per-draw
        between-patient statistics ``log_mean``, ``log_var``, ``mean``,
        ``sd``, ``quantiles``, ``p_exceed`` (draw, strategy, metric), and the
        draws' ``typical_<P>`` and ``omega_<P>``.  Coordinates: the patients'
        covariates on ``patient``, ``strategy_label``, ``metric_unit``,
        ``exceed_threshold``.  With the population bootstrap, ``source_weight``
        (draw, source; the Dirichlet weights of the source subjects, each row
        summing to 1), the ``source`` ids with ``source_count`` (virtual
        patients drawn from each) and ``source_index`` on ``patient`` (the
        position of each patient's source); per-patient weights come from
        :func:`~poppk.simulate.summaries.patient_weights`.  Attributes:
        spec, schedule, seed, ``population_uncertainty`` (``"bootstrap"`` or
        ``"none"``), ``n_sources``, timing (``elapsed_s``,
        ``patient_draws_per_s``).

    Examples
    --------
    >>> from poppk.model import ModelSpec, CovariateEffect
    >>> from poppk.simulate import PosteriorDraws, PerKg, Schedule, sample_population
    >>> spec = ModelSpec("1cmt", {"CL": 0.03, "V1": 4.0}, covariates=(CovariateEffect("CL", "TBW", reference=70.0),),
    ...                  iiv=("CL",), units={"time": "day"})
    >>> draws = PosteriorDraws.from_values(spec, typical={"CL": 0.03, "V1": 4.0}, betas={"beta_CL_TBW": 0.75},
    ...                                    omega={"CL": 0.3}, n_draws=4)
    >>> sim = simulate_strategies(draws, {"TBW": PerKg(5)}, Schedule.q3w(2), sample_population(200, seed=1),
    ...                           metrics=["auc_ss"])
    >>> sim["exposure"].dims
    ('draw', 'patient', 'strategy', 'metric')
    >>> sim.sizes["draw"], sim.sizes["patient"]
    (4, 200)
    """
    draws = as_draws(fit, n_draws, seed)
    return simulate_posterior(
        draws, strategies, schedule, population, metrics=metrics, seed=seed, threshold=threshold, exceed=exceed,
        chunk_patients=chunk_patients, chunk_draws=chunk_draws, keep_exposure=keep_exposure,
        max_exposure_mb=max_exposure_mb, random_effects=random_effects, progress=progress, executor=executor,
        use_dask=use_dask, population_uncertainty=population_uncertainty, analyte=analyte, **options,
    )

