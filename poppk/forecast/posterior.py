"""The individual posterior of one new patient, integrated over the population posterior.

For a thinned set of population draws θ_s (typical values, covariate
coefficients, Ω, residual error) the patient's random effects are written
``η = L_s u`` (``L_s`` the Cholesky factor of Ω_s, so ``u ~ N(0, I)`` a
priori).  Given her data y:

1. *Conditional modes* (the Laplace step of :mod:`poppk.model.init`, here one
   patient under many θ_s at once): damped Newton on
   ``F_s(u) = -log p(y | θ_s, u) + |u|²/2`` with gradient and Hessian by
   central differences of the shared PK kernel (one kernel call evaluates
   every draw and every perturbation), eigenvalues clipped so each step goes
   down, backtracking until ``F_s`` decreases.
2. *Importance sampling*: from each θ_s, ``n_samples`` draws of a
   multivariate-t proposal (ν = :data:`PROPOSAL_DF`) centred at the mode with
   the inverse Hessian as scale.  The weight of sample j of draw s is
   ``p(y | θ_s, u) N(u; 0, I) / q_s(u)``, normalised over *all* samples
   together: since the θ_s are draws of the population posterior, the weights
   also reweight them by the new patient's marginal likelihood p(y | θ_s), so
   the result targets p(θ, η | trial data, y) -- her data inform the
   population parameters too, as they would if she were added to the fit.
3. *Pareto smoothing* (PSIS, :func:`arviz.psislw`): the Pareto k̂ of the
   weights and their effective sample size say whether the approximation can
   be trusted (k̂ > 0.7 or ESS < 100 warns).

The likelihood is that of the fit (:func:`poppk.model.likelihood.observation_loglik`:
the residual-error model, M3 for samples below the LLOQ), the predictions
those of the fit (:func:`poppk.model.predict.predict_design` on a design
built by :func:`poppk.model.design.build_design`).  Without observations the
posterior is the population prediction: ``u ~ N(0, I)``, equal weights.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from poppk.errors import ConfigError
from poppk.forecast.patient import PatientRecord
from poppk.model.design import ModelDesign, build_design
from poppk.model.likelihood import observation_loglik
from poppk.model.parameters import log_individual_parameters, sigma_values
from poppk.model.predict import predict_design
from poppk.model.spec import ModelSpec
from poppk.simulate.draws import PosteriorDraws

__all__ = ["IndividualPosterior", "individual_posterior", "population_draws", "PROPOSAL_DF"]

#: Degrees of freedom of the multivariate-t proposal (heavier tails than the Laplace normal).
PROPOSAL_DF = 6.0
#: Central-difference step in the whitened random effects u.
_FD = 1e-3
#: Pareto k̂ above which the importance weights are not trusted.
K_WARN = 0.7
#: Effective sample size below which the importance weights are not trusted.
ESS_WARN = 100.0


@dataclass(frozen=True, eq=False)
class IndividualPosterior:
    """Weighted samples of a new patient's parameters (see module doc).

    Attributes
    ----------
    spec
        The fitted spec.
    log_params
        ``(n_draws, n_samples, n_parameters)`` log individual parameters,
        parameters in ``spec.parameters`` order.
    eta
        ``(n_draws, n_samples, n_iiv)`` random effects η.
    log_weight
        ``(n_draws, n_samples)`` Pareto-smoothed log weights, normalised
        (``logsumexp = 0``).
    sigma
        ``{name: (n_draws,)}`` residual-error magnitudes of the draws.
    log_marginal
        ``(n_draws,)`` estimate of log p(y | θ_s) (0 without observations).
    source_chain, source_draw
        Where each population draw came from in the fit's posterior.
    pareto_k, ess
        Pareto k̂ of the raw weights and the effective sample size of the
        smoothed ones (``nan`` and the sample count without observations).
    converged
        ``(n_draws,)`` whether the conditional mode search converged.
    """

    spec: ModelSpec
    log_params: np.ndarray = field(repr=False)
    eta: np.ndarray = field(repr=False)
    log_weight: np.ndarray = field(repr=False)
    sigma: dict[str, np.ndarray] = field(repr=False)
    log_marginal: np.ndarray = field(repr=False)
    source_chain: np.ndarray = field(repr=False)
    source_draw: np.ndarray = field(repr=False)
    pareto_k: float = float("nan")
    ess: float = float("nan")
    converged: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_draws(self) -> int:
        """Number of population draws."""
        return int(self.log_params.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights, ``(n_draws, n_samples)``."""
        return np.exp(self.log_weight)

    def draw_weights(self) -> np.ndarray:
        """Posterior weight of each population draw given the patient's data, ``(n_draws,)``."""
        return self.weights.sum(axis=1)

    def resample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Systematic resampling: ``(draw index, sample index)`` of ``n`` equally weighted samples."""
        w = self.weights.ravel()
        rng = np.random.default_rng([int(seed), 7])
        pos = (rng.uniform() + np.arange(int(n))) / int(n)
        flat = np.minimum(np.searchsorted(np.cumsum(w), pos), w.size - 1)
        rng.shuffle(flat)
        return np.unravel_index(flat, self.log_weight.shape)

    def to_dataset(self) -> xr.Dataset:
        """Individual parameters (natural scale) with their weights, dims ``draw, sample``."""
        data = {p: (("draw", "sample"), np.exp(self.log_params[..., i])) for i, p in enumerate(self.spec.parameters)}
        data["weight"] = (("draw", "sample"), self.weights)
        for j, p in enumerate(self.spec.iiv):
            data[f"eta_{p}"] = (("draw", "sample"), self.eta[..., j])
        ds = xr.Dataset(data, coords={"draw": np.arange(self.n_draws), "sample": np.arange(self.log_params.shape[1]),
                                      "source_chain": ("draw", self.source_chain),
                                      "source_draw": ("draw", self.source_draw)})
        ds.attrs.update({"pareto_k": float(self.pareto_k), "ess": float(self.ess)})
        return ds

    def summary(self, quantiles: tuple[float, ...] = (0.05, 0.5, 0.95)) -> dict[str, dict[str, float]]:
        """Weighted mean, SD and quantiles of every individual parameter (natural scale)."""
        w = self.weights.ravel()
        out = {}
        for i, p in enumerate(self.spec.parameters):
            x = np.exp(self.log_params[..., i].ravel())
            mean = float(np.sum(w * x))
            sd = float(np.sqrt(np.sum(w * (x - mean) ** 2)))
            q = weighted_quantile(x, w, quantiles)
            out[p] = {"mean": mean, "sd": sd, **{f"q{qq:g}": float(v) for qq, v in zip(quantiles, q)}}
        return out


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: Any) -> np.ndarray:
    """Quantiles of a weighted sample (midpoint interpolation of the weighted CDF)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    cdf = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return np.interp(np.asarray(q, dtype=float), cdf, xs)


# --------------------------------------------------------------------------
# population draws
# --------------------------------------------------------------------------


def population_draws(fit: Any, n_draws: int | None, seed: int) -> tuple[PosteriorDraws, dict[str, np.ndarray]]:
    """Thinned population draws of a fit and their residual-error magnitudes.

    ``fit`` is a :class:`~poppk.model.Fit` or a ``(spec, posterior Dataset)``
    pair (dims ``chain, draw``).
    """
    if isinstance(fit, tuple) and len(fit) == 2 and isinstance(fit[0], ModelSpec):
        spec, post = fit
    elif hasattr(fit, "spec") and hasattr(fit, "idata"):
        spec, post = fit.spec, fit.idata.posterior
    else:
        raise ConfigError(f"expected a Fit or a (spec, posterior) pair, got {type(fit).__name__}")
    if "chain" not in post.dims:
        post = post.expand_dims(chain=[0])
    draws = PosteriorDraws.from_posterior(spec, post, n_draws=n_draws, seed=seed)
    sel = {"chain": xr.DataArray(draws.source_chain, dims="s"), "draw": xr.DataArray(draws.source_draw, dims="s")}
    sigma = {k: np.asarray(v.sel(sel).values, dtype=float) for k, v in sigma_values(spec, post).items()}
    return draws, sigma


# --------------------------------------------------------------------------
# the patient's likelihood under many draws
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Problem:
    spec: ModelSpec
    design: ModelDesign
    base: np.ndarray  # (S, P) log parameters at η = 0
    chol: np.ndarray  # (S, k, k)
    iiv_index: np.ndarray  # (k,) position of each IIV parameter in spec.parameters
    sigma: dict[str, np.ndarray]

    def log_params(self, u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(N, P) log parameters of whitened effects u (N, k) under draws ``rows`` (N,)."""
        eta = np.einsum("nij,nj->ni", self.chol[rows], u)
        lp = self.base[rows].copy()
        lp[:, self.iiv_index] += eta
        return lp

    def loglik(self, u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(N,) log p(y | θ_rows, u)."""
        lp = self.log_params(u, rows)
        params = {p: np.exp(lp[:, i])[:, None] for i, p in enumerate(self.spec.parameters)}
        f = np.asarray(predict_design(self.spec, self.design, params))
        d = self.design
        ll = observation_loglik(
            d.dv[None, :], f, {k: v[rows][:, None] for k, v in self.sigma.items()}, self.spec.error,
            blq=d.blq[None, :] if d.has_blq else None, lloq=d.lloq[None, :],
            truncate_at_zero=self.spec.truncate_at_zero,
        )
        out = np.sum(ll, axis=1)
        return np.where(np.isfinite(out), out, -1e100)


def _offsets(k: int) -> np.ndarray:
    """Perturbations (m, k) for a central-difference gradient and Hessian: 0, ±e_i, (±e_i ±e_j)."""
    rows = [np.zeros(k)]
    eye = np.eye(k)
    for i in range(k):
        rows += [eye[i], -eye[i]]
    for i in range(k):
        for j in range(i + 1, k):
            for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                rows.append(a * eye[i] + b * eye[j])
    return np.asarray(rows) * _FD


def _derivatives(
    prob: _Problem, u: np.ndarray, draws: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value, gradient and Hessian of F(u) = -loglik + |u|²/2 at u (n, k) under the draws ``draws`` (n,)."""
    S, k = u.shape
    m = offsets.shape[0]
    rows = np.repeat(draws, m)
    vals = -prob.loglik((u[:, None, :] + offsets[None]).reshape(S * m, k), rows).reshape(S, m)
    f0 = vals[:, 0]
    g = np.empty((S, k))
    H = np.empty((S, k, k))
    h = _FD
    for i in range(k):
        fp, fm = vals[:, 1 + 2 * i], vals[:, 2 + 2 * i]
        g[:, i] = (fp - fm) / (2 * h)
        H[:, i, i] = (fp - 2 * f0 + fm) / h ** 2
    c = 1 + 2 * k
    for i in range(k):
        for j in range(i + 1, k):
            pp, pm, mp, mm = (vals[:, c + t] for t in range(4))
            H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (4 * h * h)
            c += 4
    g += u
    H += np.eye(k)[None]
    return f0 + 0.5 * np.sum(u * u, axis=1), g, H


def _positive(H: np.ndarray, floor: float = 1e-2) -> np.ndarray:
    lam, vec = np.linalg.eigh(0.5 * (H + np.swapaxes(H, 1, 2)))
    lam = np.maximum(lam, floor)
    return np.einsum("sij,sj,skj->sik", vec, lam, vec)


def _modes(prob: _Problem, max_iter: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conditional modes u (S, k), the (positive) Hessians there and a convergence flag."""
    S = prob.base.shape[0]
    k = prob.chol.shape[1]
    offsets = _offsets(k)
    u = np.zeros((S, k))
    done = np.zeros(S, dtype=bool)
    rows_all = np.arange(S)
    F, g, H = _derivatives(prob, u, rows_all, offsets)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        Hp = _positive(H[act])
        step = -np.linalg.solve(Hp, g[act][..., None])[..., 0]
        norm = np.linalg.norm(step, axis=1)
        step *= np.minimum(1.0, 3.0 / np.maximum(norm, 1e-300))[:, None]
        scale = np.ones(act.size)
        accepted = np.zeros(act.size, dtype=bool)
        for _half in range(12):
            todo = np.flatnonzero(~accepted)
            cand = u[act[todo]] + scale[todo, None] * step[todo]
            Fc = -prob.loglik(cand, rows_all[act[todo]]) + 0.5 * np.sum(cand * cand, axis=1)
            ok = Fc <= F[act[todo]] + 1e-10
            u[act[todo[ok]]] = cand[ok]
            accepted[todo[ok]] = True
            scale[todo[~ok]] *= 0.5
            if accepted.all():
                break
        small = np.max(np.abs(scale[:, None] * step), axis=1) < 1e-6
        done[act[small | ~accepted]] = True
        Fn, gn, Hn = _derivatives(prob, u[act], act, offsets)
        F[act], g[act], H[act] = Fn, gn, Hn
        done[act[np.max(np.abs(gn), axis=1) < 1e-5]] = True
    converged = np.max(np.abs(g), axis=1) < 1e-3
    return u, _positive(H), converged


def _mvt_sample(rng: np.random.Generator, mean: np.ndarray, chol: np.ndarray, n: int, df: float) -> np.ndarray:
    S, k = mean.shape
    z = rng.standard_normal((S, n, k))
    chi = rng.chisquare(df, size=(S, n, 1))
    return mean[:, None, :] + np.einsum("sij,snj->sni", chol, z) * np.sqrt(df / chi)


def _mvt_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray, df: float) -> np.ndarray:
    S, n, k = x.shape
    diff = x - mean[:, None, :]
    sol = np.linalg.solve(chol[:, None], diff[..., None])[..., 0] if k else diff
    maha = np.sum(sol * sol, axis=-1)
    logdet = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)[:, None]
    return (math.lgamma((df + k) / 2) - math.lgamma(df / 2) - 0.5 * k * math.log(df * math.pi) - logdet
            - 0.5 * (df + k) * np.log1p(maha / df))


def _psis(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed normalised log weights and Pareto k̂ (arviz.psislw)."""
    import arviz as az

    flat = log_w.ravel() - np.max(log_w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw, k = az.psislw(flat, reff=1.0)
    lw = np.asarray(lw, dtype=float)
    lw -= np.logaddexp.reduce(lw)
    return lw.reshape(log_w.shape), float(np.asarray(k))


def _design_spec(spec: ModelSpec) -> ModelSpec:
    """The spec without covariates: the design only needs the structure (covariates are computed here)."""
    return dataclasses.replace(spec, covariates=(), size_fraction=None) if spec.covariates else spec


def individual_posterior(
    fit: Any,
    record: PatientRecord,
    *,
    n_draws: int | None = 200,
    n_samples: int = 64,
    seed: int = 0,
    warn: bool = True,
) -> IndividualPosterior:
    """The individual posterior of a checked patient (see module doc).

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` or a ``(spec, posterior Dataset)`` pair.
    record
        The patient (:func:`~poppk.forecast.patient.make_patient`).
    n_draws
        Population draws used (chosen with ``seed``; ``None``: all).
    n_samples
        Samples of the random effects per draw.
    seed
        Seed of the draw choice and of the samples.
    warn
        Warn when the Pareto k̂ exceeds 0.7 or the ESS is below 100.

    Returns
    -------
    IndividualPosterior
    """
    draws, sigma = population_draws(fit, n_draws, seed)
    spec = draws.spec
    if getattr(spec, "time_varying", ()) or getattr(spec, "iov", ()):
        raise ConfigError("forecasting from a model with time-varying covariates or inter-occasion variability "
                          "is not supported yet (her parameters would change between doses); forecast from a "
                          "model without time_varying/iov")
    if int(n_samples) < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
    S, k, J = draws.n, len(spec.iiv), int(n_samples)
    covs = {name: np.asarray(v, dtype=float) for name, v in record.model_covariates.items()}
    logp = log_individual_parameters(spec, draws.log_typical, draws.betas, covs, None)
    base = np.column_stack([np.broadcast_to(np.asarray(logp[p], dtype=float), (S,)) for p in spec.parameters])
    iiv_index = np.asarray([spec.parameters.index(p) for p in spec.iiv], dtype=int)
    rng = np.random.default_rng([int(seed), 1])
    chain, dr = draws.source_chain, draws.source_draw
    if record.n_obs == 0 or k == 0:
        if record.n_obs and k == 0:
            raise ConfigError("the model has no between-subject variability: there is no individual posterior")
        u = rng.standard_normal((S, J, k))
        eta = np.einsum("sij,snj->sni", draws.omega_chol, u)
        lp = np.repeat(base[:, None, :], J, axis=1)
        lp[..., iiv_index] += eta
        lw = np.full((S, J), -math.log(S * J))
        return IndividualPosterior(spec, lp, eta, lw, sigma, np.zeros(S), chain, dr, float("nan"), float(S * J),
                                   np.ones(S, dtype=bool))
    design = build_design(_design_spec(spec), record.data, fast=False)
    prob = _Problem(spec, design, base, draws.omega_chol, iiv_index, sigma)
    mode, H, converged = _modes(prob)
    cov = np.linalg.inv(H)
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    L = np.linalg.cholesky(cov)
    u = _mvt_sample(rng, mode, L, J, PROPOSAL_DF)
    rows = np.repeat(np.arange(S), J)
    ll = prob.loglik(u.reshape(S * J, k), rows).reshape(S, J)
    log_prior = -0.5 * np.sum(u * u, axis=-1) - 0.5 * k * math.log(2 * math.pi)
    log_w = ll + log_prior - _mvt_logpdf(u, mode, L, PROPOSAL_DF)
    log_marginal = np.logaddexp.reduce(log_w, axis=1) - math.log(J)
    lw, khat = _psis(log_w)
    ess = float(1.0 / np.sum(np.exp(2 * lw)))
    eta = np.einsum("sij,snj->sni", draws.omega_chol, u)
    lp = prob.log_params(u.reshape(S * J, k), rows).reshape(S, J, -1)
    if warn and (khat > K_WARN or ess < ESS_WARN):
        warnings.warn(
            f"forecast: the importance weights are poor (Pareto k = {khat:.2f}, ESS = {ess:.0f} of {S * J}); "
            "the individual posterior may be inaccurate -- increase n_samples, or check the observations "
            "(units, times) against the model",
            UserWarning, stacklevel=3,
        )
    if warn and not converged.all():
        warnings.warn(f"forecast: the conditional mode search did not converge for {int((~converged).sum())} of "
                      f"{S} population draws; their importance weights carry the error", UserWarning, stacklevel=3)
    return IndividualPosterior(spec, lp, eta, lw, sigma, log_marginal, chain, dr, khat, ess, converged)
