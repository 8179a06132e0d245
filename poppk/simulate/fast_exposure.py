"""Compiled (numba) unit-dose exposure metrics of intravenous doses on one shared schedule.

The simulation evaluates the dose-linear metrics of a unit dose for every
(patient, posterior draw).  With NumPy that walks arrays of the whole block
many times (every branch of the kernel is evaluated and masked); here it is
one compiled loop that keeps a patient's numbers in registers, evaluates
each transcendental function once per distinct argument, and releases the
GIL, so a thread pool scales with the cores.

:func:`unit_exposures` computes the metrics of
:func:`poppk.simulate.exposure.compute_exposures` with the same arithmetic,
in the same order: the concentrations of :func:`poppk.pk.kernel.concentration`
(its intravenous branch: bolus or infusion, single dose or steady state),
the disposition modes of :func:`poppk.pk.disposition.disposition`, the exact
AUC of :func:`poppk.pk.exposure.iv_auc` and the Cmax search of
:func:`poppk.pk.exposure.cmax` on the nodes of
:func:`poppk.pk.exposure.iv_search_nodes`.  A patient whose Cmax lies
inside an infusion (dC/dt changes sign from + to - between two nodes, which
the reference refines by bisection) is handed back to the reference
:func:`~poppk.pk.exposure.cmax`.  Values agree with the reference to
rounding (the libm and NumPy exponentials may differ in the last bit).

:func:`plan_for` says whether a plan and metric list are covered and
prepares the arrays shared by every patient; anything else (oral doses,
per-patient plans, ``time_above``, quadrature AUCs) stays on the reference
path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numba
import numpy as np

from poppk.pk.exposure import cmax, iv_search_nodes
from poppk.simulate.exposure import ExposurePlan

__all__ = ["UnitPlan", "plan_for", "unit_exposures"]

# kinds of metric in the compiled loop
_CONC, _CMAX, _AUC, _AUC_SS = 0, 1, 2, 3
# the thresholds of the kernel's special functions (poppk.pk.kernel.phi, poppk.pk.exposure._psi)
_PHI_SMALL = 1e-3
_PSI_SMALL = 1e-2


@dataclass(frozen=True, eq=False)
class UnitPlan:
    """The arrays of a unit-dose exposure evaluation shared by every patient (see :func:`plan_for`).

    Jobs are sets of doses evaluated at a set of times; metrics read their
    results.  Arrays are flat with offsets (``*_ptr``), so one compiled loop
    serves any schedule.

    Attributes
    ----------
    job_dose_ptr, dose_t, dose_amt, dose_dur, job_ss
        The doses of each job (offsets into the dose arrays) and whether the
        job is at steady state (every dose a train with interval ``tau``).
    job_time_ptr, times
        The times at which each job's concentration is evaluated.
    kind, arg
        Per metric: concentration (``arg``: a position in ``times``), Cmax,
        AUC over [0, tau] or AUC at steady state (``arg``: the job).
    bracket_ptr, brackets
        Per Cmax metric: the positions (minus, plus) of two successive nodes
        of a piece with an infusion running; dC/dt going from + to - between
        them sends the patient to the reference search.
    max_ptr, max_idx
        Per Cmax metric: the positions of the times whose maximum it is.
    cmax_args
        Per metric: the dose arrays and steady-state interval of the
        reference :func:`~poppk.pk.exposure.cmax` (None for other metrics).
    """

    n_cmt: int
    tau: float
    metrics: tuple[str, ...]
    job_dose_ptr: np.ndarray
    dose_t: np.ndarray
    dose_amt: np.ndarray
    dose_dur: np.ndarray
    job_ss: np.ndarray
    job_time_ptr: np.ndarray
    times: np.ndarray
    kind: np.ndarray
    arg: np.ndarray
    bracket_ptr: np.ndarray
    brackets: np.ndarray
    max_ptr: np.ndarray
    max_idx: np.ndarray
    cmax_args: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, float | None] | None, ...]
    n_search: int
    n_grid: int


class _Builder:
    """Collects the jobs (distinct dose sets) and their distinct evaluation times while a plan is built."""

    def __init__(self) -> None:
        self.doses: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.ss: list[bool] = []
        self.times: list[list[float]] = []

    def job(self, t: np.ndarray, a: np.ndarray, d: np.ndarray, ss: bool) -> int:
        for j, (t0, a0, d0) in enumerate(self.doses):
            if self.ss[j] == ss and np.array_equal(t0, t) and np.array_equal(a0, a) and np.array_equal(d0, d):
                return j
        self.doses.append((t, a, d))
        self.ss.append(ss)
        self.times.append([])
        return len(self.doses) - 1

    def time(self, job: int, t: float) -> int:
        """Position of time ``t`` of ``job`` (added if new); job offsets are added at the end."""
        ts = self.times[job]
        for k, v in enumerate(ts):
            if v == t:
                return k
        ts.append(float(t))
        return len(ts) - 1


def plan_for(plan: ExposurePlan, metrics: Sequence[str], *, n_cmt: int, n_search: int = 5, n_grid: int = 48,
             auc_method: str = "auto") -> UnitPlan | None:
    """The compiled evaluation of ``metrics`` on an :class:`~poppk.simulate.exposure.ExposurePlan`, or None.

    Parameters
    ----------
    plan
        The exposure plan (unit doses).
    metrics
        Dose-linear metric names (no ``time_above``).
    n_cmt, n_search, n_grid, auc_method
        As in :func:`~poppk.simulate.exposure.compute_exposures`.

    Returns
    -------
    UnitPlan or None
        None when the compiled loop does not cover the case (oral doses, a
        plan with one row per patient, quadrature AUCs, ``time_above``,
        steady-state metrics of a schedule that is not periodic, more than 3
        compartments): the caller uses the reference code.
    """
    if plan.oral or plan.rows != 1 or auc_method not in ("auto", "analytic") or n_cmt not in (1, 2, 3):
        return None
    if any(m == "time_above" for m in metrics) or not metrics:
        return None
    if any(m.endswith("_ss") for m in metrics) and plan.ss_time is None:
        return None
    tau = float(plan.cycle)
    b = _Builder()
    c1 = (plan.c1_time[0], plan.c1_amt[0], plan.c1_dur[0])
    ss = None
    if plan.ss_time is not None and plan.ss_amt is not None and plan.ss_dur is not None:
        ss = (plan.ss_time[0], plan.ss_amt[0], plan.ss_dur[0])
    kinds: list[int] = []
    args: list[tuple[int, int]] = []  # (job, local time) or (job, -1)
    brackets: list[list[tuple[int, int, int, int]]] = []
    maxes: list[list[int]] = []
    cmax_args: list[tuple[np.ndarray, np.ndarray, np.ndarray, float | None] | None] = []
    for m in metrics:
        br: list[tuple[int, int, int, int]] = []
        mx: list[int] = []
        cm: tuple[np.ndarray, np.ndarray, np.ndarray, float | None] | None = None
        if m == "ceoi_c1":
            first = (c1[0][:1], c1[1][:1], c1[2][:1])
            j = b.job(*first, False)
            kinds.append(_CONC)
            args.append((j, b.time(j, float(c1[0][0] + c1[2][0]))))
        elif m in ("ctrough_c1", "ctrough_ss"):
            j = b.job(*(ss if m.endswith("_ss") else c1), m.endswith("_ss"))  # type: ignore[misc]
            kinds.append(_CONC)
            args.append((j, b.time(j, tau)))
        elif m in ("auc_c1", "auc_ss"):
            j = b.job(*(ss if m.endswith("_ss") else c1), m.endswith("_ss"))  # type: ignore[misc]
            kinds.append(_AUC_SS if m.endswith("_ss") else _AUC)
            args.append((j, -1))
        elif m in ("cmax_c1", "cmax_ss"):
            is_ss = m.endswith("_ss")
            dt, da, dd = ss if is_ss else c1  # type: ignore[misc]
            j = b.job(dt, da, dd, is_ss)
            cuts, _, _, active, _, x_minus, x_plus, mm = iv_search_nodes(
                dt[None, :], dd[None, :], tau, ss_tau=tau if is_ss else None, n_cmt=n_cmt, n_search=n_search)
            # the reference evaluates the distinct times of these, takes their maximum, and bisects where
            # dC/dt changes sign from + to - between two nodes of a piece with an infusion running
            allt = np.unique(np.concatenate([cuts[0], x_minus.ravel(), x_plus.ravel()]))
            pos = [b.time(j, float(t)) for t in allt]
            xm, xp = x_minus[0], x_plus[0]
            for p in range(xm.shape[0]):
                if not active[0, p]:
                    continue
                for k in range(mm):
                    br.append((pos[int(np.searchsorted(allt, xm[p, k]))], pos[int(np.searchsorted(allt, xp[p, k]))],
                               pos[int(np.searchsorted(allt, xm[p, k + 1]))],
                               pos[int(np.searchsorted(allt, xp[p, k + 1]))]))
            mx = pos
            kinds.append(_CMAX)
            args.append((j, -1))
            cm = (dt[None, :], da[None, :], dd[None, :], tau if is_ss else None)
        else:
            return None
        brackets.append(br)
        maxes.append(mx)
        cmax_args.append(cm)
    # flatten: jobs' doses and times, global time positions
    dose_ptr = np.cumsum([0] + [len(d[0]) for d in b.doses])
    time_ptr = np.cumsum([0] + [len(t) for t in b.times])
    arg = np.array([time_ptr[j] + t if t >= 0 else j for j, t in args], dtype=np.int64)
    flat_br = []
    flat_max = []
    for (j, _), br, mx in zip(args, brackets, maxes):
        flat_br.extend((time_ptr[j] + q[0], time_ptr[j] + q[1], time_ptr[j] + q[2], time_ptr[j] + q[3]) for q in br)
        flat_max.extend(time_ptr[j] + q for q in mx)
    return UnitPlan(
        n_cmt=int(n_cmt), tau=tau, metrics=tuple(metrics),
        job_dose_ptr=dose_ptr.astype(np.int64),
        dose_t=np.concatenate([d[0] for d in b.doses]).astype(float),
        dose_amt=np.concatenate([d[1] for d in b.doses]).astype(float),
        dose_dur=np.concatenate([d[2] for d in b.doses]).astype(float),
        job_ss=np.array(b.ss, dtype=np.bool_),
        job_time_ptr=time_ptr.astype(np.int64),
        times=np.array([t for ts in b.times for t in ts], dtype=float),
        kind=np.array(kinds, dtype=np.int64), arg=arg,
        bracket_ptr=np.cumsum([0] + [len(br) for br in brackets]).astype(np.int64),
        brackets=np.array(flat_br, dtype=np.int64).reshape(-1, 4),
        max_ptr=np.cumsum([0] + [len(mx) for mx in maxes]).astype(np.int64),
        max_idx=np.array(flat_max, dtype=np.int64),
        cmax_args=tuple(cmax_args), n_search=int(n_search), n_grid=int(n_grid),
    )


# --------------------------------------------------------------------------
# the compiled exposure loop
# --------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _phi(x: float) -> float:  # pragma: no cover - numba
    if x < _PHI_SMALL:
        return 1.0 + x * (-0.5 + x * (1.0 / 6.0 + x * (-1.0 / 24.0 + x * (1.0 / 120.0))))
    return -np.expm1(-x) / x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _psi(x: float) -> float:  # pragma: no cover - numba
    if x < _PSI_SMALL:
        return 0.5 + x * (-1.0 / 6 + x * (1.0 / 24 + x * (-1.0 / 120 + x * (1.0 / 720 - x / 5040))))
    return (x + np.expm1(-x)) / (x * x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _modes(n_cmt: int, cl: float, v1: float, q: float, v2: float, q3: float, v3: float,
           lam: np.ndarray, coef: np.ndarray) -> None:  # pragma: no cover - numba
    """Disposition modes, the arithmetic of :func:`poppk.pk.disposition.disposition`."""
    k10 = cl / v1
    if n_cmt == 1:
        lam[0] = k10
        coef[0] = 1.0 / v1
        return
    k12 = q / v1
    k21 = q / v2
    if n_cmt == 2:
        s = k10 + k12 + k21
        dk = k10 - k21
        disc = dk * dk + k12 * (k12 + 2.0 * (k10 + k21))
        d = np.sqrt(disc)
        lam1 = 0.5 * (s + d)
        lam[0] = lam1
        lam[1] = k10 * k21 / lam1
        u = k10 + k12 - k21
        w = d + (u if u > 0.0 else -u)
        small = 4.0 * k12 * k21 / w
        denom = 2.0 * d * v1
        coef[0] = (w if u > 0.0 else small) / denom
        coef[1] = (small if u > 0.0 else w) / denom
        return
    k13 = q3 / v1
    k31 = q3 / v3
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k21 + k10 * k31 + k21 * k31 + k13 * k21 + k12 * k31
    a0 = k10 * k21 * k31
    third = a2 / 3.0
    r2 = max((a2 * a2 - 3.0 * a1) / 9.0, 1e-300)
    r = np.sqrt(r2)
    qq = -2.0 * a2 * a2 * a2 / 27.0 + a1 * a2 / 3.0 - a0
    arg = -qq / (2.0 * r2 * r)
    lim = 1.0 - 1e-15
    arg = min(max(arg, -lim), lim)
    theta3 = np.arccos(arg) / 3.0
    lam1 = third + 2.0 * r * np.cos(theta3)
    prod = a0 / lam1
    tot = (a1 - prod) / lam1
    disc3 = max(tot * tot - 4.0 * prod, 1e-30 * tot * tot)
    gap = np.sqrt(disc3)
    lam2 = 0.5 * (tot + gap)
    lam3 = prod / lam2
    diff12 = lam1 - lam2
    diff13 = lam1 - lam3
    lam[0], lam[1], lam[2] = lam1, lam2, lam3
    coef[0] = (k21 - lam1) * (k31 - lam1) / (v1 * diff12 * diff13)
    coef[1] = (k21 - lam2) * (k31 - lam2) / (-v1 * diff12 * gap)
    coef[2] = (k21 - lam3) * (k31 - lam3) / (v1 * diff13 * gap)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _unit_cumulative(lam: float, c: float, t: float, T: float, phi_T: float, em_T: float) -> float:  # pragma: no cover
    """∫_0^t of one mode's response to a unit dose infused over T, as :func:`poppk.pk.exposure._unit_cumulative`.

    ``phi_T`` and ``em_T`` are phi(lam T) and expm1(-lam T) (the latter used where psi needs it).
    """
    tp = max(t, 0.0)
    if tp == 0.0:
        return c * 0.0
    m = min(tp, T)
    r = max(tp - T, 0.0)
    during = 0.0
    if T > 0.0:
        x = lam * m
        ps = (x + em_T) / (x * x) if m == T and x >= _PSI_SMALL else _psi(x)
        during = m * (m / T) * ps
    after = phi_T * r * _phi(lam * r) if r > 0.0 else 0.0
    return c * (during + after)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _unit_loop(P: np.ndarray, n_cmt: int, tau: float, job_dose_ptr: np.ndarray, dose_t: np.ndarray,
               dose_amt: np.ndarray, dose_dur: np.ndarray, job_ss: np.ndarray, job_time_ptr: np.ndarray,
               times: np.ndarray, kind: np.ndarray, arg: np.ndarray, bracket_ptr: np.ndarray,
               brackets: np.ndarray, max_ptr: np.ndarray, max_idx: np.ndarray, out: np.ndarray,
               flag: np.ndarray) -> None:  # pragma: no cover - numba
    U = P.shape[1]
    n_jobs = job_ss.shape[0]
    n_dose = dose_t.shape[0]
    L = kind.shape[0]
    lam = np.zeros(3)
    coef = np.zeros(3)
    phi_T = np.empty((n_dose, 3))  # phi(lam T) per dose and mode
    em_T = np.zeros((n_dose, 3))  # expm1(-lam T) where phi(lam T) needs it
    den = np.ones(3)  # 1 - e^{-lam tau}
    any_ss = False
    for j in range(n_jobs):  # steady-state concentrations need 1 - e^{-lam tau}
        any_ss = any_ss or (job_ss[j] and job_time_ptr[j + 1] > job_time_ptr[j])
    conc = np.empty(times.shape[0])
    for i in range(U):
        _modes(n_cmt, P[0, i], P[1, i], P[2, i], P[3, i], P[4, i], P[5, i], lam, coef)
        for k in range(n_cmt):
            if any_ss:
                den[k] = -np.expm1(-lam[k] * tau)
            for d in range(n_dose):
                x = lam[k] * dose_dur[d]
                if x < _PHI_SMALL:
                    phi_T[d, k] = _phi(x)
                else:
                    em_T[d, k] = np.expm1(-x)
                    phi_T[d, k] = -em_T[d, k] / x
        # concentrations of every job at its times (the kernel's IV expression, dose by dose)
        for j in range(n_jobs):
            ss = job_ss[j]
            for ti in range(job_time_ptr[j], job_time_ptr[j + 1]):
                t = times[ti]
                total = 0.0
                for d in range(job_dose_ptr[j], job_dose_ptr[j + 1]):
                    dt = t - dose_t[d]
                    if ss and dt < 0.0:
                        dt = dt + tau
                    if dt < 0.0:
                        continue
                    T = dose_dur[d]
                    m = min(dt, T)
                    since_end = max(dt - T, 0.0)
                    ratio = m / T if T > 0.0 else 1.0
                    unit = 0.0
                    for k in range(n_cmt):
                        lk = lam[k]
                        e = np.exp(-lk * since_end) if since_end > 0.0 else 1.0
                        ph = phi_T[d, k] if m == T else _phi(lk * m)
                        v = e * ph * ratio
                        if ss:
                            v = v + np.exp(-lk * max(dt + tau - T, 0.0)) * phi_T[d, k] / den[k]
                        unit = unit + coef[k] * v
                    total = total + dose_amt[d] * unit
                conc[ti] = total
        for l in range(L):
            kd = kind[l]
            if kd == _CONC:
                out[l, i] = conc[arg[l]]
            elif kd == _CMAX:
                best = conc[max_idx[max_ptr[l]]]
                for q in range(max_ptr[l] + 1, max_ptr[l + 1]):
                    if conc[max_idx[q]] > best:
                        best = conc[max_idx[q]]
                out[l, i] = best
                for q in range(bracket_ptr[l], bracket_ptr[l + 1]):
                    g0 = conc[brackets[q, 1]] - conc[brackets[q, 0]]
                    g1 = conc[brackets[q, 3]] - conc[brackets[q, 2]]
                    if g0 > 0.0 and g1 < 0.0:
                        flag[l, i] = True
            elif kd == _AUC:
                j = arg[l]
                total = 0.0
                for d in range(job_dose_ptr[j], job_dose_ptr[j + 1]):
                    T = dose_dur[d]
                    part = 0.0
                    for k in range(n_cmt):
                        ue = _unit_cumulative(lam[k], coef[k], tau - dose_t[d], T, phi_T[d, k], em_T[d, k])
                        us = _unit_cumulative(lam[k], coef[k], 0.0 - dose_t[d], T, phi_T[d, k], em_T[d, k])
                        part = part + dose_amt[d] * (ue - us)
                    total = total + part
                out[l, i] = total
            else:  # AUC over a cycle at steady state: sum of amounts / CL
                j = arg[l]
                per_unit = 0.0
                for k in range(n_cmt):
                    per_unit = per_unit + coef[k] / lam[k]
                total = 0.0
                for d in range(job_dose_ptr[j], job_dose_ptr[j + 1]):
                    total = total + dose_amt[d] * per_unit
                out[l, i] = total


_PARAMS = ("CL", "V1", "Q", "V2", "Q3", "V3")


def unit_exposures(params: Mapping[str, np.ndarray], up: UnitPlan) -> np.ndarray:
    """Unit-dose exposures (L, u) of the metrics of ``up`` for parameters ``{name: (u,)}``.

    Equal to :func:`~poppk.simulate.exposure.compute_exposures` to rounding;
    a patient whose Cmax the reference would refine by bisection is computed
    by the reference :func:`poppk.pk.exposure.cmax`.
    """
    u = len(next(iter(params.values())))
    P = np.zeros((6, u))
    for r, name in enumerate(_PARAMS[: 2 * up.n_cmt]):
        v = params.get(name, params.get("V") if name == "V1" else None)
        if v is None:
            raise KeyError(f"a {up.n_cmt}-compartment model needs parameter {name!r}")
        P[r] = v
    L = len(up.metrics)
    out = np.empty((L, u))
    flag = np.zeros((L, u), dtype=np.bool_)
    _unit_loop(P, up.n_cmt, up.tau, up.job_dose_ptr, up.dose_t, up.dose_amt, up.dose_dur, up.job_ss,
               up.job_time_ptr, up.times, up.kind, up.arg, up.bracket_ptr, up.brackets, up.max_ptr,
               up.max_idx, out, flag)
    for l, cm in enumerate(up.cmax_args):
        rows = np.flatnonzero(flag[l]) if cm is not None else ()
        if len(rows):
            dt, da, dd, ss_tau = cm  # type: ignore[misc]
            p = {k: np.asarray(v, dtype=float)[rows] for k, v in params.items()}
            out[l, rows] = cmax(p, dt, da, dd, up.tau, n_cmt=up.n_cmt, oral=False, ss_tau=ss_tau,
                                n_search=up.n_search, n_grid=up.n_grid)
    return out
