"""``fit``: sample the posterior of a spec on a dataset; the :class:`Fit` result.

A :class:`Fit` carries everything needed to check, simulate and report:
the ArviZ ``InferenceData`` (groups ``posterior``, ``log_likelihood``,
``observed_data``, ``constant_data``, ``sample_stats``), the resolved
:class:`~poppk.model.spec.ModelSpec`, the :class:`~poppk.data.PKData`, the
sampler settings, seed, timings and package versions.  ``Fit.save`` /
:func:`load_fit` round-trip it through a directory (NetCDF + JSON), written
atomically.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from poppk import defaults
from poppk.errors import FitError, ModelSpecError
from poppk.model.build import build_model
from poppk.model.convergence import ConvergenceReport, check_convergence
from poppk.model.design import ModelDesign, build_design, warn_nonpositive_dv
from poppk.model.elimination import uses_ode
from poppk.model.init import laplace_init
from poppk.model.likelihood import observation_loglik
from poppk.model.analytes import error_terms
from poppk.model.parameters import log_individual_parameters, population_draws, sigma_values
from poppk.model.predict import predict_draws
from poppk.model.spec import ModelSpec
from poppk.model.time_varying import IOV_EFFECT, OFFSETS, kappa_draws, segment_offsets
from poppk.model.time_unit import resolve_time_unit

__all__ = ["Fit", "fit", "load_fit", "population_variables"]


def population_variables(spec: ModelSpec) -> list[str]:
    """Names of the population-level posterior variables of a spec."""
    names = [p for p, prior in spec.typical if not prior.is_fixed]
    names += [name for name, prior in spec.coefficients if not prior.is_fixed]
    names += [f"omega_{p}" for p, prior in spec.omega if not prior.is_fixed]
    names += [f"omega_iov_{p}" for p, prior in spec.iov if not prior.is_fixed]
    given = dict(spec.sigma)
    names += [f"sigma_{k}" for k in spec.sigma_names if not (k in given and given[k].is_fixed)]
    return names


@dataclass
class Fit:
    """A fitted population-PK model.

    Attributes
    ----------
    idata
        ArviZ InferenceData with named dimensions (``chain``, ``draw``,
        ``id``, ``obs``, ``iiv``).
    spec
        The resolved model spec (covariate references filled in).
    data
        The dataset the model was fitted to.
    settings
        Sampler, draws, tune, chains, seed, timings, initialisation summary
        and package versions.
    """

    idata: Any
    spec: ModelSpec
    data: Any
    settings: dict[str, Any] = field(default_factory=dict)
    _design: ModelDesign | None = field(default=None, repr=False)
    _convergence: ConvergenceReport | None = field(default=None, repr=False)
    #: Derived results that depend only on the posterior and the data (e.g. median predictions), by key.
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------ structure
    @property
    def design(self) -> ModelDesign:
        """The numeric design (rebuilt from spec and data when needed)."""
        if self._design is None:
            self._design = build_design(self.spec, self.data)
        return self._design

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior group."""
        return self.idata.posterior

    @property
    def population_variables(self) -> list[str]:
        """Names of the population parameters in the posterior."""
        return population_variables(self.spec)

    def __repr__(self) -> str:
        post = self.idata.posterior
        return (
            f"<Fit {self.spec.structure} on {self.design.n_subjects} subjects, {self.design.n_obs} obs; "
            f"{post.sizes['chain']} chains x {post.sizes['draw']} draws; "
            f"{'converged' if self.convergence().ok else 'CONVERGENCE PROBLEMS'}>"
        )

    # -------------------------------------------------------------- checks
    def convergence(self) -> ConvergenceReport:
        """R-hat, ESS, divergences and tree depth of the population parameters."""
        if self._convergence is None:
            self._convergence = check_convergence(self.idata, self.population_variables, self.settings)
        return self._convergence

    def summary(self, *, hdi_prob: float = 0.95) -> pd.DataFrame:
        """Posterior summary of the population parameters.

        Columns: ``median``, ``mean``, ``sd``, ``lower``, ``upper`` (equal-tailed
        interval of ``hdi_prob`` mass), ``rse`` (posterior SD / median, the
        Bayesian analogue of NONMEM's RSE), ``r_hat``, ``ess_bulk``, ``ess_tail``.
        """
        import arviz as az

        names = self.population_variables
        post = self.idata.posterior[names]
        lo_q, hi_q = (1 - hdi_prob) / 2, 1 - (1 - hdi_prob) / 2
        diag = az.summary(self.idata, var_names=names, kind="diagnostics", round_to="none")
        rows = []
        for n in names:
            v = post[n].values.ravel()
            med = float(np.median(v))
            rows.append(
                {
                    "parameter": n,
                    "median": med,
                    "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)),
                    "lower": float(np.quantile(v, lo_q)),
                    "upper": float(np.quantile(v, hi_q)),
                    "rse": float(v.std(ddof=1) / abs(med)) if med != 0 else np.nan,
                    "r_hat": float(diag.loc[n, "r_hat"]),
                    "ess_bulk": float(diag.loc[n, "ess_bulk"]),
                    "ess_tail": float(diag.loc[n, "ess_tail"]),
                }
            )
        return pd.DataFrame(rows).set_index("parameter")

    # -------------------------------------------------- derived quantities
    def _draw_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None, tuple[int, int]]:
        post = self.idata.posterior
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        n = nc * nd
        values = population_draws(self.spec, post, [p for p, _ in self.spec.typical]
                                  + [name for name, _ in self.spec.coefficients])
        log_tv = {p: np.log(values[p])[:, None] for p, _ in self.spec.typical}
        betas = {name: values[name][:, None] for name, _ in self.spec.coefficients}
        theta = post["theta"].transpose("chain", "draw", "id", "iiv").values.reshape(n, -1, len(self.spec.iiv)) if self.spec.iiv else None
        return log_tv, betas, theta, (nc, nd)

    def individual_parameters(self, *, typical: bool = False) -> xr.Dataset:
        """Posterior individual parameters (natural scale), dims ``chain, draw, id``.

        With time-varying covariates or occasion effects these are the values at
        baseline (κ = 0); :meth:`parameter_draws` adds each segment's offsets.

        Parameters
        ----------
        typical
            Return the typical (PRED) parameters of each subject instead:
            covariate effects included, η = 0.
        """
        log_tv, betas, theta, (nc, nd) = self._draw_arrays()
        design = self.design
        covs = {k: v[None, :] for k, v in design.covariates.items()}
        base = log_individual_parameters(self.spec, log_tv, betas, covs, None)
        out = {}
        for p in self.spec.parameters:
            arr = np.broadcast_to(base[p], (nc * nd, design.n_subjects)).copy()
            if not typical and theta is not None and p in self.spec.iiv:
                arr = theta[:, :, self.spec.iiv.index(p)]
            out[p] = (("chain", "draw", "id"), np.exp(arr).reshape(nc, nd, -1))
        coords = {"chain": self.idata.posterior.chain.values, "draw": self.idata.posterior.draw.values,
                  "id": [str(s) for s in design.subject_ids]}
        ds = xr.Dataset(out, coords=coords)
        for p in self.spec.parameters:
            ds[p].attrs["units"] = self.spec.unit.get(p, "")
        return ds

    def parameter_draws(self, *, typical: bool = False, index: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-draw inputs of the predictions: ``{param: (n, n_subjects)}``, flattened over chains.

        With time-varying parameters it also holds the per-segment log offsets
        under :data:`~poppk.model.time_varying.OFFSETS`, ``(n, n_segments,
        n_varying)``: the time-varying covariates' terms and, unless
        ``typical``, the occasion effects κ.

        Parameters
        ----------
        typical
            The typical (PRED) parameters: η = 0 and κ = 0.
        index
            Flattened (chain, draw) indices to keep (default: all draws).
        """
        ind = self.individual_parameters(typical=typical)
        n_sub = self.design.n_subjects
        sel = slice(None) if index is None else np.asarray(index)
        out = {p: ind[p].values.reshape(-1, n_sub)[sel] for p in self.spec.parameters}
        if self.design.segments is not None:
            values = population_draws(self.spec, self.idata.posterior, [n for n, _ in self.spec.coefficients])
            betas = {k: v[sel][:, None] for k, v in values.items()}
            kappa = None if typical else kappa_draws(self.spec, self.idata.posterior, None if index is None
                                                     else np.asarray(index))
            off = segment_offsets(self.spec, self.design.segments, betas, kappa)
            n = next(iter(out.values())).shape[0]
            out[OFFSETS] = np.broadcast_to(off, (n,) + off.shape[-2:]).copy()  # a draw axis even if none varies
        return out

    def eta(self) -> xr.DataArray:
        """Posterior random effects η (log scale), dims ``chain, draw, id, iiv``."""
        ind = self.individual_parameters()
        typ = self.individual_parameters(typical=True)
        return xr.concat(
            [np.log(ind[p]) - np.log(typ[p]) for p in self.spec.iiv], dim=pd.Index(list(self.spec.iiv), name="iiv")
        ).transpose("chain", "draw", "id", "iiv").rename("eta")

    def predictions(self, *, thin: int = 1) -> xr.Dataset:
        """IPRED and PRED at every observation, dims ``chain, draw, obs``.

        Parameters
        ----------
        thin
            Keep every ``thin``-th draw (predictions are ``draws × n_obs``).
        """
        post = self.idata.posterior
        draws = np.arange(post.sizes["draw"])[::thin]
        nc, nd = post.sizes["chain"], draws.size
        index = (np.arange(nc)[:, None] * post.sizes["draw"] + draws[None, :]).reshape(-1)
        out = {}
        for name, typical in (("ipred", False), ("pred", True)):
            pred = predict_draws(self.spec, self.design, self.parameter_draws(typical=typical, index=index))
            out[name] = (("chain", "draw", "obs"), pred.reshape(nc, nd, -1))
        return xr.Dataset(out, coords={"chain": post.chain.values, "draw": post.draw.values[draws],
                                       "obs": np.arange(self.design.n_obs)})

    def sigma_draws(self) -> dict[str, np.ndarray]:
        """Residual-error magnitudes per draw, flattened over chains."""
        return {k: v.transpose("chain", "draw").values.reshape(-1)
                for k, v in sigma_values(self.spec, self.idata.posterior).items()}

    def pointwise_loglik(self) -> xr.DataArray:
        """Log-likelihood of every observation per draw (M3 for BLQ), dims ``chain, draw, obs``."""
        post = self.idata.posterior
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        params = self.parameter_draws()
        sig = self.sigma_draws()
        d = self.design

        def ll(pred: np.ndarray, sl: slice) -> np.ndarray:
            s, error = error_terms(self.spec, {k: v[sl, None] for k, v in sig.items()}, d.obs_analyte)
            return observation_loglik(
                d.dv[None, :], pred, s, error,
                blq=d.blq[None, :] if d.has_blq else None, lloq=d.lloq[None, :],
                truncate_at_zero=self.spec.truncate_at_zero,
            )

        vals = predict_draws(self.spec, d, params, transform=ll)
        return xr.DataArray(vals.reshape(nc, nd, -1), dims=("chain", "draw", "obs"),
                            coords={"chain": post.chain.values, "draw": post.draw.values, "obs": np.arange(d.n_obs)},
                            name="y")

    def add_log_likelihood(self) -> None:
        """Attach ``log_likelihood`` (per observation ``y`` and per subject ``y_subject``)."""
        ll = self.pointwise_loglik()
        per_subject = xr.DataArray(self.design.sum_by_subject(ll.values), dims=("chain", "draw", "id"),
                                   coords={"chain": ll.chain.values, "draw": ll.draw.values})
        per_subject = per_subject.assign_coords(id=[str(s) for s in self.design.subject_ids])
        ds = xr.Dataset({"y": ll, "y_subject": per_subject})
        if "log_likelihood" in self.idata.groups():
            del self.idata.log_likelihood
        self.idata.add_groups(log_likelihood=ds)

    # ---------------------------------------------------------- persistence
    def save(self, path: str | Path, *, include_log_likelihood: bool = False) -> Path:
        """Write the fit to directory ``path`` atomically (see :func:`load_fit`)."""
        from poppk.model.persist import save_fit

        return save_fit(self, path, include_log_likelihood=include_log_likelihood)


def _versions(backend: str = "numba") -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    compiler = ("jax", "jaxlib") if backend == "jax" else ("numba",)
    for pkg in ("poppk", "pymc", "pytensor", "nutpie", *compiler, "arviz", "numpy", "pandas", "xarray", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    import platform

    out["python"] = platform.python_version()
    return out


def fit(
    spec: ModelSpec,
    data: Any,
    *,
    draws: int = defaults.FIT_DRAWS,
    tune: int = defaults.FIT_TUNE,
    chains: int = defaults.FIT_CHAINS,
    cores: int | None = None,
    seed: int = 0,
    sampler: str = "nutpie",
    progress: bool = True,
    low_rank: bool | None = None,
    target_accept: float | None = None,
    log_likelihood: bool = True,
    warn: bool = True,
    cache: bool = True,
    file: str | Path | None = None,
    backend: str = "numba",
) -> Fit:
    """Sample the posterior of ``spec`` on ``data``.

    Parameters
    ----------
    spec
        The model.
    data
        A :class:`~poppk.data.PKData` (with size descriptors if the spec uses them).
    draws, tune, chains
        Kept draws and warm-up iterations per chain, and number of chains.
    cores
        Parallel chains (default: all cores, at most ``chains``).
    seed
        Random seed (recorded with the fit).
    sampler
        ``"nutpie"`` (default: compiled with numba) or ``"pymc"`` (PyMC's NUTS).
    progress
        Show a progress bar.
    low_rank
        nutpie's low-rank modified mass-matrix adaptation; default: on for a
        full (LKJ) Ω, whose Cholesky elements are correlated a posteriori with
        the weakly identified IIV SDs (with ``"centered"`` on the benchmark it
        brought the worst R-hat from 1.03 to 1.01 and that parameter's ESS from
        324 to 432), except with ``"laplace"`` when every estimated typical
        value has IIV: that map removes those correlations itself; and always on
        with nonlinear elimination (the ODE path), where the typical values
        without IIV otherwise mix slowly (see ``_default_low_rank``).
    target_accept
        NUTS target acceptance rate (default: the sampler's).
    log_likelihood
        Compute the pointwise log-likelihood (needed for LOO).
    warn
        Emit a :class:`~poppk.errors.ConvergenceWarning` on problems.
    cache
        ``True``: compile the model's structure once per process and reuse it
        for every later fit of that structure (another dataset or size, other
        covariate values, size descriptor or priors;
        :mod:`poppk.model.compile_cache`).  ``False``: compile this fit's model
        alone with the data as constants, as before the cache: every fit pays
        the full compile, but the first compile is cheaper and the gradient
        no dearer (see the README), which can pay off for one long fit.
        A model with nonlinear elimination (``spec.elimination`` not
        ``"linear"``, integrated by the ODE solver) is always compiled this
        way: its cost is the solver's, not the compile.
    file
        A directory to keep the fit in.  If it holds a fit of the same model,
        data content and sampler settings (a fingerprint saved with the fit,
        :mod:`poppk.model.reuse`), that fit is loaded and returned without
        sampling; otherwise the new fit is saved there atomically (replacing
        what was there, with a warning saying why).  Re-running a notebook or
        an analysis then costs no refit.
    backend
        What compiles the log density for nutpie: ``"numba"`` (default; each
        model structure is compiled once per machine and reused, see
        ``cache``) or ``"jax"`` (XLA, with JAX's gradient: a first compile of
        seconds instead of a minute or more, sampling slower; for a structure
        fitted once; needs ``poppk[jax]``, not for models on the ODE path;
        :mod:`poppk.model.jax_backend`).  The two give different draws for a
        seed (they round differently), each reproducible.

    Returns
    -------
    Fit
    """
    import os

    if sampler not in ("nutpie", "pymc"):
        raise ModelSpecError(f"sampler {sampler!r} is not 'nutpie' or 'pymc'")
    if backend not in ("numba", "jax"):
        raise ModelSpecError(f"backend {backend!r} is not 'numba' or 'jax'")
    if backend == "jax" and sampler != "nutpie":
        raise ModelSpecError("backend='jax' compiles for nutpie: use sampler='nutpie' (PyMC's sampler has its own)")
    if backend == "jax" and uses_ode(spec):
        raise ModelSpecError(
            "backend='jax' does not cover models on the ODE path (nonlinear elimination, time-varying "
            "covariates, occasion effects): their solver has no JAX implementation; use backend='numba'")
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if int(value) != value or value < low:
            raise ModelSpecError(f"{name} must be an integer >= {low}, got {value!r}")
    cores = cores or min(chains, os.cpu_count() or 1)
    if uses_ode(spec):
        cache = False  # the ODE Op's graphs are compiled alone (see ``cache``)
    if low_rank is None:
        low_rank = _default_low_rank(spec)
    key = None
    if file is not None:
        from poppk.model.reuse import fingerprint, load_matching

        sampling = {"draws": int(draws), "tune": int(tune), "chains": int(chains), "seed": int(seed),
                    "sampler": sampler, "low_rank": bool(low_rank), "target_accept": target_accept}
        if backend == "numba":  # as before the choice existed, so that saved fits still match
            sampling["cache"] = bool(cache)
        else:  # JAX's versions decide its draws as numba's do numba's (in the code revision)
            versions = _versions(backend)
            sampling.update(backend=backend, compiler={k: versions[k] for k in ("jax", "jaxlib")})
        key = fingerprint(spec, data, sampling)
        saved = load_matching(file, key)
        if saved is not None:
            report = saved.convergence() if warn else None
            if report is not None and not report.ok:
                from poppk.errors import ConvergenceWarning

                warnings.warn(f"{file} (loaded): {report.message()}", ConvergenceWarning, stacklevel=2)
            return saved
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spec = resolve_time_unit(spec.resolved(data.covariates), data)  # the fit records the unit
    design = build_design(spec, data)
    warn_nonpositive_dv(spec, design)
    init = laplace_init(spec, design)
    timings["init_s"] = time.perf_counter() - t0
    ip: dict[str, Any] = {f"log_{p}": v for p, v in init.log_typical.items()}
    ip.update(init.betas)
    ip.update({f"omega_{p}": v for p, v in init.omega.items()})
    ip.update({f"sigma_{k}": v for k, v in init.sigma.items()})
    if spec.iiv_correlation == "full":
        # packed lower-triangular Cholesky factor (row-major) of diag(omega): a start at the EM estimate
        k = len(spec.iiv)
        chol0 = np.diag([init.omega[p] for p in spec.iiv])
        ip["omega_chol"] = chol0[np.tril_indices(k)]
    if spec.iiv:
        if spec.parametrization in ("centered", "laplace"):
            ip["z"] = np.zeros((design.n_subjects, len(spec.iiv)))
        else:
            ip["z"] = init.eta / np.array([init.omega[p] for p in spec.iiv])[None, :]
    var_names = population_variables(spec) + (["theta"] if spec.iiv else []) + ([IOV_EFFECT] if spec.iov else [])
    if spec.iiv_correlation == "full":
        var_names.append("omega_corr")
    t1 = time.perf_counter()
    if sampler == "nutpie":
        import nutpie
        from threadpoolctl import threadpool_limits

        if backend == "jax":
            from poppk.model.jax_backend import compile_jax

            model = build_model(spec, design=design, init=init)
            free = {rv.name for rv in model.free_RVs}
            compiled = compile_jax(model, initial_points={k: v for k, v in ip.items() if k in free},
                                   jitter_rvs={model["z"]} if spec.iiv else set(model.free_RVs), var_names=var_names)
        elif cache:
            from poppk.model.compile_cache import compile_nutpie

            compiled, _ = compile_nutpie(spec, design, init, initial_points=ip, var_names=var_names,
                                         jitter="z" if spec.iiv else "all")
        else:
            model = build_model(spec, design=design, init=init)
            free = {rv.name for rv in model.free_RVs}
            jitter = {model["z"]} if spec.iiv else set(model.free_RVs)
            compiled = nutpie.compile_pymc_model(model, initial_points={k: v for k, v in ip.items() if k in free},
                                                 jitter_rvs=jitter, var_names=var_names)
        timings["compile_s"] = time.perf_counter() - t1
        kwargs: dict[str, Any] = {}
        if target_accept is not None:
            kwargs["target_accept"] = target_accept
        t2 = time.perf_counter()
        try:
            # the chains already use the cores: a multi-threaded BLAS/LAPACK call inside the
            # gradient oversubscribes them (a 4x4 triangular solve took 8-30 ms instead of µs)
            with threadpool_limits(limits=1):
                idata = nutpie.sample(
                    compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                    progress_bar=progress, low_rank_modified_mass_matrix=low_rank, **kwargs,
                )
        except RuntimeError as exc:  # pragma: no cover - depends on the sampler
            raise FitError(f"nutpie failed: {exc}".splitlines()[0]) from exc
        timings["sample_s"] = time.perf_counter() - t2
    else:
        import pymc as pm

        model = build_model(spec, design=design, init=init)
        free = {rv.name for rv in model.free_RVs}
        ip = {k: v for k, v in ip.items() if k in free}
        timings["compile_s"] = 0.0
        t2 = time.perf_counter()
        with model:
            idata = pm.sample(
                draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                initvals=ip, progressbar=progress, target_accept=target_accept or 0.8,
                var_names=var_names, compute_convergence_checks=False,
            )
        timings["sample_s"] = time.perf_counter() - t2
    idata = _tidy_idata(idata, spec, design, var_names)
    settings = {
        "sampler": sampler,
        "backend": backend if sampler == "nutpie" else None,
        "draws": int(draws),
        "tune": int(tune),
        "chains": int(chains),
        "cores": int(cores),
        "seed": int(seed),
        "low_rank": bool(low_rank),
        "target_accept": target_accept,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "init": {
            "log_typical": init.log_typical,
            "omega": init.omega,
            "sigma": init.sigma,
            "betas": init.betas,
            "iterations": init.iterations,
        },
        "versions": _versions(backend),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if key is not None:
        settings["fingerprint"] = key
    result = Fit(idata=idata, spec=spec, data=data, settings=settings, _design=design)
    from poppk.model.persist import fit_attrs

    # the spec, data and settings in the InferenceData from the start: fit.idata.to_netcdf()
    # alone is a file that rebuilds the fit (poppk.model.persist.fit_from_idata)
    idata.attrs.update(fit_attrs(result))
    if log_likelihood:
        result.add_log_likelihood()
    if file is not None:
        result.save(file)  # the log likelihood is recomputed on load: the saved fit stays small
    report = result.convergence()
    if warn and not report.ok:
        from poppk.errors import ConvergenceWarning

        warnings.warn(report.message(), ConvergenceWarning, stacklevel=2)
    return result


def _default_low_rank(spec: ModelSpec) -> bool:
    """nutpie's low-rank mass-matrix adaptation by default: always on with nonlinear
    elimination (the ODE path); otherwise on for a full Ω, except with the ``"laplace"``
    parametrisation when every estimated typical value has IIV.

    With nonlinear elimination, under a diagonal mass matrix the typical values without
    IIV (``KM`` of a Michaelis–Menten model, ``Q`` and ``V2`` of a 2-compartment
    time-dependent one) mixed slowly: R-hat stayed above the threshold after the default
    warm-up.  Those parameters move every subject's likelihood together with the others,
    and the low-rank correction captures such posterior correlations; next to an ODE
    gradient its extra cost is negligible (``benchmarks/bench_ode_fit.py``).

    The Laplace map follows the current typical values and Ω, so those are nearly
    uncorrelated with the z's and low-rank only adds cost; a typical value without IIV
    (Q, V2 of the bundled trial) still moves every subject's likelihood, and there
    low-rank recovers the sampling efficiency (min ESS per gradient 22 -> 87 on the
    bundled trial, benchmarks/bench_parametrizations.py).
    """
    if uses_ode(spec):
        return True
    if spec.iiv_correlation != "full":
        return False
    if spec.parametrization != "laplace":
        return True
    return any(p not in spec.iiv and not prior.is_fixed for p, prior in spec.typical)


def _tidy_idata(idata: Any, spec: ModelSpec, design: ModelDesign, var_names: list[str]) -> Any:
    """Keep readable variables, name coordinates, add observed and constant data."""
    post = idata.posterior
    keep = [v for v in var_names if v in post]
    post = post[keep]
    if "theta" in post:
        post = post.assign_coords(id=[str(s) for s in design.subject_ids], iiv=list(spec.iiv))
    if IOV_EFFECT in post:  # occasion effects: (subject:occasion pair, parameter)
        z = post[IOV_EFFECT]
        extra = [d for d in z.dims if d not in ("chain", "draw")]
        post = post.rename({old: new for old, new in zip(extra, ("occasion", "iov")) if old != new})
        seg = design.segments
        ids = [str(s) for s in design.subject_ids]
        post = post.assign_coords(
            occasion=[f"{ids[i]}:{o}" for i, o in zip(seg.pair_subject.tolist(), seg.pair_occasion.tolist())],
            iov=[p for p, _ in spec.iov])
    idata.posterior = post
    obs_coord = {"obs": np.arange(design.n_obs)}
    observed = xr.Dataset({"y": (("obs",), design.dv)}, coords=obs_coord)
    const = {
        "time": (("obs",), design.obs_time),
        "obs_id": (("obs",), np.array([str(s) for s in design.subject_ids])[design.obs_subject]),
        "obs_subject": (("obs",), design.obs_subject),
        "blq": (("obs",), design.blq),
        "lloq": (("obs",), design.lloq),
        "row": (("obs",), design.obs_row),
    }
    for name, values in design.covariates.items():
        const[f"cov_{name}"] = (("id",), values)
    constant = xr.Dataset(const, coords={**obs_coord, "id": [str(s) for s in design.subject_ids]})
    for group in ("observed_data", "constant_data"):
        if group in idata.groups():
            delattr(idata, group)
    idata.add_groups(observed_data=observed, constant_data=constant)
    return idata


def load_fit(path: str | Path) -> Fit:
    """Load a fit written by :meth:`Fit.save`."""
    from poppk.model.persist import load_fit as _load

    return _load(path)
