"""Exposure metrics per patient: the plan of a schedule and the metrics computed on it.

:class:`ExposurePlan` turns a schedule (or actual dose records) into dose
arrays in the model's time unit; :func:`compute_exposures` evaluates the
metrics on them with the closed forms of :mod:`poppk.pk.exposure` (built on
:func:`poppk.pk.concentration`, the kernel of the fit): the exact intravenous
AUC (:func:`~poppk.pk.exposure.iv_auc`), checked against Gauss-Legendre
quadrature of the kernel (:func:`~poppk.pk.exposure.quadrature_auc`, also
available with ``auc_method="quadrature"``), and the Cmax search
(:func:`~poppk.pk.exposure.cmax`).

Metrics (time in the model's unit; τ = the schedule's cycle length):

``ceoi_c1``
    Concentration at the end of the first infusion (at the dose for a bolus).
``cmax_c1``
    True maximum concentration over cycle 1, [0, τ].  Intravenous doses:
    exact up to a bisection tolerance (see :func:`poppk.pk.exposure.cmax`): where no
    infusion runs the concentration decreases (every mode of a mammillary
    model has a positive coefficient); where infusions run, dC/dt is a sum of
    ``n_cmt`` exponentials, so its signs at a few nodes locate any interior
    maximum, refined by bisection.  Oral doses: a uniform grid of ``n_grid``
    points plus the dose times, then two zoom levels around the best point.
``ctrough_c1``
    Concentration at τ, just before the next cycle.
``auc_c1``
    AUC over [0, τ]; for IV doses exact (integral of the kernel's modal form,
    see :func:`iv_auc`), for oral doses composite Gauss-Legendre quadrature
    of the kernel on geometric panels from every dose and lag time.
``cmax_ss``, ``ctrough_ss``, ``auc_ss``
    The same over one cycle at steady state: every dose of the first cycle
    is an infinite train with interval τ (the kernel's SS closed form).
    ``auc_ss`` equals the cycle's dose / CL for linear PK.
``time_above``
    Time with concentration above ``threshold`` from the first dose to the
    end of the last cycle (grid of ``n_grid`` points per cycle plus dose and
    end-of-infusion times; crossings interpolated log-linearly on falling
    and linearly on rising intervals).

All metrics except ``time_above`` are proportional to the dose (linear PK):
the simulation engine computes them once per patient for a unit dose and
scales them by each strategy's dose.

With ``formation`` and ``analyte = k > 0`` (a multi-analyte model, see
:mod:`poppk.pk.analytes`) every metric is that of the k-th formed analyte --
e.g. the payload's AUC after doses of the conjugate -- in that analyte's
concentration unit; its Cmax is searched on a grid (see
:func:`poppk.pk.exposure.cmax`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from poppk.errors import ConfigError
from poppk.pk.analytes import Formation
from poppk.pk.exposure import (check_target, cmax, concentrations_at, iv_auc, quadrature_auc, take_rows,
                               time_above_threshold)
from poppk.simulate.schedule import Schedule

__all__ = [
    "METRICS",
    "DOSE_LINEAR_METRICS",
    "DEFAULT_METRICS",
    "metric_units",
    "ExposurePlan",
    "compute_exposures",
    "exposure_metrics",
    "concentration_profile",
    "time_above",
]

#: Metric name -> description.
METRICS: dict[str, str] = {
    "ceoi_c1": "concentration at the end of the first infusion",
    "cmax_c1": "maximum concentration in cycle 1",
    "ctrough_c1": "concentration at the end of cycle 1 (before the next cycle)",
    "auc_c1": "AUC over cycle 1",
    "cmax_ss": "maximum concentration over a cycle at steady state",
    "ctrough_ss": "trough concentration at steady state",
    "auc_ss": "AUC over a cycle at steady state",
    "time_above": "time above the threshold concentration, first dose to end of last cycle",
}
#: Metrics proportional to the dose.
DOSE_LINEAR_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m != "time_above")
#: Metrics computed by default.
DEFAULT_METRICS: tuple[str, ...] = ("ceoi_c1", "cmax_c1", "ctrough_c1", "auc_c1", "cmax_ss", "ctrough_ss", "auc_ss")


def metric_units(unit: Mapping[str, str]) -> dict[str, str]:
    """Unit of every metric from a spec's ``unit`` mapping."""
    conc = unit.get("concentration", f"{unit.get('amount', 'mg')}/{unit.get('volume', 'L')}")
    t = unit.get("time", "h")
    out = {}
    for m in METRICS:
        if m.startswith("auc"):
            out[m] = f"{conc}*{t}"
        elif m == "time_above":
            out[m] = t
        else:
            out[m] = conc
    return out


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names (order kept, duplicates removed)."""
    out = tuple(dict.fromkeys(str(m) for m in metrics))
    bad = [m for m in out if m not in METRICS]
    if bad:
        raise ConfigError(f"unknown exposure metric(s) {bad}; valid: {', '.join(METRICS)}")
    if not out:
        raise ConfigError("no exposure metric requested")
    return out


# --------------------------------------------------------------------------
# plan: dose arrays of a schedule, in the model's time unit
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ExposurePlan:
    """Dose arrays for the exposure windows, in the model's time unit.

    Arrays have shape ``(r, D)`` with r = 1 (one schedule shared by all
    patients, the engine's case) or r = number of patients (each with their
    own doses, e.g. the trial patients' actual cycle-1 doses).  Padding has
    amount 0.

    Attributes
    ----------
    cycle
        Cycle length τ.
    c1_time, c1_amt, c1_dur
        Doses of cycle 1 (times from the start of the cycle).
    ss_time, ss_amt, ss_dur
        Doses of one steady-state cycle (offsets in [0, τ)); ``None`` when
        the schedule is not periodic.
    all_time, all_amt, all_dur, end
        Every dose and the end of the last cycle (for ``time_above``).
    oral
        Doses go into the depot (first-order absorption).
    """

    cycle: float
    c1_time: np.ndarray
    c1_amt: np.ndarray
    c1_dur: np.ndarray
    ss_time: np.ndarray | None
    ss_amt: np.ndarray | None
    ss_dur: np.ndarray | None
    all_time: np.ndarray
    all_amt: np.ndarray
    all_dur: np.ndarray
    end: float
    oral: bool = False

    @property
    def rows(self) -> int:
        return self.c1_time.shape[0]

    @classmethod
    def from_schedule(cls, schedule: Schedule, time_unit: str, *, oral: bool = False, amount: float = 1.0) -> "ExposurePlan":
        """The plan of a schedule: every dose ``amount`` (1 = unit dose) times the
        schedule's relative amount (its first dose may be a loading dose); the
        steady-state cycle gets ``amount`` (maintenance)."""
        s = schedule.in_unit(time_unit)
        if oral and s.infusion > 0:
            raise ConfigError(
                "the model has first-order absorption (doses into the depot), which cannot be infused; "
                "use a schedule with infusion=0"
            )
        times = np.asarray(s.times, dtype=float)[None, :]
        c1 = np.asarray(s.pattern, dtype=float)[None, :]
        rel = np.asarray(s.amounts, dtype=float)[None, :]  # the first dose may be a loading dose
        row = lambda x: np.full_like(x, amount)  # noqa: E731
        dur = lambda x: np.full_like(x, s.infusion)  # noqa: E731
        periodic = s.is_periodic
        return cls(
            cycle=float(s.cycle),
            c1_time=c1, c1_amt=amount * rel[:, : c1.shape[1]], c1_dur=dur(c1),
            # steady state is that of the maintenance dose
            ss_time=c1 if periodic else None, ss_amt=row(c1) if periodic else None,
            ss_dur=dur(c1) if periodic else None,
            all_time=times, all_amt=amount * rel, all_dur=dur(times),
            end=float(s.end), oral=bool(oral),
        )

    @classmethod
    def from_dose_table(
        cls, doses: pd.DataFrame, subjects: Sequence[Any], cycle: float, *, oral: bool = False
    ) -> "ExposurePlan":
        """Per-subject plan of the first cycle of actual doses (``ID, TIME, AMT, DUR``).

        Cycle 1 of a subject starts at t0, its first dose; its doses are those
        given before t0 + 0.75 τ (:data:`CYCLE_ONE_FRACTION`), so that a
        next-cycle dose given a little early is not counted.  The metrics'
        window is [t0, t0 + τ]; the steady-state cycle repeats the cycle-1
        doses every τ.
        """
        if not cycle > 0:
            raise ConfigError(f"cycle must be > 0, got {cycle}")
        rows = []
        for sid in subjects:
            d = doses.loc[doses["ID"] == sid]
            if len(d) == 0:
                raise ConfigError(f"subject {sid!r} has no dose records")
            if "SEGMENT" in d:
                d = d.loc[d["SEGMENT"] == d["SEGMENT"].min()]
            t = d["TIME"].to_numpy(dtype=float)
            t0 = t.min()
            # a next-cycle dose given a little early (visit windows, clock time) must not count
            keep = t < t0 + CYCLE_ONE_FRACTION * cycle
            dur = d["DUR"].to_numpy(dtype=float) if "DUR" in d else np.zeros(len(d))
            rows.append((t[keep] - t0, d["AMT"].to_numpy(dtype=float)[keep], dur[keep]))
        width = max(len(r[0]) for r in rows)

        def pad(k: int, fill: float) -> np.ndarray:
            out = np.full((len(rows), width), fill)
            for i, r in enumerate(rows):
                out[i, : len(r[k])] = r[k]
            return out

        t, a, u = pad(0, 0.0), pad(1, 0.0), pad(2, 0.0)
        if np.any(u > cycle):
            raise ConfigError("an infusion lasts longer than the cycle")
        return cls(cycle=float(cycle), c1_time=t, c1_amt=a, c1_dur=u, ss_time=t, ss_amt=a, ss_dur=u,
                   all_time=t, all_amt=a, all_dur=u, end=float(cycle), oral=bool(oral))


#: Doses of actual records count in cycle 1 when given before t0 + CYCLE_ONE_FRACTION * τ.
CYCLE_ONE_FRACTION = 0.75


# --------------------------------------------------------------------------
# evaluation with the kernel
# --------------------------------------------------------------------------


def concentration_profile(
    params: Mapping[str, Any],
    schedule: Schedule,
    times: Any,
    *,
    n_cmt: int,
    time_unit: str = "h",
    doses: Any = 1.0,
    oral: bool = False,
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> np.ndarray:
    """Concentration-time profiles of patients on a schedule (the kernel on a grid).

    Parameters
    ----------
    params
        Individual parameters ``{name: array (n_patients,)}`` in model units.
    schedule
        The schedule (converted to ``time_unit``).
    times
        Times (model unit) at which to evaluate, 1-D.
    doses
        Dose per patient (scalar or (n_patients,)), in the model's amount unit.
    formation, analyte
        A formed analyte's profile (``analyte`` > 0; see the module docstring).

    Returns
    -------
    ndarray (n_patients, n_times)
    """
    plan = ExposurePlan.from_schedule(schedule, time_unit, oral=oral)
    p = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in params.items()}
    t = np.asarray(times, dtype=float)[None, :]
    c = concentrations_at(p, t, plan.all_time, plan.all_amt, plan.all_dur, n_cmt=n_cmt, oral=oral,
                          formation=formation, analyte=analyte)
    return c * np.atleast_1d(np.asarray(doses, dtype=float))[:, None]


# --------------------------------------------------------------------------
# time above a threshold
# --------------------------------------------------------------------------


def _time_grid(plan: ExposurePlan, n_grid: int) -> np.ndarray:
    """Grid over [0, end]: n_grid points per cycle plus dose and end-of-infusion times (r, n_t)."""
    n_cyc = max(int(round(plan.end / plan.cycle)), 1)
    base = np.linspace(0.0, plan.end, n_cyc * max(n_grid, 2) + 1)
    r = plan.all_time.shape[0]
    # just before each dose too: a bolus makes the concentration jump at the dose time
    eps = 1e-9 * plan.cycle
    ev = np.concatenate([plan.all_time - eps, plan.all_time, plan.all_time + (0.0 if plan.oral else plan.all_dur)],
                        axis=1)
    grid = np.concatenate([np.broadcast_to(base, (r, base.size)), np.clip(ev, 0.0, plan.end)], axis=1)
    return np.sort(grid, axis=1)


def time_above(
    params: Mapping[str, np.ndarray],
    plan: ExposurePlan,
    thresholds: np.ndarray,
    *,
    n_cmt: int,
    n_grid: int = 64,
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> np.ndarray:
    """Time above each threshold over the whole schedule (of analyte ``analyte``).

    Parameters
    ----------
    thresholds
        (u, S): per patient and per column, the concentration threshold *for
        the plan's doses* (the engine passes threshold / dose with a unit-dose
        plan).

    Returns
    -------
    ndarray (u, S)
    """
    times = _time_grid(plan, n_grid)
    thr = np.asarray(thresholds, dtype=float)
    if thr.ndim == 1:
        thr = thr[:, None]
    u = len(next(iter(params.values())))
    out = np.empty((u, thr.shape[1]))
    step = max(1, 2_000_000 // times.shape[1])
    for a in range(0, u, step):
        rows = np.arange(a, min(u, a + step))
        p = {k: np.asarray(v)[rows] for k, v in params.items()}
        tt = take_rows(times, rows)
        conc = concentrations_at(p, tt, take_rows(plan.all_time, rows), take_rows(plan.all_amt, rows),  # type: ignore[arg-type]
                                 take_rows(plan.all_dur, rows), n_cmt=n_cmt, oral=plan.oral,  # type: ignore[arg-type]
                                 formation=formation, analyte=analyte)
        t = np.broadcast_to(tt, conc.shape)
        for s in range(thr.shape[1]):
            out[rows, s] = time_above_threshold(t, conc, thr[rows, s])
    return out


# --------------------------------------------------------------------------
# all metrics
# --------------------------------------------------------------------------


def compute_exposures(
    params: Mapping[str, np.ndarray],
    plan: ExposurePlan,
    metrics: Sequence[str],
    *,
    n_cmt: int,
    threshold: float | None = None,
    n_search: int = 5,
    n_grid: int = 48,
    auc_method: str = "auto",
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> dict[str, np.ndarray]:
    """Exposure metrics of every patient for the doses of ``plan``.

    Parameters
    ----------
    params
        Individual parameters ``{name: (u,)}`` in model units.
    plan
        The dose arrays (rows 1 or u).
    metrics
        Names from :data:`METRICS`.
    n_cmt
        Number of compartments.
    threshold
        Concentration threshold of ``time_above``.
    n_search
        Cmax search of 3-compartment IV models: nodes per infusion piece at
        which the sign of dC/dt is checked (1- and 2-compartment models need
        only the ends and are exact).
    n_grid
        Grid points per cycle for oral Cmax and ``time_above``.
    auc_method
        ``"analytic"`` (IV only), ``"quadrature"`` or ``"auto"`` (analytic
        for IV, quadrature for oral).
    formation, analyte
        The metrics of the ``analyte``-th formed analyte (0: the parent); see
        the module docstring.

    Returns
    -------
    dict of metric -> ndarray (u,)
    """
    metrics = check_metrics(metrics)
    check_target(formation, analyte)
    tk: dict[str, Any] = {"formation": tuple(formation), "analyte": int(analyte)}
    params = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in params.items()}
    u = len(next(iter(params.values())))
    oral = plan.oral
    if auc_method not in ("auto", "analytic", "quadrature"):
        raise ConfigError(f"auc_method {auc_method!r} is not 'auto', 'analytic' or 'quadrature'")
    if auc_method == "analytic" and oral:
        raise ConfigError("the analytic AUC covers intravenous doses; use auc_method='quadrature' for oral doses")
    quad = oral or auc_method == "quadrature"
    tau = plan.cycle
    out: dict[str, np.ndarray] = {}
    if any(m.endswith("_ss") for m in metrics) and plan.ss_time is None:
        raise ConfigError(
            "steady-state metrics need a periodic schedule (every cycle repeats the first); "
            "drop the *_ss metrics or use Schedule.every/q3w/weekly/weekly_x3_q4w"
        )
    for m in metrics:
        if m == "ceoi_c1":
            t_end = plan.c1_time[:, :1] + (0.0 if oral else plan.c1_dur[:, :1])
            first = (slice(None), slice(0, 1))
            out[m] = concentrations_at(params, t_end, plan.c1_time[first], plan.c1_amt[first], plan.c1_dur[first],
                                       n_cmt=n_cmt, oral=oral, **tk)[:, 0]
        elif m == "ctrough_c1":
            out[m] = concentrations_at(params, np.array([[tau]]), plan.c1_time, plan.c1_amt, plan.c1_dur,
                                       n_cmt=n_cmt, oral=oral, **tk)[:, 0]
        elif m == "ctrough_ss":
            out[m] = concentrations_at(params, np.array([[tau]]), plan.ss_time, plan.ss_amt,  # type: ignore[arg-type]
                                       plan.ss_dur, n_cmt=n_cmt, oral=oral, ss_tau=tau, **tk)[:, 0]  # type: ignore[arg-type]
        elif m in ("cmax_c1", "cmax_ss"):
            ss = m == "cmax_ss"
            dt, da, dd = (plan.ss_time, plan.ss_amt, plan.ss_dur) if ss else (plan.c1_time, plan.c1_amt, plan.c1_dur)
            out[m] = cmax(params, dt, da, dd, tau, n_cmt=n_cmt, oral=oral, ss_tau=tau if ss else None,  # type: ignore[arg-type]
                          n_search=n_search, n_grid=n_grid, **tk)
        elif m in ("auc_c1", "auc_ss"):
            ss = m == "auc_ss"
            dt, da, dd = (plan.ss_time, plan.ss_amt, plan.ss_dur) if ss else (plan.c1_time, plan.c1_amt, plan.c1_dur)
            if quad:
                out[m] = quadrature_auc(params, dt, da, dd, 0.0, tau, n_cmt=n_cmt, oral=oral,  # type: ignore[arg-type]
                                        ss_tau=tau if ss else None, **tk)
            else:
                out[m] = iv_auc(params, dt, da, dd, 0.0, tau, n_cmt=n_cmt, ss_tau=tau if ss else None,  # type: ignore[arg-type]
                                **tk)
        elif m == "time_above":
            if threshold is None:
                raise ConfigError("time_above needs threshold= (a concentration)")
            out[m] = time_above(params, plan, np.full((u, 1), float(threshold)), n_cmt=n_cmt, n_grid=n_grid,
                                **tk)[:, 0]
    return out


def exposure_metrics(
    params: Mapping[str, Any],
    schedule: Schedule,
    doses: Any,
    *,
    n_cmt: int,
    time_unit: str = "h",
    metrics: Sequence[str] = DEFAULT_METRICS,
    threshold: float | None = None,
    oral: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Exposure metrics of patients with known parameters on a schedule.

    Parameters
    ----------
    params
        ``{name: array (n_patients,) or scalar}`` in the model's units (time
        unit ``time_unit``).
    schedule
        The schedule (converted to ``time_unit``).
    doses
        Maintenance dose per administration, per patient (scalar or
        (n_patients,)), in the model's amount unit; the first administration
        is ``schedule.loading`` times it.
    n_cmt, metrics, threshold, oral
        See :func:`compute_exposures` (``options`` too).

    Returns
    -------
    DataFrame, one row per patient, one column per metric.

    Examples
    --------
    >>> s = Schedule.q3w(6, unit="h")
    >>> df = exposure_metrics({"CL": 0.5, "V1": 4.0}, s, 100.0, n_cmt=1, metrics=["auc_ss"])
    >>> round(float(df["auc_ss"].iloc[0]), 6)   # dose / CL
    200.0
    """
    p = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in params.items()}
    n = max(len(v) for v in p.values())
    p = {k: np.broadcast_to(v, (n,)).copy() for k, v in p.items()}
    dose = np.broadcast_to(np.asarray(doses, dtype=float), (n,))
    plan = ExposurePlan.from_schedule(schedule, time_unit, oral=oral)
    metrics = check_metrics(metrics)
    lin = [m for m in metrics if m != "time_above"]
    res = compute_exposures(p, plan, lin, n_cmt=n_cmt, **options) if lin else {}
    out = {m: res[m] * dose for m in lin}
    if "time_above" in metrics:
        if threshold is None:
            raise ConfigError("time_above needs threshold= (a concentration)")
        out["time_above"] = time_above(p, plan, (float(threshold) / dose)[:, None], n_cmt=n_cmt,
                                       n_grid=options.get("n_grid", 64), formation=options.get("formation", ()),
                                       analyte=options.get("analyte", 0))[:, 0]
    return pd.DataFrame({m: out[m] for m in metrics}, index=pd.RangeIndex(n, name="patient"))
