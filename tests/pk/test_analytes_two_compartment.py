"""Two-compartment formed analytes (a payload with a peripheral compartment), against scipy's ODE solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from poppk.pk import concentration
from poppk.pk.analytes import Formation
from poppk.pk.dosing import padded_dose_matrix
from poppk.pk.recursion import concentration_recursive, recursion_plan

FORM = (Formation(0, "CL_P", "V_P", "CL", 3.5, "Q_P", "V2_P"),  # payload: 2 compartments
        Formation(1, "CL_M", "V_M", "CL_P", 0.9),  # metabolite of the payload: 1 compartment
        Formation(1, "CL_N", "V_N", "CL_P", 0.4, "Q_N", "V2_N"))  # a second one of the payload: 2 compartments


def _params(rng: np.random.Generator, n_cmt: int) -> dict[str, float]:
    p = {"CL": rng.uniform(0.2, 2.0), "V1": rng.uniform(2, 10), "Q": rng.uniform(0.3, 3), "V2": rng.uniform(2, 20),
         "CL_P": rng.uniform(1, 30), "V_P": rng.uniform(5, 60), "Q_P": rng.uniform(0.5, 20), "V2_P": rng.uniform(5, 80),
         "CL_M": rng.uniform(1, 30), "V_M": rng.uniform(5, 60),
         "CL_N": rng.uniform(1, 30), "V_N": rng.uniform(5, 60), "Q_N": rng.uniform(0.5, 20), "V2_N": rng.uniform(5, 80)}
    if n_cmt == 1:
        p.pop("Q"), p.pop("V2")
    return p


def _ode(p, n_cmt, times, amts, durs, t_obs):
    """Amounts: parent central, parent peripheral, P central, P periph, M, N central, N periph."""
    def rhs(t, y):
        a1, a2, p1, p2, m, n1, n2 = y
        c = a1 / p["V1"]
        inf = sum(a / d for t0, a, d in zip(times, amts, durs) if d > 0 and t0 <= t < t0 + d)
        da1, da2 = inf - p["CL"] * c, 0.0
        if n_cmt == 2:
            da1 += -p["Q"] * c + p["Q"] * a2 / p["V2"]
            da2 = p["Q"] * c - p["Q"] * a2 / p["V2"]
        cp = p1 / p["V_P"]
        dp1 = FORM[0].scale * p["CL"] * c - p["CL_P"] * cp - p["Q_P"] * cp + p["Q_P"] * p2 / p["V2_P"]
        dp2 = p["Q_P"] * cp - p["Q_P"] * p2 / p["V2_P"]
        dm = FORM[1].scale * p["CL_P"] * cp - p["CL_M"] * m / p["V_M"]
        cn = n1 / p["V_N"]
        dn1 = FORM[2].scale * p["CL_P"] * cp - p["CL_N"] * cn - p["Q_N"] * cn + p["Q_N"] * n2 / p["V2_N"]
        dn2 = p["Q_N"] * cn - p["Q_N"] * n2 / p["V2_N"]
        return [da1, da2, dp1, dp2, dm, dn1, dn2]

    y, t = np.zeros(7), 0.0
    out = np.zeros((4, len(t_obs)))
    for t_next in sorted(set(times) | set(times + durs) | {t_obs.max() + 1e-9}):
        if t_next > t:
            keep = (t_obs > t) & (t_obs <= t_next)
            sol = solve_ivp(rhs, (t, t_next), y, method="LSODA", rtol=1e-10, atol=1e-14,
                            t_eval=np.r_[t_obs[keep], t_next])
            out[:, keep] = (sol.y[[0, 2, 4, 5], :-1] / np.array([p["V1"], p["V_P"], p["V_M"], p["V_N"]])[:, None])
            y, t = sol.y[:, -1].copy(), t_next
        for t0, a, d in zip(times, amts, durs):
            if t0 == t_next and d == 0:
                y[0] += a
    return out


@pytest.mark.parametrize("n_cmt", [1, 2])
def test_two_compartment_formed_analytes_match_the_ode(n_cmt: int) -> None:
    rng = np.random.default_rng(7 + n_cmt)
    for _ in range(3):
        p = _params(rng, n_cmt)
        times = np.sort(rng.uniform(0, 20, 2))
        amts, durs = rng.uniform(50, 200, 2), np.array([0.0, rng.uniform(0.1, 1.5)])
        t_obs = np.sort(rng.uniform(0.01, 40, 15))
        ref = _ode(p, n_cmt, times, amts, durs, t_obs)
        dt = t_obs[:, None] - times[None, :]
        par = {k: np.asarray(v) for k, v in p.items()}
        for a in range(4):
            c = concentration(dt, np.broadcast_to(amts, dt.shape), par, n_cmt=n_cmt,
                              dur=np.broadcast_to(durs, dt.shape), formation=FORM, analyte=np.full((len(t_obs), 1), a))
            np.testing.assert_allclose(c, ref[a], rtol=1e-6, atol=1e-9 * np.abs(ref[a]).max(), err_msg=f"analyte {a}")


def test_recursion_matches_dense_superposition_for_two_compartment_formed_analytes() -> None:
    rng = np.random.default_rng(3)
    n_sub, per = 4, 8
    dose_subject = np.repeat(np.arange(n_sub), 3)
    dose_time = np.tile([0.0, 21.0, 42.0], n_sub)
    obs_subject = np.repeat(np.arange(n_sub), per * 3)
    obs_time = np.tile(np.sort(rng.uniform(0.01, 60, per * 3)), n_sub)
    analyte = rng.integers(0, 4, len(obs_subject))
    n_obs, n_dose = len(obs_subject), len(dose_subject)
    mat = padded_dose_matrix(obs_subject, obs_time, np.zeros(n_obs, int), np.arange(n_obs, dtype=float),
                             dose_subject, dose_time, np.zeros(n_dose, int), -np.ones(n_dose),
                             np.full(n_dose, 100.0), np.full(n_dose, 0.0625), np.zeros(n_dose, bool),
                             np.zeros(n_dose, int), np.zeros(n_dose))
    plan = recursion_plan(obs_subject, mat, dose_subject, dose_time, n_sub)
    assert plan is not None
    params = {k: v * rng.uniform(0.8, 1.25, n_sub) for k, v in _params(rng, 2).items()}
    rec = concentration_recursive(plan, params, n_cmt=2, formation=FORM, analyte=analyte)
    dense = concentration(mat["dt"], mat["amt"], {k: v[obs_subject][:, None] for k, v in params.items()}, n_cmt=2,
                          dur=mat["dur"], formation=FORM, analyte=analyte[:, None])
    np.testing.assert_allclose(rec, dense, rtol=1e-10, atol=1e-14)
