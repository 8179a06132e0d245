"""Population-parameter draws: the posterior in the form the simulator needs.

:class:`PosteriorDraws` holds, for each of n draws, the log typical values,
covariate coefficients and the Cholesky factor of the IIV covariance Ω --
taken from a fit's posterior (:meth:`PosteriorDraws.from_posterior`,
:meth:`PosteriorDraws.from_fit`) or given directly
(:meth:`PosteriorDraws.from_values`, e.g. a known truth, or tests without
MCMC).  Individual parameters are computed from them with
:func:`poppk.model.parameters.log_individual_parameters`, the code of the
likelihood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from poppk.errors import ModelSpecError
from poppk.model.parameters import population_draws
from poppk.model.spec import ModelSpec

__all__ = ["PosteriorDraws"]


def draw_subset(total: int, n_draws: int | None, seed: Sequence[int]) -> np.ndarray:
    """Indices of ``n_draws`` of ``total`` flattened posterior draws, sorted, without replacement.

    Every draw when ``n_draws`` is None or at least ``total``; otherwise a random
    subset from ``numpy.random.default_rng(seed)`` (the simulation and the
    exposure-toxicity model seed their subsets ``[seed, 0]`` and ``[seed, 2]``).
    """
    if n_draws is None or n_draws >= total:
        return np.arange(total)
    if int(n_draws) < 1:
        raise ModelSpecError(f"n_draws must be >= 1, got {n_draws}")
    return np.sort(np.random.default_rng(list(seed)).choice(total, size=int(n_draws), replace=False))


def _check_resolved(spec: ModelSpec) -> None:
    bad = [c.name for c in spec.covariates if c.form != "categorical" and c.reference is None]
    bad += [c.name for c in spec.covariates if c.form == "adjusted" and c.base_reference is None]
    if bad:
        raise ModelSpecError(
            f"covariate references of {bad} are unresolved; simulate from a fitted spec (Fit.spec) or "
            "set reference= on each CovariateEffect (spec.resolved(covariate_table))"
        )
    if spec.time_unit is None:
        raise ModelSpecError("the spec has no time unit: simulate from a fitted spec (Fit.spec) or give "
                             "units={'time': 'h'} or units={'time': 'day'}")
    if getattr(spec, "elimination", "linear") != "linear":
        raise ModelSpecError(
            f"the model's elimination is {spec.elimination!r}: simulating dosing strategies assumes linear "
            "pharmacokinetics (exposures proportional to the dose, closed forms) and does not cover it yet; "
            "simulate from a model with elimination='linear'"
        )
    if getattr(spec, "iov", ()):
        raise ModelSpecError(
            f"the model has inter-occasion variability on {[p for p, _ in spec.iov]}: simulating dosing "
            "strategies draws one set of parameters per virtual patient and would leave it out; simulate from "
            "the model without iov (time-varying covariates are fine: virtual patients keep their values)"
        )


@dataclass(frozen=True, eq=False)
class PosteriorDraws:
    """Population parameters of n posterior draws.

    Attributes
    ----------
    spec
        The resolved model spec.
    log_typical
        ``{param: (n,)}`` log typical values.
    betas
        ``{effect.name: (n,)}`` covariate coefficients.
    omega_chol
        (n, k, k) lower Cholesky factors of Ω (k = len(spec.iiv)).
    source_chain, source_draw
        Where each draw came from in the posterior (-1 when given directly).
    """

    spec: ModelSpec
    log_typical: Mapping[str, np.ndarray]
    betas: Mapping[str, np.ndarray]
    omega_chol: np.ndarray
    source_chain: np.ndarray
    source_draw: np.ndarray

    def __post_init__(self) -> None:
        _check_resolved(self.spec)
        n = len(self.source_chain)
        for name, v in (*self.log_typical.items(), *self.betas.items()):
            if np.shape(v) != (n,):
                raise ModelSpecError(f"draws of {name} have shape {np.shape(v)}, expected ({n},)")
        k = len(self.spec.iiv)
        if self.omega_chol.shape != (n, k, k):
            raise ModelSpecError(f"omega_chol has shape {self.omega_chol.shape}, expected ({n}, {k}, {k})")
        missing = [p for p in self.spec.parameters if p not in self.log_typical]
        missing += [name for name, _ in self.spec.coefficients if name not in self.betas]
        if missing:
            raise ModelSpecError(f"posterior draws lack {missing}")

    @property
    def n(self) -> int:
        """Number of draws."""
        return len(self.source_chain)

    def __len__(self) -> int:
        return self.n

    @property
    def omega(self) -> np.ndarray:
        """(n, k) IIV standard deviations."""
        cov = np.einsum("nij,nkj->nik", self.omega_chol, self.omega_chol)
        return np.sqrt(np.diagonal(cov, axis1=1, axis2=2))

    def subset(self, index: Any) -> "PosteriorDraws":
        """The draws at ``index``."""
        idx = np.asarray(index)
        return PosteriorDraws(
            self.spec,
            {k: np.asarray(v)[idx] for k, v in self.log_typical.items()},
            {k: np.asarray(v)[idx] for k, v in self.betas.items()},
            self.omega_chol[idx],
            self.source_chain[idx],
            self.source_draw[idx],
        )

    # ------------------------------------------------------------ builders
    @classmethod
    def from_posterior(
        cls, spec: ModelSpec, posterior: xr.Dataset, *, n_draws: int | None = None, seed: int = 0
    ) -> "PosteriorDraws":
        """Draws from a posterior Dataset (dims ``chain, draw``, or ``draw`` only).

        Variables used: the typical values by parameter name (``CL``, ...),
        ``beta_<PARAM>_<COV>``, ``omega_<PARAM>`` and, for a full Ω,
        ``omega_corr`` (``iiv, iiv_bis``).  Fixed priors are taken from the
        spec.  ``n_draws`` draws are chosen at random without replacement
        (``None`` or more than available: all, in order).
        """
        _check_resolved(spec)
        wanted = [p for p, _ in spec.typical] + [name for name, _ in spec.coefficients]
        wanted += [f"omega_{p}" for p in spec.iiv] + ["omega_corr"]
        posterior = posterior.drop_vars([v for v in posterior.data_vars if v not in wanted])  # not theta etc.
        post = posterior if "chain" in posterior.dims else posterior.expand_dims(chain=[0])
        post = post.stack(sample=("chain", "draw")).transpose("sample", ...)
        total = post.sizes["sample"]
        idx = draw_subset(total, n_draws, [int(seed), 0])
        post = post.isel(sample=idx)
        n = len(idx)

        drawn = population_draws(spec, post, [p for p, _ in spec.typical] + [name for name, _ in spec.coefficients]
                                 + [f"omega_{p}" for p, _ in spec.omega])
        log_tv = {p: np.log(drawn[p]) for p, _ in spec.typical}
        betas = {name: drawn[name] for name, _ in spec.coefficients}
        k = len(spec.iiv)
        sd = np.stack([drawn[f"omega_{p}"] for p, _ in spec.omega], axis=1) if k else np.zeros((n, 0))
        if k and spec.iiv_correlation == "full":
            if "omega_corr" not in post:
                raise ModelSpecError("a full-Ω spec needs omega_corr in the posterior")
            corr = np.asarray(post["omega_corr"].transpose("sample", ...).values, dtype=float).reshape(n, k, k)
            chol = _chol(sd[:, :, None] * corr * sd[:, None, :])
        else:
            chol = np.zeros((n, k, k))
            if k:
                chol[:, np.arange(k), np.arange(k)] = sd
        chains = post["chain"].values if "chain" in post.coords else np.zeros(n, int)
        draws = post["draw"].values if "draw" in post.coords else np.arange(n)
        return cls(spec, log_tv, betas, chol, np.asarray(chains, dtype=int), np.asarray(draws, dtype=int))

    @classmethod
    def from_fit(cls, fit: Any, *, n_draws: int | None = None, seed: int = 0) -> "PosteriorDraws":
        """Draws from a :class:`~poppk.model.Fit` (its spec and posterior)."""
        return cls.from_posterior(fit.spec, fit.idata.posterior, n_draws=n_draws, seed=seed)

    @classmethod
    def from_values(
        cls,
        spec: ModelSpec,
        *,
        typical: Mapping[str, float],
        betas: Mapping[str, float] | None = None,
        omega: Mapping[str, float] | None = None,
        correlation: Any = None,
        n_draws: int = 1,
    ) -> "PosteriorDraws":
        """``n_draws`` identical draws with known values (a "true" model; no MCMC).

        Parameters
        ----------
        typical
            Typical value of every structural parameter (natural scale).
        betas
            Coefficient of every covariate effect, by parameter name
            (``beta_CL_AIBW``) -- fixed priors are used when missing.
        omega
            IIV SD of every parameter in ``spec.iiv`` (fixed priors used when
            missing).
        correlation
            (k, k) correlation matrix of η (default: identity).
        """
        _check_resolved(spec)
        n = int(n_draws)
        betas = dict(betas or {})
        omega = dict(omega or {})
        log_tv = {}
        for p, prior in spec.typical:
            if p in typical:
                log_tv[p] = np.full(n, np.log(float(typical[p])))
            elif prior.is_fixed:
                log_tv[p] = np.full(n, np.log(float(prior["value"])))
            else:
                raise ModelSpecError(f"from_values: no typical value for {p}")
        b = {}
        for name, prior in spec.coefficients:
            if name in betas:
                b[name] = np.full(n, float(betas[name]))
            elif prior.is_fixed:
                b[name] = np.full(n, float(prior["value"]))
            else:
                raise ModelSpecError(f"from_values: no value for {name}")
        k = len(spec.iiv)
        sd = np.zeros(k)
        for j, (p, prior) in enumerate(spec.omega):
            if p in omega:
                sd[j] = float(omega[p])
            elif prior.is_fixed:
                sd[j] = float(prior["value"])
            else:
                raise ModelSpecError(f"from_values: no omega for {p}")
        corr = np.eye(k) if correlation is None else np.asarray(correlation, dtype=float)
        chol = _chol((sd[:, None] * corr * sd[None, :])[None]) if k else np.zeros((1, 0, 0))
        return cls(spec, log_tv, b, np.repeat(chol, n, axis=0), np.full(n, -1), np.arange(n))

    def to_dict(self) -> dict[str, Any]:
        """Summary for Dataset attributes."""
        return {"n": self.n, "spec": json.loads(self.spec.to_json())}


def _chol(cov: np.ndarray) -> np.ndarray:
    """Batched Cholesky, tolerating zero variances (ω = 0 gives a zero row)."""
    out = np.zeros_like(cov)
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    pos = sd > 0
    if pos.all():
        try:
            return np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            pass
    for i in range(cov.shape[0]):
        m = pos[i]
        if m.any():
            sub = cov[i][np.ix_(m, m)]
            try:
                L = np.linalg.cholesky(sub)
            except np.linalg.LinAlgError:
                L = np.linalg.cholesky(sub + 1e-12 * np.eye(sub.shape[0]) * np.max(np.diag(sub)))
            out[i][np.ix_(m, m)] = L
    return out
