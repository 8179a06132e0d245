"""nutpie's C callbacks (:mod:`poppk.model.callbacks`) around a small numba function: the
status codes nutpie reads and the values written, for the data carried in ``user_data``."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from poppk.model.callbacks import callback, user_data  # noqa: E402

_DBL = ctypes.POINTER(ctypes.c_double)


@pytest.fixture(scope="module", params=["float", "0-d array"])
def logp_callback(request):
    """The density as PyTensor's functions return it: a float or a 0-d array."""
    if request.param == "float":
        @numba.njit
        def inner(x, a, b):
            return b[0] + np.sum(x * a), x * a
    else:
        @numba.njit
        def inner(x, a, b):
            lp = np.empty(())
            lp[()] = b[0] + np.sum(x * a)
            return lp, x * a

    a, b = np.ones(3), np.zeros(1)
    inner(np.zeros(3), a, b)  # one overload, as the callback expects
    return callback("logp", inner, [("a", 1), ("b", 1)], ["a", "b"], [np.float64, np.float64])


def _call_logp(cb, x, a, b):
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad, logp = np.full_like(x, -7.0), np.zeros(())
    ud = user_data([a, b])
    code = cb.ctypes(ctypes.c_uint64(len(x)), x.ctypes.data_as(_DBL), grad.ctypes.data_as(_DBL),
                     logp.ctypes.data_as(_DBL), ctypes.c_void_p(ud.ctypes.data))
    return code, float(logp), grad


def test_the_logp_callback_writes_the_density_and_gradient(logp_callback):
    x, a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0]), np.array([0.25])
    code, lp, grad = _call_logp(logp_callback, x, a, b)
    assert code == 0
    assert lp == pytest.approx(0.25 + 0.5 - 2.0 + 6.0)
    np.testing.assert_array_equal(grad, x * a)


@pytest.mark.parametrize("bad, where", [(np.inf, 1), (np.nan, 0), (-np.inf, 2)])
def test_a_gradient_not_finite_is_status_3(logp_callback, bad, where):
    a = np.array([0.5, -1.0, 2.0])
    a[where] = bad
    code, _, grad = _call_logp(logp_callback, np.array([1.0, 2.0, 3.0]), a, np.array([0.0]))
    assert code == 3
    assert not np.isfinite(grad[where]) and np.isfinite(np.delete(grad, where)).all()  # still written


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_density_not_finite_with_a_finite_gradient_is_status_4(logp_callback, bad):
    code, lp, _ = _call_logp(logp_callback, np.array([1.0, 2.0, 3.0]), np.ones(3), np.array([bad]))
    assert code == 4
    assert not np.isfinite(lp)


def test_the_expand_callback_copies_the_values():
    @numba.njit
    def inner(x, a):
        return (np.concatenate((x, a)),)

    a = np.array([4.0, 5.0])
    inner(np.zeros(2), a)
    cb = callback("expand", inner, [("a", 1)], ["a"], [np.float64])
    x = np.array([1.0, 2.0])
    out = np.zeros(4)
    ud = user_data([a])
    args = (x.ctypes.data_as(_DBL), out.ctypes.data_as(_DBL), ctypes.c_void_p(ud.ctypes.data))
    assert cb.ctypes(ctypes.c_uint64(2), ctypes.c_uint64(4), *args) == 0
    np.testing.assert_array_equal(out, [1.0, 2.0, 4.0, 5.0])
    out[:] = 0.0
    assert cb.ctypes(ctypes.c_uint64(2), ctypes.c_uint64(3), *args) == -1
