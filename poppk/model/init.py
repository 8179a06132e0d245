"""Starting points and per-subject preconditioning from a fast Laplace-EM pass.

NUTS on a population model is slow for two reasons that have nothing to do
with the cost of a gradient: chains started far from the typical set spend
the warm-up finding it (or get stuck), and each subject's parameters are
correlated with each other a posteriori (CL with V1, Q with V2, ...), which a
diagonal mass matrix cannot undo.  This module removes both with a few
seconds of NumPy work before sampling, the way NONMEM runs FOCE/IMP before
its NUTS step:

1. *Conditional modes* (empirical Bayes estimates): for every subject at
   once, damped Gauss–Newton on ``-log p(y_i | θ_i) - log p(θ_i | pop)``,
   with the Jacobian of the predictions by finite differences of the shared
   PK kernel (subjects are independent given the population, so one kernel
   call perturbs one parameter of every subject).
2. *Population update* (an EM/Laplace step): typical values and covariate
   coefficients by least squares on the conditional modes, ω² from the modes
   plus their Laplace variances, residual error by maximum likelihood.

The result gives (a) starting points for every chain and (b) each subject's
Laplace mean ``m_i`` and Cholesky factor ``C_i`` of the posterior covariance
of its log parameters, used by the ``"centered"`` parametrisation
``θ_i = m_i + C_i z_i``, an affine change of variables (constant Jacobian)
under which each subject's likelihood is close to a standard normal in
``z_i``: a block-dense preconditioner that NUTS's diagonal adaptation then
only has to fine-tune.  The ``"laplace"`` parametrisation
(:mod:`poppk.model.reparam`) uses instead the Gauss–Newton information of
each subject's likelihood alone (``info``) and lets the map follow the
current typical values and Ω.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from poppk.model.analytes import error_terms, sigma_analyte, sigma_base
from poppk.model.design import ModelDesign
from poppk.model.likelihood import observation_loglik
from poppk.model.parameters import base_key, covariate_log_effect, log_individual_parameters
from poppk.model.predict import predict_design
from poppk.model.spec import SIZE_FRACTION, ModelSpec
from poppk.model.time_varying import OFFSETS, segment_offsets, varying_parameters

__all__ = ["LaplaceInit", "laplace_init"]

_FD_STEP = 1e-5


@dataclass(frozen=True)
class LaplaceInit:
    """Result of :func:`laplace_init`.

    Attributes
    ----------
    log_typical
        ``{param: log typical value}``.
    betas
        ``{effect name: coefficient}``.
    omega
        ``{param: ω}`` for parameters with IIV.
    sigma
        ``{name: residual magnitude}``.
    eta
        Conditional modes, shape ``(n_subjects, n_iiv)``.
    mode
        Conditional modes of the individual log parameters (``log TV +
        covariate effects + η``), shape ``(n_subjects, n_iiv)``.
    chol
        Cholesky factors of the Laplace covariance of each subject's log
        parameters, shape ``(n_subjects, n_iiv, n_iiv)``.
    info
        Gauss–Newton information of each subject's likelihood alone (the
        Laplace precision minus ``prior_precision``), ``(n_subjects, n_iiv, n_iiv)``.
    prior_precision
        The (diagonal) population precision used for ``mode`` and ``chol``.
    objective
        Final value of -2 log-likelihood (Laplace approximation, for information).
    iterations
        EM iterations run.
    """

    log_typical: dict[str, float]
    betas: dict[str, float]
    omega: dict[str, float]
    sigma: dict[str, float]
    eta: np.ndarray
    mode: np.ndarray
    chol: np.ndarray
    objective: float = float("nan")
    iterations: int = 0
    history: list[float] = field(default_factory=list, repr=False)
    info: np.ndarray | None = field(default=None, repr=False)
    prior_precision: np.ndarray | None = field(default=None, repr=False)
    iov_scale: np.ndarray | None = field(default=None, repr=False)


def _individual(spec: ModelSpec, design: ModelDesign, log_tv, betas, eta) -> dict[str, np.ndarray]:
    eta_map = {p: eta[:, j] for j, p in enumerate(spec.iiv)}
    logp = log_individual_parameters(spec, log_tv, betas, design.covariates, eta_map)
    n = design.n_subjects
    out = {p: np.exp(np.broadcast_to(np.asarray(v, dtype=float), (n,))) for p, v in logp.items()}
    if design.segments is not None:  # time-varying covariates at the current coefficients, no occasion effect
        out[OFFSETS] = segment_offsets(spec, design.segments, {k: float(np.asarray(b)) for k, b in betas.items()})
    return out


def _predict(spec, design, log_tv, betas, eta) -> np.ndarray:
    return np.asarray(predict_design(spec, design, _individual(spec, design, log_tv, betas, eta)))


def _loglik(spec, design, ipred, sigma) -> np.ndarray:
    sigma, error = error_terms(spec, sigma, design.obs_analyte)
    return observation_loglik(
        design.dv,
        ipred,
        sigma,
        error,
        blq=design.blq if design.has_blq else None,
        lloq=design.lloq,
        truncate_at_zero=spec.truncate_at_zero,
    )


def _initial_sigma(spec: ModelSpec, design: ModelDesign) -> dict[str, float]:
    priors = dict(spec.sigma)
    med = float(np.median(np.abs(design.dv[~design.blq]))) if (~design.blq).any() else 1.0
    out = {}
    for name in spec.sigma_names:
        if name in priors:
            p = priors[name]
            out[name] = p.point() if not p.is_fixed else p["value"]
        else:
            out[name] = 0.3 if sigma_base(name) in ("prop", "exp") else 0.3 * _median_dv(spec, design, name, med)
    return out


def _fit_sigma(spec, design, ipred, sigma0: dict[str, float]) -> dict[str, float]:
    priors = dict(spec.sigma)
    free = [k for k in spec.sigma_names if not (k in priors and priors[k].is_fixed)]
    if not free:
        return dict(sigma0)

    def negll(x):
        s = dict(sigma0)
        s.update({k: float(np.exp(v)) for k, v in zip(free, x)})
        ll = _loglik(spec, design, ipred, s)
        return -float(np.sum(ll)) if np.all(np.isfinite(ll)) else 1e300

    x0 = np.log([max(sigma0[k], 1e-8) for k in free])
    res = optimize.minimize(negll, x0, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-3, "maxiter": 200})
    out = dict(sigma0)
    out.update({k: float(np.exp(v)) for k, v in zip(free, res.x)})
    return out


def _median_dv(spec, design, name: str, overall: float) -> float:
    """Median |DV| of the analyte a residual magnitude belongs to (``overall`` for one analyte)."""
    if design.obs_analyte is None:
        return overall
    use = (~design.blq) & (design.obs_analyte == sigma_analyte(spec, name))
    return float(np.median(np.abs(design.dv[use]))) if use.any() else overall


def _residual_weights(spec, design, ipred, sigma) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Newton residuals and weights (1/SD) on the scale of the error model."""
    from poppk.model.likelihood import residual_sd

    ip = np.maximum(ipred, 1e-12)
    sigma, error = error_terms(spec, sigma, design.obs_analyte)
    if error == "exponential":
        r = np.log(np.maximum(design.dv, 1e-12)) - np.log(ip)
        w = np.broadcast_to(1.0 / sigma["exp"], ip.shape).astype(float)
    else:
        r = design.dv - ip
        w = 1.0 / residual_sd(ip, sigma, error)
    use = ~design.blq
    return np.where(use, r * w, 0.0), np.where(use, w, 0.0)


def _jacobian(spec, design, log_tv, betas, eta, f0) -> np.ndarray:
    """d IPRED / d η for every observation: shape (n_obs, k), finite differences."""
    k = eta.shape[1]
    J = np.empty((design.n_obs, k))
    for j in range(k):
        e = eta.copy()
        e[:, j] += _FD_STEP
        J[:, j] = (_predict(spec, design, log_tv, betas, e) - f0) / _FD_STEP
    return J


def _subject_objective(spec, design, log_tv, betas, eta, sigma, omega_inv) -> np.ndarray:
    f = _predict(spec, design, log_tv, betas, eta)
    ll = _loglik(spec, design, f, sigma)
    ll = np.where(np.isfinite(ll), ll, -1e100)
    per = np.bincount(design.obs_subject, weights=ll, minlength=design.n_subjects)
    prior = 0.5 * np.einsum("ij,jk,ik->i", eta, omega_inv, eta)
    return -per + prior


def _conditional_modes(spec, design, log_tv, betas, eta, sigma, omega, iters=8):
    """Damped Gauss–Newton for all subjects at once; returns modes and Hessians."""
    k = len(spec.iiv)
    omega_inv = np.diag(1.0 / np.asarray([omega[p] for p in spec.iiv]) ** 2)
    obj = _subject_objective(spec, design, log_tv, betas, eta, sigma, omega_inv)
    H = np.zeros((design.n_subjects, k, k))
    for _ in range(iters):
        f0 = _predict(spec, design, log_tv, betas, eta)
        J = _jacobian(spec, design, log_tv, betas, eta, f0)
        r, w = _residual_weights(spec, design, f0, sigma)
        if spec.error == "exponential":
            Jw = J / np.maximum(f0, 1e-12)[:, None] * w[:, None]
        else:
            Jw = J * w[:, None]
        sub = design.obs_subject
        H = np.zeros((design.n_subjects, k, k))
        np.add.at(H, sub, Jw[:, :, None] * Jw[:, None, :])
        H += omega_inv[None]
        g = np.zeros((design.n_subjects, k))
        np.add.at(g, sub, Jw * r[:, None])
        g -= eta @ omega_inv
        step = np.linalg.solve(H + 1e-9 * np.eye(k)[None], g[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)
        scale = np.ones(design.n_subjects)
        improved = np.zeros(design.n_subjects, dtype=bool)
        for _half in range(6):
            cand = eta + scale[:, None] * step
            cobj = _subject_objective(spec, design, log_tv, betas, cand, sigma, omega_inv)
            better = cobj < obj - 1e-10
            newly = better & ~improved
            eta = np.where(newly[:, None], cand, eta)
            obj = np.where(newly, cobj, obj)
            improved |= better
            if improved.all():
                break
            scale = np.where(improved, scale, scale * 0.5)
        if np.max(np.abs(step)) < 1e-4:
            break
    return eta, H


def _log_effect(c, beta, design: ModelDesign, betas) -> np.ndarray:
    if c.form == "adjusted":
        return covariate_log_effect(
            c, beta, design.covariates[c.name], base=design.covariates[base_key(c)], fraction=betas[SIZE_FRACTION]
        )
    return covariate_log_effect(c, beta, design.covariates[c.name])


def _update_population(spec, design, log_tv, betas, eta):
    """Least-squares update of typical values and covariate coefficients (IIV parameters).

    The individual log parameters (modes) ``L_i`` are fixed by the current
    typical values, coefficients and η; the update regresses them on the
    estimated covariate terms.  With an adjusted size model the fraction ``f``
    is profiled on a grid: given ``f`` the regression is linear in the
    coefficients, and the ``f`` whose residual log variances sum lowest is kept.
    """
    eta_map = {p: eta[:, j] for j, p in enumerate(spec.iiv)}
    modes = log_individual_parameters(spec, log_tv, betas, design.covariates, eta_map)
    prior = spec.size_fraction
    if prior is None or prior.is_fixed or not any(c.form == "adjusted" and c.parameter in spec.iiv for c in spec.covariates):
        return _regress_population(spec, design, modes, log_tv, betas)[:3]
    best = None
    # an interior grid: the sampler starts from this value on the logit scale
    for f in np.unique(np.r_[0.02, np.linspace(0.1, 0.9, 9), 0.98, betas[SIZE_FRACTION]]):
        trial = dict(betas)
        trial[SIZE_FRACTION] = float(f)
        out = _regress_population(spec, design, modes, log_tv, trial)
        if best is None or out[3] < best[3]:
            best = out
    return best[:3]  # type: ignore[index]


def _regress_population(spec, design, modes, log_tv, betas):
    """Typical values and coefficients of the IIV parameters by least squares on the modes ``L_i``."""
    log_tv = dict(log_tv)
    betas = dict(betas)
    typ = spec.typical_priors
    n = design.n_subjects
    eta = np.zeros((n, len(spec.iiv)))
    score = 0.0
    for j, p in enumerate(spec.iiv):
        estimated = [
            c for c in spec.covariates_on(p)
            if c.form in ("power", "exponential", "categorical", "adjusted") and not c.prior.is_fixed
        ]
        # the modes without the terms that are held (fixed coefficients, linear forms) at these betas
        target = np.broadcast_to(np.asarray(modes[p], dtype=float), (n,)).copy()
        for c in spec.covariates_on(p):
            if c not in estimated:
                target = target - _log_effect(c, betas[c.name], design, betas)
        fixed_tv = typ[p].is_fixed
        cols, names = [], []
        if not fixed_tv:
            cols.append(np.ones(n))
            names.append(None)
        else:
            target = target - log_tv[p]
        for c in estimated:
            cols.append(_log_effect(c, 1.0, design, betas))
            names.append(c.name)
        if cols:
            X = np.column_stack(cols)
            coef, *_ = np.linalg.lstsq(X, target, rcond=None)
            for name, value in zip(names, coef):
                if name is None:
                    log_tv[p] = float(value)
                else:
                    betas[name] = float(value)
            eta[:, j] = target - X @ coef
        else:
            eta[:, j] = target
        score += float(np.log(np.mean(eta[:, j] ** 2) + 1e-12))
    return log_tv, betas, eta, score


def _update_fixed_effects(spec, design, log_tv, betas, eta, sigma):
    """One Gauss–Newton step on typical values of parameters without IIV."""
    names = [p for p in spec.parameters if p not in spec.iiv and not spec.typical_priors[p].is_fixed]
    if not names:
        return log_tv
    f0 = _predict(spec, design, log_tv, betas, eta)
    r, w = _residual_weights(spec, design, f0, sigma)
    J = np.empty((design.n_obs, len(names)))
    for j, p in enumerate(names):
        lt = dict(log_tv)
        lt[p] += _FD_STEP
        J[:, j] = (_predict(spec, design, lt, betas, eta) - f0) / _FD_STEP
    if spec.error == "exponential":
        J = J / np.maximum(f0, 1e-12)[:, None]
    Jw = J * w[:, None]
    H = Jw.T @ Jw + 1e-6 * np.eye(len(names))
    step = np.clip(np.linalg.solve(H, Jw.T @ r), -1.0, 1.0)
    base = -np.sum(_loglik(spec, design, f0, sigma))
    for _ in range(8):
        cand = dict(log_tv)
        for p, s in zip(names, step):
            cand[p] += s
        val = -np.sum(_loglik(spec, design, _predict(spec, design, cand, betas, eta), sigma))
        if np.isfinite(val) and val < base:
            return cand
        step = step * 0.5
    return log_tv


def laplace_init(spec: ModelSpec, design: ModelDesign, *, max_iter: int = 30, tol: float = 1e-3) -> LaplaceInit:
    """Fast EM with Laplace-approximated conditional distributions (see module doc).

    Parameters
    ----------
    spec
        Resolved model spec.
    design
        Model design of the dataset.
    max_iter
        Maximum EM iterations.
    tol
        Stop when the objective changes by less than ``tol`` (relative to the
        number of observations).

    Returns
    -------
    LaplaceInit
    """
    typ = spec.typical_priors
    log_tv = {p: float(np.log(typ[p].point())) for p in spec.parameters}
    betas = {name: float(prior.point()) for name, prior in spec.coefficients}
    omega_priors = spec.omega_priors
    omega = {p: (omega_priors[p]["value"] if omega_priors[p].is_fixed else 0.5) for p in spec.iiv}
    sigma = _initial_sigma(spec, design)
    k = len(spec.iiv)
    eta = np.zeros((design.n_subjects, k))
    history: list[float] = []
    H = np.tile(np.eye(k), (design.n_subjects, 1, 1))
    it = 0
    if k == 0:
        for it in range(1, max_iter + 1):
            log_tv = _update_fixed_effects(spec, design, log_tv, betas, eta, sigma)
            f = _predict(spec, design, log_tv, betas, eta)
            sigma = _fit_sigma(spec, design, f, sigma)
            history.append(-2 * float(np.sum(_loglik(spec, design, f, sigma))))
            if it > 1 and abs(history[-2] - history[-1]) < tol * design.n_obs:
                break
    for it in range(1, max_iter + 1 if k else 0):
        eta, H = _conditional_modes(spec, design, log_tv, betas, eta, sigma, omega)
        log_tv, betas, eta = _update_population(spec, design, log_tv, betas, eta)
        log_tv = _update_fixed_effects(spec, design, log_tv, betas, eta, sigma)
        cov = np.linalg.inv(H)
        for j, p in enumerate(spec.iiv):
            if not omega_priors[p].is_fixed:
                omega[p] = float(np.sqrt(np.mean(eta[:, j] ** 2 + cov[:, j, j])))
                omega[p] = min(max(omega[p], 0.02), 3.0)
        f = _predict(spec, design, log_tv, betas, eta)
        sigma = _fit_sigma(spec, design, f, sigma)
        ll = float(np.sum(_loglik(spec, design, f, sigma)))
        omega_inv = np.diag([1.0 / omega[p] ** 2 for p in spec.iiv])
        _, logdet_h = np.linalg.slogdet(H)
        obj = -2 * ll + float(np.sum(np.einsum("ij,jk,ik->i", eta, omega_inv, eta)))
        obj += float(np.sum(logdet_h)) + design.n_subjects * float(np.sum(np.log([omega[p] ** 2 for p in spec.iiv])))
        history.append(obj)
        if it > 2 and abs(history[-2] - history[-1]) < tol * design.n_obs:
            break
    # final modes and curvature at the final population values
    if k:
        eta, H = _conditional_modes(spec, design, log_tv, betas, eta, sigma, omega)
    prior_prec = np.diag([1.0 / omega[p] ** 2 for p in spec.iiv]) if k else np.zeros((0, 0))
    info = H - prior_prec[None]
    info = 0.5 * (info + np.transpose(info, (0, 2, 1)))
    cov = np.linalg.inv(H)
    cov = 0.5 * (cov + np.transpose(cov, (0, 2, 1)))
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(k)[None]) if k else np.zeros((design.n_subjects, 0, 0))
    logp = log_individual_parameters(spec, log_tv, betas, design.covariates, None)
    base = np.column_stack([np.broadcast_to(np.asarray(logp[p], float), (design.n_subjects,)) for p in spec.iiv]) if k else np.zeros((design.n_subjects, 0))
    return LaplaceInit(
        log_typical=log_tv,
        betas=betas,
        omega=omega,
        sigma=sigma,
        eta=eta,
        mode=base + eta,
        chol=chol,
        objective=history[-1] if history else float("nan"),
        iterations=it,
        history=history,
        info=info,
        prior_precision=prior_prec,
        iov_scale=_iov_scale(spec, design, log_tv, betas, eta, sigma),
    )


def _iov_scale(spec, design, log_tv, betas, eta, sigma) -> np.ndarray | None:
    """The conditional SD of each occasion effect, ``(n_pairs, n_iov)``: ``1/sqrt(I + 1/ω0²)``.

    ``I`` is the Gauss–Newton information of the pair's observations about its κ
    (finite differences of the predictions at the Laplace-EM estimates), ``ω0`` the
    central value of the ω_IOV prior.  The model scales κ by it (κ = s·z), so that z
    is about N(0, 1) whether an occasion's data pin its κ down (centred) or not
    (non-centred).  ``None`` without IOV.
    """
    seg = design.segments
    if not spec.iov or seg is None:
        return None
    params = _individual(spec, design, log_tv, betas, eta)
    f0 = np.asarray(predict_design(spec, design, params))
    _, w = _residual_weights(spec, design, f0, sigma)
    varying = varying_parameters(spec)
    # pairs of different subjects are perturbed together: the q-th pair of every subject at once
    rank = np.zeros(seg.n_pairs, dtype=np.int64)
    seen: dict[int, int] = {}
    for k, i in enumerate(seg.pair_subject.tolist()):
        rank[k] = seen.get(i, 0)
        seen[i] = rank[k] + 1
    obs_pair_of = {(int(i), int(q)): k for k, (i, q) in enumerate(zip(seg.pair_subject, rank))}
    info = np.zeros((seg.n_pairs, len(spec.iov)))
    for j, (p, _) in enumerate(spec.iov):
        col = varying.index(p)
        for q in range(int(rank.max(initial=-1)) + 1):
            moved = np.isin(seg.pair, np.flatnonzero(rank == q))
            off = np.array(params[OFFSETS], dtype=float)
            off[moved, col] += _FD_STEP
            jac = (np.asarray(predict_design(spec, design, {**params, OFFSETS: off})) - f0) / _FD_STEP
            if spec.error == "exponential":
                jac = jac / np.maximum(f0, 1e-12)
            per_subject = np.bincount(design.obs_subject, weights=np.nan_to_num((jac * w) ** 2),
                                      minlength=design.n_subjects)
            for i in range(design.n_subjects):
                k = obs_pair_of.get((i, q))
                if k is not None:
                    info[k, j] = per_subject[i]
    omega0 = np.array([prior.point() for _, prior in spec.iov])
    return 1.0 / np.sqrt(info + 1.0 / omega0[None, :] ** 2)
