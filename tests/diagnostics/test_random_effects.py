"""η tables, η-covariate statistics and their figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from poppk.diagnostics import eta_covariate_table, eta_distribution_table, eta_table
from poppk.plots import plot_eta_covariates, plot_eta_distributions

from _diag_fixtures import TRUTH_2CMT, oracle_study


def test_eta_table_values_and_covariates():
    fit, _ = oracle_study()
    tab = eta_table(fit)
    post = fit.idata.posterior
    wt = fit.data.covariates.loc[list(fit.design.subject_ids), "WT"].to_numpy(dtype=float)
    eta_cl = (post["theta"].sel(iiv="CL") - np.log(post["CL"]) - 0.75 * np.log(wt / 70)).mean(("chain", "draw"))
    np.testing.assert_allclose(tab["eta_CL"], eta_cl.values, atol=1e-12)
    np.testing.assert_allclose(tab["eta_CL_sd"], 0, atol=1e-10)  # oracle: every draw the same
    assert {"WT", "AGE", "SEX"} <= set(tab.columns)
    np.testing.assert_allclose(tab["WT"], wt)
    assert tab.attrs["omega"]["CL"] == pytest.approx(TRUTH_2CMT["omega_CL"])
    assert set(tab.attrs["shrinkage"]) == {"CL", "V1"}


def test_eta_covariate_statistics_match_scipy():
    fit, _ = oracle_study()
    tab = eta_table(fit)
    st = eta_covariate_table(tab)
    assert len(st) == 2 * 3
    r = st[(st["parameter"] == "V1") & (st["covariate"] == "AGE")].iloc[0]
    lr = stats.linregress(tab["AGE"], tab["eta_V1"])
    assert r["type"] == "continuous"
    assert r["slope"] == pytest.approx(lr.slope) and r["p_value"] == pytest.approx(lr.pvalue)
    assert r["r"] == pytest.approx(lr.rvalue)
    assert r["rho"] == pytest.approx(stats.spearmanr(tab["AGE"], tab["eta_V1"]).statistic)
    c = st[(st["parameter"] == "CL") & (st["covariate"] == "SEX")].iloc[0]
    assert c["type"] == "categorical"
    groups = [tab.loc[tab["SEX"] == v, "eta_CL"] for v in (0, 1)]
    assert c["p_value"] == pytest.approx(stats.f_oneway(*groups).pvalue)
    assert "0:" in c["levels"] and "1:" in c["levels"]  # whole-number codes printed without ".0"
    # the model includes the true WT effect: no residual trend of eta_CL with WT
    w = st[(st["parameter"] == "CL") & (st["covariate"] == "WT")].iloc[0]
    assert w["p_value"] > 0.05


def test_missing_covariate_shows_in_eta():
    """Oracle of a model *without* the WT effect: η_CL carries 0.75·log(WT/70) and correlates with WT."""
    fit, _ = oracle_study()
    post = fit.idata.posterior
    fit.idata.posterior = post.assign(beta_CL_WT=post["beta_CL_WT"] * 0)
    try:
        st = eta_covariate_table(fit)
    finally:
        fit.idata.posterior = post
    w = st[(st["parameter"] == "CL") & (st["covariate"] == "WT")].iloc[0]
    assert w["r"] > 0.5 and w["p_value"] < 0.001 and w["slope"] > 0


def test_distribution_table_and_figures(tmp_path):
    fit, _ = oracle_study()
    tab = eta_table(fit)
    d = eta_distribution_table(tab)
    assert list(d.index) == ["CL", "V1"]
    assert d.loc["CL", "sd"] == pytest.approx(np.std(tab["eta_CL"], ddof=1))
    assert d.loc["CL", "shapiro_p"] == pytest.approx(stats.shapiro(tab["eta_CL"]).pvalue)
    fig = plot_eta_distributions(tab)
    assert len(fig.axes) == 4
    fig.savefig(tmp_path / "eta.png")
    fig = plot_eta_covariates(tab, eta_covariate_table(tab))
    assert len(fig.axes) == 2 * 3
    assert fig.axes[3].get_xlabel() == "WT (kg)"
    fig.savefig(tmp_path / "etacov.png")
    # no covariates at all: an explanatory empty figure
    empty = pd.DataFrame({"eta_CL": [0.1, -0.1]})
    empty.attrs.update({"parameters": ["CL"], "covariates": []})
    assert plot_eta_covariates(empty) is not None
