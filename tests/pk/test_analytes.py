"""Formed analytes (payload, metabolite) in the closed-form kernel, against an ODE solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from poppk.pk import concentration, disposition
from poppk.pk.analytes import SEPARATION, Formation, formed_modes
from poppk.pk.dosing import padded_dose_matrix
from poppk.pk.ops import NUMPY
from poppk.pk.recursion import concentration_recursive, recursion_plan

PARENT = {1: ("CL", "V1"), 2: ("CL", "V1", "Q", "V2"), 3: ("CL", "V1", "Q", "V2", "Q3", "V3")}


def _random_case(rng: np.random.Generator, n_cmt: int, oral: bool):
    p = {"CL": rng.uniform(0.2, 2.0), "V1": rng.uniform(2, 10), "Q": rng.uniform(0.3, 3), "V2": rng.uniform(2, 20),
         "Q3": rng.uniform(0.1, 1), "V3": rng.uniform(5, 30), "KA": rng.uniform(0.5, 3),
         "CL_P": rng.uniform(1, 30), "V_P": rng.uniform(5, 60), "CL_M": rng.uniform(1, 30), "V_M": rng.uniform(5, 60)}
    p = {k: v for k, v in p.items() if k in PARENT[n_cmt] + ("KA", "CL_P", "V_P", "CL_M", "V_M")}
    form = (Formation(0, "CL_P", "V_P", "CL", rng.uniform(0.01, 2)), Formation(1, "CL_M", "V_M", "CL_P", rng.uniform(0.5, 1.5)))
    n_dose = int(rng.integers(1, 4))
    times = np.sort(rng.uniform(0, 30, n_dose))
    amts = rng.uniform(50, 200, n_dose)
    durs = np.zeros(n_dose) if oral else np.where(rng.random(n_dose) < 0.5, 0.0, rng.uniform(0.05, 2, n_dose))
    return p, form, times, amts, durs


def _ode(p, form, times, amts, durs, n_cmt, oral, t_obs):
    """Amounts: [depot, central, periph2, periph3, payload, metabolite]."""
    v1 = p["V1"]

    def rhs(t, y):
        dep, a1, a2, a3, ap, am = y
        c1 = a1 / v1
        inf = sum(a / d for t0, a, d in zip(times, amts, durs) if d > 0 and t0 <= t < t0 + d)
        absorbed = p["KA"] * dep if oral else 0.0
        da1 = inf + absorbed - p["CL"] * c1
        da2 = da3 = 0.0
        if n_cmt >= 2:
            da1 += -p["Q"] * c1 + p["Q"] * a2 / p["V2"]
            da2 = p["Q"] * c1 - p["Q"] * a2 / p["V2"]
        if n_cmt >= 3:
            da1 += -p["Q3"] * c1 + p["Q3"] * a3 / p["V3"]
            da3 = p["Q3"] * c1 - p["Q3"] * a3 / p["V3"]
        cp = ap / p["V_P"]
        dap = form[0].scale * p["CL"] * c1 - p["CL_P"] * cp
        dam = form[1].scale * p["CL_P"] * cp - p["CL_M"] * am / p["V_M"]
        return [-absorbed, da1, da2, da3, dap, dam]

    y = np.zeros(6)
    t = 0.0
    out = np.zeros((3, len(t_obs)))
    events = sorted(set(times.tolist()) | set((times + durs).tolist()) | {t_obs.max() + 1e-9})
    for t_next in events:
        if t_next > t:
            keep = (t_obs > t) & (t_obs <= t_next)
            sol = solve_ivp(rhs, (t, t_next), y, method="LSODA", rtol=1e-10, atol=1e-13,
                            t_eval=t_obs[keep] if keep.any() else None, dense_output=False)
            if keep.any():
                out[:, keep] = sol.y[[1, 4, 5]] / np.array([v1, p["V_P"], p["V_M"]])[:, None]
            y = sol.y[:, -1] if sol.t[-1] == t_next else solve_ivp(rhs, (t, t_next), y, method="LSODA",
                                                                     rtol=1e-10, atol=1e-13).y[:, -1]
            t = t_next
        for t0, a, d in zip(times, amts, durs):
            if t0 == t_next and d == 0:
                y[0 if oral else 1] += a
    return out


@pytest.mark.parametrize("n_cmt,oral", [(1, False), (2, False), (3, False), (1, True), (2, True)])
def test_formed_analytes_match_ode(n_cmt: int, oral: bool) -> None:
    rng = np.random.default_rng(10 * n_cmt + oral)
    for _ in range(3):
        p, form, times, amts, durs = _random_case(rng, n_cmt, oral)
        t_obs = np.sort(rng.uniform(0.01, 45, 12))
        ref = _ode(p, form, times, amts, durs, n_cmt, oral, t_obs)
        dt = t_obs[:, None] - times[None, :]
        amt = np.broadcast_to(amts, dt.shape)
        dur = np.broadcast_to(durs, dt.shape)
        par = {k: np.asarray(v) for k, v in p.items()}
        for a in range(3):
            c = concentration(dt, amt, par, n_cmt=n_cmt, dur=dur, oral=np.full(dt.shape, oral) if oral else None,
                              formation=form, analyte=np.full((len(t_obs), 1), a))
            scale = np.max(np.abs(ref[a]))
            np.testing.assert_allclose(c, ref[a], rtol=1e-6, atol=1e-8 * scale, err_msg=f"analyte {a}")


def test_parent_unchanged_by_formation() -> None:
    dt = np.array([[0.5, -1.0], [3.0, 1.0]])
    amt = np.full(dt.shape, 100.0)
    p = {"CL": np.asarray(1.0), "V1": np.asarray(5.0), "CL_P": np.asarray(3.0), "V_P": np.asarray(9.0)}
    plain = concentration(dt, amt, p, n_cmt=1)
    with_f = concentration(dt, amt, p, n_cmt=1, formation=(Formation(0, "CL_P", "V_P", "CL", 2.0),),
                           analyte=np.zeros((2, 1), dtype=int))
    np.testing.assert_array_equal(plain, with_f)


def test_steady_state_of_formed_analyte_is_the_limit_of_repeated_doses() -> None:
    p = {"CL": np.asarray(0.5), "V1": np.asarray(3.0), "Q": np.asarray(0.6), "V2": np.asarray(2.5),
         "CL_P": np.asarray(20.0), "V_P": np.asarray(40.0)}
    form = (Formation(0, "CL_P", "V_P", "CL", 5.0),)
    tau, T = 21.0, 0.5
    t_after = np.array([0.2, 1.0, 5.0, 20.0])
    one = np.ones((len(t_after), 1))
    ss = concentration(t_after[:, None], 100.0 * one, p, n_cmt=2, dur=T * one, ss=one.astype(bool), ii=tau * one,
                       formation=form, analyte=one.astype(int))
    n = 80  # doses long enough for the parent's terminal half-life
    dt = t_after[:, None] + tau * np.arange(n)[None, :]
    train = concentration(dt, np.full(dt.shape, 100.0), p, n_cmt=2, dur=np.full(dt.shape, T), formation=form,
                          analyte=np.ones((len(t_after), 1), dtype=int))
    np.testing.assert_allclose(ss, train, rtol=1e-9)


def test_recursion_matches_dense_superposition_for_every_analyte() -> None:
    rng = np.random.default_rng(3)
    n_sub, per = 4, 6
    dose_subject = np.repeat(np.arange(n_sub), 3)
    dose_time = np.tile([0.0, 21.0, 42.0], n_sub)
    obs_subject = np.repeat(np.arange(n_sub), per * 3)
    obs_time = np.tile(np.sort(rng.uniform(0.01, 60, per * 3)), n_sub)
    analyte = rng.integers(0, 3, len(obs_subject))
    n_obs, n_dose = len(obs_subject), len(dose_subject)
    mat = padded_dose_matrix(obs_subject, obs_time, np.zeros(n_obs, int), np.arange(n_obs, dtype=float),
                             dose_subject, dose_time, np.zeros(n_dose, int), -np.ones(n_dose),
                             np.full(n_dose, 100.0), np.full(n_dose, 0.0625), np.zeros(n_dose, bool),
                             np.zeros(n_dose, int), np.zeros(n_dose))
    plan = recursion_plan(obs_subject, mat, dose_subject, dose_time, n_sub)
    assert plan is not None
    params = {"CL": rng.uniform(0.3, 1, n_sub), "V1": rng.uniform(2, 5, n_sub), "Q": rng.uniform(0.3, 1, n_sub),
              "V2": rng.uniform(2, 5, n_sub), "CL_P": rng.uniform(5, 30, n_sub), "V_P": rng.uniform(10, 50, n_sub),
              "CL_M": rng.uniform(5, 30, n_sub), "V_M": rng.uniform(10, 50, n_sub)}
    form = (Formation(0, "CL_P", "V_P", "CL", 3.0), Formation(1, "CL_M", "V_M", "CL_P", 0.8))
    rec = concentration_recursive(plan, params, n_cmt=2, formation=form, analyte=analyte)
    gathered = {k: v[obs_subject][:, None] for k, v in params.items()}
    dense = concentration(mat["dt"], mat["amt"], gathered, n_cmt=2, dur=mat["dur"], formation=form,
                          analyte=analyte[:, None])
    np.testing.assert_allclose(rec, dense, rtol=1e-11, atol=1e-14)


def test_equal_rates_are_continuous_and_finite() -> None:
    """k_m equal to a parent mode: within SEPARATION of the neighbouring responses, finite gradients."""
    p = {"CL": 0.5, "V1": 3.0, "Q": 0.6, "V2": 2.5, "V_P": 40.0}
    lams, _ = disposition({k: np.asarray(v) for k, v in p.items()}, 2)
    t = np.array([[0.5], [3.0], [10.0], [30.0]])
    form = (Formation(0, "CL_P", "V_P", "CL", 2.0),)
    out = []
    for rel in (1.0, 1.0 + 1e-6, 1.0 - 1e-6, 1.0 + 1e-3):
        par = {k: np.asarray(v) for k, v in p.items()} | {"CL_P": np.asarray(float(lams[1]) * 40.0 * rel)}
        out.append(concentration(t, np.full(t.shape, 100.0), par, n_cmt=2, formation=form,
                                 analyte=np.ones(t.shape, dtype=int)))
    assert np.all(np.isfinite(out))
    # exact coincidence against just off it: the response moves by at most ~SEPARATION (times λt)
    np.testing.assert_allclose(out[0], out[1], rtol=5 * SEPARATION * 30 * float(lams[1]) + 1e-9)
    np.testing.assert_allclose(out[1], out[2], rtol=1e-5)
    np.testing.assert_allclose(out[0], out[3], rtol=5e-3)  # a 0.1% change in CL_P moves it by < 0.5%

    import pytensor
    import pytensor.tensor as pt

    clp = pt.dscalar("clp")
    par_t = {k: pt.as_tensor(np.asarray(v)) for k, v in p.items()} | {"CL_P": clp}
    c = concentration(t, np.full(t.shape, 100.0), par_t, n_cmt=2, formation=form, analyte=np.ones(t.shape, dtype=int))
    f = pytensor.function([clp], [c.sum(), pt.grad(c.sum(), clp)])
    val, grad = f(float(lams[1]) * 40.0)
    # at exact coincidence rounding decides the side k_m is moved to (2·SEPARATION apart)
    np.testing.assert_allclose(val, out[0].sum(), rtol=5 * SEPARATION * 30 * float(lams[1]))
    assert np.isfinite(grad)
    val2, grad2 = f(float(lams[1]) * 40.0 * 1.01)
    assert np.isfinite(grad2) and grad2 < 0  # faster payload elimination, lower payload


def test_formed_modes_validates_source_order() -> None:
    lams, coefs = disposition({"CL": np.asarray(1.0), "V1": np.asarray(2.0)}, 1)
    with pytest.raises(Exception, match="earlier formed analyte"):
        formed_modes(lams, coefs, {"CL": 1.0, "CL_P": 1.0, "V_P": 1.0}, (Formation(1, "CL_P", "V_P", "CL"),), NUMPY)
