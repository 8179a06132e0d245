"""Running a simulation: the work of one block of draws, and where blocks run.

:func:`~poppk.simulate.engine.simulate_posterior` cuts the posterior draws into
blocks and hands them, with a :class:`BlockContext` (everything a block needs,
shared by all), to :func:`run_blocks`.  A block computes individual parameters
(:func:`poppk.model.parameters.log_individual_parameters`, the code of the
likelihood) with fresh random effects per draw, their exposures
(:func:`poppk.simulate.exposure.compute_exposures`), and the per-draw
statistics over patients -- weighted by the population's Bayesian bootstrap
(:mod:`poppk.simulate.weighting`) when the context carries patient sources.
Patients are evaluated in chunks (``chunk_patients``) so memory stays
bounded.

Blocks are independent, top-level (picklable) tasks that run serially, on an
executor (``concurrent.futures``, or a ``dask.distributed`` Client, to which
the context is scattered once) or through ``dask.delayed`` (``use_dask``, on
the active dask scheduler or cluster).  :func:`lazy_exposure` gives the
per-patient exposures as a dask array whose chunks are recomputed on demand.
Random numbers (random effects and bootstrap weights) depend only on
``seed``, the draw and the patient, never on chunking or on where a task
runs.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from poppk.errors import ConfigError
from poppk.model.parameters import log_individual_parameters
from poppk.simulate.draws import PosteriorDraws
from poppk.simulate.fast_exposure import UnitPlan, plan_for, unit_exposures
from poppk.simulate.fast_stats import draw_statistics
from poppk.simulate.exposure import ExposurePlan, compute_exposures, time_above
from poppk.simulate.weighting import expand_weights, source_weights, weighted_quantiles, weighted_variance

__all__ = ["BlockContext", "block_weights", "run_blocks", "lazy_exposure", "progress_printer"]


# --------------------------------------------------------------------------
# the work of one block of draws (a top-level function: picklable)
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BlockContext:
    """What every block of draws needs, built once by the engine and shared by all tasks.

    ``doses`` are (n_patients, S) in the model's amount unit; ``exceed`` holds
    one threshold per metric (NaN: none); ``keep`` is the number of patients
    whose exposures a block returns; ``options`` go to
    :func:`~poppk.simulate.exposure.compute_exposures`.  ``source`` (the
    position of each patient's source subject among ``n_sources``), when
    given, turns on the population's Bayesian bootstrap: the per-draw
    statistics are weighted (:mod:`poppk.simulate.weighting`).
    """

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
    source: np.ndarray | None = None  # (n_patients,) int, or None: no population bootstrap
    n_sources: int = 0


def block_weights(ctx: BlockContext, idx: np.ndarray) -> np.ndarray | None:
    """(len(idx), n_patients) bootstrap weights of the draws ``idx`` (each row sums to 1), or None when off."""
    if ctx.source is None:
        return None
    return expand_weights(source_weights(ctx.seed, idx, ctx.n_sources), ctx.source)


def _individual_parameters(ctx: BlockContext, idx: np.ndarray, pat: slice = slice(None)) -> dict[str, np.ndarray]:
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


def _fast_plan(ctx: BlockContext) -> UnitPlan | None:
    """The compiled evaluation of the context's dose-linear metrics, or None where it does not apply."""
    lin = [m for m in ctx.metrics if m != "time_above"]
    o = ctx.options
    if not lin or int(o.get("analyte", 0)):  # formed analytes: the NumPy path
        return None
    return plan_for(ctx.plan, lin, n_cmt=ctx.draws.spec.n_cmt, n_search=int(o.get("n_search", 5)),
                    n_grid=int(o.get("n_grid", 48)), auc_method=str(o.get("auc_method", "auto")))


def _unit_exposures(ctx: BlockContext, params: dict[str, np.ndarray], up: UnitPlan | None) -> np.ndarray:
    """Unit-dose exposures (L, u) of the dose-linear metrics, in chunks of ``ctx.chunk_patients``.

    Compiled (:func:`~poppk.simulate.compiled.unit_exposures`) when ``up`` is
    given, otherwise :func:`~poppk.simulate.exposure.compute_exposures`.
    """
    lin = [m for m in ctx.metrics if m != "time_above"]
    U = len(next(iter(params.values())))
    unit = np.empty((len(lin), U))
    n_cmt = ctx.draws.spec.n_cmt
    for a in range(0, U, ctx.chunk_patients):
        sl = slice(a, min(U, a + ctx.chunk_patients))
        p = {k: v[sl] for k, v in params.items()}
        if up is not None:
            unit[:, sl] = unit_exposures(p, up)
        else:
            res = compute_exposures(p, ctx.plan, lin, n_cmt=n_cmt, **ctx.options)
            for j, m in enumerate(lin):
                unit[j, sl] = res[m]
    return unit


def _exposures(ctx: BlockContext, idx: np.ndarray, pat: slice = slice(None)) -> np.ndarray:
    """Exposures (len(idx), n_patients[pat], S, M)."""
    pat = slice(*pat.indices(ctx.doses.shape[0]))
    doses = ctx.doses[pat]
    nb, (npat, S) = len(idx), doses.shape
    params = _individual_parameters(ctx, idx, pat)
    U = nb * npat
    lin = [m for m in ctx.metrics if m != "time_above"]
    unit = _unit_exposures(ctx, params, _fast_plan(ctx)) if lin else np.empty((0, U))
    ta = None
    if "time_above" in ctx.metrics:
        ta = np.empty((U, S))
        n_cmt = ctx.draws.spec.n_cmt
        for a in range(0, U, ctx.chunk_patients):
            sl = slice(a, min(U, a + ctx.chunk_patients))
            p = {k: v[sl] for k, v in params.items()}
            pat_i = np.arange(sl.start, sl.stop) % npat
            ta[sl] = time_above(p, ctx.plan, float(ctx.threshold) / doses[pat_i], n_cmt=n_cmt,  # type: ignore[arg-type]
                                n_grid=ctx.options.get("n_grid", 48), formation=ctx.options.get("formation", ()),
                                analyte=ctx.options.get("analyte", 0))
    E = np.empty((nb, npat, S, len(ctx.metrics)))
    for j, m in enumerate(ctx.metrics):
        if m == "time_above":
            E[..., j] = ta.reshape(nb, npat, S)  # type: ignore[union-attr]
        else:
            E[..., j] = unit[lin.index(m)].reshape(nb, npat)[:, :, None] * doses[None, :, :]
    return E


def _stats(E: np.ndarray, exceed: np.ndarray, quantiles: np.ndarray,
           weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-draw statistics over patients (axis 1) of E (nb, n_patients, S, M).

    ``weights`` (nb, n_patients), each row summing to 1, give the weighted
    statistics (:func:`_weighted_stats`); None: every patient counts the
    same (variances and SDs with ``ddof=1``).
    """
    if weights is not None:
        return _weighted_stats(E, exceed, quantiles, weights)
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


def _weighted_stats(E: np.ndarray, exceed: np.ndarray, quantiles: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics of :func:`_stats` with per-draw patient weights.

    Means and fractions are weighted sums; variances carry the reliability
    correction 1 / (1 - Σw²) (``ddof=1`` for equal weights); quantiles come
    from sorted values and cumulative weights
    (:func:`~poppk.simulate.weighting.weighted_quantiles`, NumPy's linear
    quantile for equal weights).  Each draw is reduced on its own, so the
    sums do not depend on how many draws a block holds (bit-for-bit equal
    results whatever the chunking or executor).
    """
    nb, _, S, M = E.shape
    out = {k: np.empty((nb, S, M)) for k in ("log_mean", "log_var", "mean", "sd", "p_exceed")}
    out["quantiles"] = np.empty((nb, S, M, len(quantiles)))
    thr = np.where(np.isfinite(exceed), exceed, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j in range(nb):
            e = E[j]  # (n_patients, S, M)
            w = weights[j][:, None, None]
            positive = np.all(e > 0, axis=0)
            loge = np.log(np.where(e > 0, e, 1.0))
            out["log_mean"][j] = np.where(positive, np.sum(w * loge, axis=0), np.nan)
            out["log_var"][j] = np.where(positive, weighted_variance(loge, w, axis=0), np.nan)
            out["mean"][j] = np.sum(w * e, axis=0)
            out["sd"][j] = np.sqrt(weighted_variance(e, w, axis=0))
            out["quantiles"][j] = weighted_quantiles(np.ascontiguousarray(np.moveaxis(e, 0, -1)), weights[j],
                                                     quantiles)
            out["p_exceed"][j] = np.where(np.isfinite(exceed), np.sum(w * (e > thr), axis=0), np.nan)
    return out


def _run_block(ctx: BlockContext, idx: np.ndarray) -> dict[str, Any]:
    idx = np.asarray(idx)
    weights = block_weights(ctx, idx)
    up = _fast_plan(ctx) if weights is None else None
    if up is not None and len(up.metrics) == len(ctx.metrics):
        # every metric is dose-linear and compiled: statistics straight from the unit-dose exposures,
        # without the (draws, patients, strategies, metrics) array
        nb, npat = len(idx), ctx.doses.shape[0]
        unit = _unit_exposures(ctx, _individual_parameters(ctx, idx), up)
        out = draw_statistics(unit, list(range(len(ctx.metrics))), ctx.doses, nb, ctx.exceed, ctx.quantiles)
        out["exposure"] = None
        if ctx.keep:
            k = ctx.keep
            u = unit.reshape(len(ctx.metrics), nb, npat)[:, :, :k]  # (M, nb, keep)
            out["exposure"] = np.ascontiguousarray(
                np.moveaxis(u, 0, -1)[:, :, None, :] * ctx.doses[None, :k, :, None])
        out["idx"] = idx
        return out
    E = _exposures(ctx, idx)
    out = _stats(E, ctx.exceed, ctx.quantiles, weights)
    out["idx"] = np.asarray(idx)
    out["exposure"] = E[:, : ctx.keep].copy() if ctx.keep else None
    return out


def _block_exposure(ctx: BlockContext, d0: int, d1: int, p0: int, p1: int) -> np.ndarray:
    """Exposures of draws d0:d1 and patients p0:p1 (one chunk of the lazy array)."""
    return _exposures(ctx, np.arange(d0, d1), slice(p0, p1))


def lazy_exposure(ctx: BlockContext, n: int, chunk_draws: int, target_elements: int = 8_000_000) -> Any:
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


def run_blocks(ctx: BlockContext, blocks: list[np.ndarray], store: Callable[[dict[str, Any]], None],
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


def _run_on_client(client: Any, ctx: BlockContext, blocks: list[np.ndarray], store: Callable[[dict[str, Any]], None],
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
# progress
# --------------------------------------------------------------------------


def progress_printer(total: int, patients: int) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback printing draws done and patient-draws/s to stderr, at most every 2 s."""
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

