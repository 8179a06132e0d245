"""``recommend_dose``: the dose that meets an exposure target for one patient, beside the label's.

A target (:mod:`poppk.forecast.target`) is one clause or several joined by ``and``:
ranges, chance constraints on a metric, a median, or the probability of the
adverse event of an exposure-toxicity model.

With constraints only, the highest dose meeting them is chosen (a
toxicity ceiling) -- or the lowest, when every constraint is a lower bound.
Doses are multiples of ``step`` mg (a vial size) up to ``max_dose`` mg.

Exposure is proportional to the dose (linear PK, the same property
:func:`poppk.simulate.dose_matching.match_dose` uses): the patient's
exposure per mg on the schedule is computed once per posterior sample
(:meth:`~poppk.forecast.predict.Forecast.exposure_per_dose`) and every
candidate dose is a rescaling of it.  The label's rule (e.g. ``6 mg/kg
AIBW``) is evaluated for the same patient the same way, so the two doses
and their probabilities are side by side.

With ``schedules=`` the dose is searched on other regimens too (``q4w``,
``d1,8 q3w``... :func:`parse_regimen`) and the schedule chosen as a
clinician would: hers is kept when a dose on it meets the target, unless
another meets it with a clearly higher probability (:func:`recommend_dose`,
Notes, which also say how metrics are compared across cycle lengths).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from poppk.bodysize import DESCRIPTORS
from poppk.errors import ConfigError
from poppk.forecast.target import Clause, parse_target
from poppk.simulate.exposure import DOSE_LINEAR_METRICS, metric_units

__all__ = ["Clause", "parse_target", "parse_regimen", "Recommendation", "recommend_dose"]

@dataclass(frozen=True, eq=False)
class Recommendation:
    """Result of :func:`recommend_dose`.

    Attributes
    ----------
    dose_mg
        The recommended dose per administration (mg), or ``nan`` when no
        candidate meets the constraints.
    probability
        Probability that her exposure meets the exposure clauses of the target
        at that dose (the range and every bound, jointly).  An event clause
        ``P(event) <= p`` is a constraint on her risk, itself a probability: it
        is not folded in here but reported per candidate
        (``P(event) [metric]``) and in the reasoning.
    target
        The clauses.
    label, label_dose_mg, label_probability
        The label's rule, the dose it gives her and its probability.
    candidates
        One row per candidate dose: per-clause probabilities, whether the
        constraints hold, the joint probability.
    exposure
        Quantiles (5, 50, 95%) of each target metric at the recommended and
        the label dose (rows ``recommended``/``label``).
    reasoning
        The reasons, in sentences.
    schedule
        The regimen of the recommended dose (the exposure refers to it).
    schedules
        One row per schedule searched (her current one first, ``current``),
        with its best dose (``dose_mg``, per administration, and
        ``mg_per_week``), ``probability`` of meeting the target,
        ``meets_constraints``, ``auc_ss_scale`` (the factor applied to its
        ``auc_ss``, see :func:`recommend_dose`) and ``chosen``; the last row is
        the label's rule on her current schedule.
    current_schedule
        Her current regimen.
    """

    dose_mg: float
    probability: float
    target: tuple[Clause, ...]
    label: str
    label_dose_mg: float
    label_probability: float
    candidates: pd.DataFrame = field(repr=False)
    exposure: pd.DataFrame = field(repr=False)
    reasoning: tuple[str, ...] = field(repr=False)
    schedule: str = ""
    schedules: pd.DataFrame | None = field(default=None, repr=False)
    current_schedule: str = ""

    @property
    def schedule_changed(self) -> bool:
        """Whether the recommended schedule differs from her current one."""
        return bool(self.current_schedule) and self.schedule != self.current_schedule

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "dose_mg": self.dose_mg, "probability": self.probability,
            "target": [c.text for c in self.target], "label": self.label, "label_dose_mg": self.label_dose_mg,
            "label_probability": self.label_probability, "schedule": self.schedule,
            "current_schedule": self.current_schedule, "schedule_changed": self.schedule_changed,
            "schedules": [] if self.schedules is None else self.schedules.to_dict(orient="records"),
            "exposure": self.exposure.reset_index().to_dict(orient="records"),
            "reasoning": list(self.reasoning),
        }


def _joint(clauses: Sequence[Clause], x: dict[str, np.ndarray]) -> np.ndarray:
    """P(every exposure clause holds) per candidate: the range and each bound on the same samples
    (event clauses are constraints on her risk, checked apart)."""
    ok = np.ones(next(iter(x.values())).shape, dtype=bool)
    for c in clauses:
        v = x[c.metric]
        if c.kind == "range":
            ok &= (v >= c.low) & (v <= c.high)
        elif c.kind == "above":
            ok &= v <= c.low
        elif c.kind == "below":
            ok &= v >= c.low
    return ok.mean(axis=-1)


def _event_probability(toxicity: Any, x: np.ndarray, seed: int) -> np.ndarray:
    """Her probability of the event at each candidate's exposures ``x`` (candidates, samples): the logistic
    curve of each of her exposure samples, paired with a draw of the curve, averaged."""
    a, b = toxicity.draws()
    idx = np.random.default_rng([int(seed), 5]).integers(0, a.size, size=x.shape[1])
    z = a[idx][None, :] + b[idx][None, :] * (np.log(np.maximum(x, 1e-300)) - toxicity.log_reference)
    return np.mean(1.0 / (1.0 + np.exp(-z)), axis=1)


def _as_forecast(obj: Any, patient: Any, doses: Any, observations: Any, **kw: Any) -> Any:
    from poppk.forecast.predict import Forecast, forecast

    if isinstance(obj, Forecast):
        if patient is not None or observations is not None:
            raise ConfigError("recommend_dose: give patient/observations with a fit, not with a forecast")
        return obj
    if patient is None:
        raise ConfigError("recommend_dose: a fit needs patient= (her covariates)")
    if doses is None:
        if observations is not None:
            raise ConfigError("recommend_dose: observations need the doses she had (doses=...)")
        doses = [{"TIME": 0.0, "AMT": 1.0}]
    return forecast(obj, patient, doses, observations, **kw)


def _her_infusion(fc: Any) -> float:
    """Her first infusion's duration, model time unit (0 = bolus)."""
    d = fc.record.doses
    return float(d["DUR"].iloc[0]) if "DUR" in d and len(d) else 0.0


def _default_schedule(fc: Any) -> Any:
    from poppk.simulate.schedule import Schedule

    return Schedule.every(fc.cycle, 2, infusion=_her_infusion(fc), unit=fc.time_unit)


def parse_regimen(text: str, *, infusion: Any = 0.0, unit: str = "day") -> Any:
    """A schedule from text: :func:`~poppk.simulate.schedule.parse_schedule`, clinical forms included.

    ``q3w``, ``q4w``, ``q2w``, ``qw``, ``q14d`` (one dose per cycle), ``d1,8 q3w`` or
    ``d1,8,15 q4w`` (doses on those days of each cycle), each optionally with
    ``:n`` cycles and ``;loading=2``; ``every:14:8``, ``times:0,7/21``...
    ``infusion`` is in ``unit``.

    >>> parse_regimen("d1,8 q3w").pattern, parse_regimen("d1,8 q3w").cycle
    ((0.0, 7.0), 21.0)
    >>> parse_regimen("q4w:3", infusion="1 h").label
    'Q4W x3, 60 min infusion'
    """
    from poppk.simulate.schedule import parse_schedule

    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a schedule is text such as 'q3w', 'q4w' or 'd1,8 q3w', got {text!r}")
    return parse_schedule(text, infusion=infusion, unit=unit)


def _as_schedule(value: Any, fc: Any, what: str) -> Any:
    """A Schedule as given, or parsed from text with her infusion duration."""
    from poppk.simulate.schedule import Schedule, convert_time

    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return parse_regimen(value, infusion=float(convert_time(_her_infusion(fc), fc.time_unit, "day")),
                             unit="day")
    raise ConfigError(f"{what} must be a Schedule or text such as 'q3w', got {type(value).__name__}")


def _same_schedule(a: Any, b: Any) -> bool:
    a, b = a.in_unit("h"), b.in_unit("h")
    return (math.isclose(a.cycle, b.cycle, rel_tol=1e-9) and len(a.pattern) == len(b.pattern)
            and np.allclose(a.pattern, b.pattern, atol=1e-6 * a.cycle) and a.loading == b.loading
            and math.isclose(a.infusion, b.infusion, rel_tol=1e-6, abs_tol=1e-9))


def _cycle_text(s: Any) -> str:
    return f"{s.cycle:g} {s.unit}"


def _scales(current: Any, schedule: Any, metrics: Sequence[str]) -> dict[str, float]:
    """Factor by which each metric of ``schedule`` is multiplied to compare with the current schedule's
    (see :func:`recommend_dose`, "Comparing schedules"); a ConfigError for a metric that cannot be compared."""
    t0, t = current.in_unit("h").cycle, schedule.in_unit("h").cycle
    if math.isclose(t0, t, rel_tol=1e-9):
        return {m: 1.0 for m in metrics}
    if "auc_c1" in metrics:
        raise ConfigError(
            f"the target's auc_c1 (AUC over the first cycle) cannot be compared between '{current.label}' "
            f"(cycle {_cycle_text(current)}) and '{schedule.label}' (cycle {_cycle_text(schedule)}): the first "
            "cycle of another length is another window, not the same exposure. Write the target with auc_ss "
            f"(steady-state AUC, compared per {_cycle_text(current)} -- the same average concentration), or "
            "with cmax_*/ctrough_*/ceoi_c1 (concentrations, comparable as they are), or search only schedules "
            f"with a {_cycle_text(current)} cycle")
    return {m: (t0 / t if m == "auc_ss" else 1.0) for m in metrics}


@dataclass
class _Search:
    """The dose search on one schedule."""

    schedule: Any
    scale: dict[str, float]
    unit: dict[str, np.ndarray]
    candidates: pd.DataFrame
    dose: float
    probability: float
    p_event: np.ndarray | None
    reasons: list[str]

    def exposure(self, metric: str, dose_mg: float, factor: float) -> np.ndarray:
        """Her exposure samples of ``metric`` at ``dose_mg`` on this schedule (scaled for comparison)."""
        return dose_mg * factor * self.scale[metric] * self.unit[metric]


def _search(fc: Any, clauses: Sequence[Clause], schedule: Any, scale: dict[str, float], cand: np.ndarray,
            factor: float, *, prediction: str, toxicity: Any, seed: int, step: float, max_dose: float) -> _Search:
    """The best dose on one schedule (the rules of the module doc)."""
    metrics = list(scale)
    raw = fc.exposure_per_dose(schedule, metrics, prediction=prediction)
    unit = {m: np.asarray(raw[m], dtype=float) for m in metrics}
    x = {m: cand[:, None] * factor * scale[m] * unit[m][None, :] for m in metrics}
    met = np.ones(cand.size, dtype=bool)
    table: dict[str, Any] = {"dose_mg": cand}
    p_event = None
    for c in clauses:
        if c.kind == "event":
            p_event = _event_probability(toxicity, x[c.metric], seed)
            table[f"P(event) [{c.metric}]"] = p_event
            met &= p_event <= c.p + 1e-12
            continue
        table[c.text] = c.probability(x[c.metric])
        met &= c.met(x[c.metric])
    joint = _joint(clauses, x)
    table["constraints_met"] = met
    table["probability"] = joint
    candidates = pd.DataFrame(table)

    objective = [c for c in clauses if c.kind in ("range", "median")]
    reasons: list[str] = []
    if not met.any():
        dose = float("nan")
        reasons.append(f"No dose from {cand[0]:g} to {cand[-1]:g} mg on {schedule.label} meets "
                       f"{' and '.join(c.text for c in clauses)}.")
    elif objective and objective[0].kind == "range":
        o = objective[0]
        score = np.where(met, joint, -1.0)
        best = np.flatnonzero(score >= score.max() - 1e-12)
        mid = math.sqrt(max(o.low, 1e-300) * o.high)
        med = np.median(x[o.metric][best], axis=1)
        dose = float(cand[best[np.argmin(np.abs(np.log(med / mid)))]])
        reasons.append(f"{dose:g} mg gives the highest probability of {o.text} among doses in {step:g}-mg steps "
                       f"up to {max_dose:g} mg" + (" that meet the other clauses." if len(clauses) > 1 else "."))
    elif objective:
        o = objective[0]
        med = np.median(x[o.metric], axis=1)
        err = np.where(met, np.abs(np.log(med / o.low)), np.inf)
        dose = float(cand[int(np.argmin(err))])
        reasons.append(f"{dose:g} mg puts her median {o.metric} closest to {o.low:g}.")
    else:
        upper = any(c.kind in ("above", "event") for c in clauses)
        dose = float(cand[np.flatnonzero(met)[-1 if upper else 0]])
        reasons.append(f"{dose:g} mg is the {'highest' if upper else 'lowest'} dose in {step:g}-mg steps that "
                       f"meets {' and '.join(c.text for c in clauses)}.")
    if math.isfinite(dose) and dose >= cand[-1] and not (objective and objective[0].kind == "median"):
        reasons.append(f"The dose is at the cap of {max_dose:g} mg.")
    prob = float(joint[cand == dose][0]) if math.isfinite(dose) else float("nan")
    return _Search(schedule, scale, unit, candidates, dose, prob, p_event, reasons)


def _choose(searches: Sequence[_Search], margin: float) -> tuple[int, str]:
    """Index of the chosen schedule (0 = the current one) and the sentence saying why."""
    cur = searches[0]
    ok = [i for i, s in enumerate(searches) if math.isfinite(s.dose)]
    if len(searches) == 1:
        return 0, ""
    if not ok:
        return 0, "No candidate schedule has a dose that meets the target's constraints."
    best = max((i for i in ok if i > 0), key=lambda i: (searches[i].probability, -i), default=None)
    if 0 in ok:
        if best is None or searches[best].probability < cur.probability + margin - 1e-12:
            other = "" if best is None else (f" (the best other, {searches[best].schedule.name}, gives "
                                             f"{searches[best].probability:.2f}, not {margin:g} more)")
            return 0, (f"Her current schedule ({cur.schedule.name}) is kept: a dose on it meets the target, "
                       f"with probability {cur.probability:.2f}{other}.")
        b = searches[best]
        return best, (f"Schedule changed to {b.schedule.name}: it meets the target with probability "
                      f"{b.probability:.2f}, against {cur.probability:.2f} on her current schedule "
                      f"({cur.schedule.name}), at least {margin:g} more.")
    b = searches[best]
    return best, (f"Schedule changed to {b.schedule.name}: no dose on her current schedule "
                  f"({cur.schedule.name}) meets the target's constraints; on {b.schedule.name} "
                  f"{b.dose:g} mg does, with probability "
                  f"{b.probability:.2f}.")


def _schedule_table(searches: Sequence[_Search], chosen: int, label: str, label_dose: float,
                    label_prob: float, p_label: float | None) -> pd.DataFrame:
    from poppk.simulate.schedule import convert_time

    rows = []
    for i, s in enumerate(searches):
        sch = s.schedule
        per_week = s.dose * len(sch.pattern) / float(convert_time(sch.cycle, sch.unit, "week"))
        row = {"rule": "recommended", "schedule": sch.label, "cycle": _cycle_text(sch),
               "doses_per_cycle": len(sch.pattern), "dose_mg": s.dose, "mg_per_week": per_week,
               "probability": s.probability, "meets_constraints": bool(math.isfinite(s.dose)),
               "auc_ss_scale": s.scale.get("auc_ss", 1.0), "current": i == 0, "chosen": i == chosen}
        if s.p_event is not None:
            row["p_event"] = float(s.p_event[s.candidates["dose_mg"].to_numpy() == s.dose][0]) \
                if math.isfinite(s.dose) else float("nan")
        rows.append(row)
    cur = searches[0].schedule
    label_row = {"rule": f"label: {label}", "schedule": cur.label, "cycle": _cycle_text(cur),
                 "doses_per_cycle": len(cur.pattern), "dose_mg": label_dose,
                 "mg_per_week": label_dose * len(cur.pattern) / float(convert_time(cur.cycle, cur.unit, "week")),
                 "probability": label_prob, "meets_constraints": float("nan"), "auc_ss_scale": 1.0,
                 "current": True, "chosen": False}
    if p_label is not None:
        label_row["p_event"] = p_label
    rows.append(label_row)
    return pd.DataFrame(rows)


def recommend_dose(
    forecast_or_fit: Any,
    patient: Any = None,
    doses: Any = None,
    observations: Any = None,
    *,
    target: str | Sequence[Clause],
    schedule: Any = None,
    schedules: Sequence[Any] | None = None,
    switch_margin: float = 0.1,
    label: str = "6 mg/kg AIBW",
    step: float = 10.0,
    max_dose: float = 2000.0,
    min_dose: float | None = None,
    prediction: str = "individual",
    toxicity: Any = None,
    seed: int = 0,
    **forecast_options: Any,
) -> Recommendation:
    """The dose (mg, in ``step`` mg steps, at most ``max_dose``) -- and, if asked, the schedule -- that meets
    an exposure target.

    Parameters
    ----------
    forecast_or_fit
        A :class:`~poppk.forecast.predict.Forecast`, or a fit (then
        ``patient``, and optionally ``doses`` and ``observations``, are
        forecast first with ``forecast_options``).
    patient, doses, observations
        As :func:`~poppk.forecast.predict.forecast` (with a fit only).
    target
        Target text (module doc) or clauses.
    schedule
        Her current regimen (:class:`~poppk.simulate.schedule.Schedule` or
        text, :func:`parse_regimen`: ``"q3w"``, ``"d1,8 q3w"``...); default:
        one dose per cycle of her forecast, infused as her first dose.
        Cycle-1 metrics are those of a first cycle on it, ``*_ss`` those at
        steady state.  Text schedules get her infusion duration.
    schedules
        Other regimens to consider (Schedules or text), e.g. ``["q4w",
        "d1,8 q3w"]``.  The dose is searched on each (the same steps and
        cap, per administration) and the schedule chosen as below.
    switch_margin
        How much higher (absolute) another schedule's probability of meeting
        the target must be to replace a current schedule on which a dose
        meets it.
    label
        The label's dosing rule (:func:`poppk.simulate.strategies.parse_strategy`),
        evaluated for her on her current schedule.
    step, max_dose, min_dose
        Vial size or dose step (mg), the cap, and the smallest dose
        considered (default ``step``).
    prediction
        ``"individual"`` (her posterior) or ``"population"`` (her covariates only).
    toxicity
        An :class:`~poppk.simulate.toxicity.ExposureToxicity` model, needed by a
        ``P(event) <= p`` clause (its metric must come from the same PK model's units).
    seed
        Seed pairing her exposure samples with the toxicity model's draws.

    Returns
    -------
    Recommendation

    Notes
    -----
    **Choosing the schedule.**  A change of schedule costs the patient and the
    ward something, so her current schedule is kept whenever a dose on it meets
    the target's constraints (every ``P(...) <= p`` and ``P(event) <= p``
    clause), unless another schedule meets them with a probability of meeting
    the whole target at least ``switch_margin`` (0.10) higher.  When no dose on
    the current schedule meets the constraints, the schedule with the highest
    probability among those that do is proposed (ties: the first listed).  When
    none does, no dose is recommended.  :attr:`Recommendation.schedules` lists
    every schedule's best dose and probability beside the label's rule.

    **Comparing schedules.**  A target is written for her current schedule.
    Concentrations (``cmax_*``, ``ctrough_*``, ``ceoi_c1``) mean the same on any
    schedule and are compared as they are.  ``auc_ss`` (AUC over one cycle at
    steady state) is compared per current cycle: on a schedule of cycle τ it is
    multiplied by τ₀/τ (τ₀ the current cycle), which is the same average
    steady-state concentration, i.e. the same dose intensity for linear PK.
    ``auc_c1`` (AUC over the first cycle) has no such equivalent -- the first
    cycle of another length is another window -- so a target with ``auc_c1``
    over schedules of different cycle lengths is refused with a message saying
    which metric to use.  Schedules of the same cycle length (``q3w`` and
    ``d1,8 q3w``) compare every metric as it is.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from poppk.model import ModelSpec
    >>> spec = ModelSpec("1cmt", {"CL": 2.0, "V1": 20.0}, iiv=("CL",), error="proportional", units={"time": "h"})
    >>> post = xr.Dataset({k: (("chain", "draw"), np.full((1, 20), v))
    ...                    for k, v in {"CL": 2.0, "V1": 20.0, "omega_CL": 0.2, "sigma_prop": 0.1}.items()})
    >>> r = recommend_dose((spec, post), {"WT": 70}, target="auc_ss in [40, 60]", label="100 mg", n_draws=10)
    >>> r.dose_mg, r.label_dose_mg          # AUC = dose / CL: about 100 mg
    (100.0, 100.0)
    """
    from poppk.simulate.engine import _amount_factor
    from poppk.simulate.population import population_from_table
    from poppk.simulate.strategies import parse_strategy

    clauses = parse_target(target) if isinstance(target, str) else tuple(target)
    if any(c.kind == "event" for c in clauses):
        if toxicity is None:
            raise ConfigError("a P(event) <= p target needs toxicity= (poppk.simulate.fit_exposure_toxicity)")
        if toxicity.metric not in DOSE_LINEAR_METRICS:
            raise ConfigError(f"the exposure-toxicity model's metric {toxicity.metric!r} is not dose-proportional")
        clauses = tuple(dataclasses.replace(c, metric=toxicity.metric) if c.kind == "event" else c for c in clauses)
    if not (step > 0 and max_dose >= step):
        raise ConfigError(f"step must be > 0 and max_dose >= step; got step={step!r}, max_dose={max_dose!r}")
    if not (isinstance(switch_margin, (int, float)) and 0 <= switch_margin < 1):
        raise ConfigError(f"switch_margin must be a probability difference in [0, 1), got {switch_margin!r}")
    fc = _as_forecast(forecast_or_fit, patient, doses, observations, **forecast_options)
    current = _default_schedule(fc) if schedule is None else _as_schedule(schedule, fc, "schedule")
    if isinstance(schedules, (str, bytes)):
        raise ConfigError("schedules must be a list, e.g. ['q4w', 'd1,8 q3w'], not one text")
    others = []
    for s in schedules or ():
        s = _as_schedule(s, fc, "each of schedules")
        if not any(_same_schedule(s, t) for t in [current, *others]):
            others.append(s)
    metrics = list(dict.fromkeys(c.metric for c in clauses))
    scales = [_scales(current, s, metrics) for s in [current, *others]]  # refuses before any work
    factor = _amount_factor(fc.spec)  # model amount per mg
    lo = float(min_dose) if min_dose is not None else float(step)
    cand = np.arange(math.ceil(lo / step - 1e-9), math.floor(max_dose / step + 1e-9) + 1) * step
    cand = cand[cand > 0]
    searches = [_search(fc, clauses, s, sc, cand, factor, prediction=prediction, toxicity=toxicity, seed=seed,
                        step=step, max_dose=max_dose) for s, sc in zip([current, *others], scales)]
    chosen, why = _choose(searches, float(switch_margin))
    best = searches[chosen]
    dose, prob = best.dose, best.probability
    reasons = list(best.reasons)
    if why:
        reasons.append(why)
    if any(v != 1.0 for sc in scales for v in sc.values()):
        reasons.append(f"auc_ss on a schedule of another cycle length is compared per {_cycle_text(current)} "
                       "(the same average concentration at steady state).")

    strat = parse_strategy(label)
    table = fc.record.covariates.reset_index(drop=True)
    pop = population_from_table(table, recompute_descriptors=False) if set(DESCRIPTORS) <= set(table.columns) \
        else table
    try:
        label_dose = float(np.asarray(strat.dose(pop), dtype=float)[0])
    except (KeyError, ValueError, ConfigError) as err:
        raise ConfigError(f"the label's rule {strat.label!r} cannot be evaluated for her: {err} "
                          "(give WT, HT and SEX in the patient's covariates)") from None
    cur = searches[0]
    xl = {m: cur.exposure(m, label_dose, factor)[None, :] for m in metrics}
    label_prob = float(_joint(clauses, xl)[0])
    rows = []
    for who, d, s in (("recommended", dose, best), ("label", label_dose, cur)):
        for m in metrics:
            v = s.exposure(m, d, factor) if math.isfinite(d) else np.full_like(s.unit[m], np.nan)
            q = np.quantile(v, [0.05, 0.5, 0.95])
            rows.append({"dose": who, "dose_mg": d, "metric": m, "q5": q[0], "median": q[1], "q95": q[2],
                         "unit": metric_units(fc.spec.unit)[m]})
    exposure = pd.DataFrame(rows).set_index(["dose", "metric"])
    basis = "her measured concentrations and covariates" if fc.record.n_obs and prediction == "individual" \
        else "her covariates only (no concentrations)"
    on = current.label if not others else f"{current.label} and {len(others)} other schedule(s)"
    reasons.insert(0, f"Exposure per mg from {basis}, on {on}; exposure is proportional to the dose "
                      "(linear PK).")
    reasons.append(f"The label's rule ({strat.label}) gives her {label_dose:.0f} mg on {current.name}, with "
                   f"probability {label_prob:.2f} of meeting the exposure target"
                   + (f", against {prob:.2f} at {dose:g} mg on {best.schedule.name}." if math.isfinite(dose) else "."))
    p_label = None
    if best.p_event is not None:
        ev = next(c for c in clauses if c.kind == "event")
        p_label = float(_event_probability(toxicity, xl[ev.metric], seed)[0])
        p_rec = float(best.p_event[cand == dose][0]) if math.isfinite(dose) else float("nan")
        reasons.append(f"Her probability of the adverse event (exposure-toxicity model on {ev.metric}): "
                       f"{p_rec:.3f} at the recommended dose, {p_label:.3f} at the label's.")
    sched_table = _schedule_table(searches, chosen, strat.label, label_dose, label_prob, p_label)
    return Recommendation(dose, prob, clauses, strat.label, label_dose, label_prob, best.candidates, exposure,
                          tuple(reasons), best.schedule.label, sched_table, current.label)
