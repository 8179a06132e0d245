r"""Exact leave-one-subject-out refits for subjects whose PSIS-LOO is unreliable.

When a subject's Pareto k is high, the PSIS estimate of its leave-one-out
predictive density cannot be trusted.  :func:`loo_refit` then does the
leave-one-out for real: it refits the same spec, with the same sampler
settings, to the data without that subject and computes

.. math:: \mathrm{elpd}_i = \log \frac1S \sum_s p(y_i \mid \phi_s^{(-i)})

over the refit's population draws, the subject's random effects integrated
out as in :mod:`poppk.diagnostics.loo_integrated` (proposal: the full fit's
posterior of that subject's η, widened, with the defensive component).
That value replaces the subject's PSIS contribution; the totals, the SE and
the pointwise values that stacking weights use are recomputed from the
corrected pointwise values, the way :func:`arviz.reloo` does (refitted
subjects get ``pareto_k = 0``; their PSIS k is kept in ``pareto_k_psis``).

Each refit costs one fit (compile and sample), so subjects are refitted
worst first, at most ``max_refits``; those left over stay flagged and are
counted (``n_k_unhandled``).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from poppk.diagnostics._common import DiagnosticsError
from poppk.diagnostics.loo_integrated import EtaProposal, integrate_subjects

__all__ = ["loo_refit", "exact_subject_elpd", "refit_settings", "FitFunction"]

#: ``fit_fn(spec, data, **settings) -> Fit``, e.g. :func:`poppk.fit`.
FitFunction = Callable[..., Any]

#: Sampler settings of :func:`poppk.fit` that a refit repeats (read from ``Fit.settings``).
_SETTINGS = ("draws", "tune", "chains", "cores", "seed", "sampler", "low_rank", "target_accept", "backend")


def refit_settings(fit: Any) -> dict[str, Any]:
    """The keyword arguments that repeat a fit's sampler settings (draws, tune, chains, seed, ...)."""
    got = {k: fit.settings[k] for k in _SETTINGS if k in fit.settings}
    if got.get("backend", "") is None:  # PyMC's sampler: no compile backend to repeat
        del got["backend"]
    if got:
        got.update(progress=False, warn=False)
    return got


def exact_subject_elpd(
    refit: Any,
    data: Any,
    proposal: EtaProposal,
    *,
    n_eta: int = 100,
    max_draws: int | None = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Log predictive density of held-out subjects under a fit that did not see them.

    Parameters
    ----------
    refit
        A :class:`~poppk.model.Fit` to the data without the subjects.
    data
        A :class:`~poppk.data.PKData` with the held-out subjects only.
    proposal
        η proposal covering them (e.g. ``EtaProposal.from_fit(full_fit)``).
    n_eta, max_draws, seed
        As in :func:`~poppk.diagnostics.loo_integrated.integrate_subjects`.

    Returns
    -------
    dict
        ``elpd`` (sum over the subjects of ``log mean_s p(y_i | φ_s)``),
        ``mcse_integration`` (MC SE from the η integration),
        ``mcse_mcmc`` (MC SE from the refit's finite posterior sample,
        through the ESS of ``p(y_i | φ_s)``) and ``mcse`` (both).
    """
    import arviz as az

    integ = integrate_subjects(refit, data, proposal=proposal, n_eta=n_eta, max_draws=max_draws, seed=seed)
    ll = integ.loglik  # (chain, draw, id)
    flat = ll.values.reshape(-1, ll.sizes["id"])
    elpd_i = logsumexp(flat, axis=0) - np.log(flat.shape[0])
    mcse_int = integ.mcse(flat)  # d elpd / d log p_s = p_s / Σ p_t
    rel = np.exp(ll.values - elpd_i[None, None, :])  # p_s / mean p, (chain, draw, N)
    mcse_mcmc = np.empty(ll.sizes["id"])
    for j in range(ll.sizes["id"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # ArviZ on (near-)constant draws
            ess = float(az.ess(rel[:, :, j], method="mean")) if rel.shape[1] > 3 else float(rel[:, :, j].size)
        mcse_mcmc[j] = rel[:, :, j].std(ddof=1) / np.sqrt(max(ess, 1.0)) if rel[:, :, j].size > 1 else 0.0
    var_int, var_mcmc = float((mcse_int**2).sum()), float((mcse_mcmc**2).sum())
    return {"elpd": float(elpd_i.sum()), "mcse_integration": var_int**0.5, "mcse_mcmc": var_mcmc**0.5,
            "mcse": (var_int + var_mcmc) ** 0.5}


def _default_fit_fn() -> FitFunction:
    from poppk.model import fit

    return fit


def loo_refit(
    fit: Any,
    loo_result: Any | None = None,
    *,
    k_threshold: float = 0.7,
    max_refits: int | None = None,
    fit_fn: FitFunction | None = None,
    n_eta: int | None = None,
    max_draws: int | None = None,
    seed: int | None = None,
) -> Any:
    """Replace the PSIS-LOO of high-Pareto-k subjects by exact leave-one-subject-out refits.

    Parameters
    ----------
    fit
        The :class:`~poppk.model.Fit` to all subjects.
    loo_result
        Its leave-one-subject-out result (:func:`~poppk.diagnostics.loo`,
        ``by="subject"``; either method).  Default: computed with
        ``method="integrated"``.
    k_threshold
        Subjects with Pareto k above this are refitted.
    max_refits
        At most this many refits, worst k first (``None``: all).  Subjects
        above the threshold beyond it keep their PSIS value and are counted
        in ``n_k_unhandled``.
    fit_fn
        ``fit_fn(spec, data, **settings) -> Fit`` (default :func:`poppk.fit`);
        ``settings`` are the fit's own sampler settings
        (:func:`refit_settings`), so a runner that compiles once can plug in.
    n_eta, max_draws, seed
        η integration of the held-out subject (default: those of
        ``loo_result`` when it was integrated, else 100, 1000, 0).

    Returns
    -------
    arviz ELPDData
        A copy of ``loo_result`` with the refitted subjects' ``loo_i``
        replaced by the exact values and ``elpd_loo``, ``se``, ``p_loo`` and
        ``warning`` recomputed; their ``pareto_k`` set to 0.  Extra entries:
        ``pareto_k_psis`` (the k values before), ``refits`` (a DataFrame,
        one row per refitted subject: ``id``, ``pareto_k``, ``elpd_psis``,
        ``elpd_exact``, ``mcse_exact`` (η integration and MCMC),
        ``mcse_integration``, ``converged``, ``seconds``), ``n_k_high``
        (subjects above ``k_threshold`` before), ``n_refit``,
        ``n_k_unhandled`` and ``k_threshold``; ``mcse_integration`` covers the
        exact values where they replaced PSIS.

    Examples
    --------
    >>> from poppk.diagnostics import loo, loo_refit     # doctest: +SKIP
    >>> res = loo_refit(fit, loo(fit), max_refits=3)     # doctest: +SKIP
    >>> res["refits"]                                    # doctest: +SKIP
    """
    from poppk.diagnostics.loo import loo as compute_loo
    from poppk.diagnostics.loo import with_fields

    if loo_result is None:
        loo_result = compute_loo(fit, "subject", method="integrated", **{
            k: v for k, v in (("n_eta", n_eta), ("max_draws", max_draws), ("seed", seed)) if v is not None})
    k = loo_result.pareto_k
    if k.dims != ("id",):
        raise DiagnosticsError(f"loo_refit needs a leave-one-subject-out result (by='subject'); got dims {k.dims}")
    if max_refits is not None and (int(max_refits) != max_refits or max_refits < 0):
        raise DiagnosticsError(f"max_refits={max_refits!r}: use a non-negative integer or None (no cap)")
    done = loo_result.get("integration") or {}
    n_eta = int(n_eta if n_eta is not None else done.get("n_eta", 100))
    max_draws = max_draws if max_draws is not None else done.get("max_draws", 1000)
    seed = int(seed if seed is not None else done.get("seed", 0))
    fit_fn = fit_fn or _default_fit_fn()

    kv = np.asarray(k.values, dtype=float)
    ids = [str(i) for i in k.id.values]
    high = [ids[j] for j in np.argsort(-kv, kind="stable") if kv[j] > k_threshold]
    todo = high if max_refits is None else high[: int(max_refits)]
    original = {str(s): s for s in fit.data.subjects}
    loo_i = loo_result.loo_i.copy(deep=True)
    new_k = k.copy(deep=True)
    mcse_i = loo_result.get("mcse_integration_i")
    mcse_i = mcse_i.copy(deep=True) if mcse_i is not None else xr.DataArray(np.zeros(len(ids)), dims=("id",),
                                                                            coords={"id": k.id.values})
    proposal = EtaProposal.from_fit(fit) if todo else None
    settings = refit_settings(fit)
    scale = {"log": 1, "negative_log": -1, "deviance": -2}[loo_result["scale"]]
    rows = []
    for sid in todo:
        t0 = time.perf_counter()
        rest = fit.data.subset([s for key, s in original.items() if key != sid])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit = fit_fn(fit.spec, rest, **settings)
        exact = exact_subject_elpd(refit, fit.data.subset([original[sid]]), proposal,
                                   n_eta=n_eta, max_draws=max_draws, seed=seed)
        j = ids.index(sid)
        try:
            converged = bool(refit.convergence().ok)
        except Exception:  # noqa: BLE001 - a plugged-in fit without convergence stats
            converged = np.nan
        rows.append({"id": sid, "pareto_k": kv[j], "elpd_psis": float(loo_i.values[j]) / scale,
                     "elpd_exact": exact["elpd"], "mcse_exact": exact["mcse"],
                     "mcse_integration": exact["mcse_integration"], "converged": converged,
                     "seconds": time.perf_counter() - t0})
        loo_i[j] = scale * exact["elpd"]
        new_k[j] = 0.0
        mcse_i[j] = exact["mcse_integration"]

    lppd = float(loo_result["p_loo"]) + float(loo_result["elpd_loo"]) / scale
    elpd = float(loo_i.values.sum())
    n = int(loo_result["n_data_points"])
    refits = pd.DataFrame(rows, columns=["id", "pareto_k", "elpd_psis", "elpd_exact", "mcse_exact",
                                         "mcse_integration", "converged", "seconds"])
    return with_fields(
        loo_result,
        elpd_loo=elpd,
        se=float((n * np.var(loo_i.values)) ** 0.5),
        p_loo=lppd - elpd / scale,
        warning=bool(np.any(new_k.values > float(loo_result["good_k"]))),
        loo_i=loo_i,
        pareto_k=new_k,
        mcse_integration=float(np.sqrt((mcse_i.values**2).sum())),
        mcse_integration_i=mcse_i,
        pareto_k_psis=k.copy(deep=True),
        refits=refits,
        n_k_high=len(high),
        n_refit=len(todo),
        n_k_unhandled=len(high) - len(todo),
        k_threshold=float(k_threshold),
    )
