"""Compile a model's log density with JAX/XLA instead of numba (``fit(..., backend="jax")``).

Numba compiles the PyTensor graph of a model structure node by node and then
LLVM optimises one large function: a minute or more the first time a
structure is seen on a machine (the compile store makes every later fit of the
structure nearly free, see :mod:`poppk.model.compile_cache`).  XLA compiles
the same graph, with its gradient taken by JAX's automatic differentiation, in
a few seconds; each gradient then costs a little more than numba's, and nutpie
calls it through Python, which makes sampling slower.  So the JAX backend pays
off for a structure fitted once (a first look at a new model, a one-off
candidate), and numba for a structure fitted many times (candidate models of
one form, calibration replicates, simulation-based calibration).  The README
gives the measured trade-off.

The model is compiled with its data as constants (one XLA program per dataset;
nothing is kept across fits), so the same seed gives the same draws in every
process, but not the same draws as the numba backend: the two round
differently.  A JAX fit sets two options of JAX for the whole process, which
other JAX code in the process then shares: 64-bit floats (``jax_enable_x64``)
and no asynchronous dispatch on the CPU (``jax_cpu_enable_async_dispatch``:
each call runs on the calling thread).

JAX is an optional dependency (``pip install 'poppk[jax]'``).  Models on the
ODE path (nonlinear elimination, time-varying covariates, occasion effects)
are refused: their solver Op has no JAX implementation.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from poppk.errors import ModelSpecError

__all__ = ["available", "compile_jax", "laplace_reparam_jax"]

_REGISTERED = False
_CONFIGURED = False


def available() -> bool:
    """Whether JAX can be imported."""
    from importlib.util import find_spec

    return find_spec("jax") is not None


def _import_jax() -> Any:
    """JAX, configured for poppk's use (see the module doc): 64-bit floats, synchronous calls."""
    if not available():
        raise ModelSpecError("backend='jax' needs JAX: pip install 'poppk[jax]' (or jax), or use backend='numba'")
    import jax

    global _CONFIGURED
    _CONFIGURED = True
    jax.config.update("jax_enable_x64", True)
    # each gradient runs on the calling thread instead of being handed to JAX's executor thread
    # and waited for (the benchmark's sampling: 32.6 against 41.6 s, README "How it is fast")
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return jax


def laplace_reparam_jax(info: Any, h: Any, mu: Any, oinv: Any, z: Any) -> tuple[Any, Any]:
    """The Laplace-conditional map of :mod:`poppk.model.reparam` in JAX.

    ``θ_i = L_i⁻ᵀ (L_i⁻¹ (h_i + S μ_i) + z_i)`` with ``L_i L_iᵀ = I_i + S``, ``S`` the
    symmetrised ``Ω⁻¹``; returns ``(θ, Σ_i log det L_i)``.  Differentiable by JAX.

    The factorisation and the two solves are written out element by element over
    the ``k ≤ ~6`` parameters, each step vectorised over the subjects, instead of
    ``jnp.linalg.cholesky`` and ``solve_triangular`` (batched LAPACK calls, one
    small matrix at a time): the benchmark's gradient as nutpie calls it took
    0.49–0.52 against 0.56–0.74 ms, alternating runs of
    ``benchmarks/bench_fit.py --grad-only --backend jax`` (numba: 0.44 ms).
    """
    if not _CONFIGURED:  # called on its own: 64-bit floats first (traced once per compile)
        _import_jax()
    import jax.numpy as jnp

    k = z.shape[-1]
    S = 0.5 * (oinv + oinv.T)
    P = info + S[None]
    r = h + mu @ S.T
    L: dict[tuple[int, int], Any] = {}
    for j in range(k):  # Cholesky, column by column (vectors over subjects)
        d = P[:, j, j] - sum((L[j, p] * L[j, p] for p in range(j)), start=jnp.zeros_like(P[:, j, j]))
        L[j, j] = jnp.sqrt(d)
        for i in range(j + 1, k):
            s = P[:, i, j] - sum((L[i, p] * L[j, p] for p in range(j)), start=jnp.zeros_like(P[:, i, j]))
            L[i, j] = s / L[j, j]
    y: list[Any] = []
    for i in range(k):  # L y = r
        y.append((r[:, i] - sum((L[i, p] * y[p] for p in range(i)), start=jnp.zeros_like(r[:, i]))) / L[i, i])
    u = [y[i] + z[:, i] for i in range(k)]
    th: list[Any] = [None] * k
    for i in range(k - 1, -1, -1):  # Lᵀ θ = u
        th[i] = (u[i] - sum((L[p, i] * th[p] for p in range(i + 1, k)), start=jnp.zeros_like(u[i]))) / L[i, i]
    theta = jnp.stack(th, axis=-1)
    ld = sum((jnp.sum(jnp.log(L[j, j])) for j in range(k)), start=jnp.zeros(()))
    return theta, ld


def _register() -> None:
    """JAX implementations of poppk's Ops for PyTensor's JAX linker (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    jax = _import_jax()
    from pytensor.link.jax.dispatch import jax_funcify

    from poppk.model import reparam

    @jax_funcify.register(type(reparam.LAPLACE_REPARAM))
    def _fwd(op: Any, **kwargs: Any) -> Any:
        return laplace_reparam_jax

    @jax_funcify.register(type(reparam.LAPLACE_REPARAM_GRAD))
    def _bwd(op: Any, **kwargs: Any) -> Any:
        # only reached with PyTensor's own gradient graph; nutpie's JAX path differentiates the forward
        def grad(info: Any, h: Any, mu: Any, oinv: Any, z: Any, tb: Any, lb: Any) -> Any:
            _, vjp = jax.vjp(lambda m, o, zz: laplace_reparam_jax(info, h, m, o, zz), mu, oinv, z)
            return vjp((tb, lb))

        return grad

    _REGISTERED = True


def compile_jax(model: Any, *, initial_points: Mapping[str, np.ndarray], jitter_rvs: set[Any],
                var_names: list[str]) -> Any:
    """A nutpie model of ``model`` (data as constants) compiled by XLA, its gradient by JAX.

    Parameters
    ----------
    model
        A PyMC model from :func:`poppk.model.build_model`, not on the ODE path
        (:func:`poppk.model.fit` refuses those first).
    initial_points, jitter_rvs, var_names
        As for ``nutpie.compile_pymc_model``.
    """
    _register()
    import nutpie

    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax",
                                         initial_points=dict(initial_points), jitter_rvs=jitter_rvs,
                                         var_names=var_names)
    # XLA compiles on the first call: make it here, so that the compile is timed as one
    # (numba's is) and not inside the first sampling steps
    x = np.asarray(compiled._make_initial_points(0), dtype=np.float64)
    compiled._make_logp_func()(x, **compiled._shared_data)
    compiled._make_expand_func(0, 0, 0)(x, **compiled._shared_data)
    return compiled
