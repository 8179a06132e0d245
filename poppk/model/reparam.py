"""Laplace-conditional reparametrisation of the random effects (a PyTensor Op).

For subject ``i`` with log parameters ``θ_i ~ MVN(μ_i, Ω)`` the Laplace-EM
pass (:func:`poppk.model.init.laplace_init`) gives a Gaussian approximation
of the subject's *likelihood* in ``θ_i``: information ``I_i`` (Gauss–Newton,
positive semi-definite) and linear term ``h_i`` (``log p(y_i | θ) ≈ const +
h_iᵀθ - ½ θᵀ I_i θ``).  Given the population values the conditional
posterior of ``θ_i`` is then approximately ``N(M_i, P_i⁻¹)`` with

    P_i = I_i + Ω⁻¹ = L_i L_iᵀ,     M_i = P_i⁻¹ (h_i + Ω⁻¹ μ_i),

and the sampler works on ``z_i`` with

    θ_i = M_i + L_i⁻ᵀ z_i = L_i⁻ᵀ (L_i⁻¹ (h_i + Ω⁻¹ μ_i) + z_i).

This interpolates per subject and per direction between the centred
(``I_i`` dominates: ``θ_i ≈ θ̂_i + C_i z_i``) and the non-centred
(``Ω⁻¹`` dominates: ``θ_i ≈ μ_i + L_Ω z_i``) parametrisations, and it
follows the current ``μ`` and ``Ω`` — the couplings (typical value ↔ θ,
ω ↔ spread of θ, i.e. the funnel) that a fixed preconditioner leaves to the
sampler.  For a Gaussian likelihood the ``z_i`` are exactly ``N(0, I)`` and
independent of the population parameters.

The map ``(μ, Ω, z) → (μ, Ω, θ)`` has Jacobian determinant
``Π_i det L_i⁻¹``; :class:`LaplaceReparam` returns ``Σ_i log det L_i`` as a
second output, to be *subtracted* from the log density.

Forward and gradient are small per-subject loops (k ≤ ~6) compiled with
numba; no LAPACK/BLAS calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poppk.model.numba_dispatch import funcify_register, source_version

__all__ = ["laplace_reparam", "LaplaceReparam", "likelihood_linear_term"]


def likelihood_linear_term(info: np.ndarray, mode: np.ndarray, eta: np.ndarray, prior_precision: np.ndarray) -> np.ndarray:
    """``h_i`` of the Gaussian likelihood approximation from a Laplace fit.

    At the conditional mode ``m_i`` under the prior ``N(μ̂_i, Ω̂)`` the score of
    the likelihood equals ``Ω̂⁻¹ (m_i - μ̂_i) = Ω̂⁻¹ η̂_i``, so ``h_i = I_i m_i +
    Ω̂⁻¹ η̂_i`` (and then ``M_i(μ̂, Ω̂) = m_i``).
    """
    return np.einsum("nab,nb->na", info, mode) + eta @ prior_precision


def _chol_inplace(P, k):  # pragma: no cover - numba
    for j in range(k):
        s = P[j, j]
        for p in range(j):
            s -= P[j, p] * P[j, p]
        P[j, j] = np.sqrt(s)
        for i in range(j + 1, k):
            s = P[i, j]
            for p in range(j):
                s -= P[i, p] * P[j, p]
            P[i, j] = s / P[j, j]
        for i in range(j):
            P[i, j] = 0.0


def _fwd_solve(L, b, out, k):  # pragma: no cover - numba
    for i in range(k):
        s = b[i]
        for p in range(i):
            s -= L[i, p] * out[p]
        out[i] = s / L[i, i]


def _bwd_solve(L, b, out, k):  # pragma: no cover - numba
    for i in range(k - 1, -1, -1):
        s = b[i]
        for p in range(i + 1, k):
            s -= L[p, i] * out[p]
        out[i] = s / L[i, i]


def _make_kernels(jit):
    chol_inplace = jit(_chol_inplace)
    fwd_solve = jit(_fwd_solve)
    bwd_solve = jit(_bwd_solve)

    def subject(info_i, h_i, mu_i, S, z_i, L, r, y, u, th, k):
        for a in range(k):
            for b in range(k):
                L[a, b] = info_i[a, b] + S[a, b]
        chol_inplace(L, k)
        for a in range(k):
            s = h_i[a]
            for b in range(k):
                s += S[a, b] * mu_i[b]
            r[a] = s
        fwd_solve(L, r, y, k)
        for a in range(k):
            u[a] = y[a] + z_i[a]
        bwd_solve(L, u, th, k)

    subject = jit(subject)

    def forward(info, h, mu, oinv, z):
        n, k = z.shape
        S = 0.5 * (oinv + oinv.T)
        theta = np.empty((n, k))
        L = np.empty((k, k))
        r = np.empty(k)
        y = np.empty(k)
        u = np.empty(k)
        ld = 0.0
        for i in range(n):
            subject(info[i], h[i], mu[i], S, z[i], L, r, y, u, theta[i], k)
            for j in range(k):
                ld += np.log(L[j, j])
        out = np.empty(())
        out[()] = ld
        return theta, out

    def backward(info, h, mu, oinv, z, theta_bar, ld_bar):
        n, k = z.shape
        S = 0.5 * (oinv + oinv.T)
        g_mu = np.empty((n, k))
        g_z = np.empty((n, k))
        G = np.zeros((k, k))
        L = np.empty((k, k))
        Lb = np.empty((k, k))
        X = np.empty((k, k))
        Pb = np.empty((k, k))
        r = np.empty(k)
        y = np.empty(k)
        u = np.empty(k)
        th = np.empty(k)
        ub = np.empty(k)
        rb = np.empty(k)
        col = np.empty(k)
        tmp = np.empty(k)
        ldb = np.sum(ld_bar)
        for i in range(n):
            subject(info[i], h[i], mu[i], S, z[i], L, r, y, u, th, k)
            tb = theta_bar[i]
            fwd_solve(L, tb, ub, k)  # ū = L⁻¹ θ̄ = z̄
            bwd_solve(L, ub, rb, k)  # r̄ = L⁻ᵀ ū = P⁻¹ θ̄
            for a in range(k):
                g_z[i, a] = ub[a]
                s = 0.0
                for b in range(k):
                    s += S[a, b] * rb[b]
                    G[a, b] += rb[a] * mu[i, b]
                g_mu[i, a] = s
            # L̄ (lower part) = -θ ūᵀ - r̄ yᵀ + ld̄ diag(1/L)
            for a in range(k):
                for b in range(k):
                    if b <= a:
                        Lb[a, b] = -th[a] * ub[b] - rb[a] * y[b]
                    else:
                        Lb[a, b] = 0.0
                Lb[a, a] += ldb / L[a, a]
            # Cholesky backward: P̄ = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹, Φ = lower triangle, halved diagonal
            for a in range(k):
                for b in range(k):
                    if b <= a:
                        s = 0.0
                        for c in range(a, k):
                            s += L[c, a] * Lb[c, b]
                        X[a, b] = 0.5 * s if a == b else s
                    else:
                        X[a, b] = 0.0
            # Pb = L⁻ᵀ X L⁻¹ : first W = L⁻ᵀ X (columns), then Pb = W L⁻¹ (rows)
            for b in range(k):
                for a in range(k):
                    col[a] = X[a, b]
                bwd_solve(L, col, tmp, k)
                for a in range(k):
                    X[a, b] = tmp[a]
            for a in range(k):
                for b in range(k):
                    col[b] = X[a, b]
                # row vector times L⁻¹  <=>  L⁻ᵀ applied to the row
                bwd_solve(L, col, tmp, k)
                for b in range(k):
                    Pb[a, b] = tmp[b]
            for a in range(k):
                for b in range(k):
                    G[a, b] += 0.5 * (Pb[a, b] + Pb[b, a])
        g_oinv = 0.5 * (G + G.T)
        return g_mu, g_oinv, g_z

    return jit(forward), jit(backward)


_PY_KERNELS: Any = None


def _py_kernels():
    global _PY_KERNELS
    if _PY_KERNELS is None:
        import numba

        _PY_KERNELS = _make_kernels(numba.njit)
    return _PY_KERNELS


def _ops():
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class LaplaceReparam(Op):
        """``(info, h, mu, oinv, z) -> (theta, Σ log det L_i)``; see module doc."""

        __props__ = ()

        def make_node(self, info, h, mu, oinv, z):
            ins = [pt.as_tensor_variable(v).astype("float64") for v in (info, h, mu, oinv, z)]
            return Apply(self, ins, [pt.dmatrix(), pt.dscalar()])

        def perform(self, node, inputs, outputs):
            theta, ld = _py_kernels()[0](*[np.require(v, np.float64, "C") for v in inputs])
            outputs[0][0] = theta
            outputs[1][0] = np.asarray(ld, dtype=np.float64)

        def infer_shape(self, fgraph, node, shapes):
            return [shapes[4], ()]

        def __reduce__(self):  # pickled graphs (the on-disk compile cache) refer to the singleton
            return (_laplace_op, ("fwd",))

        def connection_pattern(self, node):
            return [[False, False], [False, False], [True, True], [True, True], [True, True]]

        def L_op(self, inputs, outputs, output_grads):
            info, h, mu, oinv, z = inputs
            tb, lb = output_grads
            if isinstance(tb.type, DisconnectedType):
                tb = pt.zeros_like(outputs[0])
            if isinstance(lb.type, DisconnectedType):
                lb = pt.zeros_like(outputs[1])
            g_mu, g_oinv, g_z = LAPLACE_REPARAM_GRAD(info, h, mu, oinv, z, tb, lb)
            return [DisconnectedType()(), DisconnectedType()(), g_mu, g_oinv, g_z]

    class LaplaceReparamGrad(Op):
        """Vector–Jacobian product of :class:`LaplaceReparam`."""

        __props__ = ()

        def make_node(self, info, h, mu, oinv, z, tb, lb):
            ins = [pt.as_tensor_variable(v).astype("float64") for v in (info, h, mu, oinv, z, tb, lb)]
            return Apply(self, ins, [pt.dmatrix(), pt.dmatrix(), pt.dmatrix()])

        def perform(self, node, inputs, outputs):
            res = _py_kernels()[1](*[np.require(v, np.float64, "C") for v in inputs])
            for o, v in zip(outputs, res):
                o[0] = v

        def infer_shape(self, fgraph, node, shapes):
            return [shapes[2], shapes[3], shapes[4]]

        def __reduce__(self):
            return (_laplace_op, ("grad",))

    return LaplaceReparam(), LaplaceReparamGrad()


LAPLACE_REPARAM, LAPLACE_REPARAM_GRAD = _ops()


def _laplace_op(which: str) -> Any:
    """The module's Op singletons by name (how pickled graphs refer to them)."""
    return LAPLACE_REPARAM if which == "fwd" else LAPLACE_REPARAM_GRAD
LaplaceReparam = type(LAPLACE_REPARAM)


def _kernel_version() -> int:
    """A hash of the kernels' source (:func:`poppk.model.numba_dispatch.source_version`)."""
    return source_version(_chol_inplace, _fwd_solve, _bwd_solve, _make_kernels)


def _register_numba() -> None:
    """Numba implementations for PyTensor's NUMBA mode (what nutpie compiles)."""
    from pytensor.link.numba.dispatch import basic as numba_basic

    register = funcify_register()
    fwd, bwd = _make_kernels(numba_basic.numba_njit)
    version = _kernel_version()

    @register(type(LAPLACE_REPARAM))
    def _funcify_fwd(op, node, **kwargs):
        @numba_basic.numba_njit
        def laplace_reparam(info, h, mu, oinv, z):
            return fwd(info, h, mu, oinv, z)

        return laplace_reparam, version

    @register(type(LAPLACE_REPARAM_GRAD))
    def _funcify_bwd(op, node, **kwargs):
        @numba_basic.numba_njit
        def laplace_reparam_grad(info, h, mu, oinv, z, tb, lb):
            return bwd(info, h, mu, oinv, z, tb, lb)

        return laplace_reparam_grad, version


_register_numba()


def laplace_reparam(info: np.ndarray, h: np.ndarray, mu: Any, oinv: Any, z: Any) -> tuple[Any, Any]:
    """``θ`` (``n × k``) and ``Σ_i log det L_i`` for the Laplace-conditional map.

    Parameters
    ----------
    info
        Likelihood information ``I_i``, ``(n, k, k)`` (constant).
    h
        Likelihood linear terms ``h_i``, ``(n, k)`` (constant).
    mu
        Population means of ``θ_i`` (typical values and covariates), ``(n, k)``.
    oinv
        ``Ω⁻¹``, ``(k, k)``.
    z
        Free variables, ``(n, k)``.
    """
    return LAPLACE_REPARAM(info, h, mu, oinv, z)
