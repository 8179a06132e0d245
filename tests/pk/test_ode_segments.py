"""Piecewise-constant parameters in the ODE solver (time-varying covariates, occasions).

- concentrations against scipy's solve_ivp (LSODA) on equations written out in tests/_ode_studies.py,
  with the parameters switched at the segment start times, on random designs
  (boluses, infusions, oral doses; changes at, between and before events);
- a one-compartment bolus with CL changing once against its formula;
- offsets of 0 on many segments give the constant-parameter solution;
- the Jacobians (base parameters and per-segment log offsets) against central
  finite differences;
- bad segment input raises errors that say what is valid.
"""

from __future__ import annotations

import numpy as np
import pytest

from _ode_studies import reference_concentrations

from poppk.errors import DatasetError, ModelSpecError
from poppk.pk.ode import ode_design, parameter_names, solve_ode

RTOL = 1e-6


def _design(rng: np.random.Generator, n_sub: int, oral: bool) -> tuple[dict, dict]:
    """A random design and random segments (1-4 per subject, some at event times, some before)."""
    o_sub, o_t, d_sub, d_t, d_amt, d_dur, d_oral, g_sub, g_t = ([] for _ in range(9))
    for i in range(n_sub):
        nd = int(rng.integers(1, 5))
        t = np.sort(rng.uniform(0.0, 80.0, nd))
        t -= t[0]
        kind = rng.integers(0, 3 if oral else 2, nd)
        if oral and i == 0:
            kind[0] = 2
        dur = np.where(kind == 1, rng.uniform(0.5, 10.0, nd), 0.0)
        obs = np.sort(np.concatenate([rng.uniform(0.0, 120.0, int(rng.integers(4, 15))), t[:1]]))
        n_seg = int(rng.integers(1, 5))
        starts = np.sort(rng.uniform(0.0, 110.0, n_seg))
        starts[0] = rng.choice([-np.inf, -1.0, 0.0])
        if n_seg > 2:
            starts[2] = obs[len(obs) // 2]  # a change at an observation time
        starts = np.unique(starts)
        o_sub += [i] * obs.size
        o_t += list(obs)
        d_sub += [i] * nd
        d_t += list(t)
        d_amt += list(rng.uniform(10.0, 500.0, nd))
        d_dur += list(dur)
        d_oral += list(kind == 2)
        g_sub += [i] * starts.size
        g_t += list(starts)
    design = dict(obs_subject=np.array(o_sub), obs_time=np.array(o_t), dose_subject=np.array(d_sub),
                  dose_time=np.array(d_t), dose_amt=np.array(d_amt), dose_dur=np.array(d_dur),
                  dose_oral=np.array(d_oral) if oral else None)
    return design, dict(seg_subject=np.array(g_sub), seg_time=np.array(g_t))


def _params(rng: np.random.Generator, n_sub: int, names: tuple[str, ...]) -> np.ndarray:
    lu = lambda lo, hi: np.exp(rng.uniform(np.log(lo), np.log(hi), n_sub))  # noqa: E731
    p = {"V1": lu(2.0, 30.0), "CL": lu(0.2, 5.0), "Q": lu(0.2, 5.0), "V2": lu(5.0, 60.0),
         "VMAX": lu(5.0, 100.0), "KM": lu(0.5, 20.0), "TDA": lu(0.1, 1.5), "KDES": lu(0.02, 0.3),
         "KA": lu(0.2, 2.0)}
    return np.stack([p[n] for n in names], axis=1)


def _case(seed, n_sub: int, n_cmt: int, elimination: str, oral: bool, varying: tuple, sd: float):
    """A random design with segments, parameters and N(0, sd²) offsets: (d, g, design, names, theta, off)."""
    rng = np.random.default_rng(seed)
    d, g = _design(rng, n_sub, oral)
    design = ode_design(**d, n_subjects=n_sub, **g)
    names = parameter_names(n_cmt, elimination, design.has_oral)
    theta = _params(rng, n_sub, names)
    return d, g, design, names, theta, rng.normal(0.0, sd, (g["seg_time"].size, len(varying)))


CASES = [(1, "linear", False, ("CL",)), (2, "linear", True, ("CL", "V1")), (1, "michaelis-menten", False, ("VMAX",)),
         (2, "linear+michaelis-menten", False, ("CL", "Q", "V2")), (2, "time-dependent", True, ("CL", "KA"))]


@pytest.mark.parametrize("n_cmt, elimination, oral, varying", CASES)
def test_piecewise_parameters_match_solve_ivp(n_cmt: int, elimination: str, oral: bool, varying: tuple) -> None:
    n_sub = 6
    d, g, design, names, theta, off = _case([n_cmt, len(elimination), len(varying)], n_sub, n_cmt, elimination,
                                            oral, varying, 0.4)
    got = solve_ode(design, theta, n_cmt=n_cmt, elimination=elimination, offsets=off, varying=varying)
    d_oral = d["dose_oral"] if oral else np.zeros(d["dose_time"].size, bool)
    for i in range(n_sub):
        o, s, k = d["obs_subject"] == i, d["dose_subject"] == i, np.flatnonzero(g["seg_subject"] == i)
        starts = g["seg_time"][k]

        def p_of_t(t, i=i, k=k, starts=starts):
            seg = max(int(np.searchsorted(starts, t, side="right")) - 1, 0)
            p = dict(zip(names, theta[i]))
            for j, v in enumerate(varying):
                p[v] *= np.exp(off[k[seg], j])
            return p

        ref = reference_concentrations(p_of_t, n_cmt, elimination, design.has_oral, d["obs_time"][o], d["dose_time"][s],
                         d["dose_amt"][s], d["dose_dur"][s], d_oral[s], starts)
        peak = d["dose_amt"][s].max() / theta[i, names.index("V1")]  # the sampled maximum can be far below
        big = np.abs(ref) > 1e-5 * peak
        np.testing.assert_allclose(got[o][big], ref[big], rtol=RTOL)
        assert np.all(np.abs(got[o][~big] - ref[~big]) <= 1e-9 * peak)


def test_one_compartment_bolus_with_clearance_changing_once() -> None:
    cl, v, f, t1, dose = 2.0, 10.0, 1.7, 5.0, 100.0
    t = np.array([1.0, 4.0, 5.0, 7.0, 12.0])
    design = ode_design(np.zeros(5, int), t, [0], [0.0], [dose], seg_subject=[0, 0], seg_time=[-np.inf, t1])
    got = solve_ode(design, [[cl, v]], n_cmt=1, offsets=[[0.0], [np.log(f)]], varying=("CL",), rtol=1e-10)
    k1, k2 = cl / v, f * cl / v
    want = dose / v * np.where(t < t1, np.exp(-k1 * t), np.exp(-k1 * t1 - k2 * (t - t1)))
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_volume_change_keeps_the_amount() -> None:
    """A step in V1 makes the concentration jump (amounts are the state), as in NONMEM."""
    t = np.array([2.0, 3.0 - 1e-9, 3.0, 3.0 + 1e-9])
    design = ode_design(np.zeros(4, int), t, [0], [0.0], [50.0], seg_subject=[0, 0], seg_time=[0.0, 3.0])
    got = solve_ode(design, [[1.0, 10.0]], n_cmt=1, offsets=[[0.0], [np.log(2.0)]], varying=("V1",), rtol=1e-10)
    assert got[2] == pytest.approx(got[1] / 2.0, rel=1e-6)
    assert got[3] == pytest.approx(got[2], rel=1e-6)


@pytest.mark.parametrize("n_cmt, elimination, oral, varying", CASES[:1] + CASES[3:])
def test_zero_offsets_are_constant_parameters(n_cmt, elimination, oral, varying) -> None:
    rng = np.random.default_rng(7)
    d, g = _design(rng, 5, oral)
    plain = ode_design(**d, n_subjects=5)
    seg = ode_design(**d, n_subjects=5, **g)
    names = parameter_names(n_cmt, elimination, plain.has_oral)
    theta = _params(rng, 5, names)
    want = solve_ode(plain, theta, n_cmt=n_cmt, elimination=elimination, rtol=1e-10)
    got = solve_ode(seg, theta, n_cmt=n_cmt, elimination=elimination, rtol=1e-10,
                    offsets=np.zeros((g["seg_time"].size, len(varying))), varying=varying)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12 * want.max())


@pytest.mark.parametrize("n_cmt, elimination, oral, varying", CASES)
def test_jacobians_match_finite_differences(n_cmt, elimination, oral, varying) -> None:
    n_sub = 3
    d, g, design, names, theta, off = _case([11, n_cmt, len(varying)], n_sub, n_cmt, elimination, oral, varying,
                                            0.3)
    kw = dict(n_cmt=n_cmt, elimination=elimination, rtol=1e-11, atol=1e-14, varying=varying)
    conc, jac, jseg = solve_ode(design, theta, jacobian=True, offsets=off, **kw)
    scale = np.abs(conc).max()
    sub = d["obs_subject"]
    for j in range(len(names)):
        e = np.zeros_like(theta)
        e[:, j] = 1e-5 * theta[:, j]
        fd = (solve_ode(design, theta + e, offsets=off, **kw) - solve_ode(design, theta - e, offsets=off, **kw))
        np.testing.assert_allclose(jac[:, j] * e[sub, j] * 2, fd, atol=2e-7 * scale)
    # offsets: the observation's row s is its subject's s-th segment in time order
    order = np.lexsort((g["seg_time"], g["seg_subject"]))
    for pos, k in enumerate(order):
        i = g["seg_subject"][k]
        s = pos - int(np.searchsorted(g["seg_subject"][order], i))
        for jj in range(len(varying)):
            e = np.zeros_like(off)
            e[k, jj] = 1e-5
            fd = (solve_ode(design, theta, offsets=off + e, **kw) - solve_ode(design, theta, offsets=off - e, **kw))
            np.testing.assert_allclose(np.where(sub == i, jseg[:, s, jj], 0.0) * 2e-5, fd, atol=2e-7 * scale)


def test_bad_segments_are_refused() -> None:
    base = dict(obs_subject=[0, 1], obs_time=[1.0, 1.0], dose_subject=[0, 1], dose_time=[0.0, 0.0],
                dose_amt=[1.0, 1.0])
    with pytest.raises(DatasetError, match="subject 1 has no parameter segment"):
        ode_design(**base, seg_subject=[0], seg_time=[0.0])
    with pytest.raises(DatasetError, match="same time"):
        ode_design(**base, seg_subject=[0, 0, 1], seg_time=[0.0, 0.0, 0.0])
    with pytest.raises(DatasetError, match="finite or -inf"):
        ode_design(**base, seg_subject=[0, 1], seg_time=[np.nan, 0.0])
    design = ode_design(**base, seg_subject=[0, 1, 1], seg_time=[0.0, 0.0, 0.5])
    with pytest.raises(ModelSpecError, match=r"shape \(n_segments, n_varying\) = \(3, 1\)"):
        solve_ode(design, [[1.0, 1.0], [1.0, 1.0]], n_cmt=1, offsets=np.zeros((2, 1)), varying=("CL",))
    with pytest.raises(ModelSpecError, match="not parameters of this model"):
        solve_ode(design, [[1.0, 1.0], [1.0, 1.0]], n_cmt=1, offsets=np.zeros((3, 1)), varying=("KA",))
    with pytest.raises(ModelSpecError, match="need offsets"):
        solve_ode(design, [[1.0, 1.0], [1.0, 1.0]], n_cmt=1, varying=("CL",))
