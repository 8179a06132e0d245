"""Per-analyte residual errors: one per-observation form reproduces each analyte's own likelihood."""

from __future__ import annotations

import numpy as np
import pytest

from poppk.errors import ModelSpecError
from poppk.model import ModelSpec
from poppk.model.analytes import error_terms
from poppk.model.likelihood import observation_loglik

TYP = {"CL": 0.5, "V1": 3.0, "CL_P": 20.0, "V_P": 40.0, "CL_M": 9.0, "V_M": 30.0}


def _spec(error: str, payload: str | None, metabolite: str | None) -> ModelSpec:
    return ModelSpec(structure="1cmt", typical=TYP, error=error, analytes=[
        {"name": "ADC", "dvid": 1}, {"name": "P", "dvid": 2, "source": "ADC", "error": payload},
        {"name": "M", "dvid": 3, "source": "P", "error": metabolite}])


@pytest.mark.parametrize("error,payload,metabolite", [
    ("proportional", None, None), ("proportional", "combined", "additive"), ("combined", "proportional", None),
    ("additive", "additive", "proportional"), ("exponential", None, None),
])
def test_error_terms_reproduce_each_analytes_own_likelihood(error: str, payload: str | None, metabolite: str | None) -> None:
    spec = _spec(error, payload, metabolite)
    rng = np.random.default_rng(0)
    n = 30
    analyte = rng.integers(0, 3, n)
    ipred = rng.uniform(0.1, 50, n)
    dv = ipred * np.exp(rng.normal(0, 0.2, n))
    blq = rng.random(n) < 0.2
    lloq = np.where(blq, dv * 1.5, 0.0)
    sigma = {name: np.array([[0.1 + 0.05 * i], [0.2 + 0.05 * i]]) for i, name in enumerate(spec.sigma_names)}  # 2 draws
    sig_obs, err = error_terms(spec, sigma, analyte)
    joint = observation_loglik(dv[None], ipred[None], sig_obs, err, blq=blq[None], lloq=lloq[None])
    forms = [error, payload or error, metabolite or error]
    for a, suffix in enumerate(["", "_P", "_M"]):
        own = {k.split("_")[0]: v for k, v in sigma.items() if (k.endswith(suffix) if suffix else "_" not in k)}
        m = analyte == a
        ref = observation_loglik(dv[None, m], ipred[None, m], own, forms[a], blq=blq[None, m], lloq=lloq[None, m])
        np.testing.assert_allclose(joint[:, m], ref, rtol=1e-12)


def test_one_analyte_spec_is_unchanged() -> None:
    spec = ModelSpec(structure="1cmt", typical={"CL": 0.5, "V1": 3.0}, error="combined")
    sigma = {"prop": 0.1, "add": 0.2}
    out, err = error_terms(spec, sigma, None)
    assert out == sigma and err == "combined"


def test_exponential_cannot_be_mixed() -> None:
    with pytest.raises(ModelSpecError, match="exponential"):
        _spec("exponential", "proportional", None)


def test_sigma_names_and_parameters() -> None:
    spec = _spec("proportional", "combined", None)
    assert spec.parameters == ("CL", "V1", "CL_P", "V_P", "CL_M", "V_M")
    assert spec.sigma_names == ("prop", "prop_P", "add_P", "prop_M")
    assert [f.source for f in spec.formation] == [0, 1]
    assert spec.formation[1].source_clearance == "CL_P"
