"""population_draws: the one reader of population parameters per draw, fixed ones included."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from poppk.errors import FitError
from poppk.model import CovariateEffect, ModelSpec, Prior
from poppk.model.parameters import population_draws


def _spec():
    return ModelSpec(structure="1cmt", typical={"CL": 2.0, "V1": Prior.fixed(20.0)}, iiv=("CL", "V1"),
                     omega={"V1": Prior.fixed(0.2)}, sigma={"prop": Prior.fixed(0.1)}, error="proportional",
                     covariates=(CovariateEffect("CL", "WT", "power", reference=70.0),), units={"time": "h"})


def _posterior(spec, nc=2, nd=3):
    rng = np.random.default_rng(0)
    names = ["CL", "omega_CL"] + [name for name, prior in spec.coefficients if not prior.is_fixed]
    return xr.Dataset({n: (("chain", "draw"), rng.uniform(0.5, 1.5, (nc, nd))) for n in names},
                      coords={"chain": np.arange(nc), "draw": np.arange(nd)})


def test_every_population_parameter_chain_major_fixed_ones_repeated():
    spec = _spec()
    post = _posterior(spec)
    out = population_draws(spec, post)
    assert set(out) == {"CL", "V1", "omega_CL", "omega_V1", "sigma_prop", spec.coefficients[0][0]}
    np.testing.assert_array_equal(out["CL"], post["CL"].values.reshape(-1))  # chain-major
    assert (out["V1"] == 20.0).all() and (out["omega_V1"] == 0.2).all() and (out["sigma_prop"] == 0.1).all()
    assert all(v.shape == (6,) for v in out.values())
    # a stacked sample dimension (a subset of draws) reads the same
    stacked = post.stack(sample=("chain", "draw")).isel(sample=[4, 1])
    sub = population_draws(spec, stacked, ["CL", "V1"])
    np.testing.assert_array_equal(sub["CL"], out["CL"][[4, 1]])
    assert list(sub) == ["CL", "V1"]


def test_missing_or_unknown_parameters_are_named():
    spec = _spec()
    with pytest.raises(FitError, match="omega_CL"):
        population_draws(spec, _posterior(spec).drop_vars("omega_CL"))
    with pytest.raises(FitError, match="not population parameters"):
        population_draws(spec, _posterior(spec), ["KA"])
