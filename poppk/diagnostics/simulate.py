"""Posterior predictive replicates of the observed data: the ingredient of every check.

:func:`simulate_observations` draws replicate datasets ``y_rep`` for the
observed design (same subjects, times, doses, covariates):

1. pick ``n_draws`` posterior draws (population parameters, and the
   subjects' individual parameters);
2. with ``new_subjects=True`` replace each subject's random effects by fresh
   η ~ N(0, Ω) of that draw (``omega_*``, and ``omega_corr`` when the fit has
   a full Ω) — a replicate *study* with new subjects of the same covariates
   and doses, which is what VPC and NPDE need; with ``new_subjects=False``
   keep the subjects' posterior parameters — a replicate of the *same*
   subjects (posterior predictive check of the individual fits);
3. predict IPRED with the fitting code (:func:`poppk.model.predict.predict_draws`);
4. add residual error with :func:`poppk.model.likelihood.residual_sd`:
   normal for additive/proportional/combined (truncated at 0 when the spec
   says ``truncate_at_zero``), log-normal for the exponential model;
5. censor: a replicate below the record's LLOQ is flagged ``blq_rep`` and
   its value set to the LLOQ, as the observed BLQ records are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy.special import ndtr, ndtri

from poppk.diagnostics._common import DiagnosticsError, flat_draw_count, select_draws
from poppk.model.likelihood import residual_sd
from poppk.model.predict import predict_draws
from poppk.model.analytes import error_terms

__all__ = ["simulate_observations", "sample_parameters", "add_residual_error"]

#: IPRED floor, as in :func:`poppk.model.likelihood.observation_loglik`.
_FLOOR = 1e-12


def _omega_draws(fit: Any, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """ω per selected draw, shape (n, k), and correlation matrices (n, k, k) or None."""
    from poppk.model.parameters import population_draws

    post = fit.idata.posterior
    total = flat_draw_count(fit)
    names = [f"omega_{p}" for p in fit.spec.iiv]
    drawn = population_draws(fit.spec, post, names)
    cols = [drawn[n][idx] for n in names]
    omega = np.stack(cols, axis=-1)
    corr = None
    if "omega_corr" in post:
        k = len(fit.spec.iiv)
        corr = post["omega_corr"].values.reshape(total, k, k)[idx]
    return omega, corr


def sample_parameters(
    fit: Any, idx: np.ndarray, *, new_subjects: bool, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Individual parameters (natural scale) for the flattened draws ``idx``.

    Returns ``{param: array (len(idx), n_subjects)}`` (and the per-segment
    offsets of time-varying parameters, see :meth:`poppk.model.Fit.parameter_draws`):
    the posterior individual parameters, or with ``new_subjects`` the typical
    parameters of each subject times ``exp(η)``, η ~ N(0, Ω) drawn afresh per
    draw and subject (and occasion effects κ afresh per occasion).
    """
    n_sub = fit.design.n_subjects
    if not new_subjects:
        return fit.parameter_draws(index=idx)
    out = fit.parameter_draws(typical=True, index=idx)
    if fit.spec.iov:  # new occasions too: κ ~ N(0, ω_IOV²) afresh for every (subject, occasion) and draw
        from poppk.model.parameters import population_draws
        from poppk.model.time_varying import OFFSETS, varying_parameters

        names = [f"omega_iov_{p}" for p, _ in fit.spec.iov]
        omega_iov = np.stack([population_draws(fit.spec, fit.idata.posterior, [n])[n][idx] for n in names], -1)
        kappa = rng.standard_normal((len(idx), fit.design.segments.n_pairs, len(names))) * omega_iov[:, None, :]
        varying = varying_parameters(fit.spec)
        offsets = out[OFFSETS].copy()
        for j, (p, _) in enumerate(fit.spec.iov):
            offsets[..., varying.index(p)] += kappa[:, fit.design.segments.pair, j]
        out[OFFSETS] = offsets
    if fit.spec.iiv:
        omega, corr = _omega_draws(fit, idx)
        z = rng.standard_normal((len(idx), n_sub, len(fit.spec.iiv)))
        if corr is not None:
            cov = corr * omega[:, :, None] * omega[:, None, :]
            k = cov.shape[-1]
            chol = np.linalg.cholesky(cov + 1e-12 * np.eye(k)[None])
            eta = np.einsum("nij,nsj->nsi", chol, z)
        else:
            eta = z * omega[:, None, :]
        for j, p in enumerate(fit.spec.iiv):
            out[p] = out[p] * np.exp(eta[:, :, j])
    return out


def add_residual_error(
    ipred: np.ndarray, sigma: dict[str, np.ndarray], spec: Any, rng: np.random.Generator,
    analyte: np.ndarray | None = None,
) -> np.ndarray:
    """Draw DV given IPRED under the spec's residual-error model.

    ``sigma`` values broadcast against ``ipred`` (e.g. shape (n_draws, 1)).
    The proportional and exponential models use IPRED floored at 1e-12, as
    the likelihood does.  ``analyte``: the analyte index of each observation
    (last axis) of a multi-analyte model, whose analytes have their own errors.
    """
    ip = np.maximum(ipred, _FLOOR)
    sigma, error = error_terms(spec, sigma, analyte)
    if error == "exponential":
        return ip * np.exp(sigma["exp"] * rng.standard_normal(ip.shape))
    sd = residual_sd(ip, sigma, error)
    if spec.truncate_at_zero:
        # inverse-CDF draw from Normal(ip, sd) truncated to (0, inf)
        lo = ndtr(-ip / np.maximum(sd, 1e-300))
        u = lo + rng.uniform(size=ip.shape) * (1.0 - lo)
        u = np.clip(u, 1e-300, 1 - 1e-16)
        return np.maximum(ip + sd * ndtri(u), 0.0)
    return ip + sd * rng.standard_normal(ip.shape)


def simulate_observations(
    fit: Any,
    *,
    n_draws: int | None = 200,
    new_subjects: bool = False,
    seed: int = 0,
    draw_index: np.ndarray | None = None,
) -> xr.Dataset:
    """Posterior predictive replicates of every observation, with BLQ censoring.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    n_draws
        Number of replicates.  Each uses one posterior draw, chosen at random
        without replacement (with replacement if ``n_draws`` exceeds the
        number of posterior draws); ``None`` uses every draw once, in order.
    new_subjects
        ``False``: replicates of the fitted subjects (their posterior
        individual parameters).  ``True``: fresh random effects η ~ N(0, Ω)
        for every subject and replicate, same covariates and doses — the
        simulation a VPC or NPDE needs.
    seed
        Seed of the random number generator.
    draw_index
        Indices into the flattened (chain, draw) posterior to use, one
        replicate each, in this order (overrides ``n_draws``); e.g. evenly
        thinned draws of every chain for the ``posterior_predictive`` group
        (:func:`poppk.diagnostics.predictive.add_predictive_groups`).

    Returns
    -------
    xarray.Dataset
        Dims ``draw`` (replicate) and ``obs``:

        * ``y_rep`` -- replicate DV; on a replicate BLQ record the LLOQ;
        * ``blq_rep`` -- True where the replicate fell below the LLOQ;
        * ``y_rep_uncensored`` -- the replicate before censoring;
        * ``ipred`` -- the individual prediction the replicate was drawn around.

        Coordinates ``source_chain``/``source_draw`` (on ``draw``) name the
        posterior draw used; attributes record ``new_subjects`` and ``seed``.

    Notes
    -----
    Observations without an LLOQ (LLOQ 0 or missing) are never censored.  For
    a fit with ``blq="m1"`` the observed BLQ records were dropped before
    fitting, whereas replicates below the LLOQ of the kept records are
    flagged; compare fractions BLQ with that in mind.

    Examples
    --------
    >>> from poppk.model import load_fit                    # doctest: +SKIP
    >>> sims = simulate_observations(load_fit("fit"), n_draws=500, new_subjects=True)  # doctest: +SKIP
    >>> sims.y_rep.shape                                    # doctest: +SKIP
    (500, 1560)
    """
    rng = np.random.default_rng(seed)
    if draw_index is None:
        idx = select_draws(fit, n_draws, rng)
    else:
        idx = np.asarray(draw_index, dtype=np.int64)
        total = flat_draw_count(fit)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= total:
            raise DiagnosticsError(f"draw_index must be a non-empty 1-D array of indices in [0, {total}), "
                                   f"got shape {idx.shape}")
    params = sample_parameters(fit, idx, new_subjects=new_subjects, rng=rng)
    design = fit.design
    ipred = predict_draws(fit.spec, design, params)
    sig_all = fit.sigma_draws()
    sigma = {k: v[idx][:, None] for k, v in sig_all.items()}
    y = add_residual_error(ipred, sigma, fit.spec, rng, design.obs_analyte)
    lloq = np.asarray(design.lloq, dtype=float)
    has_lloq = np.isfinite(lloq) & (lloq > 0)
    cens = has_lloq[None, :] & (y < lloq[None, :])
    y_rep = np.where(cens, lloq[None, :], y)
    post = fit.idata.posterior
    nd = post.sizes["draw"]
    coords = {
        "draw": np.arange(len(idx)),
        "obs": np.arange(design.n_obs),
        "source_chain": ("draw", post.chain.values[idx // nd]),
        "source_draw": ("draw", post.draw.values[idx % nd]),
    }
    ds = xr.Dataset(
        {
            "y_rep": (("draw", "obs"), y_rep),
            "blq_rep": (("draw", "obs"), cens),
            "y_rep_uncensored": (("draw", "obs"), y),
            "ipred": (("draw", "obs"), ipred),
        },
        coords=coords,
        attrs={"new_subjects": int(bool(new_subjects)), "seed": int(seed), "error": fit.spec.error},
    )
    ds["y_rep"].attrs["units"] = fit.spec.unit.get("concentration", "")
    return ds
