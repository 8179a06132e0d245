import numpy as np
import pytensor
import pytensor.tensor as pt
from scipy import stats

from poppk.model.build import _mvn_chol_logp


def test_unrolled_mvn_logp_equals_scipy():
    rng = np.random.default_rng(0)
    for k in (2, 3, 4):
        a = rng.normal(size=(k, k))
        cov = a @ a.T + k * np.eye(k)
        L = np.linalg.cholesky(cov)
        x = rng.normal(size=(7, k)) @ L.T
        xs, Ls = pt.dmatrix("x"), pt.dmatrix("L")
        val = pytensor.function([xs, Ls], _mvn_chol_logp(pt, xs, Ls, k))(x, L)
        expected = stats.multivariate_normal(np.zeros(k), cov).logpdf(x).sum()
        np.testing.assert_allclose(val, expected, rtol=1e-10)
