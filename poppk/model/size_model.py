"""The body-size model of a spec: which effects scale on size, and the adjusted-size fraction.

Pure functions over covariate effects, used by :class:`poppk.model.spec.ModelSpec`'s
``with_size_covariate`` / ``with_size_model`` and by its validation: the power effects
on a body-size column (TBW, WT, IBW, AIBW, LBW, FFM, BSA, BMI) or of the ``adjusted``
form are one size model, replaced as a whole when the descriptor changes; adjusted
effects (``IBW + f·(TBW − IBW)``) share one fraction ``f`` and its prior.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from poppk.errors import ModelSpecError
from poppk.model.effects import SIZE_COLUMNS, CovariateEffect, _as_prior
from poppk.model.priors import Prior

__all__ = ["without_size_effects", "size_targets", "power_size_effects", "adjusted_size_effects",
           "check_size_fraction"]


def _exponent(exponents: Mapping[str, float | Prior] | None, parameter: str) -> Prior | None:
    e = (exponents or {}).get(parameter)
    return Prior.fixed(float(e)) if isinstance(e, (int, float)) else e


def without_size_effects(covariates: Iterable[CovariateEffect]) -> tuple[CovariateEffect, ...]:
    """The effects that are not part of the size model (kept when the size model is replaced)."""
    return tuple(
        c for c in covariates
        if not (c.form == "adjusted" or (c.form == "power" and c.covariate.upper() in SIZE_COLUMNS))
    )


def size_targets(model_parameters: Iterable[str], parameters: Iterable[str] | None) -> tuple[str, ...]:
    """``parameters``, or by default every clearance and volume among ``model_parameters``."""
    if parameters is not None:
        return tuple(parameters)
    return tuple(p for p in model_parameters if p.startswith(("CL", "Q", "V")))


def power_size_effects(descriptor: str, targets: Iterable[str], *, reference: float | None,
                       exponents: Mapping[str, float | Prior] | None) -> tuple[CovariateEffect, ...]:
    """A power effect of ``descriptor`` on each target (an exponent fixed by a number, else its prior)."""
    return tuple(CovariateEffect(p, descriptor, "power", reference=reference, prior=_exponent(exponents, p))
                 for p in targets)


def adjusted_size_effects(total: str, base: str, targets: Iterable[str], *, reference: float | None,
                          base_reference: float | None,
                          exponents: Mapping[str, float | Prior] | None) -> tuple[CovariateEffect, ...]:
    """An effect of the adjusted size ``base + f·(total − base)`` on each target."""
    return tuple(
        CovariateEffect(p, total, "adjusted", reference=reference, prior=_exponent(exponents, p),
                        base=base, base_reference=base_reference)
        for p in targets
    )


def check_size_fraction(covariates: Iterable[CovariateEffect], prior: Prior | float | None) -> Prior | None:
    """The prior of the adjusted-size fraction, checked against the effects that use it.

    ``None`` gives Beta(1, 1) when adjusted effects exist (none otherwise); a number is a
    fixed fraction in [0, 1]; adjusted effects must share their two columns.
    """
    adjusted = [c for c in covariates if c.form == "adjusted"]
    bases = {(c.covariate, c.base) for c in adjusted}
    if len(bases) > 1:
        raise ModelSpecError(
            f"adjusted size effects share one fraction, so they must use the same columns; got {sorted(bases)}"
        )
    if prior is None:
        return Prior.beta(1.0, 1.0) if adjusted else None
    if isinstance(prior, (int, float)) and not isinstance(prior, bool):
        prior = Prior.fixed(float(prior))
    prior = _as_prior(prior, "size_fraction")
    if prior.family not in ("beta", "fixed"):
        raise ModelSpecError(
            f"size_fraction: use a 'beta' prior on (0, 1) or a 'fixed' value in [0, 1], got {prior.family!r}"
        )
    if prior.is_fixed and not 0.0 <= prior["value"] <= 1.0:
        raise ModelSpecError(f"size_fraction: a fixed fraction must lie in [0, 1], got {prior['value']}")
    if not adjusted:
        raise ModelSpecError(
            "size_fraction is given but no covariate effect has form='adjusted'; "
            "add them with ModelSpec.with_size_model()"
        )
    return prior
