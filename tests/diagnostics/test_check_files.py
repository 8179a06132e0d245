"""write_checks: every table as CSV and every figure as PNG/SVG, written atomically."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from poppk.diagnostics import DiagnosticsError, write_checks

from _diag_fixtures import good_fit, oracle_study


def test_write_checks_oracle_without_loo(tmp_path):
    # write_checks adds the predictive groups to the fit it is given: a copy, not the session's oracle fit
    fit = oracle_study()[0]
    fit = dataclasses.replace(fit, idata=fit.idata.copy())
    paths = write_checks(fit, tmp_path / "checks", n_draws=100, loo=False, stratify="SEX")
    names = {p.name for p in paths}
    for expected in ("vpc.csv", "vpc_tad.csv", "pcvpc.csv", "pcvpc_tad.csv", "vpc_SEX.csv", "gof.csv",
                     "npde_tests.csv", "shrinkage.csv", "eta.csv", "eta_covariates.csv", "eta_distribution.csv",
                     "individual_fits.csv", "vpc.png", "vpc_log.png", "vpc_tad_log.png", "pcvpc.png",
                     "pcvpc_tad.png", "vpc_SEX_log.png", "gof.png", "gof_log.png", "npde.png", "eta_distributions.png",
                     "eta_covariates.png", "individual_fits_01.png", "individual_fits_03.png",
                     "loo_pit.csv", "loo_pit_ecdf.csv", "loo_pit.png", "prior_vpc.csv", "prior_vpc_log.png"):
        assert expected in names, expected
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    # the checks leave ArviZ's predictive groups on the fit
    assert {"posterior_predictive", "prior", "prior_predictive"} <= set(fit.idata.groups())
    pit = pd.read_csv(tmp_path / "checks" / "loo_pit.csv")
    assert pit["count"].sum() == fit.design.n_obs
    # nothing else left behind (no temporary files)
    assert sorted(x.name for x in (tmp_path / "checks").iterdir()) == sorted(names)
    gof = pd.read_csv(tmp_path / "checks" / "gof.csv")
    assert len(gof) == fit.design.n_obs and "NPDE" in gof
    with pytest.raises(DiagnosticsError, match="formats"):
        write_checks(fit, tmp_path / "x", formats=("gif",))


@pytest.mark.slow
def test_write_checks_fit_png_and_svg(tmp_path):
    fit = dataclasses.replace(good_fit(), idata=good_fit().idata.copy())  # not the session fit itself
    paths = write_checks(fit, tmp_path, formats=("png", "svg"), n_draws=100)  # files, not statistics, are tested
    names = {p.name for p in paths}
    for expected in ("loo_summary.csv", "loo_subject.csv", "pareto_k.csv", "pareto_k.png", "pareto_k.svg",
                     "vpc.svg", "gof.svg"):
        assert expected in names, expected
    summary = pd.read_csv(tmp_path / "loo_summary.csv")
    assert list(summary["by"]) == ["subject", "subject (integrated)", "observation"]
    assert (summary["n_units"] == [24, 24, 360]).all()
    assert sum(1 for p in paths if p.suffix == ".png") == sum(1 for p in paths if p.suffix == ".svg")
