"""The O(n) modal recursion must equal dense superposition (itself checked against an ODE)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from poppk.pk import concentration, padded_dose_matrix
from poppk.pk.recursion import concentration_recursive, recursion_plan


def random_design(rng, n_sub=6, ss=False, resets=False, same_time=True):
    obs_s, obs_t, obs_seg, obs_o = [], [], [], []
    d_s, d_t, d_seg, d_o, d_amt, d_dur, d_ss, d_ii = [], [], [], [], [], [], [], []
    order = 0
    for s in range(n_sub):
        n_d = rng.integers(1, 6)
        times = np.cumsum(rng.uniform(2, 30, n_d))
        seg = np.zeros(n_d, int)
        if resets and n_d > 2:
            seg[n_d // 2:] = 1
        for k, t in enumerate(times):
            order += 1
            d_s.append(s); d_t.append(t); d_seg.append(seg[k]); d_o.append(order)
            d_amt.append(rng.uniform(10, 200)); d_dur.append(rng.choice([0.0, 0.5, 2.0]))
            d_ss.append(int(ss and k == 0)); d_ii.append(24.0)
        ot = np.sort(np.concatenate([rng.uniform(0, times[-1] + 50, 12), times[:2] if same_time else []]))
        for t in ot:
            order += 1
            obs_s.append(s); obs_t.append(t); obs_o.append(order)
            obs_seg.append(int(resets and n_d > 2 and t >= times[n_d // 2]))
    args = [np.array(a) for a in (obs_s, obs_t, obs_seg, obs_o, d_s, d_t, d_seg, d_o, d_amt, d_dur)]
    mat = padded_dose_matrix(*args, np.zeros(len(d_s), bool), np.array(d_ss), np.array(d_ii))
    return np.array(obs_s), mat, np.array(d_s), np.array(d_t)


def dense(mat, obs_s, params, n_cmt):
    p = {k: v[..., obs_s][..., None] for k, v in params.items()}
    return concentration(mat["dt"], mat["amt"], p, n_cmt=n_cmt, dur=mat["dur"],
                         ss=mat["ss"] if mat["ss"].any() else None, ii=mat["ii"])


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
@pytest.mark.parametrize("ss, resets", [(False, False), (True, False), (False, True)])
def test_recursion_equals_dense(n_cmt, ss, resets):
    rng = np.random.default_rng(n_cmt * 10 + ss + 2 * resets)
    obs_s, mat, d_s, d_t = random_design(rng, ss=ss, resets=resets)
    n = obs_s.max() + 1
    params = {"CL": rng.uniform(0.5, 5, n), "V1": rng.uniform(5, 50, n), "Q": rng.uniform(0.5, 10, n),
              "V2": rng.uniform(5, 100, n), "Q3": rng.uniform(0.1, 2, n), "V3": rng.uniform(50, 300, n)}
    plan = recursion_plan(obs_s, mat, d_s, d_t, n)
    assert plan is not None
    fast = concentration_recursive(plan, params, n_cmt=n_cmt)
    ref = dense(mat, obs_s, params, n_cmt)
    np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-12 * ref.max())


def test_recursion_with_draw_dimension_and_pytensor_gradient():
    rng = np.random.default_rng(5)
    obs_s, mat, d_s, d_t = random_design(rng)
    n = obs_s.max() + 1
    params = {"CL": rng.uniform(0.5, 5, (3, n)), "V1": rng.uniform(5, 50, (3, n))}
    plan = recursion_plan(obs_s, mat, d_s, d_t, n)
    fast = concentration_recursive(plan, params, n_cmt=1)
    assert fast.shape == (3, len(obs_s))
    np.testing.assert_allclose(fast, dense(mat, obs_s, params, 1), rtol=1e-10)
    x = pt.dmatrix("x")
    out = concentration_recursive(plan, {"CL": pt.exp(x[:, 0]), "V1": pt.exp(x[:, 1])}, n_cmt=1)
    f = pytensor.function([x], [out, pytensor.grad(pt.log(out + 1e-3).sum(), x)])
    xv = np.log(np.column_stack([params["CL"][0], params["V1"][0]]))
    val, grad = f(xv)
    np.testing.assert_allclose(val, fast[0], rtol=1e-10)
    assert np.isfinite(grad).all()
    # finite-difference check of one gradient entry
    h = 1e-6
    xp_ = xv.copy(); xp_[0, 0] += h
    num = (np.log(f(xp_)[0] + 1e-3).sum() - np.log(val + 1e-3).sum()) / h
    assert grad[0, 0] == pytest.approx(num, rel=1e-4)


def test_oral_designs_fall_back_to_dense():
    mat = padded_dose_matrix([0], [5.0], None, [2], [0], [0.0], None, [1], [100.0], [0.0], [True], [0], [0.0])
    assert recursion_plan(np.array([0]), mat, np.array([0]), np.array([0.0]), 1) is None
