"""The kernel on PyTensor tensors: same values as NumPy, finite gradients
everywhere (padding, dt < 0, boluses, KA == lambda, steady state), and
gradients that agree with finite differences of the NumPy version.

Functions are compiled in FAST_COMPILE mode (no C compilation, which takes
tens of seconds on a cold cache); one ``slow`` test compiles the same graph in
the default mode (FAST_RUN rewrites + C) that PyMC uses.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")
import pytensor.tensor as pt  # noqa: E402

from poppk.pk import NUMPY, PYTENSOR, concentration, get_ops  # noqa: E402

# One row per observation, 4 dose slots; subject index per row.
#            dt                      amt                    dur                 oral                        ss                         ii
ROWS = [
    ([5.0, 0.0, 0.0, 0.0], [100, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]),      # bolus + padding
    ([0.5, -3.0, 0.0, 0.0], [100, 50, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]),    # infusion running, dose after obs
    ([3.0, 0.0, -1.0, 0.0], [100, 20, 30, 0], [0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1]),  # oral, bolus at dt=0, padded oral
    ([1.0, 30.0, 0.0, 0.0], [100, 10, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [12, 0, 1, 1]),  # SS oral within the lag
    ([2.0, 0.0, 0.0, 0.0], [100, 0, 0, 0], [4, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [12, 1, 1, 1]),    # SS infusion running
    ([7.0, 0.0, 0.0, 0.0], [100, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [8, 1, 1, 1]),     # SS bolus
    ([0.0, 12.0, 0.0, 0.0], [100, 100, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]),  # oral at dt = 0
    ([40.0, 16.0, 4.0, 0.0], [100, 100, 100, 0], [0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]),
    ([6.0, 2.5, 0.0, 0.0], [100, 100, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 6, 1, 1]),   # SS oral + infusion
]
DATA = {k: np.array([r[i] for r in ROWS], dtype=float) for i, k in enumerate(
    ["dt", "amt", "dur", "oral", "ss", "ii"])}
DATA["oral"] = DATA["oral"].astype(bool)
DATA["ss"] = DATA["ss"].astype(bool)
N = len(ROWS)
LAG = 1.5
MODE = "FAST_COMPILE"


def subjects(n_sub):
    return np.arange(N) % n_sub


def theta_sets(n_cmt):
    """Per-subject parameters; subject 1 has KA equal to a disposition rate."""
    if n_cmt == 1:
        th = {"CL": [5.0, 2.0, 0.3], "V1": [30.0, 20.0, 4.0], "KA": [1.2, 0.1, 3.0]}
        assert th["KA"][1] == th["CL"][1] / th["V1"][1]  # exact tie, KA == k10
    elif n_cmt == 2:
        th = {"CL": [5.0, 2.0, 0.3], "V1": [10.0, 20.0, 4.0], "Q": [2.0, 1.0, 8.0],
              "V2": [50.0, 20.0, 40.0], "KA": [1.2, 0.0, 0.05]}
        from poppk.pk import disposition
        lam, _ = disposition({k: np.array(v) for k, v in th.items()}, 2)
        th["KA"][1] = float(lam[1][1])  # KA == lambda2 (to the last bit in NumPy)
    else:
        th = {"CL": [5.0, 2.0, 0.3], "V1": [10.0, 20.0, 4.0], "Q": [2.0, 1.0, 8.0],
              "V2": [50.0, 20.0, 40.0], "Q3": [0.5, 3.0, 0.2], "V3": [100.0, 15.0, 300.0],
              "KA": [1.2, 0.7, 0.05]}
    th["F1"] = [0.8, 1.0, 0.5]
    th["ALAG1"] = [LAG, LAG, LAG]
    return {k: np.array(v, dtype=float) for k, v in th.items()}


def gathered(th, sub):
    return {k: v[sub][:, None] for k, v in th.items()}


def conc_numpy(th, n_cmt, sub):
    return concentration(DATA["dt"], DATA["amt"], gathered(th, sub), n_cmt=n_cmt,
                         dur=DATA["dur"], oral=DATA["oral"], ss=DATA["ss"], ii=DATA["ii"])


def build_logp(n_cmt, mode=MODE):
    th = theta_sets(n_cmt)
    sub = subjects(3)
    sym = {k: pt.dvector(k) for k in th}
    params = {k: v[sub][:, None] for k, v in sym.items()}
    conc = concentration(DATA["dt"], DATA["amt"], params, n_cmt=n_cmt, dur=DATA["dur"],
                         oral=DATA["oral"], ss=DATA["ss"], ii=DATA["ii"])
    logp = pt.sum(pt.log(conc))
    names = list(th)
    grads = pytensor.grad(logp, [sym[k] for k in names])
    f = pytensor.function([sym[k] for k in names], [conc, logp, *grads], mode=mode)
    return n_cmt, th, sub, names, f


@pytest.fixture(scope="module", params=[1, 2, 3])
def compiled(request):
    return build_logp(request.param)


def test_values_match_numpy(compiled):
    n_cmt, th, sub, names, f = compiled
    conc_pt = f(*[th[k] for k in names])[0]
    conc_np = conc_numpy(th, n_cmt, sub)
    assert np.all(conc_np > 0)
    np.testing.assert_allclose(conc_pt, conc_np, rtol=1e-13)


def test_gradients_finite_and_match_finite_differences(compiled):
    n_cmt, th, sub, names, f = compiled
    out = f(*[th[k] for k in names])
    grads = dict(zip(names, out[2:]))
    for k, g in grads.items():
        assert np.all(np.isfinite(g)), (k, g)

    def logp(t):
        return np.sum(np.log(conc_numpy(t, n_cmt, sub)))

    for k in names:
        for i in range(len(th[k])):
            h = 1e-6 * th[k][i]
            up = {q: v.copy() for q, v in th.items()}
            dn = {q: v.copy() for q, v in th.items()}
            up[k][i] += h
            dn[k][i] -= h
            fd = (logp(up) - logp(dn)) / (2 * h)
            scale = max(abs(fd), 1e-3 / th[k][i])
            assert abs(grads[k][i] - fd) <= 1e-6 * scale, (k, i, grads[k][i], fd)


def test_gradient_of_padding_only_rows_is_finite():
    # a row with nothing but padding / future doses: concentration exactly 0
    dt = np.array([[0.0, -2.0, 0.0], [3.0, 0.0, 0.0]])
    amt = np.array([[0.0, 100.0, 0.0], [100.0, 0.0, 0.0]])
    oral = np.array([[True, False, False], [True, False, True]])
    ss = np.array([[False, True, False], [False, False, False]])
    ii = np.array([[1.0, 12.0, 1.0], [1.0, 1.0, 1.0]])
    cl, v1, q, v2, ka = (pt.dscalar(n) for n in ("CL", "V1", "Q", "V2", "KA"))
    p = {"CL": cl, "V1": v1, "Q": q, "V2": v2, "KA": ka}
    conc = concentration(dt, amt, p, n_cmt=2, oral=oral, ss=ss, ii=ii,
                         dur=np.zeros_like(dt))
    total = pt.sum(conc)
    g = pytensor.grad(total, [cl, v1, q, v2, ka])
    fn = pytensor.function([cl, v1, q, v2, ka], [conc, *g], mode=MODE)
    # including KA == k10 + ... ties and a bolus-like parameter set
    for vals in ([5.0, 10.0, 2.0, 50.0, 1.2], [2.0, 20.0, 1.0, 20.0, 0.1]):
        out = fn(*vals)
        assert out[0][0] == 0.0 and out[0][1] > 0
        assert all(np.all(np.isfinite(x)) for x in out[1:])


def test_ops_detection_and_lazy_import():
    x = pt.dvector("x")
    assert get_ops(np.ones(2), {"CL": x}) is PYTENSOR
    assert get_ops(np.ones(2), None, {"CL": 1.0}) is NUMPY
    code = (
        "import sys, numpy as np\n"
        "from poppk.pk import concentration\n"
        "c = concentration(np.ones((2, 1)), np.ones((2, 1)), {'CL': 1.0, 'V1': 2.0, 'KA': 1.0},"
        " n_cmt=1, oral=np.ones((2, 1), bool))\n"
        "assert 'pytensor' not in sys.modules, 'pytensor imported'\n"
        "assert 'pandas' not in sys.modules and 'pymc' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_symbolic_data_inputs():
    # dt/amt/dur/oral/ss/ii may themselves be tensors (e.g. pm.Data)
    dt, amt, dur, ii = (pt.dmatrix(n) for n in ("dt", "amt", "dur", "ii"))
    oral, ss = pt.matrix("oral", dtype="bool"), pt.matrix("ss", dtype="bool")
    th = theta_sets(2)
    sub = subjects(3)
    params = gathered(th, sub)
    conc = concentration(dt, amt, params, n_cmt=2, dur=dur, oral=oral, ss=ss, ii=ii)
    f = pytensor.function([dt, amt, dur, oral, ss, ii], conc, mode=MODE)
    got = f(DATA["dt"], DATA["amt"], DATA["dur"], DATA["oral"], DATA["ss"], DATA["ii"])
    np.testing.assert_allclose(got, conc_numpy(th, 2, sub), rtol=1e-13)


@pytest.mark.slow
def test_default_compile_mode():
    """FAST_RUN rewrites and C code give the same finite values and gradients."""
    n_cmt, th, sub, names, fast = build_logp(2, mode=None)
    _, _, _, _, ref = build_logp(2)
    args = [th[k] for k in names]
    for a, b in zip(fast(*args), ref(*args)):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-11)
