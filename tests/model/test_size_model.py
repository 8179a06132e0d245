"""The adjusted size model IBW + f·(TBW − IBW): nesting, serialisation, build and a real fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poppk.errors import ModelSpecError
from poppk.model import CovariateEffect, ModelSpec, Prior
from poppk.model.parameters import covariate_columns, log_individual_parameters
from poppk.model.spec import SIZE_FRACTION


def two_cmt(**kw):
    return ModelSpec(structure="2cmt", typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0}, units={"time": "day"}, **kw)


def test_with_size_model_replaces_size_effects_and_keeps_others():
    spec = two_cmt(covariates=(CovariateEffect("CL", "ALB", reference=4.0),)).with_size_covariate("AIBW")
    adj = spec.with_size_model(parameters=("CL", "V1"))
    assert [c.name for c in adj.covariates] == ["beta_CL_ALB", "beta_CL_SIZE", "beta_V1_SIZE"]
    assert adj.size_fraction == Prior.beta(1.0, 1.0)
    assert [n for n, _ in adj.coefficients] == ["beta_CL_ALB", "beta_CL_SIZE", "beta_V1_SIZE", SIZE_FRACTION]
    assert {c.columns for c in adj.covariates if c.form == "adjusted"} == {("TBW", "IBW")}
    # and back: a plain descriptor drops the fraction
    back = adj.with_size_covariate("TBW", parameters=("CL",))
    assert back.size_fraction is None and [c.name for c in back.covariates] == ["beta_CL_ALB", "beta_CL_TBW"]
    assert "size_fraction" in adj.describe() and "0.4 AIBW" in adj.describe()


def test_size_model_roundtrips_through_toml_and_json():
    spec = two_cmt().with_size_model(fraction=Prior.beta(2.0, 2.0), reference=70.0, base_reference=60.0)
    assert ModelSpec.from_toml(spec.to_toml()) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    fixed = two_cmt().with_size_model(fraction=0.4)
    assert fixed.size_fraction == Prior.fixed(0.4)
    assert ModelSpec.from_toml(fixed.to_toml()) == fixed


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: two_cmt().with_size_model(fraction=1.5), r"in \[0, 1\]"),
        (lambda: two_cmt().with_size_model(fraction=Prior.normal(0.5, 0.1)), "beta"),
        (lambda: two_cmt(size_fraction=Prior.beta(1, 1)), "no covariate effect has form='adjusted'"),
        (lambda: CovariateEffect("CL", "ALB", base="IBW"), "form='adjusted' only"),
        (lambda: two_cmt(covariates=(CovariateEffect("CL", "TBW", "adjusted"),
                                     CovariateEffect("V1", "WT", "adjusted"))), "same columns"),
    ],
)
def test_invalid_size_models_say_what_is_wrong(make, fragment):
    with pytest.raises(ModelSpecError, match=fragment):
        make()


def _table():
    rng = np.random.default_rng(0)
    tbw = rng.uniform(45, 130, 50)
    ibw = rng.uniform(45, 65, 50)
    return pd.DataFrame({"TBW": tbw, "IBW": ibw, "AIBW": ibw + 0.4 * (tbw - ibw)})


@pytest.mark.parametrize("f, column", [(1.0, "TBW"), (0.0, "IBW"), (0.4, "AIBW")])
def test_fixed_fraction_is_exactly_the_power_model_on_that_descriptor(f, column):
    """f = 1, 0, 0.4 reproduce TBW, IBW and AIBW power models, reference subject included."""
    tab = _table()
    tref, bref = 80.0, 55.0
    adj = two_cmt().with_size_model(fraction=f, reference=tref, base_reference=bref, parameters=("CL", "V1"))
    plain = two_cmt().with_size_covariate(column, reference=bref + f * (tref - bref), parameters=("CL", "V1"))
    log_tv = {"CL": np.log(0.5), "V1": np.log(3.0), "Q": np.log(0.5), "V2": np.log(2.0)}
    betas = {"CL": 0.7, "V1": 0.9}
    b_adj = {c.name: betas[c.parameter] for c in adj.covariates} | {SIZE_FRACTION: f}
    b_plain = {c.name: betas[c.parameter] for c in plain.covariates}
    got = log_individual_parameters(adj, log_tv, b_adj, covariate_columns(adj, tab))
    want = log_individual_parameters(plain, log_tv, b_plain, covariate_columns(plain, tab))
    for p in ("CL", "V1"):
        np.testing.assert_allclose(got[p], want[p], rtol=0, atol=1e-12)


def test_fixed_fraction_model_has_the_aibw_model_density(small_study):
    """Built PyMC models: fixed f = 0.4 and the AIBW power model give the same log density."""
    from poppk.model import build_model

    data, _ = small_study
    data = data.with_size_descriptors()
    ref = data.covariates
    tref, bref = float(ref["TBW"].median()), float(ref["IBW"].median())
    base = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"),
                     error="proportional", units={"time": "h"}, parametrization="noncentered")
    adj = base.with_size_model(fraction=0.4, reference=tref, base_reference=bref)
    aibw = base.with_size_covariate("AIBW", reference=bref + 0.4 * (tref - bref))
    m_adj, m_aibw = build_model(adj, data), build_model(aibw, data)
    rename = {"beta_CL_SIZE": "beta_CL_AIBW", "beta_V1_SIZE": "beta_V1_AIBW"}
    point = m_adj.initial_point()
    point = {**point, "beta_CL_SIZE": np.array(0.6), "beta_V1_SIZE": np.array(0.8),
             "z": np.random.default_rng(1).normal(size=point["z"].shape)}
    other = {rename.get(k, k): v for k, v in point.items()}
    lp_adj = m_adj.compile_logp()(point)
    lp_aibw = m_aibw.compile_logp()(other)
    assert np.isfinite(lp_adj)
    assert lp_adj == pytest.approx(lp_aibw, rel=1e-10)


def test_adjusted_model_needs_positive_sizes(small_study, monkeypatch):
    from poppk.model.design import build_design

    data, _ = small_study
    data = data.with_size_descriptors()
    cov = data.covariates.copy()
    cov.iloc[3, cov.columns.get_loc("IBW")] = -2.0  # e.g. the label's IBW of a very short subject
    monkeypatch.setattr(type(data), "covariates", property(lambda self: cov.copy()))
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, units={"time": "h"}).with_size_model()
    with pytest.raises(ModelSpecError, match="needs both sizes > 0"):
        build_design(spec.resolved(data.covariates), data)


@pytest.mark.parametrize("truth, descriptor, lo, hi", [("TBW^1", "TBW", 0.8, 1.0), ("AIBW", "AIBW", 0.2, 0.7)])
def test_laplace_em_starts_the_fraction_near_the_truth(truth, descriptor, lo, hi):
    """The EM profiles f with the modes held: under TBW^1 it starts near 1, under AIBW near 0.4."""
    import importlib.util
    import sys
    from pathlib import Path

    from poppk.data import read_nonmem
    from poppk.model.design import build_design
    from poppk.model.init import laplace_init

    path = Path(__file__).resolve().parents[2] / "data" / "generate_trial.py"
    mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location("generate_trial", path))
    sys.modules.setdefault("generate_trial", mod)
    mod.__spec__.loader.exec_module(mod)
    gt = sys.modules["generate_trial"]
    exps = (1.0, 1.0) if truth == "TBW^1" else (0.8, 1.0)
    records, _ = gt.generate_trial(1003, {1.0: 3, 2.0: 6, 3.3: 6, 5.0: 10, 7.0: 6}, {5.0: 14, 6.0: 15}, *exps,
                                   size_descriptor=descriptor)
    data = read_nonmem(records, time_unit="day").with_size_descriptors(ibw_method="label")
    spec = ModelSpec(structure="2cmt", typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0},
                     covariates=(CovariateEffect("CL", "ALB", reference=4.0),), iiv=("CL", "V1"),
                     iiv_correlation="full", error="combined", units={"time": "day"})
    spec = spec.with_size_model(parameters=("CL", "V1")).resolved(data.covariates)
    init = laplace_init(spec, build_design(spec, data))
    assert lo <= init.betas[SIZE_FRACTION] <= hi


def test_simulating_needs_both_references_resolved():
    from poppk.simulate import PosteriorDraws

    spec = two_cmt().with_size_model(reference=70.0, parameters=("CL",))  # base_reference left unresolved
    with pytest.raises(ModelSpecError, match="unresolved"):
        PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0},
                                   betas={"beta_CL_SIZE": 0.7, SIZE_FRACTION: 0.4}, omega={"CL": 0.3, "V1": 0.2})


def test_covariate_report_shows_weight_and_height_of_the_adjusted_size(small_study):
    """Forest rows: TBW varied at reference IBW, and IBW varied at reference TBW; f = 1 leaves IBW no effect."""
    import types

    import arviz as az
    import xarray as xr

    from poppk.report.covariates import covariate_effects

    data, _ = small_study
    data = data.with_size_descriptors()
    n = 40

    def fake(fraction):
        spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), units={"time": "h"},
                         error="proportional").with_size_model().resolved(data.covariates)
        post = xr.Dataset({k: (("chain", "draw"), np.full((1, n), v)) for k, v in
                           {"beta_CL_SIZE": 0.75, "beta_V1_SIZE": 1.0, SIZE_FRACTION: fraction}.items()})
        return types.SimpleNamespace(spec=spec, data=data, idata=az.InferenceData(posterior=post)), spec

    fit, spec = fake(0.4)
    t = covariate_effects(fit, exposure=False)
    assert set(t["covname"]) == {"TBW", "IBW"}
    c = spec.covariates[0]
    row = t[(t["paramname"] == "CL") & (t["covname"] == "IBW")].iloc[-1]
    s_ref = c.base_reference + 0.4 * (c.reference - c.base_reference)
    ibw = row["value"]
    want = ((ibw + 0.4 * (c.reference - ibw)) / s_ref) ** 0.75  # TBW at its reference, IBW at the 95th pct
    assert row["mid"] == pytest.approx(want, rel=1e-9)
    fit1, _ = fake(1.0)
    t1 = covariate_effects(fit1, exposure=False)
    assert np.allclose(t1.loc[t1["covname"] == "IBW", "mid"], 1.0)
