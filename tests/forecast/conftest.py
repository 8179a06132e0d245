"""Fixtures of the forecast tests: a synthetic population posterior (no MCMC)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr


@pytest.fixture(scope="session")
def synthetic_fit():
    """A (spec, posterior) pair: 1-cmt IV, CL on AIBW, proportional error, 2 chains x 150 draws around a truth."""
    from poppk.model import CovariateEffect, ModelSpec

    spec = ModelSpec("1cmt", {"CL": 2.0, "V1": 20.0}, covariates=(CovariateEffect("CL", "AIBW", reference=60.0),),
                     iiv=("CL", "V1"), error="proportional", units={"time": "h"})
    rng = np.random.default_rng(0)
    shape = (2, 150)

    def around(v, cv):
        return (("chain", "draw"), v * np.exp(cv * rng.standard_normal(shape)))

    post = xr.Dataset({"CL": around(2.0, 0.05), "V1": around(20.0, 0.05),
                       "beta_CL_AIBW": (("chain", "draw"), 0.75 + 0.1 * rng.standard_normal(shape)),
                       "omega_CL": around(0.3, 0.1), "omega_V1": around(0.2, 0.1), "sigma_prop": around(0.1, 0.1)},
                      coords={"chain": [0, 1], "draw": np.arange(shape[1])})
    return spec, post
