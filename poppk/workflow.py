"""The end-to-end analysis: data check → fits per size descriptor → checks →
comparison → dosing simulation → report.

:func:`run_demo` runs it on the bundled IMGN853-like trial; ``poppk run
analysis.toml`` (see :mod:`poppk.config`) runs the same steps on a user's
dataset.  Each step calls the same public functions a notebook would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poppk import defaults
from poppk.errors import ConfigError, PopPKError

__all__ = ["bundled_trial_path", "bundled_analysis_path", "bundled_trial_data", "trial_spec", "run_demo", "simulation_step",
           "report_step", "forecast_step", "SimulationStep"]


def bundled_trial_path() -> Path:
    """Path of the bundled simulated trial (``data/imgn853_phase1.csv``)."""
    here = Path(__file__).resolve().parents[1] / "data" / "imgn853_phase1.csv"
    if not here.is_file():
        raise PopPKError(
            f"the bundled trial is not at {here}; poppk must be installed from its source tree "
            "(pip install -e .) for the demo data to be available"
        )
    return here


def trial_spec(descriptor: str = "TBW") -> Any:
    """A candidate model of the bundled analysis (``data/imgn853_analysis.toml``).

    The 2-compartment model of its ``[model]`` section (round initial estimates
    a pharmacometrician would start from, not the simulation truth; albumin on
    CL) with ``descriptor`` as a power covariate on CL and V1 (exponents
    estimated, reference the trial's median), or ``"ADJ"``: the adjusted size
    model IBW + f·(TBW − IBW) with the fraction f estimated
    (:meth:`~poppk.model.ModelSpec.with_size_model`).  The same spec as
    ``poppk run`` fits, so notebooks and the demo share saved fits.
    """
    from poppk.config import candidate_spec, load_config, size_parameters
    from poppk.model import ModelSpec

    config = load_config(bundled_analysis_path())
    return candidate_spec(ModelSpec.from_dict(config.sections["model"]), descriptor,
                          size_parameters(config),
                          config.get("fit", "size_fraction"))


def bundled_trial_data() -> Any:
    """The bundled trial read as the bundled analysis reads it (time in days, label IBW, AIBW factor 0.4)."""
    from poppk.config import load_config, read_data

    return read_data(load_config(bundled_analysis_path()))


def bundled_analysis_path() -> Path:
    """Path of the bundled analysis configuration (``data/imgn853_analysis.toml``)."""
    return bundled_trial_path().with_name("imgn853_analysis.toml")


def bundled_analytes_analysis_path() -> Path:
    """Path of the optional second analysis (``data/imgn853_analytes_analysis.toml``: conjugate, payload,
    metabolite fitted jointly)."""
    return bundled_trial_path().with_name("imgn853_analytes_analysis.toml")


def run_demo(out: str | Path = "out", *, quick: bool = False, echo: Any = None, analytes: bool = False) -> int:
    """Run the whole analysis of the bundled trial and write results to ``out``.

    The steps are those of ``data/imgn853_analysis.toml`` run by
    :func:`poppk.config.run_analysis`: data check, fits with TBW and AIBW as
    the size covariate, checks, LOO comparison, dosing-strategy simulation and
    the covariate report (``out/report.html``).

    Parameters
    ----------
    out
        Output directory.
    quick
        Few draws (a smoke test, not for inference).
    echo
        Where progress lines go (default: logging, see :mod:`poppk.progress`).
    analytes
        Run the optional second analysis instead
        (:func:`bundled_analytes_analysis_path`: the conjugate, its payload and the
        payload's metabolite in one model).
    """
    from poppk.config import load_config, run_analysis

    path = bundled_analytes_analysis_path() if analytes else bundled_analysis_path()
    return run_analysis(load_config(path), out=out, quick=quick, echo=echo)


@dataclass
class SimulationStep:
    """What the simulation step of an analysis produced (for the report).

    ``fit_name`` is the fit the report describes: the simulated one, or with
    an averaged answer the fit of largest weight.
    """

    fit_name: str
    strategy_table: Any = None
    figures: dict[str, Any] = field(default_factory=dict)
    answer: Any = None


def simulation_step(config: Any, fits: dict[str, Any], comparison: Any, out: Path, *, quick: bool = False,
                    echo: Any = None) -> SimulationStep:
    """Step 5 of ``poppk run``: simulate the strategies, from one fit or averaged over all.

    With several fits and ``simulate.fit = "averaged"`` (the default then), every
    fit is simulated for the same virtual population and the answers are
    combined by the LOO stacking weights of ``comparison``
    (:func:`poppk.simulate.answer.simulate_candidates`); each model's own
    simulation report goes to ``simulation/<model>/`` and the averaged answer
    to ``simulation/``.
    """
    from poppk.progress import echo as log_echo

    echo = echo or log_echo
    import pandas as pd

    from poppk.config import shrink_population

    default = "averaged" if len(fits) > 1 and comparison is not None else next(iter(fits))
    which = config.get("simulate", "fit", default)
    if which != "averaged" and which not in fits:
        raise ConfigError(f"simulate.fit = {which!r}: not 'averaged' or one of the fitted models {list(fits)}")
    if which == "averaged" and comparison is None:
        raise ConfigError("simulate.fit = 'averaged' needs at least two fits (fit.descriptors) to compare")
    best = str(comparison["weight"].idxmax()) if which == "averaged" else which
    step = SimulationStep(fit_name=best)
    if not (config.sections.get("simulate") and config.get("simulate", "enabled", True)):
        return step
    from poppk.simulate import run_simulation

    pop = config.get("simulate", "population", "resample:5000")
    n_sim = config.get("simulate", "draws", defaults.SIMULATION_DRAWS)
    if quick:
        pop = shrink_population(pop)
        n_sim = min(n_sim, 40)
    kw = dict(infusion=config.get("simulate", "infusion", "1 h"), n_draws=n_sim, seed=config.get("simulate", "seed", 0),
              metrics=config.get("simulate", "metrics"), threshold=config.get("simulate", "threshold"),
              exceed=config.get("simulate", "exceed"), reference=config.get("simulate", "reference"),
              ibw_method=config.get("data", "ibw_method"), workers=config.get("simulate", "workers", 0),
              parallel=config.get("simulate", "parallel", "threads"),
              scheduler_address=config.get("simulate", "scheduler_address"),
              analyte=config.get("simulate", "analyte"))
    strategies = config.get("simulate", "strategies", ["5 mg/kg", "5 mg/kg AIBW"])
    schedule = config.get("simulate", "schedule", "q3w:6")
    if which == "averaged":
        from poppk.simulate.answer import run_candidates

        weights = {str(k): float(v) for k, v in comparison["weight"].items()}
        method = config.get("simulate", "model_weights", "stacking")
        echo(f"\n== 5. dosing strategies simulated from every fit, averaged by {method} weights -> {out / 'simulation'}")
        answer, figures = run_candidates(fits, weights, strategies, schedule, pop, out / "simulation",
                                         optimal_target=config.get("simulate", "optimal_target"), echo=echo,
                                         method=method, **kw)
        step.answer, step.figures = answer, figures
        step.strategy_table = answer.strategies
        echo(_answer_view(answer.strategies, first_only=True).round(3).to_string())
        echo("")
        for line in answer.headline:
            echo("   " + line)
        return step
    echo(f"\n== 5. dosing strategies simulated from the '{which}' fit -> {out / 'simulation'}")
    paths = run_simulation(fits[which], strategies, schedule, pop, out / "simulation", **kw)
    summary_csv = next((p for p in paths.values() if str(p).endswith("summary.csv")), None)
    if summary_csv is not None:
        step.strategy_table = pd.read_csv(summary_csv)
        cols = [c for c in ("strategy", "metric", "median_exposure_median", "bpv_cv_median", "var_ratio_median",
                            "var_ratio_lo", "var_ratio_hi") if c in step.strategy_table.columns]
        echo(step.strategy_table[cols].round(3).to_string(index=False))
    step.figures = {k: p for k, p in paths.items() if str(p).endswith(".png")}
    return step


def report_step(config: Any, fits: dict[str, Any], comparison: Any, step: SimulationStep, out: Path, *,
                echo: Any = None, forecasts: Any = None) -> dict[str, Path]:
    """Step 7 of ``poppk run``: one report: parameters, convergence, the checks of step 3
    (``out/checks/<fit>``, embedded), model comparison, covariates, the (averaged) dosing answer
    and, when step 6 ran, the individual forecasts with a link to each patient's page.
    ``[report] subject_level = false`` leaves out the figures of each subject's covariate values."""
    from poppk.progress import echo as log_echo
    from poppk.report import export_covariate_report

    echo = echo or log_echo

    target = fits.get(step.fit_name, next(iter(fits.values())))
    checks = out / "checks" / (step.fit_name if step.fit_name in fits else next(iter(fits)))  # step 3's output
    echo(f"\n== 7. covariate report of '{step.fit_name}' -> {out}")
    answer_tables = None
    headline: list[str] = []
    if step.answer is not None:
        headline = list(step.answer.headline)
        answer_tables = {f"Between-patient variance ratio per model and averaged ({step.answer.method} weights)":
                         _answer_view(step.answer.strategies)}
        if step.answer.optimal is not None:
            answer_tables["Optimal size fraction f* of IBW + f*·(TBW − IBW), per model and averaged"] = \
                step.answer.optimal
        step.figures = {**_answer_figures(step.answer), **step.figures}
    written = export_covariate_report(
        target, out, formats=tuple(config.get("report", "formats", ["html", "csv", "json"])),
        strategy_table=step.strategy_table, comparison_table=comparison, figures=step.figures or None,
        title=_report_title(config.get("report", "title"), step.fit_name, len(fits)),
        dosing=tuple(config.get("report", "dosing", ["flat"])),
        answer=headline, answer_tables=answer_tables,
        checks=checks if checks.is_dir() else None,
        subject_level=bool(config.get("report", "subject_level", True)),
        forecasts=forecasts, forecast_dir=out / "forecast",
    )
    for name, p in written.items():
        echo(f"   {name}: {p}")
    return written


def forecast_step(config: Any, fits: dict[str, Any], step: SimulationStep, out: Path, *, quick: bool = False,
                  echo: Any = None) -> Any:
    """Step 6 of ``poppk run``: the ``[forecast]`` table of patients, one page each under ``out/forecast/<ID>/``
    and the summary ``out/forecast/patients.csv``, by the code of ``poppk forecast --patients``
    (:func:`poppk.forecast.cli.forecast_patients`).

    The fit is ``forecast.model``, by default the one the report describes (``step.fit_name``: the
    simulated fit, or with an averaged answer the fit of largest weight).  Times and amounts of the
    doses and observations are in the data's units.  A patient whose input is bad is listed with
    the error in the summary (the others are written); returns the summary.
    """
    from poppk.forecast.cli import forecast_patients
    from poppk.progress import echo as log_echo

    echo = echo or log_echo
    name = config.get("forecast", "model", step.fit_name)
    if name not in fits:
        raise ConfigError(f"forecast.model = {name!r}: not one of the fitted models {list(fits)}")
    where = Path(out) / "forecast"
    draws = config.get("forecast", "draws", defaults.FORECAST_DRAWS)
    echo(f"\n== 6. individual forecasts from the '{name}' fit -> {where}")
    options = {k: config.get("forecast", k) for k in ("target", "schedule", "schedules", "step", "max_dose", "seed")
               if config.get("forecast", k) is not None}
    summary = forecast_patients(
        fits[name], config.resolve(config.get("forecast", "patients")), where,
        doses=config.resolve(config.get("forecast", "doses")),
        observations=config.resolve(config.get("forecast", "observations")),
        echo=lambda line: echo("   " + line), label=config.get("forecast", "label", "6 mg/kg AIBW"),
        draws=min(draws, 100) if quick else draws, **options)
    cols = [c for c in ("ID", "n_observations", "pareto_k", "dose_mg", "schedule", "probability", "label_dose_mg",
                        "label_probability", "error") if c in summary.columns]
    echo(summary[cols].round(3).to_string(index=False))
    return summary


def _answer_view(table: Any, first_only: bool = False) -> Any:
    """The variance ratios of the non-reference strategies (of the first one only with ``first_only``).

    Strategies whose ratios repeat an earlier one's (5 and 6 mg/kg AIBW) are left out.
    """
    from poppk.simulate.answer import _same_as_earlier

    ref = table.attrs.get("reference")
    strategies = table.index.get_level_values("strategy")
    keep = (strategies != ref) & ~strategies.isin(list(_same_as_earlier(table, ref)))
    if first_only and keep.any():
        keep = strategies == strategies[keep][0]
    cols = [c for c in ("label", "weight", "var_ratio_median", "var_ratio_lo", "var_ratio_hi",
                        "prob_var_ratio_below_1") if c in table.columns]
    view = table.loc[keep, cols].copy()
    view["weight"] = view["weight"].round(3)
    return view


def _answer_figures(answer: Any) -> dict[str, Any]:
    """Per-model and averaged variance ratio of the first non-reference strategy, one figure per metric."""
    from poppk.simulate import plot_model_answers

    table = answer.strategies
    ref = table.attrs.get("reference")
    strategies = [s for s in dict.fromkeys(table.index.get_level_values("strategy")) if s != ref]
    if not strategies:
        return {}
    out = {}
    for metric in dict.fromkeys(table.index.get_level_values("metric")):
        ax = plot_model_answers(table, strategies[0], metric)
        out[f"Variance ratio per model and averaged: {strategies[0]}, {metric}"] = ax.figure
    return out


def _report_title(title: str | None, fit_name: str, n_fits: int) -> str | None:
    """With several fits, the title says whose parameters the report's tables show."""
    if n_fits < 2:
        return title
    suffix = f"parameters of the '{fit_name}' fit (largest weight)"
    return f"{title} — {suffix}" if title else None
