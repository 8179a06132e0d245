r"""PSIS-LOO cross-validation per subject or per observation, and model comparison.

For a population model the natural unit to leave out is the **subject**
(``by="subject"``): the predictive density of a new subject's whole profile
is what the model is used for.  The pointwise log-likelihood of each subject
(``log_likelihood.y_subject``, the sum of its observations' log-likelihoods,
M3 for BLQ records) is passed to :func:`arviz.loo` (Pareto-smoothed
importance sampling, Vehtari, Gelman & Gabry 2017).  ``by="observation"``
leaves out single records (``log_likelihood.y``).

Pareto k diagnostics: values above 0.7 (and above ArviZ's sample-size
dependent threshold ``min(1 − 1/log10(S), 0.7)``) mean the importance
sampling estimate of that unit is unreliable.  With rich individual data,
leaving a subject out moves its η far, so high k values are the rule for
plain PSIS with ``by="subject"``.

``method="integrated"`` (leave-one-subject-out only) fixes that by
integrating each subject's random effects out of its likelihood before
PSIS, as recommended for hierarchical models (Vehtari et al. 2016, Stat
Comput 26:1183, "integrated importance sampling"):

.. math:: p(y_i \mid \phi_s) = \int p(y_i \mid \eta, \phi_s)\,
   N(\eta; 0, \Omega_s)\, d\eta

for every posterior draw φ_s of the population parameters, estimated by
importance sampling with ``n_eta`` draws of η from a defensive mixture
0.9·N(μ_i, 1.5²Σ_i) + 0.1·N(0, Ω̂) (μ_i, Σ_i: posterior mean and covariance of
the subject's η; Ω̂: posterior median Ω), common to all draws.  PSIS then
only has to reweight the population parameters, which one subject moves
little, and the Pareto k values are usually small.  It is the leave-one-
subject-out predictive density of a *new* subject's profile — the quantity
to compare size descriptors by.  Costs ``n_eta`` predictions per draw.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from poppk.diagnostics._common import DiagnosticsError

__all__ = ["loo", "loo_pointwise", "pareto_k_summary", "compare", "integrated_loglik"]

_VAR = {"subject": "y_subject", "observation": "y"}


def _loglik_idata(fit: Any, by: str) -> Any:
    """InferenceData with the log-likelihood group (computed if the fit lacks it)."""
    import arviz as az

    if by not in _VAR:
        raise DiagnosticsError(f"by={by!r}: use 'subject' or 'observation'")
    var = _VAR[by]
    if "log_likelihood" in fit.idata.groups() and var in fit.idata.log_likelihood:
        ll = fit.idata.log_likelihood[[var]]
    else:
        ll_obs = fit.pointwise_loglik()
        d = fit.design
        if by == "observation":
            ll = ll_obs.to_dataset(name="y")
        else:
            onehot = np.zeros((d.n_obs, d.n_subjects))
            onehot[np.arange(d.n_obs), d.obs_subject] = 1.0
            import xarray as xr

            per = xr.DataArray(ll_obs.values @ onehot, dims=("chain", "draw", "id"),
                               coords={"chain": ll_obs.chain.values, "draw": ll_obs.draw.values,
                                       "id": [str(s) for s in d.subject_ids]})
            ll = per.to_dataset(name="y_subject")
    # the whole posterior: az.loo estimates the relative efficiency from it
    return az.InferenceData(posterior=fit.idata.posterior, log_likelihood=ll)


def integrated_loglik(fit: Any, *, n_eta: int = 100, max_draws: int | None = 1000, seed: int = 0) -> Any:
    """Per-subject log-likelihood with the random effects integrated out, per draw.

    ``log p(y_i | φ_s)`` (see module notes) as a DataArray with dims
    ``chain, draw, id`` (chains thinned evenly to at most ``max_draws``
    draws in total).

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` with random effects.
    n_eta
        Importance-sampling draws of η per subject.
    max_draws
        Cap on the posterior draws used (``None``: all).
    seed
        Seed of the η draws.
    """
    import xarray as xr
    from scipy.special import logsumexp

    from poppk.diagnostics.shrinkage import omega_point_estimates
    from poppk.diagnostics.simulate import _omega_draws
    from poppk.model.likelihood import observation_loglik
    from poppk.model.predict import predict_draws

    spec, d = fit.spec, fit.design
    if not spec.iiv:
        raise DiagnosticsError("method='integrated' needs random effects; the model has none (use method='psis')")
    post = fit.idata.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    thin = 1 if max_draws is None else max(1, int(np.ceil(nc * nd / max_draws)))
    keep = np.arange(0, nd, thin)
    idx = (np.arange(nc)[:, None] * nd + keep[None, :]).ravel()  # flat indices, chain-major
    s_n, n_sub, k = idx.size, d.n_subjects, len(spec.iiv)
    m = int(n_eta)
    rng = np.random.default_rng(seed)

    # proposal per subject: defensive mixture around the posterior of η_i
    eta_post = fit.eta().transpose("chain", "draw", "id", "iiv").values.reshape(nc * nd, n_sub, k)
    mu = eta_post.mean(axis=0)  # (N, k)
    dev = eta_post - mu[None]
    cov = np.einsum("sni,snj->nij", dev, dev) / max(nc * nd - 1, 1)  # (N, k, k)
    omega_hat = np.array([omega_point_estimates(fit)[p] for p in spec.iiv])
    cov_prop = 1.5**2 * cov + 1e-8 * np.eye(k)[None]
    chol_prop = np.linalg.cholesky(cov_prop)
    z = rng.standard_normal((m, n_sub, k))
    from_post = rng.uniform(size=(m, n_sub)) < 0.9
    eta = np.where(from_post[..., None], mu[None] + np.einsum("nij,mnj->mni", chol_prop, z),
                   z * omega_hat[None, None, :])  # (M, N, k)

    def mvn_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
        # x (..., k), mean broadcastable, chol (..., k, k) lower
        diff = x - mean
        sol = np.linalg.solve(chol, diff[..., None])[..., 0]
        logdet = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        return -0.5 * (sol**2).sum(-1) - logdet - 0.5 * k * np.log(2 * np.pi)

    log_q = np.logaddexp(
        np.log(0.9) + mvn_logpdf(eta, mu[None], chol_prop[None]),
        np.log(0.1) + (-0.5 * (eta / omega_hat) ** 2 - np.log(omega_hat) - 0.5 * np.log(2 * np.pi)).sum(-1),
    )  # (M, N)

    # prior density of each η under each draw's Ω
    omega, corr = _omega_draws(fit, idx)  # (S, k), (S, k, k) | None
    if corr is None:
        log_prior = (-0.5 * (eta[None] / omega[:, None, None, :]) ** 2 - np.log(omega[:, None, None, :])
                     - 0.5 * np.log(2 * np.pi)).sum(-1)  # (S, M, N)
    else:
        cov_s = corr * omega[:, :, None] * omega[:, None, :] + 1e-12 * np.eye(k)[None]
        chol_s = np.linalg.cholesky(cov_s)
        log_prior = mvn_logpdf(eta[None], 0.0, chol_s[:, None, None])

    typ = fit.individual_parameters(typical=True)
    params = {}
    for p in spec.parameters:
        base = typ[p].values.reshape(nc * nd, n_sub)[idx]  # (S, N)
        if p in spec.iiv:
            val = base[:, None, :] * np.exp(eta[None, :, :, spec.iiv.index(p)])
        else:
            val = np.broadcast_to(base[:, None, :], (s_n, m, n_sub))
        params[p] = val.reshape(s_n * m, n_sub)
    sig = {kk: v[idx] for kk, v in fit.sigma_draws().items()}
    onehot = np.zeros((d.n_obs, n_sub))
    onehot[np.arange(d.n_obs), d.obs_subject] = 1.0

    def per_subject(pred: np.ndarray, sl: slice) -> np.ndarray:
        rows = np.arange(sl.start, sl.stop) // m
        ll = observation_loglik(
            d.dv[None, :], pred, {kk: v[rows][:, None] for kk, v in sig.items()}, spec.error,
            blq=d.blq[None, :] if d.has_blq else None, lloq=d.lloq[None, :],
            truncate_at_zero=spec.truncate_at_zero,
        )
        return ll @ onehot

    ll_cond = predict_draws(spec, d, params, transform=per_subject).reshape(s_n, m, n_sub)
    log_w = ll_cond + log_prior - log_q[None]
    out = logsumexp(log_w, axis=1) - np.log(m)  # (S, N)
    return xr.DataArray(out.reshape(nc, keep.size, n_sub), dims=("chain", "draw", "id"),
                        coords={"chain": post.chain.values, "draw": post.draw.values[keep],
                                "id": [str(x) for x in d.subject_ids]}, name="y_subject")


def loo(
    fit: Any,
    by: str = "subject",
    *,
    method: str | None = None,
    n_eta: int = 100,
    max_draws: int | None = 1000,
    seed: int = 0,
    quiet: bool = True,
) -> Any:
    """PSIS-LOO of a fit.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    by
        ``"subject"`` (leave one subject out, default) or ``"observation"``.
    method
        ``"psis"`` (PSIS on the stored pointwise log-likelihood) or
        ``"integrated"`` (subjects only: random effects integrated out first,
        see module notes; much more reliable Pareto k with rich data).
        Default: ``"integrated"`` for ``by="subject"`` (with rich individual
        data, PSIS on the conditional subject likelihood gave Pareto k > 0.7 for
        29/40 benchmark and 60-66/80 trial subjects; integrated: 0-2),
        ``"psis"`` for ``by="observation"``.
    n_eta, max_draws, seed
        Settings of ``method="integrated"`` (see :func:`integrated_loglik`).
    quiet
        Silence ArviZ's warning about high Pareto k (the values are in the
        result and in :func:`pareto_k_summary`).

    Returns
    -------
    arviz ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, pointwise ``loo_i`` and ``pareto_k``.
    """
    import arviz as az

    if method is None:
        method = "integrated" if by == "subject" else "psis"
    if method not in ("psis", "integrated"):
        raise DiagnosticsError(f"method={method!r}: use 'psis' or 'integrated'")
    if method == "integrated":
        if by != "subject":
            raise DiagnosticsError("method='integrated' applies to by='subject' only")
        ll = integrated_loglik(fit, n_eta=n_eta, max_draws=max_draws, seed=seed)
        post = fit.idata.posterior.sel(draw=ll.draw.values)
        idata = az.InferenceData(posterior=post, log_likelihood=ll.to_dataset())
    else:
        idata = _loglik_idata(fit, by)
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", UserWarning)
        res = az.loo(idata, pointwise=True, var_name=_VAR[by])
    return res


def loo_pointwise(fit_or_loo: Any, by: str = "subject") -> pd.DataFrame:
    """Per-unit ELPD contribution and Pareto k.

    Returns
    -------
    pandas.DataFrame
        One row per subject (``id``) or observation (``obs``): ``elpd_loo_i``,
        ``pareto_k``, ``k_category`` (good ≤ 0.5 < ok ≤ 0.7 < bad ≤ 1 < very bad).
    """
    res = fit_or_loo if hasattr(fit_or_loo, "pareto_k") else loo(fit_or_loo, by)
    k = res.pareto_k
    dim = k.dims[0]
    out = pd.DataFrame({
        dim: k[dim].values,
        "elpd_loo_i": np.asarray(res.loo_i.values, dtype=float),
        "pareto_k": np.asarray(k.values, dtype=float),
    })
    out["k_category"] = pd.cut(out["pareto_k"], [-np.inf, 0.5, 0.7, 1.0, np.inf],
                               labels=["good", "ok", "bad", "very bad"]).astype(str)
    out.attrs["threshold"] = _threshold(res)
    return out


def _threshold(res: Any) -> float:
    s = int(res["n_samples"])
    return float(min(1 - 1 / np.log10(s), 0.7)) if s > 10 else 0.7


def pareto_k_summary(fit_or_loo: Any, by: str = "subject") -> pd.DataFrame:
    """Counts of Pareto k values per category (good ≤ 0.5, ok ≤ 0.7, bad ≤ 1, very bad > 1)."""
    pw = loo_pointwise(fit_or_loo, by)
    counts = pw["k_category"].value_counts().reindex(["good", "ok", "bad", "very bad"], fill_value=0)
    out = pd.DataFrame({"range": ["(-inf, 0.5]", "(0.5, 0.7]", "(0.7, 1]", "(1, inf)"],
                        "count": counts.to_numpy(), "pct": 100 * counts.to_numpy() / max(len(pw), 1)},
                       index=pd.Index(counts.index, name="category"))
    return out


def compare(
    fits: Mapping[str, Any],
    by: str = "subject",
    *,
    method: str = "stacking",
    loo_method: str | None = None,
    **loo_kwargs: Any,
) -> pd.DataFrame:
    """Rank fits of the same data by PSIS-LOO (:func:`arviz.compare`).

    Parameters
    ----------
    fits
        ``{name: Fit}``, e.g. the same model with TBW, IBW, AIBW, LBW or BSA as
        the size covariate.  All must be fitted to the same observations.
    by
        ``"subject"`` (default) or ``"observation"``.
    method
        Model weights: ``"stacking"`` (default), ``"BB-pseudo-BMA"`` or
        ``"pseudo-BMA"``.
    loo_method
        ``"psis"`` or ``"integrated"`` (see :func:`loo`); extra keyword
        arguments go to :func:`loo`.

    Returns
    -------
    pandas.DataFrame
        Index: model name, best first.  Columns: ``rank``, ``elpd`` (ELPD-LOO),
        ``se``, ``d_elpd`` (difference to the best), ``dse`` (SE of the
        difference), ``weight``, ``p_loo``, ``warning`` (ArviZ flagged high
        Pareto k), ``n_k_gt_0.7`` (units with Pareto k > 0.7), ``n_units``.

    Examples
    --------
    >>> compare({"TBW": fit_tbw, "AIBW": fit_aibw})    # doctest: +SKIP
    """
    import arviz as az

    if len(fits) < 2:
        raise DiagnosticsError("compare needs at least two fits")
    names = list(fits)
    ref = fits[names[0]].design
    for n in names[1:]:
        d = fits[n].design
        same = d.n_obs == ref.n_obs and d.n_subjects == ref.n_subjects and np.allclose(d.dv, ref.dv, equal_nan=True)
        if not same:
            raise DiagnosticsError(
                f"fit {n!r} was not fitted to the same observations as {names[0]!r} "
                f"({d.n_subjects} subjects/{d.n_obs} obs vs {ref.n_subjects}/{ref.n_obs}); "
                "LOO comparisons need identical data (same BLQ handling, same records)"
            )
    res = {n: loo(fits[n], by, method=loo_method, **loo_kwargs) for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high-k UserWarning (reported in the table), pandas deprecations
        cmp = az.compare(res, ic="loo", method=method)
    out = pd.DataFrame(
        {
            "rank": cmp["rank"].astype(int),
            "elpd": cmp["elpd_loo"].astype(float),
            "se": cmp["se"].astype(float),
            "d_elpd": cmp["elpd_diff"].astype(float),
            "dse": cmp["dse"].astype(float),
            "weight": cmp["weight"].astype(float),
            "p_loo": cmp["p_loo"].astype(float),
            "warning": cmp["warning"].astype(bool),
        },
        index=cmp.index,
    )
    out["n_k_gt_0.7"] = [int((np.asarray(res[n].pareto_k) > 0.7).sum()) for n in out.index]
    out["n_units"] = [int(res[n]["n_data_points"]) for n in out.index]
    out.index.name = "model"
    out.attrs["by"] = by
    out.attrs["loo_method"] = loo_method or ("integrated" if by == "subject" else "psis")
    return out
