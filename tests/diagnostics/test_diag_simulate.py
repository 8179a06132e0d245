"""simulate_observations: replicate DV with residual error, censoring and new subjects."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from poppk.diagnostics import observation_frame, simulate_observations, time_after_dose
from poppk.diagnostics.simulate import add_residual_error, sample_parameters

from _diag_fixtures import DOSE_TIMES, TIMES, TRUTH_2CMT, oracle_study


def test_shapes_coordinates_and_censoring():
    fit, _ = oracle_study()
    sims = simulate_observations(fit, n_draws=50, seed=1)
    n_obs = fit.design.n_obs
    assert sims["y_rep"].dims == ("draw", "obs")
    assert sims["y_rep"].shape == (50, n_obs)
    assert set(sims.data_vars) == {"y_rep", "blq_rep", "y_rep_uncensored", "ipred"}
    assert "source_chain" in sims.coords and "source_draw" in sims.coords
    lloq = fit.design.lloq
    unc = sims["y_rep_uncensored"].values
    blq = sims["blq_rep"].values
    # flagged exactly where the uncensored replicate is below a positive LLOQ, and set to the LLOQ there
    np.testing.assert_array_equal(blq, (lloq[None, :] > 0) & (unc < lloq[None, :]))
    np.testing.assert_array_equal(sims["y_rep"].values[blq], np.broadcast_to(lloq, unc.shape)[blq])
    np.testing.assert_array_equal(sims["y_rep"].values[~blq], unc[~blq])
    assert blq.any()  # the study has late concentrations near the LLOQ


def test_seed_reproducible_and_more_draws_than_posterior():
    fit, _ = oracle_study()
    a = simulate_observations(fit, n_draws=30, seed=5)
    b = simulate_observations(fit, n_draws=30, seed=5)
    np.testing.assert_array_equal(a["y_rep"].values, b["y_rep"].values)
    c = simulate_observations(fit, n_draws=250, seed=5)  # oracle has 100 draws: with replacement
    assert c.sizes["draw"] == 250


def test_same_subjects_proportional_error_moments():
    """With the true individual parameters, y_rep ~ N(IPRED, (σ·IPRED)²)."""
    fit, _ = oracle_study(lloq=None)
    sims = simulate_observations(fit, n_draws=2000, seed=2)
    y = sims["y_rep_uncensored"].values
    ip = sims["ipred"].values[0]
    np.testing.assert_allclose(sims["ipred"].values.std(axis=0), 0, atol=1e-12)  # same subjects, same draw
    rel_mean = y.mean(axis=0) / ip - 1
    rel_sd = y.std(axis=0) / ip
    assert abs(rel_mean.mean()) < 0.005
    assert rel_sd.mean() == pytest.approx(TRUTH_2CMT["sigma_prop"], rel=0.03)


def test_new_subjects_eta_distribution():
    fit, _ = oracle_study(lloq=None)
    idx = np.arange(100).repeat(20)
    p_new = sample_parameters(fit, idx, new_subjects=True, rng=np.random.default_rng(0))
    typ = fit.individual_parameters(typical=True)
    for p in ("CL", "V1"):
        eta = np.log(p_new[p] / typ[p].values.reshape(100, -1)[idx])
        assert eta.std() == pytest.approx(TRUTH_2CMT[f"omega_{p}"], rel=0.05)
        assert abs(eta.mean()) < 0.02
    for p in ("Q", "V2"):  # no IIV: the typical value
        np.testing.assert_allclose(p_new[p], typ[p].values.reshape(100, -1)[idx])
    # covariate effect kept: typical CL of each subject follows (WT/70)^0.75
    wt = fit.data.covariates.loc[list(fit.design.subject_ids), "WT"].to_numpy()
    np.testing.assert_allclose(typ["CL"].values[0, 0], TRUTH_2CMT["CL"] * (wt / 70) ** 0.75, rtol=1e-10)


def test_new_subjects_with_correlated_omega():
    fit, _ = oracle_study(lloq=None)
    post = fit.idata.posterior
    corr = np.array([[1.0, 0.7], [0.7, 1.0]])
    fit.idata.posterior = post.assign(
        omega_corr=(("chain", "draw", "iiv", "iiv_bis"), np.broadcast_to(corr, (1, post.sizes["draw"], 2, 2)).copy())
    )
    try:
        idx = np.arange(100).repeat(10)
        p_new = sample_parameters(fit, idx, new_subjects=True, rng=np.random.default_rng(1))
        typ = fit.individual_parameters(typical=True)
        e_cl = np.log(p_new["CL"] / typ["CL"].values.reshape(100, -1)[idx]).ravel()
        e_v = np.log(p_new["V1"] / typ["V1"].values.reshape(100, -1)[idx]).ravel()
        assert np.corrcoef(e_cl, e_v)[0, 1] == pytest.approx(0.7, abs=0.03)
        assert e_cl.std() == pytest.approx(TRUTH_2CMT["omega_CL"], rel=0.05)
    finally:
        fit.idata.posterior = post


def test_residual_error_models():
    rng = np.random.default_rng(3)
    ip = np.full((20000, 3), [0.5, 2.0, 10.0])
    y = add_residual_error(ip, {"exp": np.array([[0.3]])}, SimpleNamespace(error="exponential", truncate_at_zero=False), rng)
    z = np.log(y / ip)
    assert z.std() == pytest.approx(0.3, rel=0.03) and abs(z.mean()) < 0.01
    y = add_residual_error(ip, {"add": np.array([[1.0]])}, SimpleNamespace(error="additive", truncate_at_zero=False), rng)
    assert (y < 0).any()
    assert y.std(axis=0) == pytest.approx([1.0, 1.0, 1.0], rel=0.03)
    y = add_residual_error(ip, {"add": np.array([[1.0]])}, SimpleNamespace(error="additive", truncate_at_zero=True), rng)
    assert (y >= 0).all()
    # mean of N(0.5, 1) truncated at 0: 0.5 + φ(0.5)/Φ(0.5)
    from scipy.stats import norm

    assert y[:, 0].mean() == pytest.approx(0.5 + norm.pdf(0.5) / norm.cdf(0.5), rel=0.02)
    y = add_residual_error(ip, {"prop": np.array([[0.1]]), "add": np.array([[0.2]])},
                           SimpleNamespace(error="combined", truncate_at_zero=False), rng)
    assert y.std(axis=0) == pytest.approx(np.sqrt(0.2**2 + (0.1 * ip[0]) ** 2), rel=0.04)


def test_time_after_dose_and_observation_frame():
    fit, df = oracle_study()
    tad = time_after_dose(fit.design)
    t = fit.design.obs_time
    expected = np.where(t >= DOSE_TIMES[1], t - DOSE_TIMES[1], t)
    np.testing.assert_allclose(tad, expected)
    frame = observation_frame(fit)
    assert list(frame.columns[:6]) == ["OBS", "ID", "SUBJECT", "TIME", "TAFD", "TAD"]
    np.testing.assert_allclose(frame["TAFD"], t)  # first dose at 0
    assert (frame["DOSE"] == 100.0).all()
    assert frame["BLQ"].sum() == int((df["BLQ"] == 1).sum())
    assert len(frame) == len(TIMES) * fit.design.n_subjects
