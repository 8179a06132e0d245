"""What decides a model's compiled graph: the key of the compile cache and store.

Two fits share compiled code when their keys are equal
(:mod:`poppk.model.compile_cache`, :mod:`poppk.model.compile_store`).  The key
holds what changes the graph: the spec's structure, absorption, the covariate
effects' parameters and forms (not their columns: the coefficients are renamed
on the way out), the IIV and error models, the prior families (not their
values), the parametrisation, LKJ η, which effects vary per record and the
occasion effects, and from the data the recursion width and which terms exist
(steady state, infusions still running, oral doses, BLQ records).  Numbers that
are graph inputs (data, covariate values and references, prior
hyper-parameters, fixed values, the Laplace terms) are not in it.
"""

from __future__ import annotations

from typing import Any

from poppk.model.design import ModelDesign
from poppk.model.spec import ModelSpec

__all__ = ["structure_key"]


def structure_key(spec: ModelSpec, design: ModelDesign) -> tuple[Any, ...]:
    """Everything that decides the compiled graph of ``spec`` on ``design`` (see module doc).

    Numbers that are graph inputs (data, covariate values and references,
    prior hyper-parameters, fixed values, the Laplace terms) are not in it.
    """
    from poppk.model.build import _sigma_prior
    from poppk.model.predict import prediction_structure

    def fam(prior: Any) -> str:
        return prior.family

    return (
        spec.structure,
        spec.absorption,
        spec.lag,
        tuple((p, fam(pr)) for p, pr in spec.typical),
        tuple((c.parameter, c.form, c.reference is None, c.base_reference is None) for c in spec.covariates),
        tuple(fam(pr) for _, pr in spec.coefficients),
        tuple(spec.iiv),
        spec.iiv_correlation,
        tuple((p, fam(pr)) for p, pr in spec.omega),
        float(spec.lkj_eta) if spec.iiv_correlation == "full" else None,
        spec.error,
        tuple((k, fam(_sigma_prior(spec, k, design))) for k in spec.sigma_names),
        spec.blq,
        bool(spec.truncate_at_zero),
        spec.parametrization,
        bool(design.has_blq),
        len(design.covariates),
        prediction_structure(spec, design),
        # which effects are evaluated per record, by position (graph inputs tv{i} follow this order), and IOV
        tuple([c.name for c in spec.covariates].index(name) for name in spec.time_varying),
        tuple((p, fam(pr)) for p, pr in spec.iov),
    )
