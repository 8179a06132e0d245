"""Dose matching: the rate of one strategy that gives the exposure of another.

:func:`match_dose` finds, over posterior draws, the rate (mg/kg, mg/m² or mg)
of a target strategy whose median exposure over patients equals that of a
reference strategy, with its credible interval (:class:`DoseMatch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from poppk.errors import ConfigError
from poppk.simulate.engine import as_draws, simulate_posterior
from poppk.simulate.schedule import Schedule
from poppk.simulate.strategies import BASES, DosingStrategy, PerKg, parse_strategy
from poppk.simulate.summaries import per_draw_statistics

__all__ = ["DoseMatch", "match_dose"]


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
    trial rate simulated with the same draws and random effects.  The
    per-draw medians are weighted medians when the population carries the
    Bayesian bootstrap (``population_uncertainty``, passed on through
    ``**kw`` as to :func:`~poppk.simulate.engine.simulate_strategies`; on by
    default for a resampled population), so the matched rate's interval
    also holds the uncertainty of the population.

    Parameters
    ----------
    fit
        As :func:`~poppk.simulate.engine.simulate_strategies`.
    reference
        The strategy to match (e.g. ``PerKg(5, "TBW")``, or text).
    target
        A strategy whose rate is adjusted (e.g. ``PerKg(1, "AIBW")``), or a
        basis name (``"AIBW"`` means ``PerKg(1, "AIBW")``).
    schedule, population
        As :func:`~poppk.simulate.engine.simulate_strategies`.
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
    draws = as_draws(fit, n_draws, seed)
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
