"""Numerical properties of poppk.pk: stability, superposition, steady state,
macro constants, broadcasting and input validation (NumPy backend)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from poppk.errors import DatasetError, ModelSpecError
from poppk.pk import (
    PARAMETERS,
    concentration,
    disposition,
    half_lives,
    micro_constants,
    required_parameters,
)
from poppk.pk.kernel import dexp, phi

P1 = {"CL": 2.0, "V1": 20.0}
P2 = {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 50.0}
P3 = {"CL": 5.0, "V1": 10.0, "Q": 2.0, "V2": 30.0, "Q3": 0.5, "V3": 40.0}
PS = {1: P1, 2: P2, 3: P3}

STRICT = dict(divide="raise", invalid="raise", over="raise")


def system_matrix(p: dict, n_cmt: int) -> np.ndarray:
    """Rate matrix for [central, periph2, periph3] amounts (independent of poppk)."""
    q = p.get("Q", 0.0) if n_cmt >= 2 else 0.0
    q3 = p.get("Q3", 0.0) if n_cmt >= 3 else 0.0
    v1, v2, v3 = p["V1"], p.get("V2", 1.0), p.get("V3", 1.0)
    return np.array([
        [-(p["CL"] + q + q3) / v1, q / v2, q3 / v3],
        [q / v1, -q / v2, 0.0],
        [q3 / v1, 0.0, -q3 / v3],
    ])


def impulse_expm(p: dict, n_cmt: int, t: np.ndarray) -> np.ndarray:
    m = system_matrix(p, n_cmt)
    return np.array([expm(m * ti)[0, 0] for ti in t]) / p["V1"]


def log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


# ---------------------------------------------------------------------------
# special functions
# ---------------------------------------------------------------------------
def test_dexp_matches_direct_formula_and_is_continuous():
    x = np.array([0.0, 0.3, 2.0, 10.0, 300.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    d = np.array([0.5, -0.2, 3.0, 40.0, -250.0, 0.999999, 1.0, 1.000001, -0.999999, -1.0, 0.1])
    y = x + d
    ref = (np.exp(-x) - np.exp(-y)) / (y - x)
    np.testing.assert_allclose(dexp(x, y), ref, rtol=1e-12)
    # across the branch switch at |y - x| = 1
    eps = np.array([-1e-12, 0.0, 1e-12])
    y = 3.0 + eps
    vals = dexp(2.0, y)
    np.testing.assert_allclose(vals, (np.exp(-2.0) - np.exp(-y)) / (y - 2.0), rtol=2e-15)


def test_dexp_at_and_near_the_tie():
    x = np.array([0.0, 1e-300, 1e-8, 0.7, 25.0, 700.0])
    np.testing.assert_allclose(dexp(x, x), np.exp(-x), rtol=1e-15)
    for rel in (1e-16, 1e-12, 1e-8, 1e-4):
        y = x * (1 + rel) + 1e-300
        d = y - x
        ds = np.where(d > 1e-6, d, 1.0)
        ref = np.exp(-x) * np.where(d > 1e-6, -np.expm1(-ds) / ds, 1 - d / 2 + d * d / 6)
        # exp(-x) itself has condition number x (700 here)
        got = dexp(x, y)
        assert np.all(np.abs(got - ref) <= 2e-16 * (4 + x) * ref), (rel, got / ref - 1)


def test_phi():
    x = np.array([0.0, 1e-20, 1e-9, 1e-4, 0.5, 1.0, 1.5, 40.0, 1e4, 1e300])
    with np.errstate(**STRICT):
        got = phi(x)
    xs = np.where(x > 1e-6, x, 1.0)
    xt = np.where(x > 1e-6, 0.0, x)
    ref = np.where(x > 1e-6, -np.expm1(-xs) / xs, 1 - xt / 2 + xt * xt / 6)
    np.testing.assert_allclose(got, ref, rtol=1e-14)


# ---------------------------------------------------------------------------
# macro constants
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_cmt", [1, 2, 3])
def test_disposition_matches_matrix_exponential_random(n_cmt):
    rng = np.random.default_rng(n_cmt)
    t = np.array([0.0, 0.01, 0.3, 2.0, 10.0, 50.0, 300.0])
    worst = 0.0
    for _ in range(40):
        p = {"CL": log_uniform(rng, 0.05, 50), "V1": log_uniform(rng, 1, 500),
             "Q": log_uniform(rng, 0.05, 50), "V2": log_uniform(rng, 1, 500),
             "Q3": log_uniform(rng, 0.05, 50), "V3": log_uniform(rng, 1, 500)}
        lam, c = disposition(p, n_cmt)
        lam = np.array([float(v) for v in lam])
        c = np.array([float(v) for v in c])
        assert np.all(lam > 0) and np.all(np.diff(lam) <= 0)
        np.testing.assert_allclose(c.sum(), 1 / p["V1"], rtol=1e-10)
        ours = (c[:, None] * np.exp(-lam[:, None] * t)).sum(0)
        ref = impulse_expm(p, n_cmt, t)
        keep = ref > 1e-12 * ref[0]
        err = np.max(np.abs(ours - ref)[keep] / ref[keep])
        worst = max(worst, err)
        # eigenvalues against numpy's
        eig = np.sort(-np.linalg.eigvals(system_matrix(p, n_cmt)[:n_cmt, :n_cmt]).real)[::-1]
        np.testing.assert_allclose(lam, eig, rtol=1e-9)
    assert worst < 1e-10, worst


def test_two_cmt_small_terminal_rate_is_accurate():
    # lambda2 / lambda1 ~ 1e-8: the smaller root must keep full relative accuracy
    p = {"CL": 1e-3, "V1": 1.0, "Q": 100.0, "V2": 1.0}
    lam, c = disposition(p, 2)
    k10, k12, k21 = 1e-3, 100.0, 100.0
    # exact: lambda1 * lambda2 = k10 k21, lambda1 + lambda2 = k10 + k12 + k21
    assert abs(float(lam[0] * lam[1]) / (k10 * k21) - 1) < 1e-15
    assert abs(float(lam[0] + lam[1]) / (k10 + k12 + k21) - 1) < 1e-15
    t = np.array([1.0, 1e3, 1e4])
    ours = float(c[0]) * np.exp(-float(lam[0]) * t) + float(c[1]) * np.exp(-float(lam[1]) * t)
    # the expm reference itself loses ~1e-10 at t = 1e4 on this stiff system (seen 1.3e-10 on one machine)
    np.testing.assert_allclose(ours, impulse_expm(p, 2, t), rtol=5e-10)


@pytest.mark.parametrize("q", [1e-3, 1e-6, 1e-9])
def test_two_cmt_nearly_equal_eigenvalues(q):
    # k10 == k21 and a tiny k12: eigenvalues nearly coincide
    p = {"CL": 1.0, "V1": 100.0, "Q": q, "V2": q / 0.01}
    lam, c = disposition(p, 2)
    c = np.array([float(v) for v in c])
    assert np.all(np.abs(c) * p["V1"] <= 1.5)
    assert float(lam[0]) != float(lam[1])
    t = np.array([0.0, 1.0, 50.0, 400.0])
    ours = (c[:, None] * np.exp(-np.array([float(v) for v in lam])[:, None] * t)).sum(0)
    np.testing.assert_allclose(ours, impulse_expm(p, 2, t), rtol=1e-10)
    dt = np.array([[1.0], [50.0], [400.0]])
    conc = concentration(dt, np.full_like(dt, 100.0), {**p, "KA": 0.01}, n_cmt=2,
                         oral=np.ones_like(dt, bool))
    assert np.all(np.isfinite(conc)) and np.all(conc > 0)


def test_three_cmt_with_equal_peripheral_rates():
    # k21 == k31: one eigenvalue equals k21 and has a zero coefficient
    p = {"CL": 3.0, "V1": 10.0, "Q": 2.0, "V2": 20.0, "Q3": 4.0, "V3": 40.0}
    lam, c = disposition(p, 3)
    t = np.array([0.0, 0.5, 5.0, 50.0])
    ours = sum(float(ci) * np.exp(-float(li) * t) for li, ci in zip(lam, c))
    np.testing.assert_allclose(ours, impulse_expm(p, 3, t), rtol=1e-10)


def test_micro_constants_half_lives_and_alias():
    mc = micro_constants(P3, 3)
    assert {k: float(v) for k, v in mc.items()} == pytest.approx(
        {"V1": 10.0, "k10": 0.5, "k12": 0.2, "k21": 2 / 30, "k13": 0.05, "k31": 0.5 / 40}
    )
    hl = half_lives({"CL": 1.0, "V": 10.0}, 1)
    assert float(hl[0]) == pytest.approx(10 * np.log(2))
    lam, _ = disposition(P2, 2)
    assert [float(h) for h in half_lives(P2, 2)] == pytest.approx(
        [np.log(2) / float(v) for v in lam]
    )
    a = concentration(np.array([[3.0]]), np.array([[10.0]]), {"CL": 1.0, "V": 4.0}, n_cmt=1)
    b = concentration(np.array([[3.0]]), np.array([[10.0]]), {"CL": 1.0, "V1": 4.0}, n_cmt=1)
    assert a == b
    assert required_parameters(3, oral=True) == PARAMETERS[3] + ("KA",)


def test_parameter_errors():
    with pytest.raises(ModelSpecError, match="needs parameter 'Q'"):
        disposition({"CL": 1.0, "V1": 2.0}, 2)
    with pytest.raises(ModelSpecError, match="n_cmt"):
        disposition(P3, 4)
    with pytest.raises(ModelSpecError, match="KA"):
        concentration(np.ones((1, 1)), np.ones((1, 1)), P1, n_cmt=1, oral=np.ones((1, 1), bool))


# ---------------------------------------------------------------------------
# kernel: superposition, padding, limits
# ---------------------------------------------------------------------------
def _regimen():
    dt = np.array([[5.0, 1.0, -2.0], [0.0, -5.0, -9.0], [30.0, 26.0, 22.0], [0.5, 0.0, -3.0]])
    amt = np.array([[100.0, 50.0, 70.0]] * 4)
    dur = np.array([[0.0, 2.0, 0.0]] * 4)
    oral = np.array([[False, False, True]] * 4)
    return dt, amt, dur, oral


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
def test_superposition_and_padding(n_cmt):
    p = {**PS[n_cmt], "KA": 0.8, "F1": 0.7, "ALAG1": 0.25}
    dt, amt, dur, oral = _regimen()
    total = concentration(dt, amt, p, n_cmt=n_cmt, dur=dur, oral=oral)
    parts = sum(
        concentration(dt[:, [k]], amt[:, [k]], p, n_cmt=n_cmt, dur=dur[:, [k]], oral=oral[:, [k]])
        for k in range(3)
    )
    np.testing.assert_allclose(total, parts, rtol=1e-14)
    # padding columns (amt 0, dt 0, dur 0, ii 1) change nothing, bit for bit
    pad = lambda a, v: np.concatenate([a, np.full((4, 2), v, dtype=a.dtype)], axis=1)  # noqa: E731
    padded = concentration(pad(dt, 0.0), pad(amt, 0.0), p, n_cmt=n_cmt, dur=pad(dur, 0.0),
                           oral=pad(oral, False), ss=pad(np.zeros((4, 3), bool), False),
                           ii=pad(np.ones((4, 3)), 1.0))
    np.testing.assert_array_equal(padded, total)
    # padded oral entries, too
    padded2 = concentration(pad(dt, 0.0), pad(amt, 0.0), p, n_cmt=n_cmt, dur=pad(dur, 0.0),
                            oral=pad(oral, True))
    np.testing.assert_array_equal(padded2, total)
    # doses after the observation contribute exactly 0
    assert concentration(np.array([[-1e-12, -5.0]]), np.array([[100.0, 1.0]]), p, n_cmt=n_cmt,
                         dur=np.array([[1.0, 0.0]]), oral=np.array([[False, True]]))[0] == 0.0
    # amount linearity
    np.testing.assert_allclose(
        concentration(dt, 3 * amt, p, n_cmt=n_cmt, dur=dur, oral=oral), 3 * total, rtol=1e-14
    )


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
def test_bolus_at_dt_zero_and_infusion_limits(n_cmt):
    p = PS[n_cmt]
    lam, c = disposition(p, n_cmt)
    # bolus at dt = 0 gives A / V1; an infusion at dt = 0 gives 0
    assert concentration(np.array([[0.0]]), np.array([[50.0]]), p, n_cmt=n_cmt)[0] == pytest.approx(
        50.0 / p["V1"], rel=1e-14)
    assert concentration(np.array([[0.0]]), np.array([[50.0]]), p, n_cmt=n_cmt,
                         dur=np.array([[3.0]]))[0] == 0.0
    dt = np.array([[0.3], [2.0], [10.0]])
    bolus = concentration(dt, np.full_like(dt, 50.0), p, n_cmt=n_cmt)
    short = concentration(dt, np.full_like(dt, 50.0), p, n_cmt=n_cmt, dur=np.full_like(dt, 1e-9))
    np.testing.assert_allclose(short, bolus, rtol=1e-8)
    # explicit infusion formulas, during and after
    T = 4.0
    for t in (1.5, 4.0, 9.0):
        got = concentration(np.array([[t]]), np.array([[80.0]]), p, n_cmt=n_cmt, dur=np.array([[T]]))[0]
        ref = 0.0
        for li, ci in zip(lam, c):
            li, ci = float(li), float(ci)
            if t <= T:
                ref += 80.0 / T * ci * (1 - np.exp(-li * t)) / li
            else:
                ref += 80.0 / T * ci * (1 - np.exp(-li * T)) / li * np.exp(-li * (t - T))
        assert got == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
def test_oral_continuous_in_ka_through_lambda(n_cmt):
    p = dict(PS[n_cmt])
    lam, c = disposition(p, n_cmt)
    dt = np.array([[0.5], [3.0], [20.0], [150.0]])
    amt = np.full_like(dt, 100.0)
    oral = np.ones_like(dt, bool)
    for li in lam:
        li = float(li)
        at = concentration(dt, amt, {**p, "KA": li}, n_cmt=n_cmt, oral=oral)
        for rel in (1e-15, 1e-12, 1e-9, 1e-6):
            near = concentration(dt, amt, {**p, "KA": li * (1 + rel)}, n_cmt=n_cmt, oral=oral)
            # d conc / d KA is bounded; the change must be O(rel)
            np.testing.assert_allclose(near, at, rtol=50 * rel + 1e-14)
        # and against the matrix exponential with a depot compartment
        m = np.zeros((4, 4))
        m[1:, 1:] = system_matrix(p, n_cmt)
        m[0, 0], m[1, 0] = -li, li
        ref = np.array([expm(m * t)[1, 0] for t in dt[:, 0]]) * 100.0 / p["V1"]
        np.testing.assert_allclose(at, ref, rtol=1e-10)


def test_matches_matrix_exponential_for_mixed_doses():
    """Tighter than the ODE check: kernel vs expm for all dose kinds."""
    p = {**P3, "KA": 0.9, "F1": 0.6, "ALAG1": 0.4}
    m = np.zeros((5, 5))
    m[1:4, 1:4] = system_matrix(p, 3)
    m[0, 0], m[1, 0] = -p["KA"], p["KA"]
    m[1, 4] = 1.0  # state 4 is a constant unit infusion input
    times = np.array([0.0, 0.2, 0.4, 1.0, 2.5, 7.0, 24.0, 100.0])

    def ref_one(kind, t, A, T=0.0):
        if kind == "bolus":
            return expm(m * t)[1, 1] * A if t >= 0 else 0.0
        if kind == "oral":
            s = t - p["ALAG1"]
            return expm(m * s)[1, 0] * A * p["F1"] if s >= 0 else 0.0
        if t < 0:
            return 0.0
        mm = min(t, T)
        y = expm(m * mm)[:, 4] * A / T
        y[4] = 0.0  # infusion over
        return (expm(m * (t - mm)) @ y)[1]

    doses = [("bolus", 0.0, 100.0, 0.0), ("inf", 0.7, 60.0, 2.0), ("oral", 1.1, 200.0, 0.0)]
    ref = np.array([sum(ref_one(k, t - t0, A, T) for k, t0, A, T in doses) for t in times]) / p["V1"]
    dt = times[:, None] - np.array([d[1] for d in doses])[None, :]
    got = concentration(dt, np.array([[d[2] for d in doses]]), p, n_cmt=3,
                        dur=np.array([[d[3] for d in doses]]),
                        oral=np.array([[d[0] == "oral" for d in doses]]))
    keep = ref > 0
    np.testing.assert_allclose(got[keep], ref[keep], rtol=1e-10)


def test_broadcasting_layout_for_simulation():
    rng = np.random.default_rng(0)
    n_pat = 7
    params = {k: v * np.exp(rng.normal(0, 0.3, (n_pat, 1, 1))) for k, v in P2.items()}
    params["KA"] = 1.3 * np.exp(rng.normal(0, 0.3, (n_pat, 1, 1)))
    dose_t = np.array([0.0, 12.0, 24.0, 36.0])
    t = np.linspace(0, 60, 31)
    dt = (t[:, None] - dose_t[None, :])[None]
    amt = np.full((1, 1, 4), 100.0)
    oral = np.array([[[True, True, False, True]]])
    dur = np.array([[[0.0, 0.0, 1.5, 0.0]]])
    got = concentration(dt, amt, params, n_cmt=2, dur=dur, oral=oral)
    assert got.shape == (n_pat, 31)
    for i in range(n_pat):
        pi = {k: float(v[i, 0, 0]) for k, v in params.items()}
        np.testing.assert_allclose(got[i], concentration(dt[0], amt[0], pi, n_cmt=2, dur=dur[0],
                                                         oral=oral[0]), rtol=1e-15)
    # dose_axis other than the last
    alt = concentration(np.moveaxis(dt, -1, 0), np.moveaxis(amt, -1, 0),
                        {k: np.moveaxis(v, -1, 0) for k, v in params.items()}, n_cmt=2,
                        dur=np.moveaxis(dur, -1, 0), oral=np.moveaxis(oral, -1, 0), dose_axis=0)
    np.testing.assert_allclose(alt, got, rtol=1e-15)


def test_no_floating_point_warnings_on_extreme_inputs():
    dt = np.array([[0.0, 1e-300, 1e-9, 5.0, 1e4, 1e6, -1e6, 0.0]])
    amt = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    dur = np.array([[0.0, 1e-300, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    oral = np.array([[False, False, False, True, True, True, True, True]])
    ss = np.array([[False, True, True, True, False, True, True, False]])
    ii = np.array([[0.0, 1.0, 24.0, 1e-3, 0.0, 24.0, 12.0, 1.0]])
    with np.errstate(**STRICT):
        for p in ({"CL": 1e4, "V1": 1.0, "KA": 1e-4}, {"CL": 1e-6, "V1": 1e3, "KA": 1e3},
                  {"CL": 0.1, "V1": 1.0, "KA": 0.1}):
            for n in (1, 2, 3):
                q = {**p, "Q": 1.0, "V2": 10.0, "Q3": 0.01, "V3": 100.0}
                c = concentration(dt, amt, q, n_cmt=n, dur=dur, oral=oral, ss=ss, ii=ii)
                assert np.all(np.isfinite(c)) and np.all(c >= 0)


# ---------------------------------------------------------------------------
# steady state against superposition of many single doses (kernel, cheap)
# ---------------------------------------------------------------------------
SS_SUPERPOSITION = [
    (1, {**P1}, False, 0.0, 12.0, 0.0),
    (2, {**P2}, False, 2.0, 12.0, 0.0),
    (2, {**P2}, False, 12.0, 12.0, 0.0),  # T == tau: continuous infusion
    (3, {**P3}, False, 0.5, 6.0, 0.0),
    (1, {**P1, "KA": 0.1}, True, 0.0, 12.0, 0.0),           # KA == lambda exactly
    (1, {**P1, "KA": 0.1 * (1 + 1e-7)}, True, 0.0, 12.0, 0.0),
    (2, {**P2, "KA": 0.7, "F1": 0.5}, True, 0.0, 8.0, 1.0),
    (2, {**P2, "KA": 0.05}, True, 0.0, 3.0, 7.5),          # lag longer than tau
    (3, {**P3, "KA": 3.0}, True, 0.0, 24.0, 0.3),
]


@pytest.mark.parametrize("n_cmt,p,is_oral,T,tau,lag", SS_SUPERPOSITION)
def test_steady_state_equals_long_dose_train(n_cmt, p, is_oral, T, tau, lag):
    p = dict(p)
    if lag:
        p["ALAG1"] = lag
    lam, _ = disposition(p, n_cmt)
    n = int(np.ceil(60.0 / (float(lam[-1]) * tau))) + 20  # e^{-60}: fully at steady state
    dts = np.unique(np.concatenate([np.linspace(0, 2.5 * tau, 41), [T, lag, 0.3 * lag, lag + T]]))
    train = dts[:, None] + tau * np.arange(n)[None, :]
    kw = {"oral": np.ones((1, 1), bool)} if is_oral else {"dur": np.full((1, 1), T)}
    ref = concentration(train, np.full((1, 1), 100.0), p, n_cmt=n_cmt, **kw)
    got = concentration(dts[:, None], np.full((1, 1), 100.0), p, n_cmt=n_cmt,
                        ss=np.ones((1, 1), bool), ii=np.full((1, 1), tau), **kw)
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_ss2_adds_to_existing_doses():
    # an SS=2 dose is a superposition: ss dose + unrelated earlier dose
    dt = np.array([[3.0, 50.0]])
    amt = np.array([[100.0, 40.0]])
    ss = np.array([[True, False]])
    ii = np.array([[12.0, 0.0]])
    both = concentration(dt, amt, P2, n_cmt=2, ss=ss, ii=ii)
    a = concentration(dt[:, :1], amt[:, :1], P2, n_cmt=2, ss=ss[:, :1], ii=ii[:, :1])
    b = concentration(dt[:, 1:], amt[:, 1:], P2, n_cmt=2)
    np.testing.assert_allclose(both, a + b, rtol=1e-14)


def test_input_validation():
    one = np.ones((1, 1))
    with pytest.raises(DatasetError, match="zero-order input into the depot"):
        concentration(one, one, {**P1, "KA": 1.0}, n_cmt=1, dur=one, oral=one.astype(bool))
    with pytest.raises(DatasetError, match="longer than the dosing interval"):
        concentration(one, one, P1, n_cmt=1, dur=2 * one, ss=one.astype(bool), ii=one)
    with pytest.raises(DatasetError, match="positive dosing interval"):
        concentration(one, one, P1, n_cmt=1, ss=one.astype(bool), ii=0 * one)
    with pytest.raises(DatasetError, match="dosing interval"):
        concentration(one, one, P1, n_cmt=1, ss=one.astype(bool))
    with pytest.raises(DatasetError, match=">= 0"):
        concentration(one, one, P1, n_cmt=1, dur=-one)


def test_large_population_is_vectorised():
    # 100,000 observations x 20 doses, 2-cmt, oral + infusion: a smoke test
    # that the NumPy path handles the size (no Python loops over rows)
    rng = np.random.default_rng(1)
    n, d = 100_000, 20
    dt = rng.uniform(-10, 200, (n, d))
    amt = np.full((n, d), 100.0)
    oral = rng.random((n, d)) < 0.5
    dur = np.where(oral, 0.0, 1.0)
    params = {k: v * np.exp(rng.normal(0, 0.3, (n, 1))) for k, v in P2.items()}
    params["KA"] = np.exp(rng.normal(0, 0.3, (n, 1)))
    c = concentration(dt, amt, params, n_cmt=2, dur=dur, oral=oral)
    assert c.shape == (n,) and np.all(np.isfinite(c))
