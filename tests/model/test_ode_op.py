"""The ODE solver's PyTensor Op (poppk.model.ode_op): values, gradient, NUMBA mode, failures."""

from __future__ import annotations

import pickle

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from poppk.errors import ModelSpecError
from poppk.model.ode_op import OdeConcentration, ode_concentration_op
from poppk.pk.ode import ode_design, parameter_names, solve_ode

# two subjects, interleaved rows, boluses, infusions (one overlapping) and an oral dose
OBS = dict(obs_subject=[0, 1, 0, 1, 0, 1, 0], obs_time=[0.5, 1.0, 2.0, 3.0, 5.0, 30.0, 40.0])
DOSES = dict(dose_subject=[0, 1, 0, 1], dose_time=[0.0, 0.5, 4.0, 2.0], dose_amt=[100.0, 50.0, 100.0, 80.0],
             dose_dur=[0.0, 1.0, 2.0, 10.0])
VALUES = {"CL": [2.0, 3.0], "V1": [10.0, 15.0], "Q": [2.0, 1.0], "V2": [20.0, 30.0], "VMAX": [5.0, 8.0],
          "KM": [1.0, 3.0], "TDA": [0.8, -0.4], "KDES": [0.1, 0.05], "KA": [1.2, 0.7]}
CASES = [(n, e) for n in (1, 2) for e in ("linear", "michaelis-menten", "linear+michaelis-menten", "time-dependent")]


def setup(n_cmt: int, elimination: str, oral: bool = False):
    design = ode_design(**OBS, **DOSES, dose_oral=[True, False, False, False] if oral else None)
    names = parameter_names(n_cmt, elimination, oral)
    theta = np.array([VALUES[k] for k in names]).T
    return design, theta


@pytest.mark.parametrize("n_cmt,elimination", CASES)
def test_verify_grad(n_cmt: int, elimination: str) -> None:
    design, theta = setup(n_cmt, elimination)
    verify_grad(lambda t: ode_concentration_op(t, design, n_cmt=n_cmt, elimination=elimination,
                                               rtol=1e-11, atol=1e-15),
                [theta], rng=np.random.default_rng(0), eps=1e-6, rel_tol=1e-5, abs_tol=1e-8)


def test_verify_grad_oral() -> None:
    design, theta = setup(2, "linear", oral=True)
    assert design.has_oral and theta.shape == (2, 5)
    verify_grad(lambda t: ode_concentration_op(t, design, n_cmt=2, rtol=1e-11, atol=1e-15),
                [theta], rng=np.random.default_rng(1), eps=1e-6, rel_tol=1e-5, abs_tol=1e-8)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_values_and_gradient_match_the_solver(mode: str) -> None:
    design, theta = setup(2, "time-dependent")
    th = pt.dmatrix("th")
    w = np.linspace(-1.0, 2.0, design.n_obs)
    conc = ode_concentration_op(th, design, n_cmt=2, elimination="time-dependent")
    f = pytensor.function([th], [conc, pytensor.grad(pt.dot(w, conc), th)], mode=mode)
    c, g = f(theta)
    ref, jac = solve_ode(design, theta, n_cmt=2, elimination="time-dependent", jacobian=True)
    np.testing.assert_allclose(c, ref, rtol=1e-12)
    sub = np.asarray(OBS["obs_subject"])
    expected = np.stack([(w[:, None] * jac)[sub == i].sum(axis=0) for i in range(2)])
    np.testing.assert_allclose(g, expected, rtol=1e-10)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_a_failed_subject_gives_nan_not_an_exception(mode: str) -> None:
    design, theta = setup(1, "michaelis-menten")
    th = pt.dmatrix("th")
    f = pytensor.function([th], ode_concentration_op(th, design, n_cmt=1, elimination="michaelis-menten"),
                          mode=mode)
    bad = theta.copy()
    bad[1, 1] = -1.0  # KM < 0 for subject 1
    c = f(bad)
    sub = np.asarray(OBS["obs_subject"])
    assert np.all(np.isnan(c[sub == 1])) and np.all(np.isfinite(c[sub == 0]))
    np.testing.assert_allclose(c[sub == 0], f(theta)[sub == 0])
    g = pytensor.function([th], ode_concentration_op(th, design, n_cmt=1, elimination="michaelis-menten",
                                                     max_steps=2), mode=mode)
    assert np.all(np.isnan(g(theta)))  # step limit


def test_op_is_picklable_and_validates() -> None:
    op = OdeConcentration(2, "michaelis-menten", rtol=1e-7)
    assert pickle.loads(pickle.dumps(op)) == op
    assert op != OdeConcentration(2, "michaelis-menten", rtol=1e-8)
    with pytest.raises(ModelSpecError, match="unknown elimination"):
        OdeConcentration(2, "saturable")
    with pytest.raises(ModelSpecError, match="n_cmt = 1 or 2"):
        OdeConcentration(3)


# segments given out of time order and interleaved between subjects (the caller's order is kept)
SEGMENTS = dict(seg_subject=[1, 0, 0, 1, 0], seg_time=[2.5, 3.0, -np.inf, 0.0, 20.0])


def test_verify_grad_with_time_varying_parameters() -> None:
    design = ode_design(**OBS, **DOSES, **SEGMENTS)
    names = parameter_names(2, "michaelis-menten")
    theta = np.array([VALUES[k] for k in names]).T
    off = np.random.default_rng(2).normal(0.0, 0.3, (5, 2))
    verify_grad(lambda t, o: ode_concentration_op(t, design, n_cmt=2, elimination="michaelis-menten", rtol=1e-11,
                                                  atol=1e-15, offsets=o, varying=("VMAX", "V1")),
                [theta, off], rng=np.random.default_rng(3), eps=1e-6, rel_tol=1e-5, abs_tol=1e-8)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
def test_time_varying_values_and_gradient_match_the_solver(mode: str) -> None:
    design = ode_design(**OBS, **DOSES, **SEGMENTS)
    names = parameter_names(2, "linear")
    theta = np.array([VALUES[k] for k in names]).T
    off_value = np.random.default_rng(4).normal(0.0, 0.3, (5, 2))
    th, off = pt.dmatrix("th"), pt.dmatrix("off")
    w = np.linspace(-1.0, 2.0, design.n_obs)
    conc = ode_concentration_op(th, design, n_cmt=2, offsets=off, varying=("CL", "V2"))
    f = pytensor.function([th, off], [conc, *pytensor.grad(pt.dot(w, conc), [th, off])], mode=mode)
    c, g_th, g_off = f(theta, off_value)
    ref, jac, jseg = solve_ode(design, theta, n_cmt=2, jacobian=True, offsets=off_value, varying=("CL", "V2"))
    np.testing.assert_allclose(c, ref, rtol=1e-12)
    sub = np.asarray(OBS["obs_subject"])
    np.testing.assert_allclose(g_th, np.stack([(w[:, None] * jac)[sub == i].sum(axis=0) for i in range(2)]),
                               rtol=1e-10)
    # caller's segment k -> (subject, position in time order)
    seg_sub = np.array(SEGMENTS["seg_subject"])
    seg_t = np.where(np.isfinite(SEGMENTS["seg_time"]), SEGMENTS["seg_time"], -1e300)
    for k in range(5):
        i = seg_sub[k]
        s = int((seg_t[seg_sub == i] < seg_t[k]).sum())
        np.testing.assert_allclose(g_off[k], (w[:, None] * jseg[:, s, :])[sub == i].sum(axis=0), rtol=1e-10)
