"""The compiled ODE solver (poppk.pk.ode) against independent references.

- linear elimination against the closed-form kernel (poppk.pk.concentration
  on the dose matrix of poppk.pk.padded_dose_matrix);
- Michaelis–Menten and time-dependent clearance against scipy's solve_ivp
  (LSODA, tight tolerances) on equations written out in tests/_ode_studies.py, independently;
- the forward sensitivities against central finite differences;
- the Michaelis–Menten limit KM >> C (linear with CL = VMAX/KM);
- bad input raises errors that say what is valid.
"""

from __future__ import annotations

import numpy as np
import pytest
from _ode_studies import reference_concentrations

from poppk.errors import DatasetError, ModelSpecError
from poppk.pk import concentration, padded_dose_matrix
from poppk.pk.ode import ODESolverError, ode_concentration, parameter_names

REL_TOL = 1e-6
SEED = 0
# Relative errors are checked where C > FLOOR x the subject's peak; below it the
# absolute error must be < 1e-10 x the peak (the solver's atol is 1e-12 x the
# largest dose amount, which bounds the relative error only down to ~1e-6 x peak).
FLOOR = 1e-5


def random_design(rng: np.random.Generator, n_sub: int, *, oral: bool = False) -> dict:
    """Random multi-dose designs: boluses, infusions (some overlapping), optional oral doses;
    observations at random times, at dose times and at infusion ends, some before the first dose."""
    o_sub, o_t, d_sub, d_t, d_amt, d_dur, d_oral = [], [], [], [], [], [], []
    for i in range(n_sub):
        nd = int(rng.integers(1, 7))
        t = np.sort(rng.uniform(0.0, 100.0, nd))
        t += rng.choice([0.0, 3.0]) - t[0]  # first dose at 0 or 3
        amt = rng.uniform(10.0, 1000.0, nd)
        kind = rng.integers(0, 3 if oral else 2, nd)  # 0 bolus, 1 infusion, 2 oral
        if oral and i == 0:
            kind[0] = 2
        dur = np.where(kind == 1, rng.uniform(0.1, 30.0, nd), 0.0)
        obs = np.concatenate([
            rng.uniform(0.0, 150.0, int(rng.integers(3, 25))),
            t[rng.integers(0, nd, 2)],
            (t + dur)[dur > 0][:2],
        ])
        obs = np.sort(obs)
        o_sub += [i] * obs.size
        o_t += list(obs)
        d_sub += [i] * nd
        d_t += list(t)
        d_amt += list(amt)
        d_dur += list(dur)
        d_oral += list(kind == 2)
    return dict(obs_subject=np.array(o_sub), obs_time=np.array(o_t), dose_subject=np.array(d_sub),
                dose_time=np.array(d_t), dose_amt=np.array(d_amt), dose_dur=np.array(d_dur),
                dose_oral=np.array(d_oral) if oral else None)


def random_params(rng: np.random.Generator, n_sub: int, n_cmt: int, elimination: str, oral: bool = False) -> dict:
    """Log-uniform parameters; rate constants within 1/(100 h)..~3/h."""
    lu = lambda lo, hi: np.exp(rng.uniform(np.log(lo), np.log(hi), n_sub))  # noqa: E731
    p = {"V1": lu(2.0, 50.0), "CL": lu(0.1, 10.0), "Q": lu(0.2, 10.0), "V2": lu(5.0, 100.0),
         "VMAX": lu(5.0, 200.0), "KM": lu(0.5, 50.0), "TDA": rng.uniform(-0.6, 2.0, n_sub),
         "KDES": lu(0.01, 0.5), "KA": lu(0.1, 3.0)}
    return {k: p[k] for k in parameter_names(n_cmt, elimination, oral)}


def peaks(p: dict, d: dict) -> np.ndarray:
    """A subject's concentration scale: its largest dose amount / V1 (the sampled maximum can be
    far below the true peak when all of a subject's samples are late)."""
    n_sub = np.asarray(p["V1"]).size
    amax = np.array([d["dose_amt"][d["dose_subject"] == i].max() for i in range(n_sub)])
    return amax / p["V1"]


def compare(ref: np.ndarray, got: np.ndarray, subject: np.ndarray, peak: np.ndarray, tol: float = REL_TOL) -> float:
    worst = 0.0
    for s in np.unique(subject):
        r, g = ref[subject == s], got[subject == s]
        big = np.abs(r) > FLOOR * peak[s]
        if big.any():
            worst = max(worst, float(np.max(np.abs(g[big] - r[big]) / np.abs(r[big]))))
        assert np.all(np.abs(g[~big] - r[~big]) <= 1e-10 * peak[s]), s
    assert worst < tol, f"max relative error {worst:.3g}"
    return worst


# ---------------------------------------------------------------------------
# (a) linear elimination against the closed form
# ---------------------------------------------------------------------------
def closed_form(p: dict, n_cmt: int, d: dict) -> np.ndarray:
    n_obs, n_dose = d["obs_subject"].size, d["dose_subject"].size
    m = padded_dose_matrix(d["obs_subject"], d["obs_time"], None, np.ones(n_obs),
                           d["dose_subject"], d["dose_time"], None, np.zeros(n_dose),
                           d["dose_amt"], d["dose_dur"], d["dose_oral"], None, None)
    sub = d["obs_subject"]
    params = {k: np.asarray(v)[sub][:, None] for k, v in p.items()}
    oral = m["oral"] if d["dose_oral"] is not None else None
    return concentration(m["dt"], m["amt"], params, n_cmt=n_cmt, dur=m["dur"], oral=oral)


@pytest.mark.parametrize("n_cmt", [1, 2])
@pytest.mark.parametrize("oral", [False, True])
def test_linear_matches_closed_form(n_cmt: int, oral: bool) -> None:
    rng = np.random.default_rng(10 * n_cmt + oral)
    n_sub = 60
    d = random_design(rng, n_sub, oral=oral)
    p = random_params(rng, n_sub, n_cmt, "linear", oral)
    got = ode_concentration(p, n_cmt=n_cmt, n_subjects=n_sub, **d)
    first = np.array([d["dose_time"][d["dose_subject"] == i].min() for i in range(n_sub)])
    before = d["obs_time"] < first[d["obs_subject"]]
    assert before.any() and np.all(got[before] == 0.0)
    compare(closed_form(p, n_cmt, d), got, d["obs_subject"], peaks(p, d))


def test_time_dependent_with_tda_zero_is_linear() -> None:
    rng = np.random.default_rng(3)
    d = random_design(rng, 20)
    p = random_params(rng, 20, 2, "time-dependent")
    p["TDA"] = np.zeros(20)
    got = ode_concentration(p, n_cmt=2, elimination="time-dependent", n_subjects=20, **d)
    compare(closed_form(p, 2, d), got, d["obs_subject"], peaks(p, d))


def test_observation_order_and_interleaving_are_kept() -> None:
    rng = np.random.default_rng(4)
    d = random_design(rng, 5)
    p = random_params(rng, 5, 2, "michaelis-menten")
    base = ode_concentration(p, n_cmt=2, elimination="michaelis-menten", **d)
    # all observations in time order: subjects interleaved, each subject's times still sorted
    perm = np.argsort(d["obs_time"], kind="stable")
    assert np.any(np.diff(d["obs_subject"][perm]) < 0)
    got = ode_concentration(p, n_cmt=2, elimination="michaelis-menten",
                            **{**d, "obs_subject": d["obs_subject"][perm], "obs_time": d["obs_time"][perm]})
    np.testing.assert_array_equal(got, base[perm])


# ---------------------------------------------------------------------------
# (b) nonlinear elimination against solve_ivp (LSODA), equations written out in tests/_ode_studies.py
# ---------------------------------------------------------------------------
def reference(p: dict, n_cmt: int, elimination: str, obs_t: np.ndarray, d_t, d_amt, d_dur) -> np.ndarray:
    """LSODA on equations written out in ``tests/_ode_studies.py``, constant parameters, IV doses."""
    return reference_concentrations(lambda _t: p, n_cmt, elimination, False, obs_t, d_t, d_amt, d_dur,
                                    np.zeros(len(d_t), bool), ())


@pytest.mark.parametrize("n_cmt", [1, 2])
@pytest.mark.parametrize("elimination", ["michaelis-menten", "linear+michaelis-menten", "time-dependent"])
def test_nonlinear_matches_solve_ivp(n_cmt: int, elimination: str) -> None:
    rng = np.random.default_rng([n_cmt, len(elimination), SEED])
    n_sub = 4
    d = random_design(rng, n_sub)
    p = random_params(rng, n_sub, n_cmt, elimination)
    got = ode_concentration(p, n_cmt=n_cmt, elimination=elimination, n_subjects=n_sub, **d)
    ref = np.empty_like(got)
    for i in range(n_sub):
        o, s = d["obs_subject"] == i, d["dose_subject"] == i
        ref[o] = reference({k: v[i] for k, v in p.items()}, n_cmt, elimination, d["obs_time"][o],
                           d["dose_time"][s], d["dose_amt"][s], d["dose_dur"][s])
    compare(ref, got, d["obs_subject"], peaks(p, d))


# ---------------------------------------------------------------------------
# (c) sensitivities against central finite differences
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_cmt", [1, 2])
@pytest.mark.parametrize("elimination", ["linear", "michaelis-menten", "linear+michaelis-menten", "time-dependent"])
def test_jacobian_matches_finite_differences(n_cmt: int, elimination: str) -> None:
    rng = np.random.default_rng([7, n_cmt, len(elimination), SEED])
    n_sub = 4
    oral = elimination == "linear"
    d = random_design(rng, n_sub, oral=oral)
    p = random_params(rng, n_sub, n_cmt, elimination, oral)
    names = parameter_names(n_cmt, elimination, oral)
    kw = dict(n_cmt=n_cmt, elimination=elimination, n_subjects=n_sub, rtol=1e-12, atol=1e-15, **d)
    c, jac = ode_concentration(p, jacobian=True, **kw)
    assert jac.shape == (c.size, len(names))
    c_plain = ode_concentration(p, **kw)
    compare(c_plain, c, d["obs_subject"], peaks(p, d))  # sensitivities do not spoil the state
    sub, peak = d["obs_subject"], peaks(p, d)
    for j, name in enumerate(names):
        # central differences, Richardson-extrapolated (truncation O(h^4); noise ~ solver error / h)
        h = 1e-4 * np.maximum(np.abs(p[name]), 1e-2)

        def central(step: np.ndarray) -> np.ndarray:
            up = ode_concentration({**p, name: p[name] + step}, **kw)
            dn = ode_concentration({**p, name: p[name] - step}, **kw)
            return (up - dn) / (2 * step[sub])

        fd = (4 * central(h / 2) - central(h)) / 3
        # per subject, relative to the sensitivity's own scale, floored at 1e-3 peak/θ (FD noise
        # is ~ solver error / h, so a sensitivity much smaller than C/θ is only known absolutely)
        for s in range(n_sub):
            m = sub == s
            theta = abs(p[name][s]) if p[name][s] != 0 else 1.0
            scale = max(np.max(np.abs(fd[m])), 1e-3 * peak[s] / theta)
            err = np.max(np.abs(jac[m, j] - fd[m])) / scale
            assert err < 1e-5, (name, s, err)


# ---------------------------------------------------------------------------
# (d) the Michaelis–Menten limit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_cmt", [1, 2])
def test_michaelis_menten_with_large_km_is_linear(n_cmt: int) -> None:
    rng = np.random.default_rng(5 + n_cmt)
    n_sub = 20
    d = random_design(rng, n_sub)
    lin = random_params(rng, n_sub, n_cmt, "linear")
    cmax = np.array([closed_form(lin, n_cmt, d)[d["obs_subject"] == i].max() for i in range(n_sub)])
    km = 1e9 * cmax  # C/KM <= 1e-9: MM elimination = VMAX/KM C (1 - C/KM + ...)
    mm = {"VMAX": lin["CL"] * km, "KM": km, **{k: v for k, v in lin.items() if k != "CL"}}
    got = ode_concentration(mm, n_cmt=n_cmt, elimination="michaelis-menten", n_subjects=n_sub, **d)
    compare(closed_form(lin, n_cmt, d), got, d["obs_subject"], peaks(lin, d))
    # VMAX C/(KM + C) < (VMAX/KM) C: with KM ~ the peak, saturation keeps every concentration
    # above the linear limit's, and clearly above it overall
    sat_km = cmax / 3
    sat = ode_concentration({**mm, "VMAX": lin["CL"] * sat_km, "KM": sat_km}, n_cmt=n_cmt,
                            elimination="michaelis-menten", n_subjects=n_sub, **d)
    assert np.all(sat >= got * (1 - 1e-7) - 1e-10 * cmax[d["obs_subject"]])  # up to the solver's atol
    assert np.sum(sat) > 1.2 * np.sum(got)


# ---------------------------------------------------------------------------
# (e) bad input
# ---------------------------------------------------------------------------
BASE = dict(obs_subject=[0, 0, 0], obs_time=[1.0, 2.0, 5.0], dose_subject=[0, 0], dose_time=[0.0, 3.0],
            dose_amt=[100.0, 100.0], dose_dur=[0.0, 1.0])
P1 = {"CL": 1.0, "V1": 10.0}


def test_negative_parameter_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match=r"parameter V1 of subject 0 is -10.0; valid: a finite value > 0"):
        ode_concentration({"CL": 1.0, "V1": -10.0}, n_cmt=1, **BASE)
    with pytest.raises(ModelSpecError, match=r"TDA .*> -1"):
        ode_concentration({"CL": 1.0, "TDA": -1.5, "KDES": 0.1, "V1": 10.0}, n_cmt=1,
                          elimination="time-dependent", **BASE)
    with pytest.raises(ModelSpecError, match=r"missing \['KM'\]"):
        ode_concentration({"VMAX": 1.0, "V1": 10.0}, n_cmt=1, elimination="michaelis-menten", **BASE)


def test_unsorted_times_are_rejected() -> None:
    with pytest.raises(DatasetError, match=r"obs times of subject 0 are not sorted.*non-decreasing"):
        ode_concentration(P1, n_cmt=1, **{**BASE, "obs_time": [1.0, 5.0, 2.0]})
    with pytest.raises(DatasetError, match=r"dose times of subject 0 are not sorted"):
        ode_concentration(P1, n_cmt=1, **{**BASE, "dose_time": [3.0, 0.0]})


def test_other_bad_input_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match=r"unknown elimination 'mm'; valid: 'linear'"):
        ode_concentration(P1, n_cmt=1, elimination="mm", **BASE)
    with pytest.raises(ModelSpecError, match=r"n_cmt = 1 or 2"):
        ode_concentration(P1, n_cmt=3, **BASE)
    with pytest.raises(DatasetError, match=r"dose_dur must be finite and >= 0"):
        ode_concentration(P1, n_cmt=1, **{**BASE, "dose_dur": [0.0, -1.0]})
    with pytest.raises(DatasetError, match=r"oral dose .* cannot have an infusion duration"):
        ode_concentration({**P1, "KA": 1.0}, n_cmt=1, **{**BASE, "dose_oral": [True, True]})
    with pytest.raises(DatasetError, match=r"obs times must be finite"):
        ode_concentration(P1, n_cmt=1, **{**BASE, "obs_time": [1.0, np.nan, 5.0]})


def test_step_limit_raises_a_clear_error() -> None:
    with pytest.raises(ODESolverError, match=r"max_steps=3 .*stiff"):
        ode_concentration(P1, n_cmt=1, max_steps=3, **BASE)
    # a fast distribution against long intervals (rate x interval ~ 1e4) is still solved
    fast = {"CL": 0.05, "V1": 1.0, "Q": 20.0, "V2": 500.0}
    d = dict(obs_subject=[0, 0], obs_time=[0.5, 400.0], dose_subject=[0], dose_time=[0.0], dose_amt=[100.0])
    got = ode_concentration(fast, n_cmt=2, **d)
    ref = concentration(np.array([[0.5], [400.0]]), np.array([[100.0], [100.0]]), fast, n_cmt=2)
    np.testing.assert_allclose(got, ref, rtol=REL_TOL)
