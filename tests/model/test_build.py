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


def test_sum_by_subject_equals_the_one_hot_product_in_any_order():
    """Per-subject sums of per-observation values (log likelihood): linear memory, any record order."""
    from types import SimpleNamespace

    from poppk.model.design import ModelDesign

    rng = np.random.default_rng(0)
    for shuffle in (False, True):
        subj = np.sort(rng.integers(0, 7, 60))
        subj[subj == 3] = 4  # a subject with no observation sums to 0
        if shuffle:
            subj = rng.permutation(subj)
        d = SimpleNamespace(obs_subject=subj, n_obs=60, n_subjects=8)
        v = rng.normal(size=(2, 3, 60))
        onehot = np.zeros((60, 8))
        onehot[np.arange(60), subj] = 1.0
        got = ModelDesign.sum_by_subject(d, v)
        np.testing.assert_allclose(got, v @ onehot, atol=1e-12)
        assert got.shape == (2, 3, 8) and np.all(got[..., 3] == 0)


def test_a_zero_concentration_under_relative_error_is_flagged_with_its_row():
    """DV = 0 under proportional error is a -100% residual: fit() warns and names the row;
    the same record flagged BLQ, or under a combined error model, gives no warning."""
    import warnings

    import pandas as pd
    import pytest

    from poppk.data import read_nonmem
    from poppk.errors import DataWarning
    from poppk.model import ModelSpec, build_design
    from poppk.model.design import warn_nonpositive_dv

    def check(spec, data):
        warn_nonpositive_dv(spec, build_design(spec, data))

    df = pd.DataFrame({"ID": [1, 1, 1, 1], "TIME": [0.0, 1.0, 2.0, 30.0], "AMT": [100.0, 0, 0, 0],
                       "EVID": [1, 0, 0, 0], "MDV": [1, 0, 0, 0], "DV": [np.nan, 5.0, 4.0, 0.0]})
    prop = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL",), error="proportional",
                     units={"time": "h"})
    with pytest.warns(DataWarning, match=r"DV <= 0 under a relative error model \(proportional; rows 4\)"):
        check(prop, read_nonmem(df))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        check(ModelSpec(**{**{k: getattr(prop, k) for k in ("structure", "typical", "iiv", "units")},
                           "error": "combined"}), read_nonmem(df))
        blq = df.assign(BLQ=[0, 0, 0, 1], LLOQ=[np.nan, 0.1, 0.1, 0.1])
        check(prop, read_nonmem(blq))
