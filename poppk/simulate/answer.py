"""The dosing answer of several candidate fits: simulate each, average by stacking weights.

:func:`simulate_candidates` simulates the same strategies for the same
virtual population from every candidate fit (TBW, AIBW, the adjusted size
model, ...), computes each model's between-patient variance ratios and the
optimal size fraction ``f*`` (:mod:`poppk.simulate.optimal`), pools them by
the models' weights (:mod:`poppk.simulate.averaging`) and phrases the
result; :func:`write_answer` writes it to files.  This is what ``poppk run``
does when it has fitted more than one model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError
from poppk.io import atomic_write_text, jsonable
from poppk.simulate.averaging import AVERAGED, averaged_strategy_summary, mix_draws, model_dependence
from poppk.simulate.optimal import optimal_size_fraction, summarize_optimal_fraction

__all__ = ["AveragedAnswer", "simulate_candidates", "write_answer", "run_candidates"]

_METRIC_WORDS = {"cmax_c1": "cycle-1 Cmax", "auc_c1": "cycle-1 AUC", "ctrough_c1": "cycle-1 trough",
                 "auc_ss": "steady-state AUC", "cmax_ss": "steady-state Cmax", "ctrough_ss": "steady-state trough"}


@dataclass
class AveragedAnswer:
    """Per-model simulations and their stacking-weighted combination.

    Attributes
    ----------
    sims
        ``{model: simulation Dataset}``.
    weights
        ``{model: weight}`` (normalised).
    strategies
        :func:`~poppk.simulate.averaging.averaged_strategy_summary` table
        (index model, strategy, metric; ``model = "averaged"`` first).
    optimal
        f* summary, index (``model``, ``metric``), averaged first; ``None``
        when no linear strategy was simulated.
    verdicts
        ``{(strategy, metric): model_dependence(...)}`` for every
        non-reference strategy and metric.
    headline
        Sentences that lead the report: the averaged answer, whether it
        depends on the model, f*, and the adjusted model's fraction.
    method
        How the weights were made (``"stacking"``, ``"BB-pseudo-BMA"``, ...).
    optimal_note
        Why f* could not be computed, when it could not.
    """

    sims: dict[str, xr.Dataset]
    weights: dict[str, float]
    strategies: pd.DataFrame
    optimal: pd.DataFrame | None
    verdicts: dict[tuple[str, str], dict[str, Any]]
    headline: list[str] = field(default_factory=list)
    method: str = "stacking"
    optimal_note: str = ""


def simulate_candidates(
    fits: Mapping[str, Any],
    weights: Mapping[str, float],
    strategies: Any,
    schedule: Any,
    population: Any,
    *,
    n_draws: int | None = 200,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    reference: str | None = None,
    optimal_target: str | Mapping[str, float] | None = None,
    ci: float = 0.9,
    threshold: float | None = None,
    exceed: Mapping[str, float] | None = None,
    population_uncertainty: Any = "auto",
    method: str = "stacking",
    aibw_factor: float = 0.4,
    executor: Any = None,
    echo: Any = None,
    analyte: str | None = None,
) -> AveragedAnswer:
    """Simulate strategies from every candidate fit and average the answers.

    Parameters
    ----------
    fits
        ``{model: Fit}`` fitted to the same data.
    weights
        ``{model: weight}``, e.g. ``compare(fits)["weight"]`` (stacking).
    strategies, schedule, population
        As :func:`~poppk.simulate.simulate_strategies`; one population (a
        :class:`~poppk.simulate.VirtualPopulation`) is used for every model.
    n_draws, seed, metrics
        Posterior draws per model, seed (same for every model), metrics.
    reference
        Reference strategy of the variance ratios (default: the first plain
        mg/kg TBW strategy).
    optimal_target
        Median exposure that the f* dose level matches (a strategy name or
        label, or ``{metric: value}``; default: the reference strategy).
    ci
        Credible-interval mass.
    threshold, exceed, population_uncertainty
        As :func:`~poppk.simulate.simulate_strategies`.
    method
        How ``weights`` were made, for the text (``"stacking"``, ``"BB-pseudo-BMA"``, ...).
    aibw_factor
        The AIBW fraction that f* is compared with (the population's, 0.4 by default).
    executor
        Passed to :func:`~poppk.simulate.simulate_strategies`.
    echo
        Progress lines (a callable taking a string), or ``None``.
    analyte
        With several analytes: whose exposure is simulated (default the parent).
    """
    from poppk.simulate.engine import simulate_strategies
    from poppk.simulate.exposure import DEFAULT_METRICS

    if not fits:
        raise ConfigError("simulate_candidates needs at least one fit")
    sims: dict[str, xr.Dataset] = {}
    for name, f in fits.items():
        if echo:
            echo(f"   simulating from '{name}' (weight {float(weights.get(name, 0.0)):.2f})")
        sims[name] = simulate_strategies(f, strategies, schedule, population, n_draws=n_draws, seed=seed,
                                         metrics=tuple(metrics) if metrics else DEFAULT_METRICS,
                                         threshold=threshold, exceed=exceed, keep_exposure=True,
                                         population_uncertainty=population_uncertainty, executor=executor,
                                         analyte=analyte)
    table = averaged_strategy_summary(sims, weights, reference=reference, ci=ci, seed=seed, method=method)
    w = table.attrs["weights"]
    ref = table.attrs["reference"]
    verdicts = {}
    for s in sims[next(iter(sims))].strategy.values:
        if str(s) == ref:
            continue
        for m in sims[next(iter(sims))].metric.values:
            verdicts[(str(s), str(m))] = model_dependence(table, str(s), str(m))
    target = optimal_target if optimal_target is not None else ref
    try:
        optimal, note = _optimal_table(sims, w, target, ci, seed, aibw_factor), ""
    except ConfigError as err:  # e.g. no IBW on the patients, or no dose-proportional metric
        optimal, note = None, f"The optimal dosing size f* was not computed: {err}"
    answer = AveragedAnswer(sims=sims, weights=w, strategies=table, optimal=optimal, verdicts=verdicts,
                            method=method, optimal_note=note)
    answer.headline = _headline(answer, fits, ref, target)
    return answer


def _optimal_table(sims: Mapping[str, xr.Dataset], weights: Mapping[str, float], target: Any, ci: float,
                   seed: int, aibw_factor: float) -> pd.DataFrame:
    per = {k: optimal_size_fraction(s, target=target, aibw_factor=aibw_factor) for k, s in sims.items()}
    pooled = mix_draws(per, weights, seed=seed)
    frames = {AVERAGED: summarize_optimal_fraction(pooled, ci=ci)}
    frames.update({k: summarize_optimal_fraction(v, ci=ci) for k, v in per.items()})
    out = pd.concat(frames, names=["model"])
    out.insert(0, "weight", [1.0 if m == AVERAGED else weights[m] for m in out.index.get_level_values("model")])
    out.attrs.update({"ci": ci, "target": str(target), "aibw_factor": float(aibw_factor)})
    return out


def _fmt(t: Sequence[float]) -> str:
    return f"{t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}]"


def _headline(answer: AveragedAnswer, fits: Mapping[str, Any], ref: str, target: Any) -> list[str]:
    lines = []
    sim0 = next(iter(answer.sims.values()))
    labels = dict(zip(map(str, sim0.strategy.values), map(str, sim0["strategy_label"].values))) \
        if "strategy_label" in sim0.coords else {}
    ref_label = labels.get(ref, ref)
    target_label = labels.get(target, target) if isinstance(target, str) else "the given target"
    ws = f"{answer.method} weights " + ", ".join(f"{k} {v:.2f}" for k, v in answer.weights.items())
    same = _same_as_earlier(answer.strategies, ref)
    for (s, m), v in answer.verdicts.items():
        if s in same:
            continue
        words = _METRIC_WORDS.get(m, m)
        p_below = float(answer.strategies.loc[(AVERAGED, s, m), "prob_var_ratio_below_1"])
        sd_change = 100 * (1 - np.sqrt(v["averaged"][0]))
        p_text = "> 0.99" if p_below > 0.99 else "< 0.01" if p_below < 0.01 else f"= {p_below:.2f}"
        lines.append(
            f"{labels.get(s, s)} vs {ref_label}, {words}: between-patient variance ratio {_fmt(v['averaged'])} "
            f"(variance of log exposure under {labels.get(s, s)} / under {ref_label}; posterior median "
            f"[{round(100 * answer.strategies.attrs['ci'])}% CrI], P(ratio < 1) {p_text}; the between-patient SD "
            f"is {abs(sd_change):.0f}% {'smaller' if sd_change >= 0 else 'larger'}), "
            f"averaged over {len(answer.weights)} fits ({ws}). {v['verdict']}"
        )
    if answer.optimal is not None:
        for m in answer.optimal.loc[AVERAGED].index:
            r = answer.optimal.loc[(AVERAGED, m)]
            dose = ""
            if "dose_per_kg_median" in r and np.isfinite(r["dose_per_kg_median"]):
                dose = (f"; {r['dose_per_kg_median']:.2f} [{r['dose_per_kg_lo']:.2f}, {r['dose_per_kg_hi']:.2f}] "
                        f"mg/kg of that size matches the median exposure of {target_label}")
            lines.append(
                f"Optimal dosing size for {_METRIC_WORDS.get(m, m)}: IBW + f*·(TBW − IBW) with "
                f"f* = {r['f_opt_median']:.2f} [{r['f_opt_lo']:.2f}, {r['f_opt_hi']:.2f}]; its variance is "
                f"{r['ratio_opt_vs_aibw_median']:.2f} [{r['ratio_opt_vs_aibw_lo']:.2f}, "
                f"{r['ratio_opt_vs_aibw_hi']:.2f}] of AIBW's (f = {answer.optimal.attrs.get('aibw_factor', 0.4):g}) "
                f"and {r['ratio_opt_vs_tbw_median']:.2f} "
                f"[{r['ratio_opt_vs_tbw_lo']:.2f}, {r['ratio_opt_vs_tbw_hi']:.2f}] of TBW's{dose}."
            )
    if answer.optimal_note:
        lines.append(answer.optimal_note)
    for s, earlier in same.items():
        lines.append(f"{labels.get(s, s)}: the same variance ratios as {labels.get(earlier, earlier)} (a dose level "
                     "scales every patient's exposure alike under linear PK).")
    for name, f in fits.items():
        if getattr(f.spec, "size_fraction", None) is not None and not f.spec.size_fraction.is_fixed:
            v = np.asarray(f.idata.posterior["size_fraction"].values, dtype=float).ravel()
            lo, mid, hi = np.quantile(v, [0.05, 0.5, 0.95])
            weak = (" The data barely identify it: its interval spans most of the prior (the size effects are "
                    "weak), so it is no argument for or against a descriptor." if hi - lo > 0.6 else "")
            lines.append(
                f"The adjusted size model '{name}' estimates the size its PK follow as IBW + f·(TBW − IBW) with "
                f"f = {mid:.2f} [{lo:.2f}, {hi:.2f}] (90% CrI; 0 = IBW, 0.4 = AIBW, 1 = TBW; prior "
                f"{f.spec.size_fraction}). f says which size the PK parameters follow; f* above says which size "
                f"the dose should follow, with every source of between-patient variability included.{weak}"
            )
    return lines


def _same_as_earlier(table: pd.DataFrame, ref: str) -> dict[str, str]:
    """Strategies whose averaged variance ratios equal an earlier strategy's (e.g. 5 and 6 mg/kg AIBW)."""
    avg = table.loc[AVERAGED]
    names = [s for s in dict.fromkeys(avg.index.get_level_values("strategy")) if s != ref]
    out: dict[str, str] = {}
    for i, s in enumerate(names):
        for e in names[:i]:
            if e in out:
                continue
            a = avg.loc[s, ["var_ratio_median", "var_ratio_lo", "var_ratio_hi"]].to_numpy(dtype=float)
            b = avg.loc[e, ["var_ratio_median", "var_ratio_lo", "var_ratio_hi"]].to_numpy(dtype=float)
            if np.allclose(a, b, rtol=1e-9, atol=0, equal_nan=True):
                out[s] = e
                break
    return out


def write_answer(answer: AveragedAnswer, out_dir: str | Path) -> dict[str, Path]:
    """Write the averaged answer: CSV tables, ``answer.json`` and ``answer.txt``.

    Files: ``averaged_strategies.csv`` (every model and the average),
    ``optimal_fraction.csv`` (when f* could be computed), ``answer.json``
    (weights, headline, verdicts) and ``answer.txt`` (the headline).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"averaged_strategies": atomic_write_text(out / "averaged_strategies.csv",
                                                        answer.strategies.reset_index().to_csv(index=False))}
    if answer.optimal is not None:
        written["optimal_fraction"] = atomic_write_text(out / "optimal_fraction.csv",
                                                        answer.optimal.reset_index().to_csv(index=False))
    doc = {
        "weights": answer.weights,
        "reference": answer.strategies.attrs.get("reference"),
        "ci": answer.strategies.attrs.get("ci"),
        "draws_per_model": answer.strategies.attrs.get("draws_per_model"),
        "headline": answer.headline,
        "verdicts": [{"strategy": s, "metric": m, "depends_on_model": v["depends"], "text": v["text"]}
                     for (s, m), v in answer.verdicts.items()],
    }
    written["answer_json"] = atomic_write_text(out / "answer.json", json.dumps(jsonable(doc), indent=2))
    written["answer_txt"] = atomic_write_text(out / "answer.txt", "\n\n".join(answer.headline) + "\n")
    return written


def run_candidates(
    fits: Mapping[str, Any],
    weights: Mapping[str, float],
    strategies: Any,
    schedule: Any,
    population: Any,
    out_dir: str | Path,
    *,
    infusion: Any = 0.0,
    schedule_unit: str = "day",
    n_draws: int | None = 200,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    threshold: float | None = None,
    exceed: Mapping[str, float] | None = None,
    reference: str | None = None,
    optimal_target: Any = None,
    ibw_method: str | None = None,
    workers: int = 0,
    parallel: str = "threads",
    scheduler_address: str | None = None,
    population_uncertainty: Any = "auto",
    method: str = "stacking",
    echo: Any = None,
    analyte: str | None = None,
) -> tuple[AveragedAnswer, dict[str, Path]]:
    """Everything ``poppk run`` does with several fits: simulate each, average, write.

    Texts are parsed as in :func:`~poppk.simulate.outputs.run_simulation`; the
    population is built once from the first fit's data and used for every
    model.  Each model's simulation report goes to ``out_dir/<model>/``,
    the averaged answer (:func:`write_answer`) to ``out_dir``.

    Returns
    -------
    (AveragedAnswer, figures)
        ``figures``: ``{caption: PNG path}`` of the model with the largest
        weight, for the report.
    """
    from poppk.simulate.parallel import parallel_executor
    from poppk.simulate.outputs import save_simulation, simulation_inputs, write_command, write_simulation_report

    first, strats, sched, pop = simulation_inputs(next(iter(fits.values())), strategies, schedule, population,
                                                  infusion=infusion, schedule_unit=schedule_unit, seed=seed,
                                                  ibw_method=ibw_method)
    aibw_factor = float(dict(pop.options).get("aibw_factor", 0.4))
    with parallel_executor(workers, parallel, address=scheduler_address) as client:
        answer = simulate_candidates(fits, weights, strats, sched, pop, n_draws=n_draws, seed=seed, metrics=metrics,
                                     reference=reference, optimal_target=optimal_target, executor=client, echo=echo,
                                     threshold=threshold, exceed=exceed, population_uncertainty=population_uncertainty,
                                     method=method, aibw_factor=aibw_factor, analyte=analyte)
    out = Path(out_dir)
    written = write_answer(answer, out)
    best = max(answer.weights, key=answer.weights.get)  # type: ignore[arg-type]
    figures: dict[str, Path] = {}
    for name, sim in answer.sims.items():
        paths = write_simulation_report(sim, out / name, reference=answer.strategies.attrs["reference"],
                                        figures=name == best, save_dataset=False)
        # per-patient exposures were kept for f*; the saved dataset holds the per-draw statistics only
        paths["dataset"] = save_simulation(sim.drop_vars("exposure"), out / name / "simulation.nc")
        paths["command"] = write_command(out / name, strats, sched, pop, sim, seed=seed, threshold=threshold,
                                         exceed=exceed, reference=reference, model_weight=answer.weights[name],
                                         weights_method=method)
        if name == best:
            figures = {f"{k} ({name} fit, weight {answer.weights[name]:.2f})": p for k, p in paths.items()
                       if str(p).endswith(".png")}
        written.update({f"{name}/{k}": p for k, p in paths.items()})
    return answer, figures
