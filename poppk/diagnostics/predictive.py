"""ArviZ's predictive groups on a fit: ``posterior_predictive``, ``prior``, ``prior_predictive``.

:func:`add_predictive_groups` attaches to ``fit.idata`` the groups ArviZ
functions expect (``az.plot_ppc``, ``az.loo_pit``, ``az.plot_loo_pit``):

``posterior_predictive``
    ``y`` (dims ``chain, draw, obs``): replicates of the observed records of
    the *same* subjects (their posterior individual parameters plus residual
    error), made by :func:`~poppk.diagnostics.simulate.simulate_observations`
    — the simulator the VPC and NPDE use.  The draws are thinned evenly in
    every chain (``n_draws`` in all), so a saved fit stays small; their
    ``draw`` coordinates are those of the posterior draws used, so
    ``fit.idata.sel(draw=fit.idata.posterior_predictive.draw)`` (or
    :func:`predictive_idata`) lines every group up.

    **Replicated BLQ values.**  The data hold a BLQ record at its LLOQ (its
    value is only known to be below it).  A replicate that falls below its
    record's LLOQ is censored the same way: its value is the LLOQ.  Observed
    and replicated data are therefore on the same footing in ``az.plot_ppc``
    (a spike at the LLOQ in both).
``prior``
    Draws of the population parameters from the spec's priors (PyMC's
    ``sample_prior_predictive`` on the model the fit was built from), with
    the same names as in ``posterior``, and ``theta``: the log individual
    parameters of the observed subjects (their covariates, a fresh η ~ N(0, Ω)
    of each prior draw).
``prior_predictive``
    ``y`` (dims ``chain, draw, obs``): data replicated on the observed design
    (same subjects, covariates, doses and sampling times) from each prior
    draw, censored at the LLOQ as above.

**Randomised PIT of censored records.**  ``az.loo_pit`` of a BLQ record gives
``F(LLOQ)``, the leave-one-out predictive probability of being BLQ, whereas
the value is only known to lie in ``[0, F(LLOQ)]`` on the PIT scale.
:func:`loo_pit` replaces it by ``u · F(LLOQ)`` with ``u ~ U(0, 1)`` — the
randomised PIT, uniform under the model, as the NPDE of a BLQ record is
(:mod:`poppk.diagnostics.npde`: pd drawn uniformly in ``[0, P(y < LLOQ)]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from poppk.diagnostics._common import DiagnosticsError
from poppk.diagnostics.simulate import sample_parameters, simulate_observations

__all__ = [
    "add_predictive_groups",
    "posterior_predictive",
    "prior_fit",
    "prior_predictive",
    "predictive_idata",
    "loo_pit",
    "thinned_draw_index",
    "pit_table",
]


def thinned_draw_index(n_chains: int, n_draws_per_chain: int, n_draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly thinned draws of every chain: (positions within a chain, flat indices).

    ``n_draws`` in all (rounded up to a multiple of the number of chains, at
    most every draw).

    Examples
    --------
    >>> pos, flat = thinned_draw_index(2, 10, 4)
    >>> pos.tolist(), flat.tolist()
    ([0, 9], [0, 9, 10, 19])
    """
    if int(n_draws) < 1:
        raise DiagnosticsError(f"n_draws must be >= 1, got {n_draws}")
    per_chain = int(min(n_draws_per_chain, -(-int(n_draws) // n_chains)))
    pos = np.unique(np.round(np.linspace(0, n_draws_per_chain - 1, per_chain)).astype(np.int64))
    flat = (np.arange(n_chains)[:, None] * n_draws_per_chain + pos[None, :]).ravel()
    return pos, flat


def _obs_dataset(values: np.ndarray, chains: np.ndarray, draws: np.ndarray, n_obs: int, units: str,
                 what: str) -> xr.Dataset:
    # float64 like observed_data: a replicate censored at the LLOQ must tie exactly with a BLQ record's
    # value, or az.loo_pit would see it above the observation (float32 was tried: it breaks that tie)
    y = xr.DataArray(np.asarray(values, dtype=np.float64), dims=("chain", "draw", "obs"),
                     coords={"chain": chains, "draw": draws, "obs": np.arange(n_obs)}, name="y")
    y.attrs.update({"units": units, "description": what,
                    "blq": "a replicate below its record's LLOQ is set to the LLOQ, as observed BLQ records are"})
    return xr.Dataset({"y": y})


def posterior_predictive(fit: Any, *, n_draws: int = 200, seed: int = 0) -> xr.Dataset:
    """Replicates of the observed records of the fitted subjects, dims ``chain, draw, obs``.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    n_draws
        Replicates in all, from posterior draws thinned evenly in every chain.
    seed
        Seed of the residual-error draws.

    Returns
    -------
    xarray.Dataset
        ``y``: censored at the LLOQ like the data (see module notes).
    """
    post = fit.idata.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    pos, flat = thinned_draw_index(nc, nd, n_draws)
    sims = simulate_observations(fit, draw_index=flat, new_subjects=False, seed=seed)
    values = sims["y_rep"].values.reshape(nc, len(pos), -1)
    return _obs_dataset(values, post.chain.values, post.draw.values[pos], fit.design.n_obs,
                        fit.spec.unit.get("concentration", ""),
                        "posterior predictive replicate of each observed record (same subjects)")


def _prior_population(spec: Any, design: Any, n_draws: int, seed: int) -> xr.Dataset:
    """Prior draws of the population parameters (names as in the posterior), dims ``chain, draw``."""
    import pymc as pm

    from poppk.model.build import build_model
    from poppk.model.fit import population_variables

    # the population priors do not depend on how η is parametrised; "noncentered" needs no Laplace init
    model = build_model(dataclasses.replace(spec, parametrization="noncentered"), design=design)
    names = [n for n in population_variables(spec) if n in model.named_vars]
    if spec.iiv_correlation == "full" and spec.iiv and "omega_corr" in model.named_vars:
        names.append("omega_corr")
    import warnings

    from poppk.progress import quiet_pymc

    with model, warnings.catch_warnings(), quiet_pymc():
        # the model's Potentials are the likelihood (and, in other parametrisations, the density of η):
        # neither is a prior of the population parameters drawn here
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        draws = pm.sample_prior_predictive(draws=int(n_draws), var_names=names, random_seed=int(seed))
    prior = draws.prior[names]
    if "omega_corr" in prior:
        prior = prior.rename({d: n for d, n in zip(prior["omega_corr"].dims[2:], ("iiv", "iiv_bis"))
                              if d != n})
        prior = prior.assign_coords(iiv=list(spec.iiv), iiv_bis=list(spec.iiv))
    return prior


def prior_fit(fit: Any = None, *, spec: Any = None, data: Any = None, n_draws: int = 200, seed: int = 0,
              reuse: bool = True) -> Any:
    """A :class:`~poppk.model.Fit` whose "posterior" holds draws from the priors.

    Every posterior computation then works on the prior: simulated
    replicates (:func:`~poppk.diagnostics.simulate_observations`), a VPC
    (:func:`~poppk.diagnostics.vpc_table`), individual parameters.

    Parameters
    ----------
    fit
        A fitted model: its (resolved) spec and data are used.
    spec, data
        Or a :class:`~poppk.model.ModelSpec` and the :class:`~poppk.data.PKData`
        whose design (subjects, covariates, doses, sampling times) the prior
        is drawn on — no fit needed.
    n_draws
        Prior draws (one chain).  When ``fit`` carries a ``prior`` group of at
        least that many draws (:func:`add_predictive_groups`), its first
        ``n_draws`` are used instead of drawing anew (unless ``reuse`` is False);
        ``seed`` then plays no part (the settings say ``from_prior_group``).
    seed
        Seed of the prior draws and of the subjects' random effects.

    Returns
    -------
    Fit
        ``idata.posterior`` holds the population parameters and ``theta``
        (log individual parameters of the observed subjects: covariates and a
        fresh η ~ N(0, Ω) per draw); ``settings["prior"]`` is True.
    """
    from poppk.model.design import build_design
    from poppk.model.fit import Fit
    from poppk.model.time_unit import resolve_time_unit

    if reuse and fit is not None and "prior" in fit.idata.groups() and fit.idata.prior.sizes["draw"] >= int(n_draws):
        # the fit's own prior group (add_predictive_groups): no model to build and compile
        import arviz as az

        pop = fit.idata.prior.isel(chain=slice(0, 1), draw=slice(0, int(n_draws)))
        return Fit(idata=az.InferenceData(posterior=pop), spec=fit.spec, data=fit.data,
                   settings={"prior": True, "seed": None, "from_prior_group": True}, _design=fit.design)
    if fit is not None:
        spec, data, design = fit.spec, fit.data, fit.design
    elif spec is None or data is None:
        raise DiagnosticsError("prior_fit needs a fit, or a spec and the data of the design")
    else:
        spec = resolve_time_unit(spec.resolved(data.covariates), data)
        design = build_design(spec, data)
    pop = _prior_population(spec, design, n_draws, seed)
    ids = [str(s) for s in design.subject_ids]
    k = len(spec.iiv)
    if k:  # placeholder θ (typical parameters use none), replaced by prior draws of the subjects below
        pop = pop.assign(theta=(("chain", "draw", "id", "iiv"), np.zeros((1, int(n_draws), len(ids), k))))
        pop = pop.assign_coords(id=ids, iiv=list(spec.iiv))
    if spec.iov:  # occasion effects of the observed subjects' occasions: κ ~ N(0, ω_IOV²), ω_IOV from its prior
        seg = design.segments
        z = np.random.default_rng([int(seed), 1]).standard_normal((1, int(n_draws), seg.n_pairs, len(spec.iov)))
        omega = np.stack([pop[f"omega_iov_{p}"].values if f"omega_iov_{p}" in pop else
                          np.full((1, int(n_draws)), float(prior["value"])) for p, prior in spec.iov], axis=-1)
        pop = pop.assign(kappa=(("chain", "draw", "occasion", "iov"), z * omega[:, :, None, :])).assign_coords(
            occasion=[f"{ids[i]}:{o}" for i, o in zip(seg.pair_subject.tolist(), seg.pair_occasion.tolist())],
            iov=[p for p, _ in spec.iov])
    import arviz as az

    idata = az.InferenceData(posterior=pop)
    out = Fit(idata=idata, spec=spec, data=data, settings={"prior": True, "seed": int(seed)}, _design=design)
    if k:
        rng = np.random.default_rng(seed)
        params = sample_parameters(out, np.arange(int(n_draws)), new_subjects=True, rng=rng)
        theta = np.stack([np.log(params[p]) for p in spec.iiv], axis=-1)[None]
        out.idata.posterior["theta"] = (("chain", "draw", "id", "iiv"), theta)
    return out


def prior_predictive(prior: Any, *, seed: int = 0) -> xr.Dataset:
    """Data replicated on the observed design from every prior draw, dims ``chain, draw, obs``.

    Parameters
    ----------
    prior
        A :func:`prior_fit`.
    seed
        Seed of the residual-error draws.
    """
    post = prior.idata.posterior
    sims = simulate_observations(prior, n_draws=None, new_subjects=False, seed=seed)
    values = sims["y_rep"].values.reshape(post.sizes["chain"], post.sizes["draw"], -1)
    return _obs_dataset(values, post.chain.values, post.draw.values, prior.design.n_obs,
                        prior.spec.unit.get("concentration", ""),
                        "prior predictive replicate of each observed record (observed design)")


def add_predictive_groups(fit: Any, *, n_draws: int = 200, prior_draws: int = 200, seed: int = 0,
                          replace: bool = False) -> Any:
    """Attach ``posterior_predictive``, ``prior`` and ``prior_predictive`` to ``fit.idata``.

    Also writes the spec, data and sampler settings into ``fit.idata.attrs``
    (:func:`poppk.model.persist.fit_attrs`), so the InferenceData alone
    rebuilds the fit.  :func:`poppk.model.persist.save_fit` calls this for a
    fit that lacks the groups.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` (changed in place and returned).
    n_draws
        Posterior predictive replicates (posterior draws thinned evenly per chain).
    prior_draws
        Prior draws (and prior predictive replicates); 0 leaves the prior groups out.
    seed
        Seed of every draw.
    replace
        Recompute groups that are already there (default: keep them).

    Returns
    -------
    Fit
        ``fit`` itself.

    Examples
    --------
    >>> import arviz as az                                   # doctest: +SKIP
    >>> add_predictive_groups(fit)                           # doctest: +SKIP
    >>> az.plot_ppc(fit.idata, num_pp_samples=100)           # doctest: +SKIP
    """
    from poppk.model.persist import fit_attrs

    idata = fit.idata
    groups = set(idata.groups())
    if replace or "posterior_predictive" not in groups:
        if "posterior_predictive" in groups:
            del idata.posterior_predictive
        idata.add_groups(posterior_predictive=posterior_predictive(fit, n_draws=n_draws, seed=seed))
    if prior_draws and (replace or "prior" not in groups or "prior_predictive" not in groups):
        pf = prior_fit(fit, n_draws=prior_draws, seed=seed, reuse=False)
        for g in ("prior", "prior_predictive"):
            if g in idata.groups():
                delattr(idata, g)
        idata.add_groups(prior=pf.idata.posterior, prior_predictive=prior_predictive(pf, seed=seed))
    idata.attrs.update(fit_attrs(fit))
    return fit


def predictive_idata(fit: Any) -> Any:
    """``fit.idata`` restricted to the draws of its ``posterior_predictive`` group.

    ``az.loo_pit`` weights the replicates by the leave-one-out importance
    ratios of the *same* draws, so posterior, log likelihood and replicates
    must hold the same draws: ``az.loo_pit(idata=predictive_idata(fit), y="y")``.
    """
    idata = fit.idata
    if "posterior_predictive" not in idata.groups():
        raise DiagnosticsError("the fit has no posterior_predictive group: call add_predictive_groups(fit) first")
    if "log_likelihood" not in idata.groups():
        fit.add_log_likelihood()
    pp = idata.posterior_predictive
    groups = [g for g in ("posterior", "log_likelihood", "sample_stats", "posterior_predictive")
              if g in idata.groups()]
    return idata.sel(draw=pp.draw.values, groups=groups, inplace=False)


def loo_pit(fit: Any, *, seed: int = 0) -> xr.DataArray:
    """Leave-one-out probability integral transform of every observation, randomised where censored.

    ``az.loo_pit`` of the replicates in ``posterior_predictive`` (PSIS
    weights of the same draws, :func:`predictive_idata`); for a BLQ record
    ``u · F(LLOQ)`` with ``u ~ U(0, 1)`` (module notes).  Uniform on [0, 1]
    under the model.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` with a ``posterior_predictive`` group
        (added here when missing).
    seed
        Seed of the randomisation of censored records.

    Returns
    -------
    xarray.DataArray
        Dims ``obs``; attribute ``n_censored``.
    """
    import warnings

    import arviz as az

    if "posterior_predictive" not in fit.idata.groups():
        add_predictive_groups(fit, prior_draws=0, seed=seed)
    sub = predictive_idata(fit)
    sub.log_likelihood = sub.log_likelihood[["y"]]  # per observation only (not y_subject)
    d = fit.design
    blq = np.asarray(d.blq, dtype=bool)
    y = np.where(blq, d.lloq, d.dv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings: reported by poppk.diagnostics.loo
        pit = np.asarray(az.loo_pit(idata=sub, y=y, y_hat="y"), dtype=float)
    u = np.random.default_rng(seed).uniform(size=int(blq.sum()))
    pit[blq] = u * pit[blq]
    out = xr.DataArray(pit, dims=("obs",), coords={"obs": np.arange(d.n_obs)}, name="loo_pit")
    out.attrs.update({"n_censored": int(blq.sum()), "seed": int(seed),
                      "censored": "u * F(LLOQ), u ~ U(0, 1) (randomised PIT)"})
    return out



def pit_table(pit: Any, *, n_bins: int = 20, prob: float = 0.95) -> tuple[Any, Any]:
    """Histogram and ECDF of PIT values against the uniform distribution (compute twin of the PIT figure).

    Parameters
    ----------
    pit
        PIT values in [0, 1] (e.g. :func:`loo_pit`); NaN ignored.
    n_bins
        Histogram bins of equal width.
    prob
        Mass of the bands: pointwise binomial interval of each bin count,
        and the Dvoretzky-Kiefer-Wolfowitz band of the whole ECDF
        (simultaneous: the ECDF leaves it with probability at most ``1 - prob``
        under uniformity).

    Returns
    -------
    hist, ecdf : pandas.DataFrame
        ``hist``: ``lower, upper`` (bin edges), ``count``, ``expected``,
        ``band_lower``, ``band_upper``.  ``ecdf``: ``pit`` (grid),
        ``ecdf_minus_uniform``, ``band`` (half-width); ``attrs`` hold ``n``,
        ``prob`` and ``outside`` (True when the ECDF leaves its band).
    """
    import pandas as pd
    from scipy import stats

    x = np.asarray(pit, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 2 or not 0 < prob < 1:
        raise DiagnosticsError(f"need at least 2 PIT values and prob in (0, 1); got {n} values, prob {prob}")
    edges = np.linspace(0, 1, int(n_bins) + 1)
    counts = np.histogram(np.clip(x, 0, 1), bins=edges)[0]
    lo, hi = stats.binom.interval(prob, n, 1 / n_bins)
    hist = pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": counts,
                         "expected": n / n_bins, "band_lower": lo, "band_upper": hi})
    grid = np.linspace(0, 1, 201)
    diff = np.searchsorted(np.sort(x), grid, side="right") / n - grid
    eps = float(np.sqrt(np.log(2 / (1 - prob)) / (2 * n)))
    ecdf = pd.DataFrame({"pit": grid, "ecdf_minus_uniform": diff, "band": eps})
    for t in (hist, ecdf):
        t.attrs.update({"n": int(n), "prob": float(prob), "outside": bool(np.any(np.abs(diff) > eps))})
    return hist, ecdf
