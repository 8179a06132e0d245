"""Exposure-toxicity on the bundled trial, with the trial's true individual parameters (no PK MCMC)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _sim_helpers import truth_fit
from poppk.errors import ConfigError, DatasetError, DataWarning
from poppk.simulate import (
    PerKg,
    PosteriorDraws,
    Schedule,
    fit_exposure_toxicity,
    predict_incidence,
    resample_population,
    simulate_strategies,
    trial_exposures,
)
from poppk.simulate.toxicity import ExposureToxicity, infer_cycle


def test_trial_cycle1_cmax_equals_the_generators_truth(trial_data, trial_truth):
    """Cycle-1 Cmax from each patient's actual doses equals the generator's CMAX1 (same kernel)."""
    fit = truth_fit(trial_data, trial_truth)
    assert infer_cycle(trial_data.doses) == pytest.approx(21.0, abs=0.1)
    truth = trial_truth.set_index("ID").loc[list(trial_data.subjects)]
    for metric in ("cmax_c1", "ceoi_c1"):
        e = trial_exposures(fit, metric)
        assert e.dims == ("draw", "id") and e.attrs["units"] == "mg/L"
        np.testing.assert_allclose(e.isel(draw=0).values, truth["CMAX1"].to_numpy(), rtol=1e-7)
    # AUC over the first 21 days is below AUC(0-inf) = dose/CL and close to it for long cycles
    auc = trial_exposures(fit, "auc_c1", cycle=21.0).isel(draw=0).values
    assert np.all(auc < truth["AUC1"].to_numpy()) and np.all(auc > 0.6 * truth["AUC1"].to_numpy())
    auc_ss = trial_exposures(fit, "auc_ss", cycle=Schedule.q3w(2)).isel(draw=0).values
    np.testing.assert_allclose(auc_ss, truth["AUC1"].to_numpy(), rtol=1e-6)  # dose/CL (truth file: 8 decimals)


@pytest.fixture(scope="module")
def tox(trial_data, trial_truth):
    fit = truth_fit(trial_data, trial_truth, n_draws=60, noise=0.05)
    return fit_exposure_toxicity(fit, "AE_OCULAR", "cmax_c1", n_pk_draws=60, draws=400, tune=400, seed=1)


def test_logistic_fit_recovers_the_direction(tox, trial_truth):
    s = tox.summary()
    a, b = tox.draws()
    assert np.mean(b > 0) > 0.99  # the true slope is 8 per unit log Cmax
    assert s.loc["beta", "lo"] < 8.0 < s.loc["beta", "hi"] * 1.5
    assert 50 < tox.reference < 200
    assert tox.outcomes.sum() == trial_truth["AE_OCULAR"].sum()
    curve = tox.curve([50.0, 120.0, 200.0])
    assert curve["p_median"].is_monotonic_increasing
    obs = tox.observed()
    assert len(obs) == 80 and set(obs["outcome"]) == {0, 1}


def test_plugin_and_marginal_agree_when_exposures_are_certain(trial_data, trial_truth):
    fit = truth_fit(trial_data, trial_truth, n_draws=2, noise=0.0)
    kw = dict(n_pk_draws=2, draws=300, tune=300, seed=2)
    m = fit_exposure_toxicity(fit, "AE_OCULAR", "cmax_c1", **kw)
    p = fit_exposure_toxicity(fit, "AE_OCULAR", "cmax_c1", uncertainty="plugin", **kw)
    assert m.summary().loc["beta", "median"] == pytest.approx(p.summary().loc["beta", "median"], rel=0.15)


def test_predicted_incidence_tbw_vs_aibw(tox, trial_data):
    """5 mg/kg TBW vs 5 and 6 mg/kg AIBW in a population resampled from the trial, under the true PK model."""
    from poppk.model import CovariateEffect, ModelSpec

    covs = tuple(CovariateEffect(p, "WT", reference=70.0) for p in ("CL", "V1", "Q", "V2")) + (
        CovariateEffect("CL", "ALB", reference=4.0),)
    spec = ModelSpec("2cmt", {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, covariates=covs, iiv=("CL", "V1"),
                     iiv_correlation="full", units={"time": "d"})
    draws = PosteriorDraws.from_values(
        spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
        betas={"beta_CL_WT": 0.45, "beta_V1_WT": 0.5, "beta_Q_WT": 0.5, "beta_V2_WT": 0.5, "beta_CL_ALB": -0.5},
        omega={"CL": 0.3, "V1": 0.2}, correlation=[[1, 0.3], [0.3, 1]], n_draws=40)
    pop = resample_population(trial_data, 2000, seed=3)
    strategies = {"5 TBW": PerKg(5), "5 AIBW": PerKg(5, "AIBW"), "6 AIBW": PerKg(6, "AIBW")}
    sim = simulate_strategies(draws, strategies, Schedule.q3w(4, infusion="2 h"), pop, metrics=["cmax_c1"])
    inc = predict_incidence(tox, sim, reference="5 TBW")
    assert list(inc.index) == list(strategies)
    assert inc.loc["5 AIBW", "incidence_median"] < inc.loc["5 TBW", "incidence_median"]
    assert inc.loc["5 AIBW", "difference_hi"] < 0  # paired by draw: a clearly lower risk
    assert inc.loc["6 AIBW", "incidence_median"] > inc.loc["5 AIBW", "incidence_median"]
    assert (inc["incidence_lo"] <= inc["incidence_median"]).all() and (inc["incidence_median"] <= inc["incidence_hi"]).all()
    assert inc.loc["5 TBW", "difference_median"] == 0.0
    with pytest.raises(ConfigError, match="metric"):
        predict_incidence(ExposureToxicity("auc_c1", "", tox.idata, 0.0, tox.exposures, tox.outcomes, "plugin"), sim)


def test_outcome_validation(trial_data, trial_truth):
    fit = truth_fit(trial_data, trial_truth, n_draws=2)
    with pytest.raises(DatasetError, match="no outcome column"):
        fit_exposure_toxicity(fit, "AE_RENAL", draws=10, tune=10)
    bad = pd.Series(2, index=trial_data.subjects)
    with pytest.raises(DatasetError, match="0/1"):
        fit_exposure_toxicity(fit, outcomes=bad, draws=10, tune=10)
    with pytest.raises(DatasetError, match="events and non-events"):
        fit_exposure_toxicity(fit, outcomes=pd.Series(0, index=trial_data.subjects), draws=10, tune=10)
    partial = trial_truth.set_index("ID")["AE_OCULAR"].astype(float)
    partial.iloc[:3] = np.nan
    with pytest.warns(DataWarning, match="3 subject"):
        t = fit_exposure_toxicity(fit, outcomes=partial, n_pk_draws=2, draws=50, tune=50, uncertainty="plugin")
    assert len(t.outcomes) == 77
