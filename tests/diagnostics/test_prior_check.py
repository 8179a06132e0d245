"""Prior predictive checks: prior VPC on the observed design, the written files, `poppk check --prior`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from poppk.cli import main
from poppk.model.persist import save_fit
from poppk.diagnostics import DiagnosticsError, prior_fit, prior_parameter_table, prior_vpc_table, vpc_table
from poppk.plots import plot_vpc

from _diag_fixtures import oracle_study


def test_prior_vpc_is_wider_than_the_posterior_vpc():
    fit, _ = oracle_study()
    prior = prior_vpc_table(fit, n_draws=150, seed=1, bins=6)
    post = vpc_table(fit, n_draws=150, seed=1, bins=6)
    assert prior.attrs["kind"] == "Prior predictive VPC" and prior.attrs["prior"]
    assert prior.attrs["n_draws"] == 150
    med = lambda t: t[t["percentile"] == 50].set_index("bin")  # noqa: E731
    # the priors (log-normal, SD 1 on the log scale) are far less certain than the posterior of 40 subjects:
    # the band of the simulated median reaches higher, and lower (often below the LLOQ: NaN, censored)
    assert (np.log(med(prior)["sim_upper"] / med(post)["sim_upper"]) > 0.5).all()
    lower = med(prior)["sim_lower"]
    assert (lower.isna() | (lower < med(post)["sim_lower"] / 1.5)).all()
    assert med(post)["sim_lower"].notna().all()
    # observed percentiles are the same numbers whichever the simulation
    np.testing.assert_allclose(prior["observed"], post["observed"])
    fig = plot_vpc(prior, log_y=True)
    assert fig._suptitle is not None and fig._suptitle.get_text().startswith("Prior predictive VPC")


def test_prior_from_spec_and_data_without_a_fit():
    fit, _ = oracle_study()
    tab = prior_vpc_table(spec=fit.spec, data=fit.data, n_draws=40, seed=0, bins=4)
    assert len(tab) == 4 * 3
    with pytest.raises(DiagnosticsError, match="needs a fit"):
        prior_fit(spec=fit.spec)


def test_prior_parameter_table_brackets_the_prior_median():
    fit, _ = oracle_study()
    tab = prior_parameter_table(prior_fit(fit, n_draws=300, seed=0))
    cl = dict(fit.spec.typical)["CL"]["median"]
    assert tab.loc["CL", "lower"] < cl < tab.loc["CL", "upper"]
    assert tab.loc["CL", "upper"] / tab.loc["CL", "lower"] > 5  # SD 1 on the log scale: a wide prior


def test_cli_check_prior(tmp_path, capsys):
    fit, _ = oracle_study()
    fit = dataclasses.replace(fit, idata=fit.idata.copy())
    save_fit(fit, tmp_path / "fit", predictive=False)
    rc = main(["check", str(tmp_path / "fit"), "--out", str(tmp_path / "prior"), "--prior", "--draws", "30"])
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "prior").iterdir())
    assert names == ["prior_parameters.csv", "prior_vpc.csv", "prior_vpc.png", "prior_vpc_log.png"]
    assert (tmp_path / "prior" / "prior_vpc_log.png").stat().st_size > 10_000
    assert "4 files written" in capsys.readouterr().out
