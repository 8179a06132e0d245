import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from poppk.model.likelihood import observation_loglik

DV = np.array([0.5, 1.2, 3.0, 0.05])
IPRED = np.array([0.6, 1.0, 2.5, 0.2])
BLQ = np.array([False, False, False, True])
LLOQ = np.array([0.1, 0.1, 0.1, 0.1])


@pytest.mark.parametrize(
    "error, sigma, sd",
    [
        ("additive", {"add": 0.2}, lambda f: 0.2 + 0 * f),
        ("proportional", {"prop": 0.15}, lambda f: 0.15 * f),
        ("combined", {"prop": 0.15, "add": 0.05}, lambda f: np.sqrt(0.05**2 + (0.15 * f) ** 2)),
    ],
)
def test_normal_error_models_match_scipy(error, sigma, sd):
    ll = observation_loglik(DV, IPRED, sigma, error, blq=BLQ, lloq=LLOQ)
    s = sd(IPRED)
    expected = np.where(BLQ, stats.norm.logcdf(LLOQ, IPRED, s), stats.norm.logpdf(DV, IPRED, s))
    np.testing.assert_allclose(ll, expected, rtol=1e-10)


def test_exponential_error_is_lognormal_density_of_dv():
    ll = observation_loglik(DV, IPRED, {"exp": 0.3}, "exponential", blq=BLQ, lloq=LLOQ)
    expected = np.where(
        BLQ,
        stats.norm.logcdf(np.log(LLOQ), np.log(IPRED), 0.3),
        stats.lognorm.logpdf(DV, s=0.3, scale=IPRED),
    )
    np.testing.assert_allclose(ll, expected, rtol=1e-10)


def test_truncation_at_zero_renormalises():
    ll = observation_loglik(DV, IPRED, {"prop": 0.8}, "proportional", truncate_at_zero=True)
    s = 0.8 * IPRED
    expected = stats.truncnorm.logpdf(DV, -IPRED / s, np.inf, IPRED, s)
    np.testing.assert_allclose(ll, expected, rtol=1e-9)


def test_far_tail_m3_is_finite():
    ll = observation_loglik(np.array([0.1]), np.array([1e5]), {"prop": 0.01}, "proportional",
                            blq=np.array([True]), lloq=np.array([0.1]))
    z = (0.1 - 1e5) / 1e3  # about -100 SD: P(DV < LLOQ) underflows, its log must not
    assert np.isfinite(ll).all()
    assert ll[0] == pytest.approx(stats.norm.logcdf(z), rel=1e-8)


def test_numpy_and_pytensor_agree():
    f = pt.dvector("f")
    s = pt.dscalar("s")
    out = observation_loglik(pt.as_tensor_variable(DV), f, {"prop": s, "add": 0.05}, "combined",
                             blq=pt.as_tensor_variable(BLQ), lloq=pt.as_tensor_variable(LLOQ))
    fn = pytensor.function([f, s], [out, pytensor.grad(out.sum(), [f, s])[0]])
    val, grad = fn(IPRED, 0.15)
    np.testing.assert_allclose(val, observation_loglik(DV, IPRED, {"prop": 0.15, "add": 0.05}, "combined",
                                                       blq=BLQ, lloq=LLOQ), rtol=1e-7)
    assert np.isfinite(grad).all()
