"""parameter_table: every number equals the one computed from the posterior arrays directly."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

from poppk.report import PARAMETER_COLUMNS, SECTIONS, parameter_table

from _report_fixtures import EVIL_COV, covariate_fit, flat_draws, plain_fit


@pytest.fixture(scope="module")
def fit():
    return covariate_fit()


@pytest.fixture(scope="module")
def table(fit):
    return parameter_table(fit)


def _row(table: pd.DataFrame, name: str) -> pd.Series:
    rows = table[table["parameter"] == name]
    assert len(rows) == 1, name
    return rows.iloc[0]


def test_columns_sections_and_order(table, fit):
    assert tuple(table.columns) == PARAMETER_COLUMNS
    assert list(dict.fromkeys(table["section"])) == list(SECTIONS)
    assert table["parameter"].tolist() == [
        "CL", "V1", "beta_CL_WT", "beta_V1_WT", "beta_CL_ALB", "beta_V1_SEX", f"beta_CL_{EVIL_COV}",
        "omega_CL", "omega_V1", "corr_CL_V1", "sigma_prop", "sigma_add",
    ]
    assert _row(table, "CL")["label"] == "CL (L/h)"
    assert _row(table, "V1")["label"] == "V1 (L)"
    assert _row(table, "sigma_add")["unit"] == "mg/L"
    assert _row(table, "sigma_prop")["unit"] == "%"
    assert "WT = 70 kg" in _row(table, "CL")["note"]
    assert any("exp(ω²)" in n for n in table.attrs["notes"])


@pytest.mark.parametrize("name", ["CL", "V1", "beta_CL_WT", "beta_CL_ALB", "beta_V1_SEX", "omega_CL",
                                  "omega_V1", "sigma_add"])
def test_numbers_equal_numpy(table, fit, name):
    v = flat_draws(fit, name)
    r = _row(table, name)
    med = np.median(v)
    assert r["median"] == pytest.approx(med, rel=1e-12)
    assert r["lower"] == pytest.approx(np.quantile(v, 0.025), rel=1e-12)
    assert r["upper"] == pytest.approx(np.quantile(v, 0.975), rel=1e-12)
    assert r["rse_pct"] == pytest.approx(100 * v.std(ddof=1) / abs(med), rel=1e-12)
    x = fit.idata.posterior[name].values
    assert r["r_hat"] == pytest.approx(float(az.rhat(x)), rel=1e-12)
    assert r["ess_bulk"] == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-12)
    assert r["ess_tail"] == pytest.approx(float(az.ess(x, method="tail")), rel=1e-12)
    assert not r["fixed"]


def test_summary_agrees(table, fit):
    s = fit.summary()
    for name in s.index:
        r = _row(table, name)
        scale = 100.0 if name == "sigma_prop" else 1.0
        assert r["median"] == pytest.approx(scale * s.loc[name, "median"], rel=1e-12)
        assert r["rse_pct"] == pytest.approx(100 * s.loc[name, "rse"], rel=1e-12)


def test_proportional_error_in_percent(table, fit):
    v = flat_draws(fit, "sigma_prop")
    r = _row(table, "sigma_prop")
    assert r["median"] == pytest.approx(100 * np.median(v), rel=1e-12)
    assert r["upper"] == pytest.approx(100 * np.quantile(v, 0.975), rel=1e-12)


@pytest.mark.parametrize("p", ["CL", "V1"])
def test_iiv_cv_and_shrinkage(table, fit, p):
    w = flat_draws(fit, f"omega_{p}")
    cv = 100 * np.sqrt(np.exp(w**2) - 1)
    r = _row(table, f"omega_{p}")
    assert r["cv_pct"] == pytest.approx(np.median(cv), rel=1e-12)
    assert r["cv_lower"] == pytest.approx(np.quantile(cv, 0.025), rel=1e-12)
    assert r["cv_upper"] == pytest.approx(np.quantile(cv, 0.975), rel=1e-12)
    eta_mean = fit.eta().mean(dim=("chain", "draw")).sel(iiv=p).values
    expected = 100 * (1 - np.std(eta_mean, ddof=1) / np.median(w))
    assert r["shrinkage_pct"] == pytest.approx(expected, rel=1e-9)


def test_correlation_from_omega_corr(table, fit):
    c = fit.idata.posterior["omega_corr"].sel(iiv="CL", iiv_bis="V1").values.ravel()
    r = _row(table, "corr_CL_V1")
    assert r["median"] == pytest.approx(np.median(c), rel=1e-12)
    assert r["lower"] == pytest.approx(np.quantile(c, 0.025), rel=1e-12)
    assert r["upper"] == pytest.approx(np.quantile(c, 0.975), rel=1e-12)
    assert r["section"] == "Inter-individual variability"


def test_fixed_parameter_row(table):
    r = _row(table, "beta_V1_WT")
    assert r["fixed"]
    assert r["median"] == 1.0
    assert np.isnan(r["lower"]) and np.isnan(r["r_hat"])


def test_ci_option(fit):
    v = flat_draws(fit, "CL")
    t = parameter_table(fit, ci=0.9, shrinkage=False)
    r = _row(t, "CL")
    assert r["lower"] == pytest.approx(np.quantile(v, 0.05), rel=1e-12)
    assert t["shrinkage_pct"].isna().all()
    assert t.attrs["ci"] == 0.9


def test_plain_model_has_no_covariate_or_correlation_rows():
    t = parameter_table(plain_fit())
    assert "Covariate effects" not in set(t["section"])
    assert t["parameter"].tolist() == ["CL", "V1", "omega_CL", "sigma_prop"]


def test_bad_ci(fit):
    from poppk.errors import PopPKError

    with pytest.raises(PopPKError, match="ci must be"):
        parameter_table(fit, ci=95)
