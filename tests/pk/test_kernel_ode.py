"""The closed-form kernel against an independent ODE solution (scipy solve_ivp).

The compartment ODEs are written out here independently of poppk.pk: amounts
in depot, central and peripheral compartments, infusions as piecewise-constant
inputs, and the system integrated piecewise between events (dose times,
lagged absorption starts, infusion ends and observation times).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from poppk.pk import concentration, disposition

RTOL_ODE = 1e-10
ATOL_ODE = 1e-12
# observations whose concentration is below this fraction of the profile's
# maximum are compared with an absolute tolerance instead (the ODE's atol)
FLOOR = 1e-7
TOL = 1e-6

MAX_REL_ERR: list[float] = []  # collected for the summary print at the end


# ---------------------------------------------------------------------------
# independent reference
# ---------------------------------------------------------------------------
def rate_matrix(p: dict, n_cmt: int) -> np.ndarray:
    """d/dt [depot, central, periph2, periph3] = M @ y + input."""
    ka = p.get("KA", 0.0)
    v1 = p["V1"]
    cl = p["CL"]
    q = p.get("Q", 0.0) if n_cmt >= 2 else 0.0
    v2 = p.get("V2", 1.0)
    q3 = p.get("Q3", 0.0) if n_cmt >= 3 else 0.0
    v3 = p.get("V3", 1.0)
    m = np.zeros((4, 4))
    m[0, 0] = -ka
    m[1, 0] = ka
    m[1, 1] = -(cl + q + q3) / v1
    m[1, 2] = q / v2
    m[1, 3] = q3 / v3
    m[2, 1] = q / v1
    m[2, 2] = -q / v2
    m[3, 1] = q3 / v1
    m[3, 3] = -q3 / v3
    return m


def ode_concentration(p: dict, n_cmt: int, doses: list[dict], t_obs) -> np.ndarray:
    """Central concentration at t_obs; a dose at an observation time counts."""
    m = rate_matrix(p, n_cmt)
    f1 = p.get("F1", 1.0)
    lag = p.get("ALAG1", 0.0)
    jumps: dict[float, np.ndarray] = {}
    infusions = []  # (start, end, rate)
    for d in doses:
        if d.get("oral", False):
            t = d["time"] + lag
            jumps.setdefault(t, np.zeros(4))[0] += f1 * d["amt"]
        elif d.get("dur", 0.0) > 0:
            infusions.append((d["time"], d["time"] + d["dur"], d["amt"] / d["dur"]))
        else:
            jumps.setdefault(d["time"], np.zeros(4))[1] += d["amt"]
    t_obs = np.asarray(t_obs, dtype=float)
    points = sorted(
        set(jumps) | {s for s, _, _ in infusions} | {e for _, e, _ in infusions}
        | set(t_obs.tolist())
    )
    y = np.zeros(4)
    state_at: dict[float, np.ndarray] = {}
    for i, t0 in enumerate(points):
        if t0 in jumps:
            y = y + jumps[t0]
        state_at[t0] = y.copy()
        if i + 1 == len(points):
            break
        t1 = points[i + 1]
        rate = sum(r for s, e, r in infusions if s <= t0 and e >= t1)
        u = np.array([0.0, rate, 0.0, 0.0])
        if not np.any(y) and rate == 0.0:
            continue
        sol = solve_ivp(
            lambda _t, yy: m @ yy + u,
            (t0, t1),
            y,
            method="DOP853",
            rtol=RTOL_ODE,
            atol=ATOL_ODE,
        )
        assert sol.success, sol.message
        y = sol.y[:, -1]
    return np.array([state_at[t][1] / p["V1"] for t in t_obs])


def kernel_concentration(p: dict, n_cmt: int, doses: list[dict], t_obs) -> np.ndarray:
    t_obs = np.asarray(t_obs, dtype=float)[:, None]
    dt = t_obs - np.array([d["time"] for d in doses])[None, :]
    amt = np.array([d["amt"] for d in doses])[None, :]
    dur = np.array([d.get("dur", 0.0) for d in doses])[None, :]
    oral = np.array([d.get("oral", False) for d in doses])[None, :]
    ss = np.array([d.get("ss", False) for d in doses])[None, :]
    ii = np.array([d.get("ii", 0.0) for d in doses])[None, :]
    return concentration(
        dt, amt, p, n_cmt=n_cmt, dur=dur,
        oral=oral if oral.any() else None,
        ss=ss if ss.any() else None, ii=ii,
    )


def compare(ref: np.ndarray, got: np.ndarray, tol: float = TOL) -> float:
    scale = np.max(np.abs(ref))
    big = np.abs(ref) > FLOOR * scale
    rel = np.abs(got[big] - ref[big]) / np.abs(ref[big])
    worst = float(rel.max()) if rel.size else 0.0
    MAX_REL_ERR.append(worst)
    assert worst < tol, f"max relative error {worst:.3g}"
    assert np.all(np.abs(got[~big] - ref[~big]) <= 1e-6 * FLOOR * scale + 1e-12)
    return worst


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------
PARAMS = {
    1: [
        {"CL": 0.05, "V1": 1.0},     # t1/2 14 h
        {"CL": 50.0, "V1": 500.0},   # 6.9 h
        {"CL": 5.0, "V1": 1.0},      # 8 min
        {"CL": 0.05, "V1": 500.0},   # 289 days (nearly flat)
    ],
    2: [
        {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 50.0},
        {"CL": 0.05, "V1": 1.0, "Q": 20.0, "V2": 500.0},   # lambda ratio ~1e4
        {"CL": 50.0, "V1": 100.0, "Q": 0.5, "V2": 5.0},
        # nearly equal eigenvalues: k10 == k21, tiny k12 (gap ~ 6e-4)
        {"CL": 1.0, "V1": 100.0, "Q": 1e-3, "V2": 0.1},
    ],
    3: [
        {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 50.0, "Q3": 0.5, "V3": 200.0},
        {"CL": 50.0, "V1": 5.0, "Q": 10.0, "V2": 20.0, "Q3": 1.0, "V3": 500.0},
        {"CL": 0.05, "V1": 1.0, "Q": 1.0, "V2": 10.0, "Q3": 0.1, "V3": 100.0},
    ],
}

DOSE_TIMES = [0.0, 7.3, 20.0, 31.5, 50.0]
AMTS = [100.0, 50.0, 80.0, 120.0, 100.0]

REGIMENS = {
    "bolus": [{"dur": 0.0}] * 5,
    "inf1h": [{"dur": 1.0}] * 5,
    "inflong": [{"dur": 10.0}] * 5,  # overlaps the next dose
    "mixed_iv": [{"dur": 0.0}, {"dur": 2.5}, {"dur": 0.0}, {"dur": 15.0}, {"dur": 0.5}],
    "oral": [{"oral": True}] * 5,
    "oral_iv": [{"oral": True}, {"dur": 1.0}, {"oral": True}, {"dur": 0.0}, {"oral": True}],
}


def make_doses(regimen: str) -> list[dict]:
    return [
        {"time": t, "amt": a, **extra}
        for t, a, extra in zip(DOSE_TIMES, AMTS, REGIMENS[regimen])
    ]


def obs_times(doses: list[dict], lag: float = 0.0) -> np.ndarray:
    grid = np.concatenate([
        np.linspace(0.0, 90.0, 61),
        np.array([0.01, 0.37, 3.3, 8.8, 26.1, 49.999, 120.0, 200.0]),
    ])
    special = []
    for d in doses:
        special.append(d["time"])
        if d.get("dur", 0.0) > 0:
            special.append(d["time"] + d["dur"])  # exactly at infusion end
        if d.get("oral", False) and lag > 0:
            special.append(d["time"] + lag)
            special.append(d["time"] + 0.5 * lag)  # within the lag: 0 from that dose
    return np.unique(np.concatenate([grid, special]))


IV_CASES = [
    (n, i, reg)
    for n in (1, 2, 3)
    for i in range(len(PARAMS[n]))
    for reg in ("bolus", "inf1h", "inflong", "mixed_iv")
]


@pytest.mark.parametrize("n_cmt,i,regimen", IV_CASES)
def test_iv_matches_ode(n_cmt, i, regimen):
    p = PARAMS[n_cmt][i]
    doses = make_doses(regimen)
    t = obs_times(doses)
    compare(ode_concentration(p, n_cmt, doses, t), kernel_concentration(p, n_cmt, doses, t))


def _oral_params(n_cmt: int, i: int, ka) -> dict:
    p = dict(PARAMS[n_cmt][i])
    if ka == "lambda_last":  # KA equal to the terminal rate, to machine precision
        lam, _ = disposition(p, n_cmt)
        p["KA"] = float(lam[-1])
    elif ka == "lambda_first":
        lam, _ = disposition(p, n_cmt)
        p["KA"] = float(lam[0])
    else:
        p["KA"] = ka
    return p


ORAL_CASES = [
    (n, i, ka, lag, f1, reg)
    for n, i in ((1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 3), (3, 0), (3, 1))
    for ka, lag, f1, reg in (
        (0.05, 0.0, 1.0, "oral"),
        (1.0, 0.75, 0.6, "oral"),
        (5.0, 0.0, 0.8, "oral_iv"),
        ("lambda_last", 0.0, 1.0, "oral"),
        ("lambda_first", 1.3, 0.9, "oral_iv"),
    )
]


@pytest.mark.parametrize("n_cmt,i,ka,lag,f1,regimen", ORAL_CASES)
def test_oral_matches_ode(n_cmt, i, ka, lag, f1, regimen):
    p = _oral_params(n_cmt, i, ka)
    p["F1"] = f1
    if lag:
        p["ALAG1"] = lag
    doses = make_doses(regimen)
    t = obs_times(doses, lag)
    compare(ode_concentration(p, n_cmt, doses, t), kernel_concentration(p, n_cmt, doses, t))


def test_ka_equal_lambda_is_exact_tie():
    p = _oral_params(1, 0, "lambda_last")
    assert p["KA"] == p["CL"] / p["V1"]
    # the kernel's disposition rate is the same float as the KA given
    lam, _ = disposition(p, 1)
    assert float(lam[0]) == p["KA"]


# ---------------------------------------------------------------------------
# steady state against 200 repeated doses integrated by the ODE
# ---------------------------------------------------------------------------
SS_CASES = [
    # n_cmt, params, dose extras, tau, lag
    (1, {"CL": 2.0, "V1": 20.0}, {"dur": 0.0}, 12.0, 0.0),
    (1, {"CL": 2.0, "V1": 20.0}, {"dur": 12.0}, 12.0, 0.0),  # T == tau
    (2, {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 50.0}, {"dur": 2.0}, 12.0, 0.0),
    (2, {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 50.0}, {"dur": 0.0}, 8.0, 0.0),
    (3, {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 30.0, "Q3": 0.5, "V3": 40.0}, {"dur": 1.0}, 24.0, 0.0),
    (1, {"CL": 2.0, "V1": 20.0, "KA": 1.2}, {"oral": True}, 12.0, 0.0),
    (1, {"CL": 2.0, "V1": 20.0, "KA": 0.1, "F1": 0.7}, {"oral": True}, 12.0, 1.5),  # KA == lambda
    (1, {"CL": 2.0, "V1": 20.0, "KA": 0.1 * (1 + 1e-9)}, {"oral": True}, 6.0, 0.0),
    (2, {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 50.0, "KA": 0.3}, {"oral": True}, 12.0, 2.0),
    (3, {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 30.0, "Q3": 0.5, "V3": 40.0, "KA": 2.0},
     {"oral": True}, 8.0, 0.5),
]


@pytest.mark.parametrize("n_cmt,p,extra,tau,lag", SS_CASES)
def test_steady_state_matches_repeated_doses(n_cmt, p, extra, tau, lag):
    p = dict(p)
    if lag:
        p["ALAG1"] = lag
    n = 200
    doses = [{"time": k * tau, "amt": 100.0, **extra} for k in range(n)]
    t_last = (n - 1) * tau
    dts = np.unique(np.concatenate([
        np.linspace(0.0, 2.0 * tau, 17),
        [extra.get("dur", 0.0), 0.5 * lag, lag, tau - 1e-3],
    ]))
    dts = dts[dts >= 0]
    ref = ode_concentration(p, n_cmt, doses, t_last + dts)
    ss_dose = [{"time": t_last, "amt": 100.0, "ss": True, "ii": tau, **extra}]
    got = kernel_concentration(p, n_cmt, ss_dose, t_last + dts)
    compare(ref, got)


def test_zz_report_max_error(capsys):
    # runs last in this module (alphabetical order is not guaranteed, but
    # pytest runs tests in file order); reports the worst error seen
    if MAX_REL_ERR:
        with capsys.disabled():
            print(f"\n[poppk.pk] max relative error vs ODE over {len(MAX_REL_ERR)} "
                  f"cases: {max(MAX_REL_ERR):.3g}")
