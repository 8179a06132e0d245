"""The Laplace-EM initialisation recovers known truth (no MCMC)."""

import numpy as np
import pytest

from _studies import simulate_study
from poppk.data import read_nonmem
from poppk.model import CovariateEffect, ModelSpec, build_design, laplace_init


def test_laplace_init_recovers_typical_values_and_omegas():
    df, truth = simulate_study(n_subjects=60, seed=11)
    data = read_nonmem(df)
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 5.0}, iiv=("CL", "V1"), error="proportional",
                     units={"time": "h"}).resolved(data.covariates)
    init = laplace_init(spec, build_design(spec, data))
    assert np.exp(init.log_typical["CL"]) == pytest.approx(2.0, rel=0.12)
    assert np.exp(init.log_typical["V1"]) == pytest.approx(20.0, rel=0.12)
    assert init.omega["CL"] == pytest.approx(0.3, abs=0.08)
    assert init.omega["V1"] == pytest.approx(0.2, abs=0.08)
    assert init.sigma["prop"] == pytest.approx(0.1, rel=0.2)
    # conditional modes track the true individual clearances
    r = np.corrcoef(init.mode[:, 0], np.log(truth["CL"].to_numpy()))[0, 1]
    assert r > 0.9
    assert init.chol.shape == (60, 2, 2)


def test_laplace_init_estimates_a_weight_exponent():
    df, _ = simulate_study(n_subjects=80, seed=5, wt_exponent=0.75, omega={"CL": 0.1, "V1": 0.1})
    data = read_nonmem(df)
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 5.0}, iiv=("CL", "V1"), error="proportional",
                     units={"time": "h"},
                     covariates=(CovariateEffect("CL", "WT", reference=70.0),)).resolved(data.covariates)
    init = laplace_init(spec, build_design(spec, data))
    assert init.betas["beta_CL_WT"] == pytest.approx(0.75, abs=0.25)


def test_parameters_without_iiv_are_estimated():
    df, _ = simulate_study(n_subjects=40, seed=2, structure="2cmt")
    data = read_nonmem(df)
    spec = ModelSpec(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 1.0, "V2": 20.0}, iiv=("CL", "V1"),
                     error="proportional", units={"time": "h"}).resolved(data.covariates)
    init = laplace_init(spec, build_design(spec, data))
    assert np.exp(init.log_typical["CL"]) == pytest.approx(2.0, rel=0.2)
    assert np.exp(init.log_typical["Q"]) == pytest.approx(3.0, rel=0.5)
