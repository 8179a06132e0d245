"""The forecast of a real (small) fit agrees with an independent reference of the same posterior (slow)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from _reference import grid_posterior, weighted_summary
from poppk.forecast import forecast, individual_posterior, make_patient

pytestmark = pytest.mark.slow

# a new patient of the small study (1-cmt IV bolus of 100, CL ~ 2, V1 ~ 20), sampled sparsely,
# one sample below an LLOQ that the typical patient would exceed
DOSES = [{"TIME": 0, "AMT": 100}, {"TIME": 24, "AMT": 100}]
OBS = [{"TIME": 1.0, "DV": 6.1}, {"TIME": 10.0, "DV": 1.9}, {"TIME": 47.0, "BLQ": 1, "LLOQ": 0.6}]


def test_individual_posterior_matches_grid_quadrature(small_fit):
    """Means within 0.1 posterior SD and 90% interval ends within 5% of brute-force quadrature."""
    rec = make_patient(small_fit.spec, {}, DOSES, OBS, data=small_fit.data)
    ip = individual_posterior(small_fit, rec, n_draws=100, n_samples=200, seed=11)
    assert ip.pareto_k < 0.7
    lp_ref, w_ref = grid_posterior(small_fit, rec, n_draws=100, seed=11, n_grid=181, half_width=5.5)
    w = ip.weights.ravel()
    for i, p in enumerate(ip.spec.parameters):
        m, sd, q = weighted_summary(np.exp(ip.log_params[..., i].ravel()), w)
        mr, sdr, qr = weighted_summary(np.exp(lp_ref[:, i]), w_ref)
        assert abs(m - mr) < 0.1 * sdr, (p, m, mr, sdr)
        np.testing.assert_allclose(q, qr, rtol=0.05, err_msg=p)
    # her data reweight the population draws (the weights are not uniform over draws)
    dw = ip.draw_weights()
    assert dw.max() / dw.min() > 1.2


def test_forecast_of_a_loaded_fit_is_fast(small_fit):
    forecast(small_fit, {}, DOSES, OBS, n_draws=50)  # warm-up (numba, imports)
    t0 = time.perf_counter()
    fc = forecast(small_fit, {}, DOSES, OBS)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0  # generous on a shared CI machine; typically well under a second
    assert fc.posterior.ess > 1000
