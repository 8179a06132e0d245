"""Studies with nonlinear elimination, simulated by an independent generator (scipy ``solve_ivp``).

Used by the ODE-fit tests and by ``benchmarks/bench_ode_fit.py``; nothing here calls
poppk's solver.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

#: Population truth of the two benchmark models (time in h for MM, days for the ADC-like model).
MM_TRUTH = {"VMAX": 10.0, "KM": 2.0, "V1": 10.0, "omega_VMAX": 0.3, "omega_V1": 0.2, "sigma_prop": 0.1}
TD_TRUTH = {"CL": 0.7, "TDA": 0.4, "KDES": 0.05, "V1": 3.0, "Q": 0.5, "V2": 2.0,
            "omega_CL": 0.3, "omega_V1": 0.2, "sigma_prop": 0.1}


def _rhs(kind: str, p: dict, rate: float):
    def f(t, a):
        c = a[0] / p["V1"]
        if kind == "mm":
            elim = p["VMAX"] * c / (p["KM"] + c)
        elif kind == "linear":
            elim = p["CL"] * c
        else:
            elim = p["CL"] * (1.0 + p["TDA"] * np.exp(-p["KDES"] * t)) * c
        d1 = rate - elim
        if len(a) == 1:
            return [d1]
        flow = p["Q"] * (c - a[1] / p["V2"])
        return [d1 - flow, flow]
    return f


def simulate_subject(kind: str, p, doses: list[tuple[float, float, float]], times: np.ndarray,
                     n_cmt: int, changes: tuple[float, ...] = ()) -> np.ndarray:
    """Concentrations at ``times`` (sorted, after the first dose) for ``doses`` = [(time, amt, dur)].

    Integrated with ``solve_ivp`` (LSODA, rtol 1e-10) piecewise between dose events;
    a dose at an observation time counts for it.  ``p`` is a dict, or a function of
    time giving the parameters, constant between the ``changes`` times (amounts are
    carried across a change).
    """
    p_at = p if callable(p) else (lambda _t: p)
    events = sorted({t for t, _, _ in doses} | {t + d for t, _, d in doses if d > 0} | set(times.tolist())
                    | set(changes))
    a = np.zeros(n_cmt)
    out = {}
    t_prev = events[0]
    for k, t in enumerate(events):
        if t > t_prev:
            rate = sum(amt / dur for t0, amt, dur in doses if dur > 0 and t0 <= t_prev < t0 + dur)
            sol = solve_ivp(_rhs(kind, p_at(t_prev), rate), (t_prev, t), a, method="LSODA", rtol=1e-10,
                            atol=1e-12)
            a = sol.y[:, -1].copy()
        for t0, amt, dur in doses:
            if t0 == t and dur == 0:
                a[0] += amt
        out[t] = a[0] / p_at(t)["V1"]
        t_prev = t
    return np.maximum(np.array([out[t] for t in times]), 0.0)  # LSODA can undershoot 0 by ~1e-15


#: LLOQ (mg/L) of the Michaelis–Menten study.  ``simulate_subject`` integrates with atol 1e-12 on
#: the amounts, so below ~1e-10 mg/L its concentrations are its own error (down to values clipped
#: to 0): with proportional error such a record reads as a -100% residual.  Records below are BLQ (M3).
MM_LLOQ = 1e-10


def simulate_mm(seed: int, n_per_dose: int = 8, dose_levels=(10.0, 100.0, 1000.0),
                lloq: float | None = MM_LLOQ) -> tuple[pd.DataFrame, dict]:
    """1-cmt IV Michaelis–Menten study: 3 dose levels (KM·V1 = 20 mg; the top one saturates),
    a 1-h infusion every 24 h for 3 days, 8 samples per subject, 10% proportional error;
    observations below ``lloq`` are BLQ (``None``: no LLOQ column)."""
    rng = np.random.default_rng(seed)
    t = MM_TRUTH
    rows = []
    i = 0
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 23.5, 49.0, 60.0, 72.0])
    for dose in dose_levels:
        for _ in range(n_per_dose):
            i += 1
            p = {"VMAX": t["VMAX"] * np.exp(t["omega_VMAX"] * rng.standard_normal()), "KM": t["KM"],
                 "V1": t["V1"] * np.exp(t["omega_V1"] * rng.standard_normal())}
            doses = [(d, dose, 1.0) for d in (0.0, 24.0, 48.0)]
            c = simulate_subject("mm", p, doses, times, 1)
            dv = c * (1.0 + t["sigma_prop"] * rng.standard_normal(c.shape))
            rows += _records(i, doses, times, dv, lloq)
    return _table(rows), dict(t)


def simulate_td(seed: int, n_subjects: int = 24, cycles: int = 4) -> tuple[pd.DataFrame, dict]:
    """2-cmt time-dependent clearance (ADC-like, days): 30-min infusion of 3.6 mg/kg × 70 kg Q3W
    for ``cycles`` cycles, samples at end of infusion, day 1, 7, 14 and trough of each cycle."""
    rng = np.random.default_rng(seed)
    t = TD_TRUTH
    rows = []
    for i in range(1, n_subjects + 1):
        p = {k: t[k] for k in ("CL", "TDA", "KDES", "V1", "Q", "V2")}
        p["CL"] *= np.exp(t["omega_CL"] * rng.standard_normal())
        p["V1"] *= np.exp(t["omega_V1"] * rng.standard_normal())
        doses = [(21.0 * c, 250.0, 1.0 / 48.0) for c in range(cycles)]
        times = np.concatenate([21.0 * c + np.array([0.05, 1.0, 7.0, 14.0, 20.9]) for c in range(cycles)])
        c = simulate_subject("td", p, doses, times, 2)
        dv = c * (1.0 + t["sigma_prop"] * rng.standard_normal(c.shape))
        rows += _records(i, doses, times, dv)
    return _table(rows), dict(t)


#: Truth of the time-varying model (days): weight on CL per cycle, occasion variability on CL.
TV_TRUTH = {"CL": 0.7, "V1": 3.0, "Q": 0.5, "V2": 2.0, "beta_CL_WT": 0.75, "omega_CL": 0.3, "omega_V1": 0.2,
            "omega_iov_CL": 0.2, "sigma_prop": 0.1}


def simulate_tv(seed: int, n_subjects: int = 24, cycles: int = 4, beta_v1_wt: float = 0.0,
                omega_iov_v1: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """2-cmt linear (ADC-like, days), 30-min infusion of 250 mg Q3W for ``cycles`` cycles, with
    clearance following the weight of each cycle, ``CL·(WT/70)^0.75``, and varying between
    cycles (κ ~ N(0, 0.2²) per subject and cycle); weight recorded on every record (baseline
    50–100 kg, drifting by about −3% per cycle), the cycle as ``OCC``.  Samples at the end of
    infusion, day 1, 7, 14 and the trough of each cycle.

    ``beta_v1_wt`` (``V1·(WT/70)^beta``, per cycle) and ``omega_iov_v1`` (occasion variability on
    V1, drawn after the CL one) add effects to the truth; at their defaults (0) the output is
    that of the model without them, bit for bit.  When nonzero they are returned in the truth as
    ``beta_V1_WT`` and ``omega_iov_V1``."""
    rng = np.random.default_rng(seed)
    t = TV_TRUTH
    rows = []
    for i in range(1, n_subjects + 1):
        wt0 = 70.0 * np.exp(0.2 * rng.standard_normal())
        wts = wt0 * np.exp(np.cumsum(np.r_[0.0, -0.03 + 0.04 * rng.standard_normal(cycles - 1)]))
        eta_cl, eta_v1 = t["omega_CL"] * rng.standard_normal(), t["omega_V1"] * rng.standard_normal()
        kappa = t["omega_iov_CL"] * rng.standard_normal(cycles)
        kappa_v1 = omega_iov_v1 * rng.standard_normal(cycles) if omega_iov_v1 else np.zeros(cycles)

        def p_at(time: float, wts=wts, eta_cl=eta_cl, eta_v1=eta_v1, kappa=kappa, kappa_v1=kappa_v1) -> dict:
            c = min(max(int(np.floor(time / 21.0 + 1e-9)), 0), cycles - 1)
            v1 = t["V1"] * np.exp(eta_v1 + kappa_v1[c])
            if beta_v1_wt:
                v1 *= (wts[c] / 70.0) ** beta_v1_wt
            return {"CL": t["CL"] * (wts[c] / 70.0) ** t["beta_CL_WT"] * np.exp(eta_cl + kappa[c]),
                    "V1": v1, "Q": t["Q"], "V2": t["V2"]}

        doses = [(21.0 * c, 250.0, 1.0 / 48.0) for c in range(cycles)]
        times = np.concatenate([21.0 * c + np.array([0.05, 1.0, 7.0, 14.0, 20.9]) for c in range(cycles)])
        c = simulate_subject("linear", p_at, doses, times, 2, changes=tuple(21.0 * k for k in range(cycles)))
        dv = c * (1.0 + t["sigma_prop"] * rng.standard_normal(c.shape))
        recs = _records(i, doses, times, dv)
        for r in recs:
            k = min(int(np.floor(r["TIME"] / 21.0 + 1e-9)), cycles - 1)
            r["WT"] = round(float(wts[k]), 2)
            r["OCC"] = k + 1
        rows += recs
    truth = dict(t)
    if beta_v1_wt:
        truth["beta_V1_WT"] = beta_v1_wt
    if omega_iov_v1:
        truth["omega_iov_V1"] = omega_iov_v1
    return _table(rows), truth


#: Effects the ``tv`` model does not have, in the truth of ``simulate_tv_misspecified``.
TV_MISSPEC = {"beta_v1_wt": 1.0, "omega_iov_v1": 0.15}


def simulate_tv_misspecified(seed: int, n_subjects: int = 24, cycles: int = 4) -> tuple[pd.DataFrame, dict]:
    """``simulate_tv`` with also weight on V1 (``V1·(WT/70)^1.0``, per cycle) and occasion
    variability on V1 (ω_IOV 0.15): a truth the benchmark's ``tv`` model (weight and IOV on CL
    only) does not assume.  The truth returned holds ``beta_V1_WT`` and ``omega_iov_V1`` too."""
    return simulate_tv(seed, n_subjects, cycles, **TV_MISSPEC)


def reference_concentrations(p_of_t, n_cmt: int, elimination: str, oral: bool, obs_t, d_t, d_amt, d_dur, d_oral,
               breaks) -> np.ndarray:
    """Concentrations at ``obs_t`` from LSODA (rtol 1e-11) on the compartment equations written out
    here, with the parameters ``p_of_t(t)`` constant between ``breaks`` (any elimination of
    ``poppk.pk.ode``, 1-2 compartments, a depot when ``oral``); the tests' reference for the
    ODE solver."""
    ns = n_cmt + (1 if oral else 0)
    t_first = d_t[0]

    def rhs(t, y, rate, p):
        c = y[0] / p["V1"]
        el = 0.0
        if elimination in ("linear", "linear+michaelis-menten"):
            el += p["CL"] * c
        if elimination == "time-dependent":
            el += p["CL"] * (1.0 + p["TDA"] * np.exp(-p["KDES"] * max(t - t_first, 0.0))) * c
        if "michaelis-menten" in elimination:
            el += p["VMAX"] * c / (p["KM"] + c)
        dy = np.zeros(ns)
        dy[0] = rate - el
        if n_cmt == 2:
            flow = p["Q"] * (c - y[1] / p["V2"])
            dy[0] -= flow
            dy[1] = flow
        if oral:
            dy[0] += p["KA"] * y[-1]
            dy[-1] = -p["KA"] * y[-1]
        return dy

    ends = d_t + d_dur
    points = np.unique(np.concatenate([obs_t, d_t, ends[d_dur > 0], [b for b in breaks if np.isfinite(b)]]))
    y = np.zeros(ns)
    at = {}
    for k, t0 in enumerate(points):
        bolus = (d_t == t0) & (d_dur == 0)
        y[0] += d_amt[bolus & ~d_oral].sum()
        if oral:
            y[-1] += d_amt[bolus & d_oral].sum()
        at[t0] = y[0] / p_of_t(t0)["V1"]
        if k + 1 == len(points):
            break
        t1 = points[k + 1]
        on = (d_dur > 0) & (d_t <= t0) & (ends >= t1)
        rate = float(np.sum(d_amt[on] / d_dur[on]))
        if rate == 0 and not np.any(y):
            continue
        sol = solve_ivp(rhs, (t0, t1), y, method="LSODA", rtol=1e-11, atol=1e-13 * d_amt.max(),
                        args=(rate, p_of_t(t0)))
        assert sol.success, sol.message
        y = sol.y[:, -1]
    return np.array([at[t] for t in obs_t])


def _records(i: int, doses: list[tuple[float, float, float]], times: np.ndarray, dv: np.ndarray,
             lloq: float | None = None) -> list[dict]:
    """NONMEM records of subject ``i``: its infusions ``(time, amount, duration)`` and observations
    (with ``BLQ`` and ``LLOQ`` columns when ``lloq`` is given: DV < LLOQ is BLQ)."""
    rows = [{"ID": i, "TIME": d0, "AMT": amt, "RATE": amt / dur, "EVID": 1, "MDV": 1, "DV": np.nan}
            for d0, amt, dur in doses]

    def cens(y: float) -> dict:
        return {} if lloq is None else {"BLQ": int(y < lloq), "LLOQ": float(lloq)}

    return rows + [{"ID": i, "TIME": tt, "AMT": 0.0, "RATE": 0.0, "EVID": 0, "MDV": 0, "DV": y, **cens(y)}
                   for tt, y in zip(times, dv)]


def _table(rows: list[dict]) -> pd.DataFrame:
    """The records sorted by subject and time, doses before observations at the same time."""
    df = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], ascending=[True, True, False], kind="stable")
    return df.reset_index(drop=True)
