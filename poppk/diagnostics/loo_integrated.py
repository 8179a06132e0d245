r"""Integrating a subject's random effects out of its likelihood, and the Monte-Carlo error of it.

For every posterior draw :math:`\phi_s` of the population parameters and
every subject *i*

.. math:: p(y_i \mid \phi_s) = \int p(y_i \mid \eta, \phi_s)\,
   N(\eta; 0, \Omega_s)\, d\eta
   \approx \frac1M \sum_{m=1}^{M} w_{sim}, \qquad
   w_{sim} = \frac{p(y_i \mid \eta_{im}, \phi_s)\, N(\eta_{im}; 0, \Omega_s)}{q_i(\eta_{im})}

with ``M = n_eta`` draws :math:`\eta_{im} \sim q_i` from an
:class:`EtaProposal`: the defensive mixture
0.9·N(μ_i, 1.5²Σ_i) + 0.1·N(0, Ω̂) (μ_i, Σ_i: posterior mean and covariance
of the subject's η in a fit; Ω̂: posterior median Ω).  The same η draws serve
every posterior draw *s* (common random numbers), so that the estimate is a
smooth function of φ.  The proposal only has to cover the subject's η; it
may come from a different fit than the population draws, which is how an
exact leave-one-subject-out refit integrates the subject it left out
(:mod:`poppk.diagnostics.loo_refit`).

Monte-Carlo error (:meth:`IntegratedLoglik.mcse`).  Any elpd estimate built
from these values is a smooth function ``g`` of the M-sample means
:math:`\hat p_{si}`; its MC variance follows from the delta method applied
to the whole estimate, not to each draw separately:

.. math:: \operatorname{Var}\,\widehat{\mathrm{elpd}}_i \approx \frac1M
   \operatorname{Var}_m\Big(\sum_s a_{si}\, \frac{w_{sim}}{\hat p_{si}}\Big),
   \qquad a_{si} = \frac{\partial \widehat{\mathrm{elpd}}_i}{\partial \log \hat p_{si}}

(for PSIS-LOO, ``a`` are the normalised Pareto-smoothed LOO weights; for
the plain mean of an exact refit, :math:`\hat p_{si} / \sum_t \hat p_{ti}`).
Why this form: because the η draws are shared by all posterior draws, the
errors of :math:`\log\hat p_{si}` over *s* are strongly correlated, so the
per-draw delta-method variances ``var(w)/(M·mean²)`` cannot simply be
added; the influence sum above carries that correlation exactly to first
order, and it costs nothing beyond the weights already computed (replicate
integrations with other seeds would cost ``n_eta`` predictions per draw
each time).  The η draws of different subjects are independent, so the
variance of the total elpd is the sum over subjects.  Like every
importance-sampling variance estimate it is itself noisy when the weights
are heavy-tailed; :attr:`IntegratedLoglik.weight_k` (Pareto k of the
combined weights per subject, above ~0.7 unreliable) says when.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xarray as xr
from scipy.special import logsumexp

from poppk.diagnostics._common import DiagnosticsError
from poppk.model.analytes import error_terms

__all__ = ["EtaProposal", "IntegratedLoglik", "integrate_subjects"]


def _mvn_logpdf(x: np.ndarray, mean: np.ndarray | float, chol: np.ndarray) -> np.ndarray:
    """log N(x; mean, L Lᵀ); ``x (..., k)``, ``chol (..., k, k)`` lower, broadcastable."""
    diff = x - mean
    k = x.shape[-1]
    sol = np.linalg.solve(chol, diff[..., None])[..., 0]
    logdet = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * (sol**2).sum(-1) - logdet - 0.5 * k * np.log(2 * np.pi)


@dataclass(frozen=True)
class EtaProposal:
    """Importance proposal for the random effects η of some subjects.

    A defensive mixture ``weight·N(mean_i, chol_i chol_iᵀ) + (1 − weight)·N(0, diag(omega²))``
    per subject.

    Attributes
    ----------
    ids
        Subject IDs (as strings), one per row of ``mean``.
    mean, chol
        Centre ``(N, k)`` and lower Cholesky factor ``(N, k, k)`` of the
        main component.
    omega
        SDs ``(k,)`` of the defensive component.
    weight
        Mass of the main component.
    """

    ids: tuple[str, ...]
    mean: np.ndarray
    chol: np.ndarray
    omega: np.ndarray
    weight: float = 0.9

    @classmethod
    def from_fit(cls, fit: Any, *, widen: float = 1.5, weight: float = 0.9) -> "EtaProposal":
        """The proposal built from a fit's posterior of every subject's η.

        Parameters
        ----------
        fit
            A :class:`~poppk.model.Fit` with random effects.
        widen
            Factor on the posterior SD of η in the main component.
        weight
            Mass of the main component (the rest is N(0, Ω̂)).
        """
        from poppk.diagnostics.shrinkage import omega_point_estimates

        spec = fit.spec
        if not spec.iiv:
            raise DiagnosticsError("integrating random effects needs a model with IIV; "
                                   "this one has none (use method='psis')")
        eta = fit.eta().transpose("chain", "draw", "id", "iiv")
        n_draws = eta.sizes["chain"] * eta.sizes["draw"]
        k = len(spec.iiv)
        vals = eta.values.reshape(n_draws, eta.sizes["id"], k)
        mu = vals.mean(axis=0)
        dev = vals - mu[None]
        cov = np.einsum("sni,snj->nij", dev, dev) / max(n_draws - 1, 1)
        chol = np.linalg.cholesky(widen**2 * cov + 1e-8 * np.eye(k)[None])
        omega = np.array([omega_point_estimates(fit)[p] for p in spec.iiv])
        return cls(ids=tuple(str(i) for i in eta.id.values), mean=mu, chol=chol, omega=omega, weight=weight)

    def select(self, ids: Sequence[Any]) -> "EtaProposal":
        """The proposal of the subjects ``ids`` only (in that order)."""
        pos = {s: j for j, s in enumerate(self.ids)}
        missing = [str(i) for i in ids if str(i) not in pos]
        if missing:
            raise DiagnosticsError(
                f"no η proposal for subject(s) {', '.join(missing[:10])}: build the proposal "
                "(EtaProposal.from_fit) from a fit that contains them, e.g. the full-data fit"
            )
        j = np.array([pos[str(i)] for i in ids], dtype=int)
        return dataclasses.replace(self, ids=tuple(str(i) for i in ids), mean=self.mean[j], chol=self.chol[j])

    def sample(self, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``m`` draws per subject and their log proposal density: ``eta (m, N, k)``, ``log_q (m, N)``."""
        n, k = self.mean.shape
        z = rng.standard_normal((m, n, k))
        main = rng.uniform(size=(m, n)) < self.weight
        eta = np.where(main[..., None], self.mean[None] + np.einsum("nij,mnj->mni", self.chol, z),
                       z * self.omega[None, None, :])
        log_def = (-0.5 * (eta / self.omega) ** 2 - np.log(self.omega) - 0.5 * np.log(2 * np.pi)).sum(-1)
        log_q = np.logaddexp(np.log(self.weight) + _mvn_logpdf(eta, self.mean[None], self.chol[None]),
                             np.log1p(-self.weight) + log_def)
        return eta, log_q


@dataclass(frozen=True)
class IntegratedLoglik:
    """``log p(y_i | φ_s)`` per draw and subject, with what its Monte-Carlo error needs.

    Attributes
    ----------
    loglik
        DataArray ``chain, draw, id``: log of the importance-sampling mean.
    log_ratio
        ``log(w_sim / p̂_si)``, shape ``(S, M, N)`` (draws flattened chain-major,
        as ``loglik``); its exponent averages to 1 over ``m``.
    """

    loglik: xr.DataArray
    log_ratio: np.ndarray

    @property
    def n_eta(self) -> int:
        """Importance-sampling draws of η per subject."""
        return int(self.log_ratio.shape[1])

    def _influence(self, log_a: np.ndarray) -> np.ndarray:
        """``z_mi = Σ_s a_si w_sim / p̂_si``, shape ``(M, N)``; ``log_a`` (S, N) normalised over s."""
        a = np.exp(log_a - logsumexp(log_a, axis=0, keepdims=True))
        return np.einsum("sn,smn->mn", a, np.exp(self.log_ratio))

    def mcse(self, log_a: np.ndarray) -> np.ndarray:
        """MC standard error ``(N,)`` of a per-subject elpd estimate (see module notes).

        Parameters
        ----------
        log_a
            ``(S, N)`` log sensitivities of the estimate to ``log p̂_si``
            (normalised over *s* here): the PSIS log weights for PSIS-LOO,
            ``loglik`` itself for ``log mean_s p̂_si``.
        """
        z = self._influence(log_a)
        return np.sqrt(z.var(axis=0, ddof=1) / self.n_eta)

    def weight_k(self, log_a: np.ndarray) -> np.ndarray:
        """Pareto k ``(N,)`` of the combined η weights ``z_mi`` (above ~0.7: the MC SE is unreliable)."""
        import arviz as az

        z = self._influence(log_a)
        _, k = az.psislw(np.log(np.maximum(z.T, 1e-300)), 1.0)
        return np.asarray(k, dtype=float)


def _draw_index(posterior: xr.Dataset, max_draws: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Kept draw positions per chain (thinned evenly) and the flat chain-major indices."""
    nc, nd = posterior.sizes["chain"], posterior.sizes["draw"]
    thin = 1 if max_draws is None else max(1, int(np.ceil(nc * nd / max_draws)))
    keep = np.arange(0, nd, thin)
    return keep, (np.arange(nc)[:, None] * nd + keep[None, :]).ravel()


def integrate_subjects(
    fit: Any,
    data: Any | None = None,
    *,
    proposal: EtaProposal | None = None,
    n_eta: int = 100,
    max_draws: int | None = 1000,
    seed: int = 0,
) -> IntegratedLoglik:
    """Integrate the random effects of some subjects out of their likelihood, per posterior draw.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` with random effects: its population
        draws (typical values, covariate effects, Ω, σ) are used.
    data
        A :class:`~poppk.data.PKData` with the subjects to integrate
        (default: the fit's own data).  They need not be in the fit, e.g. a
        subject a refit left out; covariate references are the fit's.
    proposal
        η proposal covering those subjects (default: from the fit's
        posterior, which only covers the fit's own subjects).
    n_eta
        Importance-sampling draws of η per subject.
    max_draws
        Cap on the posterior draws used (chains thinned evenly; ``None``: all).
    seed
        Seed of the η draws.

    Returns
    -------
    IntegratedLoglik
    """
    from poppk.diagnostics.simulate import _omega_draws
    from poppk.model.design import build_design
    from poppk.model.likelihood import observation_loglik
    from poppk.model.predict import predict_draws

    spec = fit.spec
    if not spec.iiv:
        raise DiagnosticsError("method='integrated' needs random effects; the model has none (use method='psis')")
    if getattr(spec, "time_varying", ()) or getattr(spec, "iov", ()):
        raise DiagnosticsError("method='integrated' integrates over η only and does not cover time-varying "
                               "parameters or occasion effects yet; use method='psis'")
    if int(n_eta) < 2:
        raise DiagnosticsError(f"n_eta={n_eta!r}: use at least 2 η draws per subject (100 is the default)")
    view = fit if data is None else dataclasses.replace(fit, data=data, _design=build_design(spec, data))
    d = view.design
    ids = [str(x) for x in d.subject_ids]
    proposal = (proposal or EtaProposal.from_fit(fit)).select(ids)
    post = fit.idata.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    keep, idx = _draw_index(post, max_draws)
    s_n, n_sub, k, m = idx.size, d.n_subjects, len(spec.iiv), int(n_eta)
    eta, log_q = proposal.sample(m, np.random.default_rng(seed))  # (M, N, k), (M, N)

    omega, corr = _omega_draws(fit, idx)  # (S, k), (S, k, k) | None
    if corr is None:
        log_prior = (-0.5 * (eta[None] / omega[:, None, None, :]) ** 2 - np.log(omega[:, None, None, :])
                     - 0.5 * np.log(2 * np.pi)).sum(-1)  # (S, M, N)
    else:
        cov_s = corr * omega[:, :, None] * omega[:, None, :] + 1e-12 * np.eye(k)[None]
        log_prior = _mvn_logpdf(eta[None], 0.0, np.linalg.cholesky(cov_s)[:, None, None])

    typ = view.individual_parameters(typical=True)  # covariate effects of these subjects, η = 0
    params = {}
    for p in spec.parameters:
        base = typ[p].values.reshape(nc * nd, n_sub)[idx]  # (S, N)
        if p in spec.iiv:
            val = base[:, None, :] * np.exp(eta[None, :, :, spec.iiv.index(p)])
        else:
            val = np.broadcast_to(base[:, None, :], (s_n, m, n_sub))
        params[p] = val.reshape(s_n * m, n_sub)
    sig = {kk: v[idx] for kk, v in fit.sigma_draws().items()}

    def per_subject(pred: np.ndarray, sl: slice) -> np.ndarray:
        rows = np.arange(sl.start, sl.stop) // m
        ll = observation_loglik(
            d.dv[None, :], pred, *error_terms(spec, {kk: v[rows][:, None] for kk, v in sig.items()}, d.obs_analyte),
            blq=d.blq[None, :] if d.has_blq else None, lloq=d.lloq[None, :],
            truncate_at_zero=spec.truncate_at_zero,
        )
        return d.sum_by_subject(ll)

    ll_cond = predict_draws(spec, d, params, transform=per_subject).reshape(s_n, m, n_sub)
    log_w = ll_cond + log_prior - log_q[None]
    out = logsumexp(log_w, axis=1) - np.log(m)  # (S, N)
    loglik = xr.DataArray(out.reshape(nc, keep.size, n_sub), dims=("chain", "draw", "id"),
                          coords={"chain": post.chain.values, "draw": post.draw.values[keep], "id": ids},
                          name="y_subject")
    return IntegratedLoglik(loglik=loglik, log_ratio=log_w - out[:, None, :])
