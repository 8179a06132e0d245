"""Dosing-strategy simulation: virtual populations, strategies, schedules, exposures.

The path::

    Fit ──▶ PosteriorDraws ──▶ simulate_strategies(fit, strategies, schedule, population)
                                  │  xr.Dataset (draw, patient, strategy, metric)
                                  ▼
               summarize_strategies · per_draw_statistics · match_dose
                                  │
    fit_exposure_toxicity ──▶ predict_incidence        plot_* (draw the tables)   write_simulation_report

Everything is computed with the fit's own code: individual parameters with
:func:`poppk.model.parameters.log_individual_parameters`, concentrations with
:func:`poppk.pk.concentration`.

Modules: :mod:`~poppk.simulate.population` (virtual patients),
:mod:`~poppk.simulate.strategies` (dosing rules), :mod:`~poppk.simulate.schedule`
(when doses are given), :mod:`~poppk.simulate.exposure` (metrics on a
schedule's doses; their closed forms are :mod:`poppk.pk.exposure`),
:mod:`~poppk.simulate.draws` (posterior draws), :mod:`~poppk.simulate.engine`
(the simulation's entry points), :mod:`~poppk.simulate.execution` (blocks of
draws and where they run), :mod:`~poppk.simulate.summaries` (BPV and
uncertainty), :mod:`~poppk.simulate.dose_matching`,
:mod:`~poppk.simulate.toxicity`, :mod:`~poppk.simulate.tables` (figures: :mod:`poppk.plots.strategies`),
:mod:`~poppk.simulate.outputs`, :mod:`~poppk.simulate.parallel`,
:mod:`~poppk.simulate.optimal` (the optimal size fraction f*),
:mod:`~poppk.simulate.averaging` and :mod:`~poppk.simulate.answer` (the answer
of several candidate fits combined by their LOO weights).

Scale: draws run in blocks, patients in chunks, in bounded memory; blocks run on
any executor (``executor=``: a thread pool or a ``dask.distributed`` Client,
e.g. from :func:`parallel_executor`) or with ``use_dask=True``, and per-patient
exposures can be kept as a lazy dask array (``keep_exposure="lazy"``).
"""

from poppk.simulate.answer import AveragedAnswer, run_candidates, simulate_candidates, write_answer
from poppk.simulate.averaging import averaged_strategy_summary, mix_draws, model_answers_table, model_dependence
from poppk.simulate.dose_matching import DoseMatch, match_dose
from poppk.simulate.draws import PosteriorDraws
from poppk.simulate.engine import DEFAULT_QUANTILES, as_strategies, simulate_posterior, simulate_strategies
from poppk.simulate.exposure import (
    DEFAULT_METRICS,
    METRICS,
    ExposurePlan,
    compute_exposures,
    concentration_profile,
    exposure_metrics,
)
from poppk.simulate.optimal import optimal_size_fraction, summarize_optimal_fraction
from poppk.simulate.population import (
    VirtualPopulation,
    parse_population,
    population_from_table,
    resample_population,
    sample_population,
)
from poppk.simulate.parallel import local_cluster, parallel_executor
from poppk.simulate.outputs import load_simulation, run_simulation, save_simulation, write_simulation_report
from poppk.simulate.schedule import Schedule, parse_schedule
from poppk.simulate.tables import dose_table, exposure_by_covariate, exposure_distribution_table, variance_ratio_table
from poppk.simulate.strategies import (
    BASES,
    Capped,
    DosingStrategy,
    Flat,
    PerKg,
    PerM2,
    Rounded,
    parse_strategy,
)
from poppk.simulate.summaries import patient_weights, per_draw_statistics, summarize_strategies
from poppk.simulate.toxicity import ExposureToxicity, fit_exposure_toxicity, predict_incidence, trial_exposures

__all__ = [
    # populations
    "VirtualPopulation",
    "resample_population",
    "sample_population",
    "population_from_table",
    "parse_population",
    # strategies and schedules
    "DosingStrategy",
    "PerKg",
    "PerM2",
    "Flat",
    "Capped",
    "Rounded",
    "BASES",
    "Schedule",
    "parse_strategy",
    "parse_schedule",
    # exposure
    "METRICS",
    "DEFAULT_METRICS",
    "ExposurePlan",
    "compute_exposures",
    "exposure_metrics",
    "concentration_profile",
    # engine, summaries and dose matching
    "PosteriorDraws",
    "simulate_strategies",
    "simulate_posterior",
    "as_strategies",
    "per_draw_statistics",
    "summarize_strategies",
    "match_dose",
    "DoseMatch",
    "DEFAULT_QUANTILES",
    "patient_weights",
    # several candidate fits, and the optimal dosing size
    "simulate_candidates",
    "run_candidates",
    "write_answer",
    "AveragedAnswer",
    "averaged_strategy_summary",
    "mix_draws",
    "model_dependence",
    "model_answers_table",
    "optimal_size_fraction",
    "summarize_optimal_fraction",
    # exposure-toxicity
    "ExposureToxicity",
    "fit_exposure_toxicity",
    "trial_exposures",
    "predict_incidence",
    # tables and figures
    "exposure_distribution_table",
    "exposure_by_covariate",
    "variance_ratio_table",
    "dose_table",
    "plot_exposure_by_strategy",
    "plot_exposure_vs_weight",
    "plot_variance_ratio",
    "plot_model_answers",
    "plot_incidence",
    "plot_exposure_response",
    # output
    "save_simulation",
    "load_simulation",
    "write_simulation_report",
    "run_simulation",
    "local_cluster",
    "parallel_executor",
]

def __getattr__(name: str):  # noqa: ANN202 - module attribute hook
    # the figures of simulations live in poppk.plots.strategies (which imports this package's tables),
    # re-exported here and loaded on first use; poppk.plots holds their one list of names
    from poppk import plots

    if name in plots._STRATEGY_PLOTS:
        return getattr(plots, name)
    raise AttributeError(f"module 'poppk.simulate' has no attribute {name!r}")
