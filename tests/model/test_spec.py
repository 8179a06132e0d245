import dataclasses

import pandas as pd
import pytest

from poppk.errors import ModelSpecError
from poppk.model import CovariateEffect, ModelSpec, Prior


def two_cmt(**kw):
    return ModelSpec(structure="2cmt", typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, **kw)


def test_bare_numbers_become_lognormal_priors():
    spec = two_cmt()
    assert spec.typical_priors["CL"] == Prior.lognormal(0.45, 1.0)
    assert spec.parameters == ("CL", "V1", "Q", "V2")
    assert spec.n_cmt == 2


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(structure="4cmt"), "structure"),
        (dict(typical={"CL": 1.0}), "no typical value"),
        (dict(typical={"CL": 1.0, "V1": 1.0, "KA": 1.0}), "not parameters"),
        (dict(typical={"CL": -1.0, "V1": 1.0}), "must be > 0"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, iiv=("CL", "Q")), "iiv on"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, error="poisson"), "error model"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, blq="m7"), "blq"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, lag=True), "lag"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, sigma={"add": Prior.halfnormal(1)}, error="proportional"), "not used"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, iiv=("CL",), iiv_correlation="full"), "at least two"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, covariates=(CovariateEffect("KA", "WT"),)), "no such parameter"),
        (dict(typical={"CL": 1.0, "V1": 1.0}, parametrization="whitened"), "parametrization"),
    ],
)
def test_invalid_specs_say_what_is_wrong(kwargs, fragment):
    base = dict(structure="1cmt")
    base.update(kwargs)
    with pytest.raises(ModelSpecError, match=fragment):
        ModelSpec(**base)


def test_prior_validation():
    with pytest.raises(ModelSpecError, match="unknown prior family"):
        Prior("gamma", (("a", 1.0),))
    with pytest.raises(ModelSpecError, match="must be > 0"):
        Prior.halfnormal(-1)
    lo, hi = Prior.lognormal(4.0, 1.0).interval(0.9)
    assert lo == pytest.approx(4.0 * 0.19303, rel=1e-3) and hi == pytest.approx(4.0 * 5.1803, rel=1e-3)


@pytest.mark.parametrize("parametrization", ["centered", "noncentered", "laplace"])
def test_roundtrip_dict_json_toml(parametrization):
    spec = two_cmt(
        parametrization=parametrization,
        covariates=(CovariateEffect("CL", "AIBW", reference=60.0), CovariateEffect("CL", "SEX", "categorical", level="F")),
        iiv=("CL", "V1", "Q"),
        iiv_correlation="full",
        error="combined",
        sigma={"prop": Prior.halfnormal(0.3)},
    )
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert ModelSpec.from_toml(spec.to_toml()) == spec
    assert ModelSpec.from_toml(spec.to_toml()).parametrization == parametrization
    with pytest.raises(ModelSpecError, match="unknown keys"):
        ModelSpec.from_dict({**spec.to_dict(), "colour": "red"})


def test_frozen_and_replace():
    spec = two_cmt()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.structure = "1cmt"  # type: ignore[misc]
    assert dataclasses.replace(spec, error="proportional").error == "proportional"


def test_with_size_covariate_swaps_descriptor_and_resolves_reference():
    spec = two_cmt().with_size_covariate("TBW", exponents={"CL": 0.75})
    assert [c.covariate for c in spec.covariates] == ["TBW"] * 4
    assert spec.covariates[0].prior == Prior.fixed(0.75)
    spec2 = spec.with_size_covariate("AIBW")
    assert {c.covariate for c in spec2.covariates} == {"AIBW"}
    table = pd.DataFrame({"AIBW": [50.0, 60.0, 70.0]}, index=[1, 2, 3])
    resolved = spec2.resolved(table)
    assert all(c.reference == 60.0 for c in resolved.covariates)
    with pytest.raises(ModelSpecError, match="with_size_descriptors"):
        spec.resolved(table)


def test_describe_lists_every_prior():
    text = two_cmt(covariates=(CovariateEffect("CL", "AIBW", reference=60.0),)).describe()
    for word in ("CL", "V2", "beta_CL_AIBW", "omega_CL", "sigma_prop", "sigma_add", "90% prior interval"):
        assert word in text
