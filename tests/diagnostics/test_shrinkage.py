"""η- and ε-shrinkage against their formulas, computed independently from the posterior."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from poppk.diagnostics import DiagnosticsError, shrinkage_table

from _diag_fixtures import good_fit, oracle_study


def _independent(fit):
    """Shrinkage from the raw posterior (theta, typical values, beta, omegas, sigma) and the data."""
    post = fit.idata.posterior
    wt = fit.data.covariates.loc[list(fit.design.subject_ids), "WT"].to_numpy(dtype=float)
    theta = post["theta"]  # individual log parameters
    log_wt = xr.DataArray(np.log(wt / 70.0), dims="id", coords={"id": post["id"].values})
    eta_cl = theta.sel(iiv="CL") - np.log(post["CL"]) - post["beta_CL_WT"] * log_wt
    eta_v1 = theta.sel(iiv="V1") - np.log(post["V1"])
    out = {}
    for p, eta in (("CL", eta_cl), ("V1", eta_v1)):
        m = eta.mean(dim=("chain", "draw")).values
        out[p] = 1 - np.std(m, ddof=1) / float(np.median(post[f"omega_{p}"].values))
    # epsilon: IWRES from the posterior mean IPRED and the median sigma_prop
    ip = fit.predictions()["ipred"].mean(dim=("chain", "draw")).values
    dv, blq = fit.design.dv, fit.design.blq
    sig = float(np.median(post["sigma_prop"].values))
    w = ((dv - ip) / (sig * ip))[~blq]
    out["epsilon"] = 1 - np.std(w, ddof=1)
    return out


def test_oracle_shrinkage_matches_formula():
    fit, _ = oracle_study()
    tab = shrinkage_table(fit)
    ref = _independent(fit)
    assert list(tab.index) == ["eta_CL", "eta_V1", "epsilon"]
    for p in ("CL", "V1"):
        assert tab.loc[f"eta_{p}", "shrinkage"] == pytest.approx(ref[p], abs=1e-10)
    assert tab.loc["epsilon", "shrinkage"] == pytest.approx(ref["epsilon"], abs=1e-10)
    np.testing.assert_allclose(tab["shrinkage_pct"], 100 * tab["shrinkage"])
    assert tab.loc["epsilon", "n"] == int((~fit.design.blq).sum())
    # variance-based: 1 - var/omega^2
    tv = shrinkage_table(fit, method="variance")
    s = tab.loc["eta_CL", "sd"]
    assert tv.loc["eta_CL", "shrinkage"] == pytest.approx(1 - s**2 / tab.loc["eta_CL", "reference"] ** 2)
    with pytest.raises(DiagnosticsError):
        shrinkage_table(fit, method="bayes")


@pytest.mark.slow
def test_fitted_shrinkage_matches_formula():
    fit = good_fit()
    tab = shrinkage_table(fit)
    ref = _independent(fit)
    for p in ("CL", "V1"):
        assert tab.loc[f"eta_{p}", "shrinkage"] == pytest.approx(ref[p], abs=1e-10)
    assert tab.loc["epsilon", "shrinkage"] == pytest.approx(ref["epsilon"], abs=1e-10)
    # rich individual data: little shrinkage
    assert (tab["shrinkage_pct"] < 30).all()
