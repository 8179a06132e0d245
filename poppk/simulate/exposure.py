"""Exposure metrics per patient, from the closed-form PK kernel.

Every concentration here is computed by :func:`poppk.pk.concentration`, the
kernel of the fit.  The one closed form written here is the time integral of
the kernel's intravenous response (:func:`iv_auc`, built on the kernel's own
modes from :func:`poppk.pk.disposition` and its ``phi``); it is checked
against Gauss-Legendre quadrature of :func:`~poppk.pk.concentration`
(:func:`quadrature_auc`, also available with ``auc_method="quadrature"``).

Metrics (time in the model's unit; τ = the schedule's cycle length):

``ceoi_c1``
    Concentration at the end of the first infusion (at the dose for a bolus).
``cmax_c1``
    True maximum concentration over cycle 1, [0, τ].  Intravenous doses:
    exact up to a bisection tolerance (see :func:`_cmax_iv`): where no
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from poppk.errors import ConfigError
from poppk.pk import concentration, disposition
from poppk.pk.kernel import phi
from poppk.simulate.schedule import Schedule

__all__ = [
    "METRICS",
    "DOSE_LINEAR_METRICS",
    "DEFAULT_METRICS",
    "metric_units",
    "ExposurePlan",
    "compute_exposures",
    "exposure_metrics",
    "iv_auc",
    "quadrature_auc",
    "concentration_profile",
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


# --------------------------------------------------------------------------
# evaluation with the kernel
# --------------------------------------------------------------------------


#: Doses of actual records count in cycle 1 when given before t0 + CYCLE_ONE_FRACTION * τ.
CYCLE_ONE_FRACTION = 0.75

#: Largest (patients x times x doses) block evaluated at once by the kernel.
_EVAL_BUDGET = 1_000_000


def _take(x: np.ndarray | None, rows: np.ndarray | None) -> np.ndarray | None:
    if x is None or rows is None or x.shape[0] == 1:
        return x
    return x[rows]


def _eval(
    params: Mapping[str, np.ndarray],
    times: np.ndarray,
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    *,
    n_cmt: int,
    oral: bool,
    ss_tau: float | None = None,
) -> np.ndarray:
    """Concentrations at ``times`` (r_t, n_t) for params (u,) and doses (r_d, D) -> (u, n_t).

    Evaluated in row blocks of at most ``_EVAL_BUDGET`` (patient x time x dose)
    elements, so memory stays bounded whatever the number of patients.
    """
    u = len(next(iter(params.values())))
    n_t, D = times.shape[1], dose_t.shape[1]
    step = max(1, _EVAL_BUDGET // max(n_t * D, 1))
    if u > step:
        out = np.empty((u, n_t))
        for a in range(0, u, step):
            rows = np.arange(a, min(u, a + step))
            out[rows] = _eval(
                {k: np.asarray(v)[rows] for k, v in params.items()},
                _take(times, rows), _take(dose_t, rows), _take(amt, rows), _take(dur, rows),  # type: ignore[arg-type]
                n_cmt=n_cmt, oral=oral, ss_tau=ss_tau,
            )
        return out
    dt = times[:, :, None] - dose_t[:, None, :]
    kw: dict[str, Any] = {}
    if ss_tau is not None:
        dt = np.where(dt < 0.0, dt + ss_tau, dt)
        kw["ss"] = np.ones((1, 1, 1), dtype=bool)
        kw["ii"] = np.full((1, 1, 1), float(ss_tau))
    if oral:
        kw["oral"] = np.ones((1, 1, 1), dtype=bool)
    elif np.any(dur > 0):
        kw["dur"] = dur[:, None, :]
    pr = {k: np.asarray(v, dtype=float)[:, None, None] for k, v in params.items()}
    return np.asarray(concentration(dt, amt[:, None, :], pr, **kw, n_cmt=n_cmt))


def concentration_profile(
    params: Mapping[str, Any],
    schedule: Schedule,
    times: Any,
    *,
    n_cmt: int,
    time_unit: str = "h",
    doses: Any = 1.0,
    oral: bool = False,
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

    Returns
    -------
    ndarray (n_patients, n_times)
    """
    plan = ExposurePlan.from_schedule(schedule, time_unit, oral=oral)
    p = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in params.items()}
    t = np.asarray(times, dtype=float)[None, :]
    c = _eval(p, t, plan.all_time, plan.all_amt, plan.all_dur, n_cmt=n_cmt, oral=oral)
    return c * np.atleast_1d(np.asarray(doses, dtype=float))[:, None]


# --------------------------------------------------------------------------
# AUC
# --------------------------------------------------------------------------


def _psi(x: np.ndarray) -> np.ndarray:
    """(x - 1 + e^{-x}) / x² for x >= 0, psi(0) = 1/2 (stable)."""
    small = x < 1e-2
    xs = np.where(small, x, 0.0)
    series = 0.5 + xs * (-1.0 / 6 + xs * (1.0 / 24 + xs * (-1.0 / 120 + xs * (1.0 / 720 - xs / 5040))))
    xl = np.where(small, 1.0, x)
    return np.where(small, series, (xl + np.expm1(-xl)) / (xl * xl))


def _unit_cumulative(lam: np.ndarray, coef: np.ndarray, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    """∫_0^t of one mode's response to a unit dose infused over T (T = 0: bolus); 0 for t <= 0.

    With m = min(t, T), r = max(t - T, 0): c [m²/T ψ(λm) + φ(λT) r φ(λr)],
    the exact integral of the kernel's IV expression.
    """
    tp = np.maximum(t, 0.0)
    m = np.minimum(tp, T)
    r = np.maximum(tp - T, 0.0)
    has = T > 0
    during = np.where(has, m * (m / np.where(has, T, 1.0)) * _psi(lam * m), 0.0)
    after = phi(lam * T) * r * phi(lam * r)
    return coef * (during + after)


def iv_auc(
    params: Mapping[str, np.ndarray],
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    start: float,
    end: float,
    *,
    n_cmt: int,
    ss_tau: float | None = None,
) -> np.ndarray:
    """Exact AUC over [start, end] of intravenous doses, per patient.

    The kernel's response to a dose is a sum over the disposition modes
    (λ_i, c_i) of :func:`poppk.pk.disposition`; each mode's response is
    integrated in closed form.  At steady state (``ss_tau``: every dose is a
    train with interval τ, and [start, end] is one cycle) the AUC of a cycle
    is Σ amt · Σ_i c_i/λ_i = Σ amt / CL.

    Parameters
    ----------
    params
        ``{name: (u,)}``.
    dose_t, amt, dur
        Doses, shape (r, D) with r = 1 or u.

    Returns
    -------
    ndarray (u,)
    """
    p = {k: np.asarray(v, dtype=float)[:, None] for k, v in params.items()}
    lams, coefs = disposition(p, n_cmt)
    if ss_tau is not None:
        per_unit = sum(c / lam for lam, c in zip(lams, coefs))
        return np.sum(amt * per_unit, axis=-1)
    total = 0.0
    for lam, c in zip(lams, coefs):
        u_end = _unit_cumulative(lam, c, end - dose_t, dur)
        u_start = _unit_cumulative(lam, c, start - dose_t, dur)
        total = total + amt * (u_end - u_start)
    return np.sum(total, axis=-1)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(6)


def quadrature_auc(
    params: Mapping[str, np.ndarray],
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    start: float,
    end: float,
    *,
    n_cmt: int,
    oral: bool = False,
    ss_tau: float | None = None,
    levels: int = 14,
) -> np.ndarray:
    """AUC over [start, end] by quadrature of the kernel (any route).

    The window is split at every dose, end-of-infusion and lag time; each
    piece [s, e] is split geometrically at s + (e - s)·2^-k, k = 0..levels,
    and each panel integrated by 6-point Gauss-Legendre.  The panels are
    fine where fast exponentials decay, so the error is far below 1e-6 for
    any rate up to ~2^levels / (e - s).

    Returns
    -------
    ndarray (u,)
    """
    u = len(next(iter(params.values())))
    r = dose_t.shape[0]
    events = [dose_t, dose_t + (0.0 if oral else dur)]
    if oral and "ALAG1" in params:
        lag = np.asarray(params["ALAG1"], dtype=float)[:, None]
        events.append(dose_t + lag)
    ev = [np.broadcast_to(e, (max(r, e.shape[0]), e.shape[1])) for e in events]
    rows = max(e.shape[0] for e in ev)
    ev = [np.broadcast_to(e, (rows, e.shape[1])) for e in ev]
    pts = np.concatenate(ev, axis=1)
    if ss_tau is not None:
        pts = np.mod(pts - start, ss_tau) + start
    bounds = np.concatenate([np.full((rows, 1), start), np.clip(pts, start, end), np.full((rows, 1), end)], axis=1)
    bounds = np.sort(bounds, axis=1)  # (rows, nb)
    frac = np.concatenate([[0.0], 2.0 ** -np.arange(levels, -1, -1)])  # 0, 2^-levels, ..., 1/2, 1
    seg_a, seg_b = bounds[:, :-1], bounds[:, 1:]  # (rows, ns)
    edges = seg_a[:, :, None] + (seg_b - seg_a)[:, :, None] * frac[None, None, :]  # (rows, ns, levels+2)
    pa, pb = edges[:, :, :-1], edges[:, :, 1:]
    half = 0.5 * (pb - pa)
    nodes = (0.5 * (pa + pb))[..., None] + half[..., None] * _GL_X  # (rows, ns, np, 6)
    weights = half[..., None] * _GL_W
    nodes = nodes.reshape(rows, -1)
    weights = weights.reshape(rows, -1)
    # chunk the nodes so (u, n_nodes, D) stays moderate
    total = np.zeros(u)
    step = max(1, 2_000_000 // max(u * dose_t.shape[1], 1))
    for j in range(0, nodes.shape[1], step):
        c = _eval(params, nodes[:, j:j + step], dose_t, amt, dur, n_cmt=n_cmt, oral=oral, ss_tau=ss_tau)
        total += np.sum(c * weights[:, j:j + step], axis=1)
    return total


# --------------------------------------------------------------------------
# Cmax search
# --------------------------------------------------------------------------


def _max_search(
    evaluate: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    cand: np.ndarray,
    interior: np.ndarray,
    half: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    u: int,
    *,
    n_refine: int = 9,
    levels: int = 2,
) -> np.ndarray:
    """Maximum over candidate times (r, n_c), zooming around interior best points."""
    c = evaluate(cand, None)  # (u, n_c)
    j = np.argmax(c, axis=1)
    best = c[np.arange(u), j]

    def pick(a: np.ndarray) -> np.ndarray:
        return a[np.zeros(u, int) if a.shape[0] == 1 else np.arange(u), j]

    inner = pick(interior)
    rows = np.flatnonzero(inner)
    if rows.size == 0:
        return best
    center, h = pick(cand)[rows], pick(half)[rows]
    lo_r, hi_r = pick(lo)[rows], pick(hi)[rows]
    grid = np.linspace(-1.0, 1.0, n_refine)
    for _ in range(levels):
        pts = np.clip(center[:, None] + h[:, None] * grid[None, :], lo_r[:, None], hi_r[:, None])
        cc = evaluate(pts, rows)  # (len(rows), n_refine)
        k = np.argmax(cc, axis=1)
        center = pts[np.arange(rows.size), k]
        best[rows] = np.maximum(best[rows], cc[np.arange(rows.size), k])
        h = h * 2.0 / (n_refine - 1)
    return best


def _cmax(
    params: Mapping[str, np.ndarray],
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    window: float,
    *,
    n_cmt: int,
    oral: bool,
    ss_tau: float | None,
    n_search: int,
    n_grid: int,
) -> np.ndarray:
    u = len(next(iter(params.values())))
    r, D = dose_t.shape

    def evaluate(times: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        p = params if rows is None else {k: np.asarray(v)[rows] for k, v in params.items()}
        return _eval(p, times, _take(dose_t, rows), _take(amt, rows), _take(dur, rows),
                     n_cmt=n_cmt, oral=oral, ss_tau=ss_tau)

    if not oral:
        return _cmax_iv(evaluate, dose_t, dur, window, ss_tau=ss_tau, n_cmt=n_cmt, n_search=n_search, u=u)
    grid = np.linspace(0.0, window, max(n_grid, 3))
    cand = np.concatenate([np.broadcast_to(grid, (r, grid.size)), np.clip(dose_t, 0.0, window)], axis=1)
    interior = np.ones_like(cand, dtype=bool)
    half = np.full_like(cand, window / (max(n_grid, 3) - 1))
    lo, hi = np.zeros_like(cand), np.full_like(cand, window)
    return _max_search(evaluate, cand, interior, half, lo, hi, u)


def _cmax_iv(
    evaluate: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    dose_t: np.ndarray,
    dur: np.ndarray,
    window: float,
    *,
    ss_tau: float | None,
    n_cmt: int,
    n_search: int,
    u: int,
    bisections: int = 28,
) -> np.ndarray:
    """Maximum over [0, window] of intravenous doses.

    The window is cut at every dose start and infusion end.  On a piece where
    no infusion runs, C is a sum of decaying exponentials with positive
    coefficients: it decreases, so its maximum is at its start (a cut
    point).  On a piece where infusions run, dC/dt is a sum of ``n_cmt``
    exponentials with the model's rates, so it changes sign at most
    ``n_cmt - 1`` times: for 1 and 2 compartments the signs of dC/dt at the
    two ends decide whether there is an interior maximum; for 3 the piece is
    cut into ``n_search - 1`` parts first.  An interior maximum is located by
    bisection on the sign of dC/dt (finite differences of the kernel).
    """
    r = dose_t.shape[0]
    s, e = dose_t, dose_t + dur
    starts, ends = [s], [e]
    if ss_tau is not None:  # an infusion running over the end of the cycle continues at its start
        starts.append(s - ss_tau)
        ends.append(e - ss_tau)
    s_all, e_all = np.concatenate(starts, axis=1), np.concatenate(ends, axis=1)  # (r, G)
    running = e_all > s_all
    cuts = np.concatenate([np.zeros((r, 1)), np.full((r, 1), window), s_all, e_all], axis=1)
    cuts = np.sort(np.clip(cuts, 0.0, window), axis=1)
    a, b = cuts[:, :-1], cuts[:, 1:]  # pieces (r, P)
    mid = 0.5 * (a + b)
    active = (b > a) & np.any(running[:, None, :] & (s_all[:, None, :] < mid[:, :, None])
                              & (mid[:, :, None] < e_all[:, None, :]), axis=2)
    keep = active.any(axis=0)  # pieces where some patient has an infusion running
    a, b, active = a[:, keep], b[:, keep], active[:, keep]
    m = 1 if n_cmt <= 2 else max(int(n_search) - 1, 1)
    j = np.arange(m + 1)
    width = (b - a)[..., None]
    x = a[..., None] + width * (j / m)  # nodes (r, P, m+1)
    delta = np.where(active[..., None], 1e-6 * width / m, 0.0)
    x_minus = x - delta * (j > 0)  # one-sided differences at the ends of a piece (kinks there)
    x_plus = x + delta * (j < m)
    if r == 1:  # one schedule for all: evaluate each distinct time once
        allt = np.unique(np.concatenate([cuts[0], x_minus.ravel(), x_plus.ravel()]))
        c = evaluate(allt[None, :], None)  # (u, n): true concentrations within the window
        best = c.max(axis=1)
        cm = c[:, np.searchsorted(allt, x_minus.ravel())].reshape(u, -1, m + 1)
        cp = c[:, np.searchsorted(allt, x_plus.ravel())].reshape(u, -1, m + 1)
    else:
        K = x.shape[1] * (m + 1)
        nc = cuts.shape[1]
        c = evaluate(np.concatenate([cuts, x_minus.reshape(r, -1), x_plus.reshape(r, -1)], axis=1), None)
        best = c.max(axis=1)
        cm = c[:, nc:nc + K].reshape(u, -1, m + 1)
        cp = c[:, nc + K:].reshape(u, -1, m + 1)
    g = cp - cm  # sign of dC/dt at the nodes
    act = np.broadcast_to(active, (u,) + active.shape[1:]) if r == 1 else active
    bracket = (g[..., :-1] > 0) & (g[..., 1:] < 0) & act[..., None]  # rising then falling
    row_u, piece, node = np.nonzero(bracket)
    if row_u.size == 0:
        return best
    row_r = np.zeros_like(row_u) if r == 1 else row_u
    lo, hi = x[row_r, piece, node], x[row_r, piece, node + 1]
    db = 1e-9 * (b - a)[row_r, piece]
    for _ in range(bisections):
        mid_t = 0.5 * (lo + hi)
        cc = evaluate(np.stack([mid_t - db, mid_t + db], axis=1), row_u)
        rising = cc[:, 1] > cc[:, 0]
        lo, hi = np.where(rising, mid_t, lo), np.where(rising, hi, mid_t)
        np.maximum.at(best, row_u, cc.max(axis=1))
    final = evaluate(0.5 * (lo + hi)[:, None], row_u)[:, 0]
    np.maximum.at(best, row_u, final)
    return best


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


def _above(times: np.ndarray, conc: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Time with conc > thr (thr (u,)), interpolating the crossings."""
    c0, c1 = conc[:, :-1], conc[:, 1:]
    dt = np.diff(times, axis=1)
    th = thr[:, None]
    a0, a1 = c0 > th, c1 > th
    # log-linear on falling intervals (exact for an exponential decay), linear on rising ones
    both_pos = (c0 > 0) & (c1 > 0) & (c1 < c0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lc0 = np.log(np.where(both_pos, c0, 1.0))
        lc1 = np.log(np.where(both_pos, c1, 1.0))
        lt = np.log(np.maximum(th, 1e-300))
        f_log = (lt - lc0) / np.where(lc1 != lc0, lc1 - lc0, 1.0)
        f_lin = (th - c0) / np.where(c1 != c0, c1 - c0, 1.0)
    f = np.clip(np.where(both_pos, f_log, f_lin), 0.0, 1.0)  # fraction of the interval before the crossing
    part = np.where(a0 & a1, 1.0, np.where(a0 & ~a1, f, np.where(~a0 & a1, 1.0 - f, 0.0)))
    return np.sum(part * dt, axis=1)


def time_above(
    params: Mapping[str, np.ndarray],
    plan: ExposurePlan,
    thresholds: np.ndarray,
    *,
    n_cmt: int,
    n_grid: int = 64,
) -> np.ndarray:
    """Time above each threshold over the whole schedule.

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
        tt = _take(times, rows)
        conc = _eval(p, tt, _take(plan.all_time, rows), _take(plan.all_amt, rows), _take(plan.all_dur, rows),  # type: ignore[arg-type]
                     n_cmt=n_cmt, oral=plan.oral)
        t = np.broadcast_to(tt, conc.shape)
        for s in range(thr.shape[1]):
            out[rows, s] = _above(t, conc, thr[rows, s])
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

    Returns
    -------
    dict of metric -> ndarray (u,)
    """
    metrics = check_metrics(metrics)
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
            out[m] = _eval(params, t_end, plan.c1_time[first], plan.c1_amt[first], plan.c1_dur[first],
                           n_cmt=n_cmt, oral=oral)[:, 0]
        elif m == "ctrough_c1":
            out[m] = _eval(params, np.array([[tau]]), plan.c1_time, plan.c1_amt, plan.c1_dur,
                           n_cmt=n_cmt, oral=oral)[:, 0]
        elif m == "ctrough_ss":
            out[m] = _eval(params, np.array([[tau]]), plan.ss_time, plan.ss_amt, plan.ss_dur,  # type: ignore[arg-type]
                           n_cmt=n_cmt, oral=oral, ss_tau=tau)[:, 0]
        elif m in ("cmax_c1", "cmax_ss"):
            ss = m == "cmax_ss"
            dt, da, dd = (plan.ss_time, plan.ss_amt, plan.ss_dur) if ss else (plan.c1_time, plan.c1_amt, plan.c1_dur)
            out[m] = _cmax(params, dt, da, dd, tau, n_cmt=n_cmt, oral=oral, ss_tau=tau if ss else None,  # type: ignore[arg-type]
                           n_search=n_search, n_grid=n_grid)
        elif m in ("auc_c1", "auc_ss"):
            ss = m == "auc_ss"
            dt, da, dd = (plan.ss_time, plan.ss_amt, plan.ss_dur) if ss else (plan.c1_time, plan.c1_amt, plan.c1_dur)
            if quad:
                out[m] = quadrature_auc(params, dt, da, dd, 0.0, tau, n_cmt=n_cmt, oral=oral,  # type: ignore[arg-type]
                                        ss_tau=tau if ss else None)
            else:
                out[m] = iv_auc(params, dt, da, dd, 0.0, tau, n_cmt=n_cmt, ss_tau=tau if ss else None)  # type: ignore[arg-type]
        elif m == "time_above":
            if threshold is None:
                raise ConfigError("time_above needs threshold= (a concentration)")
            out[m] = time_above(params, plan, np.full((u, 1), float(threshold)), n_cmt=n_cmt, n_grid=n_grid)[:, 0]
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
                                       n_grid=options.get("n_grid", 64))[:, 0]
    return pd.DataFrame({m: out[m] for m in metrics}, index=pd.RangeIndex(n, name="patient"))
