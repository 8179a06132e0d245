"""NPDE: decorrelation, ties, BLQ handling and the summary tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from poppk.diagnostics import DiagnosticsError, npde_from_simulations, npde_table, npde_tests
from poppk.plots import plot_npde

from _diag_fixtures import oracle_study


def _correlated_study(n_sub=150, n_obs=6, k=800, seed=0, shift=0.0):
    """Observations and simulations from the same correlated multivariate normal (per subject)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_obs)
    cov = 0.8 ** np.abs(t[:, None] - t[None, :]) + 0.1 * np.eye(n_obs)
    chol = np.linalg.cholesky(cov)
    mean = np.linspace(5, 1, n_obs)
    obs = mean + rng.standard_normal((n_sub, n_obs)) @ chol.T + shift
    sims = mean + rng.standard_normal((k, n_sub, n_obs)) @ chol.T
    subject = np.repeat(np.arange(n_sub), n_obs)
    return obs.ravel(), sims.reshape(k, -1), subject


def test_npde_standard_normal_and_decorrelated():
    dv, sims, subject = _correlated_study()
    n = dv.size
    res = npde_from_simulations(dv, np.zeros(n, bool), np.zeros(n), subject, sims)
    npde = res["NPDE"].to_numpy()
    assert abs(npde.mean()) < 0.1
    assert npde.var() == pytest.approx(1.0, abs=0.12)
    # NPD keep the within-subject correlation (AR 0.8); NPDE remove it
    def lag1(x):
        m = x.reshape(-1, 6)
        return np.corrcoef(m[:, :-1].ravel(), m[:, 1:].ravel())[0, 1]

    assert lag1(res["NPD"].to_numpy()) > 0.5
    assert abs(lag1(npde)) < 0.15
    np.testing.assert_allclose(res["EPRED"], sims.mean(axis=0))


def test_pde_against_direct_formula_and_ties():
    dv, sims, subject = _correlated_study(n_sub=3, k=200, seed=3)
    res = npde_from_simulations(dv, np.zeros(dv.size, bool), np.zeros(dv.size), subject, sims)
    k = sims.shape[0]
    for s in range(3):
        rows = subject == s
        y, ys = dv[rows], sims[:, rows]
        mean = ys.mean(axis=0)
        chol = np.linalg.cholesky(np.cov(ys, rowvar=False))
        y_star = np.linalg.solve(chol, y - mean)
        ys_star = np.linalg.solve(chol, (ys - mean).T).T
        pde = np.clip((ys_star < y_star).mean(axis=0), 1 / (2 * k), 1 - 1 / (2 * k))
        np.testing.assert_allclose(res["PDE"].to_numpy()[rows], pde)
    # an observation above every simulation: pde = 1 - 1/(2K)
    dv2 = dv.copy()
    dv2[0] = 1e6
    res2 = npde_from_simulations(dv2, np.zeros(dv.size, bool), np.zeros(dv.size), subject, sims)
    assert res2["PD"].iloc[0] == pytest.approx(1 - 1 / (2 * k))
    assert np.isfinite(res2["NPDE"]).all()


def test_misspecified_mean_shifts_npde():
    dv, sims, subject = _correlated_study(shift=0.4)
    res = npde_from_simulations(dv, np.zeros(dv.size, bool), np.zeros(dv.size), subject, sims)
    t = npde_tests(res)
    # a shift common to a subject's correlated records is concentrated by the
    # decorrelation in the first record of each subject
    assert t.loc["mean", "value"] > 0.1
    assert t.loc["t-test", "p_value"] < 1e-4
    assert res["NPDE"].to_numpy().reshape(-1, 6)[:, 0].mean() > 0.3


def test_npde_tests_formulas():
    x = np.random.default_rng(1).normal(0.1, 1.2, 400)
    t = npde_tests(pd.DataFrame({"NPDE": np.append(x, np.nan)}))
    assert t.loc["mean", "value"] == pytest.approx(x.mean())
    assert t.loc["variance", "value"] == pytest.approx(x.var(ddof=1))
    assert t.loc["t-test", "p_value"] == pytest.approx(stats.ttest_1samp(x, 0).pvalue)
    chi = (x.size - 1) * x.var(ddof=1)
    p_var = 2 * min(stats.chi2.cdf(chi, x.size - 1), stats.chi2.sf(chi, x.size - 1))
    assert t.loc["Fisher variance test", "p_value"] == pytest.approx(p_var)
    assert t.loc["SW test of normality", "p_value"] == pytest.approx(stats.shapiro(x).pvalue)
    p3 = t.loc[["t-test", "Fisher variance test", "SW test of normality"], "p_value"]
    assert t.loc["global test", "p_value"] == pytest.approx(min(1.0, 3 * p3.min()))
    assert (t["n"] == 400).all()
    with pytest.raises(DiagnosticsError):
        npde_tests([0.1, np.nan])


def test_oracle_fit_npde_is_standard_normal():
    """Data simulated from the model, NPDE from the model: N(0, 1) (BLQ records imputed)."""
    fit, df = oracle_study()
    tab = npde_table(fit, n_draws=1000, seed=0)
    assert tab["BLQ"].any()
    npde = tab["NPDE"].dropna()
    assert len(npde) == len(tab)  # BLQ records imputed, nothing dropped
    assert abs(npde.mean()) < 0.15
    assert npde.std() == pytest.approx(1.0, abs=0.12)
    t = npde_tests(tab)
    assert t.loc["global test", "p_value"] > 0.01
    assert tab.loc[tab["BLQ"], "PWRES"].isna().all()
    assert tab.loc[tab["BLQ"], "DV_IMPUTED"].lt(tab.loc[tab["BLQ"], "LLOQ"]).all()


def test_blq_omit_and_validation():
    fit, _ = oracle_study()
    tab = npde_table(fit, n_draws=200, blq="omit")
    assert tab.loc[tab["BLQ"], "NPDE"].isna().all()
    assert tab.loc[~tab["BLQ"], "NPDE"].notna().all()
    with pytest.raises(DiagnosticsError, match="impute"):
        npde_table(fit, n_draws=50, blq="drop")
    from poppk.diagnostics import simulate_observations

    with pytest.raises(DiagnosticsError, match="new_subjects"):
        npde_table(fit, simulations=simulate_observations(fit, n_draws=20, new_subjects=False))


def test_plot_npde(tmp_path):
    fit, _ = oracle_study()
    tab = npde_table(fit, n_draws=200)
    fig = plot_npde(tab, npde_tests(tab))
    assert len([a for a in fig.axes if a.get_visible()]) == 4
    fig.savefig(tmp_path / "npde.png")
