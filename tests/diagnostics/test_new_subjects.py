"""Predictions for new subjects: ArviZ's predictions groups on a fit."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import stats

from poppk.data import read_nonmem
from poppk.diagnostics.new_subjects import add_predictions, new_subject_predictions
from poppk.diagnostics.predictive import thinned_draw_index
from poppk.diagnostics.simulate import simulate_observations
from poppk.errors import DatasetError, ModelSpecError

from _diag_fixtures import oracle_study, simulate_study


def _copy(fit):
    return dataclasses.replace(fit, idata=fit.idata.copy())


def _read(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_nonmem(df, **kw)


def test_on_the_fitted_design_equals_the_new_subject_replicates_of_the_checks():
    """Same draws and seed: the fresh-η replicates the VPC uses, bit for bit."""
    fit, _ = oracle_study()
    pred, const = new_subject_predictions(fit, fit.data, n_draws=40, seed=5)
    _, flat = thinned_draw_index(1, fit.idata.posterior.sizes["draw"], 40)
    ref = simulate_observations(fit, draw_index=flat, new_subjects=True, seed=5)
    np.testing.assert_array_equal(pred["y"].values[0], ref["y_rep"].values)
    assert pred["y"].dims == ("chain", "draw", "obs")
    assert const.sizes["obs"] == fit.design.n_obs and const.sizes["subject"] == fit.design.n_subjects
    np.testing.assert_array_equal(const["time"].values, fit.design.obs_time)


def test_new_cohort_is_predicted_calibrated_and_stored_in_idata():
    """An oracle posterior predicts an unseen cohort from the same truth: PIT of its DVs ≈ uniform."""
    fit = _copy(oracle_study()[0])
    df, _ = simulate_study(30, seed=99, lloq=None)  # other subjects, other weights
    new = _read(df)
    add_predictions(fit, new, n_draws=100, seed=1)
    groups = fit.idata.groups()
    assert "predictions" in groups and "predictions_constant_data" in groups
    y = fit.idata.predictions["y"].stack(s=("chain", "draw")).values  # obs × sample
    dv = fit.idata.predictions_constant_data["dv"].values
    assert np.isfinite(dv).all()
    pit = (y < dv[:, None]).mean(axis=1)
    # one PIT per observation, correlated within subject: a loose uniformity check plus the tails
    assert 0.4 < pit.mean() < 0.6
    assert 0.05 < np.mean(pit < 0.1) < 0.16 and 0.05 < np.mean(pit > 0.9) < 0.16
    # individual predictions of new subjects spread more than the fitted subjects' typical ones
    assert float(fit.idata.predictions["ipred"].std()) > 0
    # a second call replaces the groups
    add_predictions(fit, new, n_draws=20, seed=2)
    assert fit.idata.predictions.sizes["draw"] == 20


def test_a_wrong_model_is_visibly_off_on_new_subjects():
    """Doubling CL in the posterior puts the new cohort's DVs in the upper tail (the check can fail)."""
    fit = _copy(oracle_study()[0])
    fit.idata.posterior["CL"] = fit.idata.posterior["CL"] * 2.0
    df, _ = simulate_study(30, seed=99, lloq=None)
    pred, const = new_subject_predictions(fit, _read(df), n_draws=100, seed=1)
    y = pred["y"].stack(s=("chain", "draw")).values
    pit = (y < const["dv"].values[:, None]).mean(axis=1)
    assert pit.mean() > 0.65


def test_bad_new_data_are_refused_with_the_reason():
    fit, _ = oracle_study()
    df, _ = simulate_study(5, seed=7, lloq=None)
    with pytest.raises(ModelSpecError, match="(?i)unit"):
        new_subject_predictions(fit, _read(df, time_unit="day"), n_draws=10)
    with pytest.raises(DatasetError, match="no covariate WT"):
        new_subject_predictions(fit, _read(df.drop(columns=["WT"])), n_draws=10)


def test_predictions_groups_are_saved_with_the_fit(tmp_path):
    from poppk.model.persist import load_fit, save_fit

    fit = _copy(oracle_study()[0])
    df, _ = simulate_study(6, seed=5, lloq=None)
    add_predictions(fit, _read(df), n_draws=20, seed=3)
    save_fit(fit, tmp_path / "fit", predictive=False)
    back = load_fit(tmp_path / "fit")
    np.testing.assert_array_equal(back.idata.predictions["y"].values, fit.idata.predictions["y"].values)
    assert back.idata.predictions_constant_data["id"].values.tolist() == \
        fit.idata.predictions_constant_data["id"].values.tolist()
