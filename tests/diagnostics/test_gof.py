"""GOF table, dense-grid individual predictions and the GOF figures."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from poppk.diagnostics import gof_table, individual_fit_table, iwres, npde_table, observation_frame
from poppk.plots import plot_dv_vs_ipred, plot_dv_vs_pred, plot_gof, plot_individual_fits, plot_residuals

from _diag_fixtures import TRUTH_2CMT, oracle_study


@pytest.fixture(scope="module")
def gof():
    fit, _ = oracle_study()
    return fit, gof_table(fit, n_draws=300, seed=2)


def test_columns_and_predictions(gof):
    fit, tab = gof
    for c in ("ID", "TIME", "TAFD", "TAD", "DV", "BLQ", "LLOQ", "PRED", "IPRED", "IWRES", "EPRED", "PWRES", "NPDE"):
        assert c in tab.columns
    pr = fit.predictions()
    np.testing.assert_allclose(tab["PRED"], np.median(pr["pred"].values.reshape(-1, fit.design.n_obs), axis=0))
    np.testing.assert_allclose(tab["IPRED"], np.median(pr["ipred"].values.reshape(-1, fit.design.n_obs), axis=0))
    # NPDE column is npde_table's with the same simulations settings
    nt = npde_table(fit, n_draws=300, seed=2)
    np.testing.assert_allclose(tab["NPDE"], nt["NPDE"])
    assert tab.attrs["concentration_unit"] == "mg/L" and tab.attrs["time_unit"] == "h"


def test_iwres_formula(gof):
    fit, tab = gof
    q = tab[~tab["BLQ"]]
    expected = (q["DV"] - q["IPRED_MEAN"]) / (TRUTH_2CMT["sigma_prop"] * q["IPRED_MEAN"])
    np.testing.assert_allclose(q["IWRES"], expected)
    assert tab.loc[tab["BLQ"], "IWRES"].isna().all()
    # IWRES of the truth are N(0, 1)
    assert q["IWRES"].std() == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(iwres(np.array([2.0]), np.array([1.0]), {"exp": 0.5}, "exponential"), np.log(2) / 0.5)
    np.testing.assert_allclose(iwres(np.array([3.0]), np.array([1.0]), {"add": 0.5}, "additive"), 4.0)


def test_individual_grid_predictions_agree_with_fitted():
    """Predictions on the dense grid, read at the observation times, equal the fitted IPRED/PRED."""
    fit, _ = oracle_study()
    ids = [str(s) for s in fit.design.subject_ids[:3]]
    curves, points = individual_fit_table(fit, ids, n_grid=50)
    assert set(curves["ID"].astype(str)) == set(ids)
    assert len(points) == 3 * 15
    for sid in ids:
        c = curves[curves["ID"].astype(str) == sid].set_index("TIME")
        p = points[points["ID"].astype(str) == sid]
        np.testing.assert_allclose(c.loc[p["TIME"], "IPRED"].to_numpy(), p["IPRED"].to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(c.loc[p["TIME"], "PRED"].to_numpy(), p["PRED"].to_numpy(), rtol=1e-10)
        assert (c["IPRED_LOWER"] <= c["IPRED"] + 1e-12).all() and (c["IPRED"] <= c["IPRED_UPPER"] + 1e-12).all()
        # the dose at 24 h is on the grid and counts as given: the curve jumps there
        assert c.loc[24.0, "IPRED"] > c.loc[23.5, "IPRED"] * 2
    from poppk.diagnostics import DiagnosticsError

    with pytest.raises(DiagnosticsError, match="unknown subject"):
        individual_fit_table(fit, ["nobody"])


def test_gof_figures(gof, tmp_path):
    fit, tab = gof
    for fig in (plot_gof(tab), plot_gof(tab, log=True), plot_dv_vs_pred(tab, log=True), plot_dv_vs_ipred(tab),
                plot_residuals(tab, "TAD", "PWRES"), plot_residuals(tab, "PRED", "IWRES", log_x=True)):
        assert isinstance(fig, Figure)
    fig = plot_gof(tab, log=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "PRED" in ax.get_xlabel() and "mg/L" in ax.get_ylabel()
    fig.savefig(tmp_path / "gof.png")
    curves, points = individual_fit_table(fit, n_grid=40)
    fig = plot_individual_fits(curves, points, log_y=True, max_panels=6)
    assert len([a for a in fig.axes if a.get_visible()]) == 6
    fig.savefig(tmp_path / "ind.png")
    fig = plot_individual_fits(fit, ids=[str(fit.design.subject_ids[0])])  # a Fit: table computed on the fly
    assert len([a for a in fig.axes if a.get_visible()]) == 1
    assert len(observation_frame(fit)) == len(tab)
