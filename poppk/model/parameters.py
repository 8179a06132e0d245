"""Individual parameters from typical values, covariates and random effects.

``log P_i = log TV_P + Σ_c log f_c(cov_i) + η_i,P`` — written once, on either
backend, so that the likelihood and every post-sampling computation (IPRED,
PRED, simulation of new subjects) agree.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from poppk.model.spec import SIZE_FRACTION, CovariateEffect, ModelSpec
from poppk.pk.ops import is_tensor

__all__ = ["covariate_log_effect", "log_individual_parameters", "covariate_columns", "base_key"]


def base_key(effect: CovariateEffect) -> str:
    """Key of an adjusted effect's lower-size column in :func:`covariate_columns`."""
    return f"{effect.name}:base"


def covariate_columns(spec: ModelSpec, covariates: Any) -> dict[str, np.ndarray]:
    """The per-subject covariate arrays a spec needs, as float64.

    Parameters
    ----------
    spec
        A resolved spec (references filled, see :meth:`ModelSpec.resolved`).
    covariates
        DataFrame indexed by subject (``PKData.covariates``) or a mapping
        of column name to array (virtual populations).

    Returns
    -------
    dict
        ``{effect.name: array}``: for continuous forms the covariate values,
        for categorical forms a 0/1 indicator of ``level``; an adjusted size
        effect adds its lower size (IBW) under :func:`base_key`.
    """
    out: dict[str, np.ndarray] = {}
    for c in spec.covariates:
        col = covariates[c.covariate]
        values = np.asarray(col)
        if c.form == "categorical":
            out[c.name] = _indicator(values, c.level)
        else:
            out[c.name] = values.astype(np.float64)
        if c.form == "adjusted":
            out[base_key(c)] = np.asarray(covariates[c.base], dtype=np.float64)
    return out


def _indicator(values: np.ndarray, level: Any) -> np.ndarray:
    try:
        lev = float(level)
        num = np.asarray(values, dtype=np.float64)
        return (num == lev).astype(np.float64)
    except (TypeError, ValueError):
        return np.array([str(v).strip().upper() == str(level).strip().upper() for v in values], dtype=np.float64)


def covariate_log_effect(
    effect: CovariateEffect, beta: Any, x: Any, *, base: Any = None, fraction: Any = None,
    reference: Any = None, base_reference: Any = None,
) -> Any:
    """``log f(cov)`` of one covariate effect (NumPy or PyTensor).

    Parameters
    ----------
    effect
        The effect (form and reference).
    beta
        The coefficient (scalar, or array broadcasting against ``x``).
    x
        Covariate values (or 0/1 indicator for categorical effects).
    base, fraction
        For ``"adjusted"`` effects: the lower size (IBW) and the fraction ``f``
        of ``base + f·(x − base)``.
    reference, base_reference
        Stand-ins for the effect's reference values (e.g. graph inputs);
        default: the effect's own.
    """
    ref = effect.reference if reference is None else reference
    if effect.form == "adjusted":
        if base is None or fraction is None:
            raise ValueError(f"{effect.name}: an adjusted size effect needs base= and fraction=")
        bref = effect.base_reference if base_reference is None else base_reference
        return beta * adjusted_log_size(x, base, fraction, ref, bref)
    if effect.form == "power":
        return beta * np.log(np.asarray(x) / ref) if not is_tensor(beta, x) else beta * _log(x / ref)
    if effect.form == "exponential":
        return beta * (x - ref)
    if effect.form == "linear":
        return _log(1.0 + beta * (x - ref)) if is_tensor(beta, x) else np.log(1.0 + beta * (x - ref))
    if effect.form == "categorical":
        return beta * x
    raise ValueError(f"unknown covariate form {effect.form!r}")


def adjusted_log_size(total: Any, base: Any, fraction: Any, reference: Any, base_reference: Any) -> Any:
    """``log(S_f / S_f,ref)`` with ``S_f = base + f·(total − base)`` (NumPy or PyTensor).

    Examples
    --------
    >>> float(adjusted_log_size(80.0, 56.5, 0.4, 70.0, 56.5))  # AIBW 65.9 vs reference 61.9
    0.0626...
    """
    size = base + fraction * (total - base)
    ref = base_reference + fraction * (reference - base_reference)
    if is_tensor(total, base, fraction):
        return _log(size) - _log(ref)
    return np.log(size) - np.log(ref)


def _log(x: Any) -> Any:
    import pytensor.tensor as pt

    return pt.log(x)


def log_individual_parameters(
    spec: ModelSpec,
    log_typical: Mapping[str, Any],
    betas: Mapping[str, Any],
    covariates: Mapping[str, Any],
    eta: Mapping[str, Any] | None = None,
    references: Mapping[str, tuple[Any, Any]] | None = None,
) -> dict[str, Any]:
    """Log individual parameters for every structural parameter.

    Parameters
    ----------
    spec
        Resolved model spec.
    log_typical
        ``{param: log TV}``, scalars or arrays broadcasting against the subjects.
    betas
        ``{effect.name: beta}`` (and ``size_fraction`` with an adjusted size
        model): the coefficients of :attr:`ModelSpec.coefficients`.
    covariates
        ``{effect.name: per-subject array}`` from :func:`covariate_columns`.
    eta
        ``{param: η}`` for parameters with IIV; ``None`` or missing keys give
        the typical (PRED) parameters.
    references
        ``{effect.name: (reference, base_reference)}`` stand-ins (graph
        inputs); default: the spec's values.

    Returns
    -------
    dict
        ``{param: log P_i}``.
    """
    out: dict[str, Any] = {}
    for p in spec.parameters:
        value = log_typical[p]
        for c in spec.covariates_on(p):
            ref, bref = (references or {}).get(c.name, (None, None))
            if c.form == "adjusted":
                term = covariate_log_effect(
                    c, betas[c.name], covariates[c.name], base=covariates[base_key(c)], fraction=betas[SIZE_FRACTION],
                    reference=ref, base_reference=bref,
                )
            else:
                term = covariate_log_effect(c, betas[c.name], covariates[c.name], reference=ref)
            value = value + term
        if eta is not None and p in eta:
            value = value + eta[p]
        out[p] = value
    return out


def population_draws(spec: ModelSpec, posterior: Any, names: Any = None) -> dict[str, np.ndarray]:
    """Every scalar population parameter per posterior draw, fixed ones included.

    The one reader of population draws: typical values (natural scale, by
    parameter name), covariate coefficients and the size fraction (by their
    names), ``omega_<p>`` and ``sigma_<k>``; a parameter the spec fixes is its
    value repeated.

    Parameters
    ----------
    spec
        The fitted spec.
    posterior
        A posterior (``xarray.Dataset``) with dims ``chain, draw``, or one
        stacked ``sample`` dimension.
    names
        Only these (default: all).

    Returns
    -------
    dict of numpy.ndarray
        Flat arrays in the posterior's order (chain-major).

    Raises
    ------
    FitError
        When a parameter the spec does not fix is missing from the posterior.
    """
    from poppk.errors import FitError

    dims = [d for d in ("chain", "draw", "sample") if d in posterior.dims]
    n = int(np.prod([posterior.sizes[d] for d in dims]))

    def one(name: str, prior: Any) -> np.ndarray:
        if prior is not None and prior.is_fixed:
            return np.full(n, float(prior["value"]))
        if name not in posterior:
            raise FitError(f"the posterior has no {name} and the spec does not fix it; "
                           f"variables: {list(posterior.data_vars)}")
        return np.asarray(posterior[name].transpose(*dims).values, dtype=np.float64).reshape(n)

    given = dict(spec.sigma)
    priors = {**dict(spec.typical), **dict(spec.coefficients), **{f"omega_{p}": pr for p, pr in spec.omega},
              **{f"omega_iov_{p}": pr for p, pr in getattr(spec, "iov", ())},
              **{f"sigma_{k}": given.get(k) for k in spec.sigma_names}}
    wanted = list(priors) if names is None else list(names)
    unknown = [w for w in wanted if w not in priors]
    if unknown:
        raise FitError(f"{unknown} are not population parameters of this spec; they are {list(priors)}")
    return {name: one(name, priors[name]) for name in wanted}


def sigma_values(spec: ModelSpec, posterior: Any) -> dict[str, Any]:
    """Residual-error magnitudes of a posterior, by error component, dims ``chain, draw``.

    The one reader of σ draws: a fixed σ of the spec (not sampled, so not in the
    posterior) is broadcast to every draw.

    Parameters
    ----------
    spec
        The fitted spec.
    posterior
        The posterior group (an ``xarray.Dataset`` with dims ``chain, draw``).

    Returns
    -------
    dict of xarray.DataArray
        ``{"prop": ..., "add": ...}`` (the spec's ``sigma_names``).
    """
    import xarray as xr

    from poppk.errors import FitError

    given = dict(spec.sigma)
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    out = {}
    for k in spec.sigma_names:
        if k in given and given[k].is_fixed:
            out[k] = xr.DataArray(np.full((coords["chain"].size, coords["draw"].size), float(given[k]["value"])),
                                  dims=("chain", "draw"), coords=coords)
        elif f"sigma_{k}" in posterior:
            out[k] = posterior[f"sigma_{k}"].astype(float)
        else:
            raise FitError(f"the posterior has no sigma_{k} and the spec does not fix it; "
                           f"variables: {list(posterior.data_vars)}")
    return out
