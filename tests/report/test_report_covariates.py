"""covariate_effects: forest ratios equal (x/ref)^β etc. computed from the draws; plot_forest draws them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from poppk.report import COVARIATE_COLUMNS, covariate_effects, plot_forest

from _report_fixtures import EVIL_COV, covariate_fit, flat_draws, plain_fit


@pytest.fixture(scope="module")
def fit():
    return covariate_fit()


@pytest.fixture(scope="module")
def table(fit):
    return covariate_effects(fit, dosing=("flat", "per_kg"))


def _q(x: np.ndarray, ci: float = 0.9) -> tuple[float, float, float]:
    return float(np.median(x)), float(np.quantile(x, (1 - ci) / 2)), float(np.quantile(x, 1 - (1 - ci) / 2))


def _rows(table: pd.DataFrame, paramname: str, covname: str) -> pd.DataFrame:
    return table[(table["paramname"] == paramname) & (table["covname"] == covname)]


def _check(row: pd.Series, draws: np.ndarray, ci: float = 0.9) -> None:
    mid, lo, hi = _q(draws, ci)
    assert row["mid"] == pytest.approx(mid, rel=1e-10)
    assert row["lower"] == pytest.approx(lo, rel=1e-10)
    assert row["upper"] == pytest.approx(hi, rel=1e-10)


def test_coveffectsplot_columns(table):
    assert tuple(table.columns) == COVARIATE_COLUMNS
    assert {"paramname", "covname", "label", "mid", "lower", "upper", "reference", "value"} <= set(table.columns)
    assert table.attrs["ci"] == 0.9 and table.attrs["band"] == (0.8, 1.25)


def test_power_effect_at_percentiles(table, fit):
    wt = fit.data.covariates["WT"].astype(float).to_numpy()
    beta = flat_draws(fit, "beta_CL_WT")
    rows = _rows(table, "CL", "WT")
    assert rows["percentile"].tolist() == [5.0, 95.0]
    for (_, row), pct in zip(rows.iterrows(), (5, 95)):
        x = np.percentile(wt, pct)
        assert row["value"] == pytest.approx(x)
        assert row["reference"] == 70.0
        _check(row, (x / 70.0) ** beta)
        # flat dose: AUC = Dose/CL
        auc = _rows(table, "AUC (flat dose)", "WT")
        _check(auc[auc["percentile"] == pct].iloc[0], (x / 70.0) ** (-beta))
        # mg/kg dose: AUC ratio = weight ratio / CL ratio
        auc_kg = _rows(table, "AUC (mg/kg dose)", "WT")
        _check(auc_kg[auc_kg["percentile"] == pct].iloc[0], (x / 70.0) * (x / 70.0) ** (-beta))
        # V1 exponent fixed at 1: Cmax ∝ Dose/V1, exactly the inverse weight ratio; mg/kg cancels it
        cmax = _rows(table, "Cmax (flat dose)", "WT")
        r = cmax[cmax["percentile"] == pct].iloc[0]
        assert r["mid"] == pytest.approx(70.0 / x) and r["lower"] == pytest.approx(70.0 / x)
        cmax_kg = _rows(table, "Cmax (mg/kg dose)", "WT")
        assert cmax_kg[cmax_kg["percentile"] == pct].iloc[0]["mid"] == pytest.approx(1.0)


def test_exponential_and_linear_effects(table, fit):
    alb = fit.data.covariates["ALB"].astype(float).to_numpy()
    beta = flat_draws(fit, "beta_CL_ALB")
    for (_, row), pct in zip(_rows(table, "CL", "ALB").iterrows(), (5, 95)):
        _check(row, np.exp(beta * (np.percentile(alb, pct) - 4.0)))
    ev = fit.data.covariates[EVIL_COV].astype(float).to_numpy()
    ref = next(c.reference for c in fit.spec.covariates if c.covariate == EVIL_COV)
    assert ref == pytest.approx(np.median(ev), abs=1e-4)
    b = flat_draws(fit, f"beta_CL_{EVIL_COV}")
    for (_, row), pct in zip(_rows(table, "CL", EVIL_COV).iterrows(), (5, 95)):
        _check(row, 1 + b * (np.percentile(ev, pct) - ref))
    # a covariate acts only where the model puts it
    assert _rows(table, "V1", "ALB").empty and _rows(table, "Cmax (flat dose)", "ALB").empty
    # mg/kg rows only for the dosing weight
    assert set(table.loc[table["dosing"] == "per_kg", "covname"]) == {"WT"}


def test_categorical_effect(table, fit):
    beta = flat_draws(fit, "beta_V1_SEX")
    row = _rows(table, "V1", "SEX").iloc[0]
    assert row["value"] == "F" and row["reference"] == "M"
    assert row["label"] == "SEX = F vs M"
    _check(row, np.exp(beta))
    _check(_rows(table, "Cmax (flat dose)", "SEX").iloc[0], np.exp(-beta))
    assert _rows(table, "AUC (flat dose)", "SEX").empty


def test_ci_percentiles_and_metrics_options(fit):
    t = covariate_effects(fit, metrics=["CL"], exposure=False, ci=0.5, percentiles=(10, 90))
    assert set(t["paramname"]) == {"CL"}
    wt = fit.data.covariates["WT"].astype(float).to_numpy()
    beta = flat_draws(fit, "beta_CL_WT")
    row = _rows(t, "CL", "WT").iloc[1]
    assert row["percentile"] == 90 and "90th pct" in row["label"]
    _check(row, (np.percentile(wt, 90) / 70.0) ** beta, ci=0.5)


def test_in_band_flag(table):
    inside = (table["lower"] >= 0.8) & (table["upper"] <= 1.25)
    assert (table["in_band"] == inside).all()


def test_no_covariates_gives_empty_table():
    t = covariate_effects(plain_fit())
    assert t.empty and tuple(t.columns) == COVARIATE_COLUMNS
    assert isinstance(plot_forest(t), Figure)


def test_bad_options(fit):
    from poppk.errors import PopPKError

    with pytest.raises(PopPKError, match="dosing"):
        covariate_effects(fit, dosing=("weekly",))
    with pytest.raises(PopPKError, match="not parameters"):
        covariate_effects(fit, metrics=["KA"])


def test_plot_forest_draws_every_row(table, tmp_path):
    fig = plot_forest(table, title="forest $x$ of <b>")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    n_groups = table["paramname"].nunique()
    assert len(labels) == len(table) + n_groups
    # user strings are shown literally, '$' never starts mathtext
    t2 = table.copy()
    t2.loc[t2.index[0], "label"] = "cost $5 and $10"
    fig2 = plot_forest(t2)
    fig2.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
