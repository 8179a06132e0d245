"""An independent reference for the individual posterior: brute-force quadrature on a grid.

For each population draw θ_s (the same draws the forecast used), the
posterior of the whitened random effects u (η = L_s u) is evaluated on a
fine regular grid covering ±``half_width`` prior SDs: ``log p(y | θ_s, u) +
log N(u; 0, I)``, normalised over *all* draws and grid points together, which
weights each draw by its marginal likelihood p(y | θ_s) exactly as the
joint posterior does.  Nothing of the forecast's mode search, Laplace proposal
or importance sampling is used; only the model (kernel and likelihood).
"""

from __future__ import annotations

import numpy as np

from poppk.forecast.posterior import _design_spec, population_draws
from poppk.model.design import build_design
from poppk.model.likelihood import observation_loglik
from poppk.model.parameters import log_individual_parameters
from poppk.model.predict import predict_design


def grid_posterior(fit, record, *, n_draws, seed, n_grid=161, half_width=5.0):
    """Weighted grid samples of the log individual parameters: (log_params (N, P), weights (N,))."""
    draws, sigma = population_draws(fit, n_draws, seed)
    spec = draws.spec
    k = len(spec.iiv)
    assert k == 2, "the grid reference is written for two random effects"
    covs = {n: np.asarray(v, dtype=float) for n, v in record.model_covariates.items()}
    logp = log_individual_parameters(spec, draws.log_typical, draws.betas, covs, None)
    base = np.column_stack([np.broadcast_to(np.asarray(logp[p], float), (draws.n,)) for p in spec.parameters])
    design = build_design(_design_spec(spec), record.data, fast=False)
    g = np.linspace(-half_width, half_width, n_grid)
    U = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    idx = [spec.parameters.index(p) for p in spec.iiv]
    out_lp, out_lw = [], []
    for s in range(draws.n):
        eta = U @ draws.omega_chol[s].T
        lp = np.repeat(base[s][None], len(U), axis=0)
        lp[:, idx] += eta
        params = {p: np.exp(lp[:, i])[:, None] for i, p in enumerate(spec.parameters)}
        f = np.asarray(predict_design(spec, design, params))
        ll = observation_loglik(design.dv[None], f, {n: v[s] for n, v in sigma.items()}, spec.error,
                                blq=design.blq[None] if design.has_blq else None, lloq=design.lloq[None],
                                truncate_at_zero=spec.truncate_at_zero).sum(axis=1)
        out_lw.append(ll - 0.5 * np.sum(U * U, axis=1))
        out_lp.append(lp)
    lw = np.concatenate(out_lw)
    w = np.exp(lw - lw.max())
    return np.concatenate(out_lp), w / w.sum()


def weighted_summary(x, w, q=(0.05, 0.95)):
    """Mean, SD and quantiles of a weighted sample."""
    from poppk.forecast.posterior import weighted_quantile

    mean = float(np.sum(w * x))
    sd = float(np.sqrt(np.sum(w * (x - mean) ** 2)))
    return mean, sd, weighted_quantile(x, w, q)
