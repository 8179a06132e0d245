"""Saving simulations and writing their tables and figures (what ``poppk simulate`` writes).

:func:`write_simulation_report` is the whole output step of the command
line: a directory with

``summary.csv``
    :func:`~poppk.simulate.summaries.summarize_strategies`.
``per_draw.csv``
    :func:`~poppk.simulate.summaries.per_draw_statistics` in long form.
``doses.csv``
    :func:`~poppk.simulate.tables.dose_table`.
``exposure_quantiles_<metric>.csv``
    :func:`~poppk.simulate.tables.exposure_distribution_table`.
``figures/``
    exposure by strategy and vs weight per metric, variance ratios.
``simulation.nc``
    the Dataset (optional).

Every file is written atomically through :mod:`poppk.io`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from poppk import defaults
from poppk.errors import ConfigError
from poppk.io import atomic_write_text, atomic_writer, jsonable
from poppk.simulate.tables import dose_table, exposure_by_covariate, exposure_distribution_table
from poppk.simulate.summaries import per_draw_statistics, summarize_strategies

__all__ = ["save_simulation", "load_simulation", "write_simulation_report", "run_simulation"]


def save_simulation(sim: xr.Dataset, path: str | Path) -> Path:
    """Write a simulation Dataset to NetCDF (h5netcdf); text coordinates are stored as strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = sim.copy()
    for name, c in ds.coords.items():
        if c.dtype == object:
            ds = ds.assign_coords({name: c.astype(str)})
    return atomic_writer(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def load_simulation(path: str | Path) -> xr.Dataset:
    """Read a Dataset written by :func:`save_simulation` (loaded into memory)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def _save_figure(ax: Any, path: Path) -> Path:
    """Lay out, write (PNG, atomically) and close the figure of ``ax``."""
    import matplotlib.pyplot as plt

    ax.figure.tight_layout()
    atomic_writer(path, lambda tmp: ax.figure.savefig(tmp, dpi=120))
    plt.close(ax.figure)
    return path


def write_simulation_report(
    sim: xr.Dataset,
    out_dir: str | Path,
    *,
    reference: str | None = None,
    exceed: Mapping[str, float] | None = None,
    ci: float = 0.9,
    figures: bool = True,
    metrics: Sequence[str] | None = None,
    save_dataset: bool = True,
    max_lazy_patients: int = 20_000,
) -> dict[str, Path]:
    """Write the tables (CSV), figures (PNG) and the Dataset of a simulation.

    Parameters
    ----------
    sim
        Output of :func:`~poppk.simulate.engine.simulate_strategies`.
    out_dir
        Directory (created).
    reference, exceed, ci
        Passed to :func:`~poppk.simulate.summaries.summarize_strategies`.
    figures
        Draw the figures (matplotlib, Agg).
    metrics
        Metrics to draw (default: all simulated).
    save_dataset
        Also write ``simulation.nc`` (lazy exposures are written chunk by
        chunk).
    max_lazy_patients
        With lazy (dask) per-patient exposures, the exposure-vs-weight tables
        and figures use the first this many virtual patients.

    Returns
    -------
    dict of name -> path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    stats = per_draw_statistics(sim, exceed=exceed)
    summary = summarize_strategies(sim, reference=reference, exceed=exceed, ci=ci, stats=stats)

    def csv(name: str, table: Any, index: bool = True) -> None:
        written[name] = atomic_writer(out / f"{name}.csv", lambda tmp: table.to_csv(tmp, index=index))

    csv("summary", summary)
    atomic_write_text(out / "summary_meta.json", json.dumps(jsonable(summary.attrs), indent=2))
    csv("per_draw", stats.to_dataframe().reset_index(), index=False)
    csv("doses", dose_table(sim))
    mets = list(metrics) if metrics is not None else [str(m) for m in sim.metric.values]
    for m in mets:
        csv(f"exposure_quantiles_{m}", exposure_distribution_table(sim, m, ci=ci))
    has_patients = "exposure" in sim and sim.sizes.get("patient", 0) > 0 and "TBW" in sim.coords
    by_patient = sim
    if has_patients and not isinstance(sim["exposure"].data, np.ndarray):
        # lazy (dask) exposures: the by-weight tables and figures use the first patients (a random
        # sample of the virtual population), loaded once, so memory stays bounded
        by_patient = sim.isel(patient=slice(0, max_lazy_patients))
        by_patient["exposure"] = by_patient["exposure"].compute()
    if has_patients:
        for m in mets:
            csv(f"exposure_vs_TBW_{m}", exposure_by_covariate(by_patient, "TBW", m), index=False)
    if figures:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from poppk.plots.strategies import plot_exposure_by_strategy, plot_exposure_vs_weight, plot_variance_ratio

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for m in mets:
            written[f"fig_exposure_by_strategy_{m}"] = _save_figure(
                plot_exposure_by_strategy(sim, m, ci=ci), fig_dir / f"exposure_by_strategy_{m}.png")
            if has_patients:
                written[f"fig_exposure_vs_weight_{m}"] = _save_figure(
                    plot_exposure_vs_weight(by_patient, metric=m), fig_dir / f"exposure_vs_weight_{m}.png")
        if sim.sizes["strategy"] > 1:
            written["fig_variance_ratio"] = _save_figure(
                plot_variance_ratio(summary, mets), fig_dir / "variance_ratio.png")
    if save_dataset:
        written["dataset"] = save_simulation(sim, out / "simulation.nc")
    return written


def run_simulation(
    fit: Any,
    strategies: Sequence[str] | Mapping[str, Any],
    schedule: str | Any,
    population: str | Any,
    out_dir: str | Path,
    *,
    infusion: Any = 0.0,
    schedule_unit: str = "day",
    n_draws: int | None = defaults.SIMULATION_DRAWS,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    threshold: float | None = None,
    exceed: Mapping[str, float] | None = None,
    reference: str | None = None,
    ibw_method: str | None = None,
    progress: bool = False,
    figures: bool = True,
    workers: int = 0,
    parallel: str = "threads",
    scheduler_address: str | None = None,
    executor: Any = None,
    population_uncertainty: str | None = "auto",
    analyte: str | None = None,
) -> dict[str, Path]:
    """Everything ``poppk simulate`` does: load, build, simulate, write.

    Parameters
    ----------
    fit
        A fit or the path of a fit directory (:func:`poppk.model.load_fit`).
    strategies
        Texts such as ``"5 mg/kg"``, ``"6 mg/kg AIBW"`` (see
        :func:`~poppk.simulate.strategies.parse_strategy`) or a mapping.
    schedule
        A Schedule or text (``"q3w:6"``, see
        :func:`~poppk.simulate.schedule.parse_schedule`), with ``infusion``
        (e.g. ``"90 min"``) and ``schedule_unit``.
    population
        A VirtualPopulation or text (``"resample:5000"``, ``"sample:5000:1.0"``,
        a CSV path; see :func:`~poppk.simulate.population.parse_population`).
    out_dir
        Output directory (see :func:`write_simulation_report`).
    n_draws, seed, metrics, threshold, exceed, reference, progress, figures
        As :func:`~poppk.simulate.engine.simulate_strategies` and
        :func:`write_simulation_report`.
    ibw_method
        IBW method for descriptors derived by the population (e.g.
        ``"label"``); descriptors present in a fitted dataset are kept.
    workers, parallel, scheduler_address
        Run the blocks of draws on ``workers`` threads (``parallel="threads"``,
        the fastest on one machine), on a local ``dask.distributed`` cluster
        of ``workers`` processes (``"processes"``), or on the dask scheduler at
        ``scheduler_address`` (:func:`~poppk.simulate.parallel.parallel_executor`);
        0 workers: serially in this process.
    executor
        Or an executor of your own (e.g. a ``dask.distributed.Client``).
    population_uncertainty
        ``"auto"`` (a Bayesian bootstrap of a resampled population, per
        draw), ``"bootstrap"`` or ``None``: see
        :func:`~poppk.simulate.engine.simulate_strategies`.
    analyte
        With several analytes: whose exposure is simulated (default the parent).

    Returns
    -------
    dict of name -> path written (also ``"command.json"`` with the inputs).
    """
    from poppk.simulate.engine import simulate_strategies
    from poppk.simulate.exposure import DEFAULT_METRICS

    fit, strats, sched, pop = simulation_inputs(fit, strategies, schedule, population, infusion=infusion,
                                                schedule_unit=schedule_unit, seed=seed, ibw_method=ibw_method)
    if executor is not None and (workers or scheduler_address):
        raise ConfigError("give workers=/scheduler_address= or executor=, not both")
    from poppk.simulate.parallel import parallel_executor

    with parallel_executor(workers, parallel, address=scheduler_address) as client:
        sim = simulate_strategies(fit, strats, sched, pop, n_draws=n_draws, seed=seed,
                                  metrics=tuple(metrics) if metrics else DEFAULT_METRICS, threshold=threshold,
                                  exceed=exceed, progress=progress, population_uncertainty=population_uncertainty,
                                  executor=executor if executor is not None else client, analyte=analyte)
    written = write_simulation_report(sim, out_dir, reference=reference, exceed=None, figures=figures)
    written["command"] = write_command(out_dir, strats, sched, pop, sim, seed=seed, threshold=threshold,
                                       exceed=exceed, reference=reference)
    return written


def simulation_inputs(fit: Any, strategies: Any, schedule: Any, population: Any, *, infusion: Any = 0.0,
                      schedule_unit: str = "day", seed: int = 0, ibw_method: str | None = None) -> tuple[Any, ...]:
    """``(fit, strategies, schedule, population)`` from texts or objects, as ``poppk simulate`` reads them.

    A fit may be a fit directory; strategies texts or a mapping
    (:func:`~poppk.simulate.engine.as_strategies`); the schedule a
    :class:`~poppk.simulate.schedule.Schedule` or text with ``infusion`` and
    ``schedule_unit``; the population a
    :class:`~poppk.simulate.population.VirtualPopulation` or text
    (:func:`~poppk.simulate.population.parse_population`, from the fit's data).
    """
    from poppk.simulate.engine import as_strategies
    from poppk.simulate.population import VirtualPopulation, parse_population
    from poppk.simulate.schedule import Schedule, parse_schedule

    if isinstance(fit, (str, Path)):
        from poppk.model import load_fit

        fit = load_fit(fit)
    strats = as_strategies(strategies)
    sched = schedule if isinstance(schedule, Schedule) else parse_schedule(schedule, infusion=infusion, unit=schedule_unit)
    opts = {"ibw_method": ibw_method} if ibw_method else {}
    pop = population if isinstance(population, VirtualPopulation) else parse_population(population, fit, seed=seed, **opts)
    return fit, strats, sched, pop


def write_command(out_dir: str | Path, strategies: Mapping[str, Any], schedule: Any, population: Any,
                  sim: xr.Dataset, *, seed: int, threshold: float | None = None,
                  exceed: Mapping[str, float] | None = None, reference: str | None = None,
                  **extra: Any) -> Path:
    """``command.json``: the inputs of a simulation, so its outputs can be traced and re-run."""
    return atomic_write_text(Path(out_dir) / "command.json", json.dumps(jsonable({
        "strategies": {k: v.label for k, v in strategies.items()}, "schedule": schedule.to_dict(),
        "population": population.source, "n_patients": population.n, "n_draws": sim.sizes["draw"], "seed": seed,
        "metrics": [str(m) for m in sim.metric.values], "threshold": threshold, "exceed": dict(exceed or {}),
        "reference": reference, "population_uncertainty": sim.attrs.get("population_uncertainty", "none"),
        "elapsed_s": sim.attrs["elapsed_s"], **extra,
    }), indent=2))
