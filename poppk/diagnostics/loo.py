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
The integration itself lives in :mod:`poppk.diagnostics.loo_integrated`;
its Monte-Carlo error is propagated through PSIS to every subject's elpd
and to the total (``mcse_integration`` in the result and in
:func:`compare`).

Subjects whose Pareto k stays high are not ignored: :func:`compare` with
``refit_high_k=True`` (or :func:`~poppk.diagnostics.loo_refit.loo_refit`)
replaces their PSIS value by an exact leave-one-subject-out refit before
the totals and the stacking weights are computed.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from poppk.diagnostics._common import DiagnosticsError
from poppk.diagnostics.loo_integrated import integrate_subjects
from poppk.model.time_varying import has_time_variation

__all__ = ["loo", "loo_pointwise", "pareto_k_summary", "compare", "integrated_loglik", "relative_efficiency",
           "with_fields"]

_VAR = {"subject": "y_subject", "observation": "y"}


class RefitTables(dict):
    """``compare()``'s exact-refit tables by model, kept in the comparison's ``attrs``.

    Equal when the same models hold equal tables: pandas compares ``attrs`` with
    ``==`` whenever it combines frames (``astype``, ``concat``), and a plain dict
    of DataFrames makes that comparison raise ("truth value of a DataFrame is
    ambiguous"), which broke every such operation on a comparison table.
    """

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping) or set(self) != set(other):
            return False
        return all(isinstance(other[k], pd.DataFrame) and v.equals(other[k]) for k, v in self.items())

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict


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
            import xarray as xr

            per = xr.DataArray(d.sum_by_subject(ll_obs.values), dims=("chain", "draw", "id"),
                               coords={"chain": ll_obs.chain.values, "draw": ll_obs.draw.values,
                                       "id": [str(s) for s in d.subject_ids]})
            ll = per.to_dataset(name="y_subject")
    # the whole posterior: az.loo estimates the relative efficiency from it
    return az.InferenceData(posterior=fit.idata.posterior, log_likelihood=ll)


def integrated_loglik(fit: Any, *, n_eta: int = 100, max_draws: int | None = 1000, seed: int = 0) -> Any:
    """Per-subject log-likelihood with the random effects integrated out, per draw.

    ``log p(y_i | φ_s)`` (see module notes and
    :func:`~poppk.diagnostics.loo_integrated.integrate_subjects`, which also
    integrates subjects that are not in the fit) as a DataArray with dims
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
    return integrate_subjects(fit, n_eta=n_eta, max_draws=max_draws, seed=seed).loglik


def relative_efficiency(posterior: Any) -> float:
    """ESS / draws averaged over every posterior variable, as :func:`arviz.loo` computes it."""
    import arviz as az

    n_chains = posterior.sizes["chain"]
    if n_chains == 1:
        return 1.0
    ess = az.ess(posterior, method="mean")
    n = n_chains * posterior.sizes["draw"]
    return float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / n)


def with_fields(res: Any, **fields: Any) -> Any:
    """A copy of an ArviZ ``ELPDData`` with extra (or replaced) entries, ArviZ's own entries first."""
    from arviz.stats.stats_utils import ELPDData

    keys = list(res.index) + [k for k in fields if k not in res.index]
    return ELPDData(data=[fields.get(k, res[k] if k in res.index else None) for k in keys], index=keys)


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
        ``elpd_loo``, ``se``, ``p_loo``, pointwise ``loo_i`` and ``pareto_k``
        as :func:`arviz.loo` gives them.  With ``method="integrated"`` also
        ``mcse_integration`` (MC standard error of ``elpd_loo`` from the η
        integration; compare it with ``se``, and raise ``n_eta`` if it is
        not small), ``mcse_integration_i`` (per subject), ``integration_k``
        (Pareto k of the η weights per subject; above 0.7 the MC SE itself
        is unreliable) and ``integration`` (the settings).
    """
    import arviz as az

    if method is None:  # η integrated per subject, where the integration covers the model's random effects
        method = "integrated" if by == "subject" and not has_time_variation(fit.spec) else "psis"
    if method not in ("psis", "integrated"):
        raise DiagnosticsError(f"method={method!r}: use 'psis' or 'integrated'")
    integ = None
    if method == "integrated":
        if by != "subject":
            raise DiagnosticsError("method='integrated' applies to by='subject' only")
        integ = integrate_subjects(fit, n_eta=n_eta, max_draws=max_draws, seed=seed)
        ll = integ.loglik
        post = fit.idata.posterior.sel(draw=ll.draw.values)
        idata = az.InferenceData(posterior=post, log_likelihood=ll.to_dataset())
    else:
        idata = _loglik_idata(fit, by)
    reff = relative_efficiency(idata.posterior)
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", UserWarning)
        res = az.loo(idata, pointwise=True, var_name=_VAR[by], reff=reff)
    if integ is None:
        return res
    # MC error of the η integration, propagated through PSIS (module notes of loo_integrated)
    ll_flat = integ.loglik.values.reshape(-1, integ.loglik.sizes["id"])  # (S, N), chain-major
    log_a, _ = az.psislw(-ll_flat.T, reff)  # normalised smoothed LOO log weights, (N, S)
    mcse_i = integ.mcse(log_a.T)
    ids = integ.loglik.id.values
    return with_fields(
        res,
        mcse_integration=float(np.sqrt((mcse_i**2).sum())),
        mcse_integration_i=xr.DataArray(mcse_i, dims=("id",), coords={"id": ids}, name="mcse_integration_i"),
        integration_k=xr.DataArray(integ.weight_k(log_a.T), dims=("id",), coords={"id": ids},
                                   name="integration_k"),
        integration={"n_eta": int(n_eta), "max_draws": max_draws, "seed": int(seed)},
    )


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
    refit_high_k: bool = False,
    k_threshold: float = 0.7,
    max_refits: int | None = None,
    fit_fn: Callable[..., Any] | None = None,
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
    refit_high_k
        Replace the PSIS-LOO of every subject with Pareto k above
        ``k_threshold`` (worst first, at most ``max_refits`` per model) by an
        exact leave-one-subject-out refit (:func:`~poppk.diagnostics.loo_refit`),
        before the totals, SEs and weights are computed.  ``by="subject"`` only.
    k_threshold, max_refits, fit_fn
        See :func:`~poppk.diagnostics.loo_refit`.

    Returns
    -------
    pandas.DataFrame
        Index: model name, best first.  Columns: ``rank``, ``elpd`` (ELPD-LOO),
        ``se``, ``mcse_integration`` (MC standard error of ``elpd`` from the η
        integration; 0 without one), ``d_elpd`` (difference to the best),
        ``dse`` (SE of the difference), ``weight``, ``p_loo``, ``warning``
        (ArviZ flagged high Pareto k left after refits), ``n_k_gt_0.7``
        (units with Pareto k > 0.7 before any refit), ``n_refit`` (subjects
        replaced by exact refits), ``n_k_unhandled`` (units above
        ``k_threshold`` still estimated by PSIS), ``n_units``.

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
    if refit_high_k and by != "subject":
        raise DiagnosticsError("refit_high_k=True refits without one subject: use by='subject'")
    res = {n: loo(fits[n], by, method=loo_method, **loo_kwargs) for n in names}
    before = {n: int((np.asarray(r.pareto_k) > 0.7).sum()) for n, r in res.items()}
    if refit_high_k:
        from poppk.diagnostics.loo_refit import loo_refit

        res = {n: loo_refit(fits[n], res[n], k_threshold=k_threshold, max_refits=max_refits, fit_fn=fit_fn)
               for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high-k UserWarning (reported in the table), pandas deprecations
        cmp = az.compare(res, ic="loo", method=method)
    out = pd.DataFrame(
        {
            "rank": cmp["rank"].astype(int),
            "elpd": cmp["elpd_loo"].astype(float),
            "se": cmp["se"].astype(float),
            "mcse_integration": [float(res[n].get("mcse_integration", 0.0)) for n in cmp.index],
            "d_elpd": cmp["elpd_diff"].astype(float),
            "dse": cmp["dse"].astype(float),
            "weight": cmp["weight"].astype(float),
            "p_loo": cmp["p_loo"].astype(float),
            "warning": cmp["warning"].astype(bool),
        },
        index=cmp.index,
    )
    out["n_k_gt_0.7"] = [before[n] for n in out.index]
    out["n_refit"] = [int(res[n].get("n_refit", 0)) for n in out.index]
    out["n_k_unhandled"] = [int(res[n]["n_k_unhandled"]) if "n_k_unhandled" in res[n].index
                            else int((np.asarray(res[n].pareto_k) > k_threshold).sum()) for n in out.index]
    out["n_units"] = [int(res[n]["n_data_points"]) for n in out.index]
    out.index.name = "model"
    out.attrs["by"] = by
    out.attrs["loo_method"] = loo_method or ("integrated" if by == "subject" else "psis")
    out.attrs["k_threshold"] = float(k_threshold)
    out.attrs["refits"] = RefitTables({n: res[n]["refits"] for n in out.index if "refits" in res[n].index})
    return out
