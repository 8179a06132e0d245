"""Simulation of dosing strategies over posterior draws, and its summaries.

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
  reported as a credible interval.

Memory is bounded: draws are processed in blocks (``chunk_draws``), patients
within a block in chunks (``chunk_patients``), and per-draw statistics are
computed on the fly; per-patient exposures are kept only if they fit
(``keep_exposure``), or kept as a lazy dask array (``keep_exposure="lazy"``)
that recomputes any chunk on demand.  Blocks are independent tasks that can
run on an executor (``concurrent.futures``, or a ``dask.distributed``
Client, to which the shared inputs are scattered once) or through
``dask.delayed`` (``use_dask=True``, on the active dask scheduler or
cluster).  Random numbers depend only on ``seed``, the draw and the patient,
never on chunking or on where a task runs.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError, ModelSpecError
from poppk.model.parameters import covariate_columns, log_individual_parameters
from poppk.model.spec import ModelSpec
from poppk.simulate.draws import PosteriorDraws
from poppk.simulate.exposure import (
    DEFAULT_METRICS,
    ExposurePlan,
    check_metrics,
    compute_exposures,
    metric_units,
    time_above,
)
from poppk.simulate.population import VirtualPopulation, population_from_table
from poppk.simulate.schedule import Schedule
from poppk.simulate.strategies import BASES, DosingStrategy, PerKg, parse_strategy

__all__ = [
    "simulate_strategies",
    "simulate_posterior",
    "as_strategies",
    "per_draw_statistics",
    "summarize_strategies",
    "match_dose",
    "DoseMatch",
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


def _as_draws(fit: Any, n_draws: int | None, seed: int) -> PosteriorDraws:
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
    missing = [c.covariate for c in spec.covariates if c.covariate not in table.columns]
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


# --------------------------------------------------------------------------
# the work of one block of draws (a top-level function: picklable)
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Context:
    draws: PosteriorDraws
    covs: dict[str, np.ndarray]
    doses: np.ndarray  # (n_patients, S), model amount unit
    plan: ExposurePlan
    metrics: tuple[str, ...]
    threshold: float | None
    exceed: np.ndarray  # (M,), NaN: none
    quantiles: np.ndarray
    seed: int
    chunk_patients: int
    keep: int
    random_effects: bool
    options: dict[str, Any] = field(default_factory=dict)


def _individual_parameters(ctx: _Context, idx: np.ndarray, pat: slice = slice(None)) -> dict[str, np.ndarray]:
    """(len(idx) * n_patients[pat],) natural-scale parameters, draw-major.

    ``pat`` selects a contiguous range of patients; their random effects are
    the same as in a call over all patients (the normal deviates of a draw
    are generated for every patient and sliced).
    """
    spec = ctx.draws.spec
    n_all = ctx.doses.shape[0]
    pat = slice(*pat.indices(n_all))
    nb, npat = len(idx), pat.stop - pat.start
    log_tv = {p: np.asarray(v)[idx][:, None] for p, v in ctx.draws.log_typical.items()}
    betas = {n: np.asarray(v)[idx][:, None] for n, v in ctx.draws.betas.items()}
    covs = {n: v[None, pat] for n, v in ctx.covs.items()}
    eta = None
    k = len(spec.iiv)
    if ctx.random_effects and k:
        e = np.empty((nb, npat, k))
        for j, d in enumerate(idx):
            z = np.random.default_rng([int(ctx.seed), 1, int(d)]).standard_normal((n_all, k))[pat]
            e[j] = z @ ctx.draws.omega_chol[d].T
        eta = {p: e[:, :, j] for j, p in enumerate(spec.iiv)}
    logp = log_individual_parameters(spec, log_tv, betas, covs, eta)
    out = {p: np.broadcast_to(np.exp(v), (nb, npat)).reshape(-1) for p, v in logp.items()}
    for p, v in out.items():
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                f"draw {int(idx[k // npat])}, virtual patient {pat.start + k % npat}: individual {p} = {v[k]!r}; a covariate "
                "outside the range where the covariate model is defined (e.g. a 'linear' effect below zero)?"
            )
    return out


def _exposures(ctx: _Context, idx: np.ndarray, pat: slice = slice(None)) -> np.ndarray:
    """Exposures (len(idx), n_patients[pat], S, M)."""
    pat = slice(*pat.indices(ctx.doses.shape[0]))
    doses = ctx.doses[pat]
    nb, (npat, S) = len(idx), doses.shape
    params = _individual_parameters(ctx, idx, pat)
    U = nb * npat
    lin = [m for m in ctx.metrics if m != "time_above"]
    unit = np.empty((U, len(lin)))
    ta = np.empty((U, S)) if "time_above" in ctx.metrics else None
    n_cmt = ctx.draws.spec.n_cmt
    opts = dict(ctx.options)
    for a in range(0, U, ctx.chunk_patients):
        sl = slice(a, min(U, a + ctx.chunk_patients))
        p = {k: v[sl] for k, v in params.items()}
        if lin:
            res = compute_exposures(p, ctx.plan, lin, n_cmt=n_cmt, **opts)
            for j, m in enumerate(lin):
                unit[sl, j] = res[m]
        if ta is not None:
            pat_i = np.arange(sl.start, sl.stop) % npat
            ta[sl] = time_above(p, ctx.plan, float(ctx.threshold) / doses[pat_i], n_cmt=n_cmt,  # type: ignore[arg-type]
                                n_grid=opts.get("n_grid", 48))
    E = np.empty((nb, npat, S, len(ctx.metrics)))
    for j, m in enumerate(ctx.metrics):
        if m == "time_above":
            E[..., j] = ta.reshape(nb, npat, S)  # type: ignore[union-attr]
        else:
            E[..., j] = unit[:, lin.index(m)].reshape(nb, npat)[:, :, None] * doses[None, :, :]
    return E


def _stats(E: np.ndarray, exceed: np.ndarray, quantiles: np.ndarray) -> dict[str, np.ndarray]:
    """Per-draw statistics over patients (axis 1) of E (nb, n_patients, S, M)."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        positive = np.all(E > 0, axis=1)
        logE = np.log(np.where(E > 0, E, 1.0))
        ddof = 1 if E.shape[1] > 1 else 0
        log_mean = np.where(positive, logE.mean(axis=1), np.nan)
        log_var = np.where(positive, logE.var(axis=1, ddof=ddof), np.nan)
        mean = E.mean(axis=1)
        sd = E.std(axis=1, ddof=ddof)
        # quantiles along a contiguous last axis (much faster than along axis 1)
        q = np.moveaxis(np.quantile(np.ascontiguousarray(np.moveaxis(E, 1, -1)), quantiles, axis=-1), 0, -1)
        p_exceed = np.where(np.isfinite(exceed), (E > np.where(np.isfinite(exceed), exceed, 0.0)).mean(axis=1), np.nan)
    return {"log_mean": log_mean, "log_var": log_var, "mean": mean, "sd": sd, "quantiles": q, "p_exceed": p_exceed}


def _run_block(ctx: _Context, idx: np.ndarray) -> dict[str, Any]:
    E = _exposures(ctx, np.asarray(idx))
    out = _stats(E, ctx.exceed, ctx.quantiles)
    out["idx"] = np.asarray(idx)
    out["exposure"] = E[:, : ctx.keep].copy() if ctx.keep else None
    return out


def _block_exposure(ctx: _Context, d0: int, d1: int, p0: int, p1: int) -> np.ndarray:
    """Exposures of draws d0:d1 and patients p0:p1 (one chunk of the lazy array)."""
    return _exposures(ctx, np.arange(d0, d1), slice(p0, p1))


def _lazy_exposure(ctx: _Context, n: int, chunk_draws: int, target_elements: int = 8_000_000) -> Any:
    """The (draw, patient, strategy, metric) exposures as a dask array.

    Each chunk is recomputed on demand by :func:`_block_exposure`, with the
    same random effects as the eager pass, so it holds the values the
    per-draw statistics were computed from (bit for bit for the analytic IV
    metrics; to round-off, ~1e-15 relative, where an AUC is integrated by
    quadrature, as for oral models, whose sums depend on the batch).  Chunks
    hold at most ``ctx.chunk_patients`` patients and about
    ``target_elements`` values (64 MB).  Each chunk draws the normal
    deviates of its draws for every patient and keeps its own (cheap next to
    the kernel).
    """
    import dask
    import dask.array as da

    npat, S = ctx.doses.shape
    M = len(ctx.metrics)
    per_patient = S * M
    chunk_pat = int(min(npat, ctx.chunk_patients, max(1, target_elements // max(per_patient, 1))))
    chunk_d = int(max(1, min(chunk_draws, target_elements // max(chunk_pat * per_patient, 1))))
    ctx_d = dask.delayed(ctx, pure=True, traverse=False)
    rows = []
    for d0 in range(0, n, chunk_d):
        d1 = min(n, d0 + chunk_d)
        cols = []
        for p0 in range(0, npat, chunk_pat):
            p1 = min(npat, p0 + chunk_pat)
            task = dask.delayed(_block_exposure, pure=True)(ctx_d, d0, d1, p0, p1)
            cols.append(da.from_delayed(task, shape=(d1 - d0, p1 - p0, S, M), dtype=float))
        rows.append(da.concatenate(cols, axis=1) if len(cols) > 1 else cols[0])
    return da.concatenate(rows, axis=0) if len(rows) > 1 else rows[0]


def _is_distributed_client(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "scatter")


def _run_tasks(ctx: _Context, blocks: list[np.ndarray], store: Callable[[dict[str, Any]], None],
               advance: Callable[[int], None], *, executor: Any, use_dask: bool) -> str:
    """Run the blocks serially, on an executor or with dask.

    ``store`` receives each block's result (from the task's return value,
    never from a side channel); ``advance(k)`` is called as k more draws are
    done (progress).  Returns the name of the way the blocks were run (kept in
    the result's attributes).
    """
    if use_dask and executor is not None:
        raise ConfigError("give executor= or use_dask=True, not both (use_dask runs on the default dask client)")
    if use_dask:
        import dask

        client = None
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            client = None
        if client is not None:
            _run_on_client(client, ctx, blocks, store, advance)
            return "dask.distributed"
        ctx_d = dask.delayed(ctx, pure=True, traverse=False)
        tasks = [dask.delayed(_run_block, pure=False)(ctx_d, b) for b in blocks]
        keys = {t.key for t in tasks}

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if key in keys:
                advance(len(result["idx"]))

        # a callback of this computation only (start, start_state, pretask, posttask, finish)
        for out in dask.compute(*tasks, callbacks=[(None, None, None, posttask, None)]):
            store(out)
        return f"dask ({dask.config.get('scheduler', None) or 'threads'})"
    if executor is not None:
        if _is_distributed_client(executor):
            _run_on_client(executor, ctx, blocks, store, advance)
            return "dask.distributed"
        from concurrent.futures import Future, as_completed

        futures = [executor.submit(_run_block, ctx, b) for b in blocks]
        try:
            # concurrent.futures: as they finish; other futures: in order
            order = as_completed(futures) if all(isinstance(f, Future) for f in futures) else iter(futures)
            for f in order:
                out = f.result()
                store(out)
                advance(len(out["idx"]))
        finally:
            for f in futures:
                f.cancel()
        return type(executor).__name__
    for b in blocks:
        out = _run_block(ctx, b)
        store(out)
        advance(len(out["idx"]))
    return "serial"


def _run_on_client(client: Any, ctx: _Context, blocks: list[np.ndarray], store: Callable[[dict[str, Any]], None],
                   advance: Callable[[int], None]) -> None:
    """Run blocks on a dask.distributed client.

    The context is scattered to the workers once (under a key of its own, so
    concurrent runs never share or cancel each other's data); each result is
    released as soon as it is stored, and everything left is cancelled if a
    task fails.
    """
    from distributed import as_completed

    futures: list[Any] = []
    ctx_f = None
    try:
        ctx_f = client.scatter(ctx, broadcast=True, hash=False)
        futures = [client.submit(_run_block, ctx_f, b, pure=False) for b in blocks]
        with client.as_current():  # as_completed looks the client up
            for f in as_completed(futures):
                out = f.result()
                f.release()
                store(out)
                advance(len(out["idx"]))
    finally:
        left = [f for f in futures if f.status != "finished"] + ([ctx_f] if ctx_f is not None else [])
        if left:
            client.cancel(left)


# --------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------


def _progress_printer(total: int, patients: int) -> Callable[[int, int], None]:
    t0 = time.perf_counter()
    last = [0.0]

    def report(done: int, total_: int) -> None:
        now = time.perf_counter()
        if done < total_ and now - last[0] < 2.0:
            return
        last[0] = now
        rate = done * patients / max(now - t0, 1e-9)
        print(f"simulate: {done}/{total_} draws, {rate:,.0f} patient-draws/s", file=sys.stderr, flush=True)

    return report


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

    time_unit = dict(spec.units)["time"]
    oral = spec.absorption is not None
    plan = ExposurePlan.from_schedule(schedule, time_unit, oral=oral)
    covs = _population_covariates(spec, population)
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
    ctx = _Context(
        draws=draws, covs=covs, doses=doses, plan=plan, metrics=metrics_t, threshold=threshold,
        exceed=exceed_arr, quantiles=np.asarray(quantiles, dtype=float), seed=int(seed),
        chunk_patients=int(chunk_patients), keep=0 if lazy else keep, random_effects=bool(random_effects),
        options={"n_search": int(n_search), "n_grid": int(n_grid), "auc_method": auc_method},
    )
    blocks = [np.arange(a, min(n, a + chunk_draws)) for a in range(0, n, chunk_draws)]
    report = progress if callable(progress) else (_progress_printer(n, npat) if progress else None)

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

    how = _run_tasks(ctx, blocks, store, advance, executor=executor, use_dask=use_dask)
    if not filled.all():  # pragma: no cover - a scheduler that lost tasks
        raise RuntimeError(f"simulation tasks returned {int(filled.sum())} of {n} draws ({how})")
    if lazy:
        exposure = _lazy_exposure(ctx, n, chunk_draws)
    elapsed = time.perf_counter() - t0
    ds = _assemble(ctx, draws, names, strategies, dose_mg, population, schedule, res, exposure, elapsed,
                   time_unit=time_unit, n_draws=n, seed=seed, threshold=threshold, exceed=exceed)
    ds.attrs["executed_by"] = how
    return ds


def _assemble(ctx, draws, names, strategies, dose_mg, population, schedule, res, exposure, elapsed, *,
              time_unit, n_draws, seed, threshold, exceed) -> xr.Dataset:
    spec = draws.spec
    metrics = ctx.metrics
    units = metric_units(spec.unit)
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
        "seed": int(seed),
        "random_effects": int(ctx.random_effects),
        "threshold": float(threshold) if threshold is not None else float("nan"),
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
    n_draws: int | None = 200,
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
        ``exceed_threshold``.  Attributes: spec, schedule, seed, timing
        (``elapsed_s``, ``patient_draws_per_s``).

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
    draws = _as_draws(fit, n_draws, seed)
    return simulate_posterior(
        draws, strategies, schedule, population, metrics=metrics, seed=seed, threshold=threshold, exceed=exceed,
        chunk_patients=chunk_patients, chunk_draws=chunk_draws, keep_exposure=keep_exposure,
        max_exposure_mb=max_exposure_mb, random_effects=random_effects, progress=progress, executor=executor,
        use_dask=use_dask, **options,
    )


# --------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------


def per_draw_statistics(sim: xr.Dataset, *, exceed: Mapping[str, float] | None = None) -> xr.Dataset:
    """Between-patient statistics of every draw, dims (draw, strategy, metric).

    Variables: ``median`` (median exposure over patients), ``p05``, ``p95``,
    ``bpv_cv`` (SD / mean over patients), ``bpv_var_log`` (variance of log
    exposure), ``log_mean`` and ``p_exceed``.  With ``exceed`` the fractions
    above new thresholds are recomputed from the per-patient exposures (all
    patients must have been kept).
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
        frac = (sim["exposure"] > thr.fillna(0.0)).mean("patient").compute()  # one pass over lazy exposures
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


def _resolve_reference(sim: xr.Dataset, reference: str | None) -> str:
    names = [str(s) for s in sim.strategy.values]
    if reference is None:
        return _default_reference(sim)
    if reference in names:
        return reference
    labels = [str(x) for x in sim["strategy_label"].values] if "strategy_label" in sim.coords else []
    if reference in labels:
        return names[labels.index(reference)]
    raise ConfigError(f"reference strategy {reference!r} is not one of {names}")


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
    uncertainty).

    Parameters
    ----------
    sim
        Output of :func:`simulate_strategies`.
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
        parameter-uncertainty part), ``label``, ``unit``, ``threshold``.
        ``attrs`` holds ``reference``, ``ci``, ``n_draws``, ``n_patients``.
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
                     "n_patients": int(sim.attrs.get("n_patients", sim.sizes.get("patient", 0)))})
    return df


# --------------------------------------------------------------------------
# dose matching
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DoseMatch:
    """Result of :func:`match_dose`.

    Attributes
    ----------
    strategy
        The target strategy at the matched rate (posterior median).
    rate, rate_lo, rate_hi
        Matched rate (mg/kg, mg/m² or mg) and its credible interval across
        draws (per-draw matched rates).
    metric
        The exposure metric matched (its median over patients).
    reference_median
        Posterior median of the reference strategy's median exposure.
    matched_median
        The same for the matched strategy (verification by simulation).
    relative_error
        Posterior median over draws of matched/reference median - 1.
    method
        ``"ratio"`` (linear strategies: exposure ∝ rate) or ``"bisection"``.
    """

    strategy: DosingStrategy
    rate: float
    rate_lo: float
    rate_hi: float
    ci: float
    metric: str
    reference: str
    reference_median: float
    matched_median: float
    relative_error: float
    method: str

    def to_series(self) -> pd.Series:
        return pd.Series({
            "strategy": self.strategy.label, "rate": self.rate, "rate_lo": self.rate_lo, "rate_hi": self.rate_hi,
            "ci": self.ci, "metric": self.metric, "reference": self.reference,
            "reference_median": self.reference_median, "matched_median": self.matched_median,
            "relative_error": self.relative_error, "method": self.method,
        })


def _rate(strategy: DosingStrategy) -> float:
    s = strategy
    while not hasattr(s, "mg_per_kg") and not hasattr(s, "mg_per_m2") and not hasattr(s, "mg"):
        s = s.strategy  # type: ignore[attr-defined]
    return float(getattr(s, "mg_per_kg", getattr(s, "mg_per_m2", getattr(s, "mg", np.nan))))


def match_dose(
    fit: Any,
    reference: Any,
    target: Any,
    schedule: Schedule,
    population: Any,
    *,
    metric: str = "auc_c1",
    n_draws: int | None = 100,
    seed: int = 0,
    ci: float = 0.9,
    rtol: float = 1e-3,
    **kw: Any,
) -> DoseMatch:
    """The rate of ``target`` giving the same median exposure as ``reference``.

    Per posterior draw, the median over patients of ``metric`` under the
    reference strategy is matched.  For a linear target strategy (mg/kg,
    mg/m², flat; caps on weight) exposure is proportional to the rate, so the
    per-draw matched rate is the ratio of medians; the point estimate is
    their posterior median, and the matched medians are the target's scaled
    by the rate (the engine's exposures are unit-dose exposures times the
    dose, so simulating the matched strategy again would give the same
    numbers).  For non-linear strategies (rounding, dose caps) the rate is
    found by bisection on the posterior median of the per-draw ratio, each
    trial rate simulated with the same draws and random effects.

    Parameters
    ----------
    fit
        As :func:`simulate_strategies`.
    reference
        The strategy to match (e.g. ``PerKg(5, "TBW")``, or text).
    target
        A strategy whose rate is adjusted (e.g. ``PerKg(1, "AIBW")``), or a
        basis name (``"AIBW"`` means ``PerKg(1, "AIBW")``).
    schedule, population
        As :func:`simulate_strategies`.
    metric
        A dose-proportional metric (``auc_c1``, ``cmax_c1``, ``auc_ss``...).
    n_draws, seed
        Draws used.
    ci
        Credible-interval mass of the matched rate.
    rtol
        Relative tolerance of the bisection.

    Examples
    --------
    >>> from poppk.model import ModelSpec, CovariateEffect
    >>> from poppk.simulate import PosteriorDraws, PerKg, Schedule, sample_population
    >>> spec = ModelSpec("1cmt", {"CL": 0.03, "V1": 4.0}, covariates=(CovariateEffect("CL", "AIBW", reference=60.0),),
    ...                  iiv=("CL",), units={"time": "day"})
    >>> draws = PosteriorDraws.from_values(spec, typical={"CL": 0.03, "V1": 4.0}, betas={"beta_CL_AIBW": 0.7},
    ...                                    omega={"CL": 0.3}, n_draws=5)
    >>> pop = sample_population(2000, seed=1, female_fraction=1.0)
    >>> m = match_dose(draws, PerKg(5, "TBW"), "AIBW", Schedule.q3w(2), pop, metric="auc_ss")
    >>> 5.0 < m.rate < 7.0, abs(m.relative_error) < 1e-3
    (True, True)
    """
    if metric == "time_above":
        raise ConfigError("match_dose needs a dose-proportional metric, not time_above")
    reference = parse_strategy(reference) if isinstance(reference, str) and "mg" in reference else reference
    if isinstance(target, str):
        if target.strip().upper() in BASES or target.strip().upper() == "WT":
            target = PerKg(1.0, target)
        else:
            target = parse_strategy(target)
    if not isinstance(reference, DosingStrategy) or not isinstance(target, DosingStrategy):
        raise ConfigError("match_dose needs DosingStrategy objects (or text) for reference and target")
    draws = _as_draws(fit, n_draws, seed)
    common = dict(metrics=[metric], seed=seed, keep_exposure=False, **kw)
    base = simulate_posterior(draws, {"reference": reference, "target": target}, schedule, population, **common)
    med = per_draw_statistics(base)["median"].sel(metric=metric)
    m_ref = med.sel(strategy="reference").values
    m_unit = med.sel(strategy="target").values
    r0 = _rate(target)
    per_draw = r0 * m_ref / m_unit
    rate = float(np.median(per_draw))
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2

    tried: dict[float, tuple[float, DosingStrategy, np.ndarray]] = {}

    def check(r: float) -> tuple[float, DosingStrategy, np.ndarray]:
        if r not in tried:
            strat = target.scaled(r / r0)
            if target.is_linear:
                m = m_unit * (r / r0)
            else:
                sim = simulate_posterior(draws, {"target": strat}, schedule, population, **common)
                m = per_draw_statistics(sim)["median"].sel(metric=metric, strategy="target").values
            tried[r] = (float(np.median(m / m_ref)) - 1.0, strat, m)
        return tried[r]

    method = "ratio"
    err, strat, matched = check(rate)
    if not target.is_linear or abs(err) > rtol:
        method = "bisection"
        lo, hi = rate, rate
        e_lo = e_hi = err
        for _ in range(60):  # bracket
            if e_lo > 0:
                lo /= 1.5
                e_lo = check(lo)[0]
            elif e_hi < 0:
                hi *= 1.5
                e_hi = check(hi)[0]
            else:
                break
        for _ in range(60):
            mid = math.sqrt(lo * hi)
            e_mid = check(mid)[0]
            if e_mid < 0:
                lo, e_lo = mid, e_mid
            else:
                hi, e_hi = mid, e_mid
            if hi / lo - 1 < rtol:
                break
        rate = hi if abs(e_hi) <= abs(e_lo) else lo
        err, strat, matched = check(rate)
    return DoseMatch(
        strategy=strat, rate=rate, rate_lo=float(np.quantile(per_draw, lo_q)), rate_hi=float(np.quantile(per_draw, hi_q)),
        ci=ci, metric=metric, reference=reference.label, reference_median=float(np.median(m_ref)),
        matched_median=float(np.median(matched)), relative_error=float(err), method=method,
    )
