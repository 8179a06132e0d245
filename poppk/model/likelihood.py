"""Residual-error models and the per-observation log-likelihood.

Written once on a backend shim so that the PyMC graph (PyTensor) and the
post-sampling NumPy computations (pointwise log-likelihood for LOO,
posterior predictive checks) use the same formulas.

BLQ records enter by Beal's M3 method: the likelihood of a censored record is
``P(DV < LLOQ | IPRED)``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from poppk.pk.ops import is_tensor

__all__ = ["residual_sd", "observation_loglik", "log_ndtr"]

_LOG_2PI = math.log(2.0 * math.pi)


#: Below this the tensor ``log_ndtr`` uses the asymptotic series (``erfc`` is accurate above).
_LOG_NDTR_TAIL = -20.0


def log_ndtr(x: Any) -> Any:
    """Log of the standard normal CDF, stable in the far left tail (both backends).

    The tensor form uses ``erfc`` and, below -20, the asymptotic series of Mills'
    ratio (relative error < 1e-13), not ``erfcx``: PyTensor's numba ``erfcx`` calls
    SciPy through a function pointer, which keeps the compiled log density out of
    the on-disk numba cache.  Each branch sees only arguments in its own range
    (double ``where``), so gradients are finite everywhere.

    >>> import numpy as np, pytensor.tensor as pt
    >>> from scipy.special import log_ndtr as ref
    >>> x = np.array([-40.0, -20.0, -3.0, 0.0, 5.0])
    >>> bool(np.allclose(log_ndtr(pt.as_tensor(x)).eval(), ref(x), rtol=1e-13, atol=0))
    True
    """
    if is_tensor(x):
        import pytensor.tensor as pt

        x = pt.as_tensor_variable(x)
        # x >= 0: log(1 - Φ(-x)); -20 <= x < 0: log Φ(x) directly
        xp = pt.maximum(x, 0.0)
        xm = pt.clip(x, _LOG_NDTR_TAIL, 0.0)
        pos = pt.log1p(-0.5 * pt.erfc(xp / math.sqrt(2.0)))
        mid = pt.log(0.5 * pt.erfc(-xm / math.sqrt(2.0)))
        # x < -20: log Φ(x) = -x²/2 - log(-x) - log √(2π) + log Σ_k (-1)^k (2k-1)!! / x^{2k}
        xt = pt.minimum(x, _LOG_NDTR_TAIL)
        r = 1.0 / (xt * xt)
        series = 1.0 + r * (-1.0 + r * (3.0 + r * (-15.0 + r * (105.0 + r * (-945.0 + r * 10395.0)))))
        tail = -0.5 * xt * xt - pt.log(-xt) - 0.5 * _LOG_2PI + pt.log(series)
        return pt.switch(pt.ge(x, 0.0), pos, pt.switch(pt.ge(x, _LOG_NDTR_TAIL), mid, tail))
    from scipy.special import log_ndtr as _log_ndtr

    return _log_ndtr(x)


def residual_sd(ipred: Any, sigma: Mapping[str, Any], error: str) -> Any:
    """SD of DV given IPRED (on the log scale for the exponential model).

    Parameters
    ----------
    ipred
        Individual prediction(s).
    sigma
        Residual magnitudes by name: ``"add"``, ``"prop"``, ``"exp"``.
    error
        ``"additive"``, ``"proportional"``, ``"combined"`` or ``"exponential"``.
    """
    if error == "additive":
        return sigma["add"] + 0.0 * ipred
    if error == "proportional":
        return sigma["prop"] * ipred
    if error == "combined":
        xp = _ops(ipred)
        return xp.sqrt(sigma["add"] ** 2 + (sigma["prop"] * ipred) ** 2)
    if error == "exponential":
        return sigma["exp"] + 0.0 * ipred
    raise ValueError(f"unknown error model {error!r}")


def _ops(x: Any) -> Any:
    if is_tensor(x):
        import pytensor.tensor as pt

        return pt
    return np


def observation_loglik(
    dv: Any,
    ipred: Any,
    sigma: Mapping[str, Any],
    error: str,
    *,
    blq: Any = None,
    lloq: Any = None,
    truncate_at_zero: bool = False,
    floor: float = 1e-12,
) -> Any:
    """Log-likelihood of each observation (NumPy or PyTensor).

    Parameters
    ----------
    dv, ipred
        Observed values and individual predictions, broadcastable.
    sigma, error
        Residual-error magnitudes and model, see :func:`residual_sd`.
    blq, lloq
        Boolean BLQ flags and the LLOQ of each record (M3: a BLQ record
        contributes ``log P(DV < LLOQ)``). ``None``: no BLQ records.
    truncate_at_zero
        Renormalise for a DV distribution truncated at 0 (additive,
        proportional, combined models).
    floor
        Lower bound applied to IPRED in the proportional/exponential models
        so that a zero prediction (pre-dose) gives a finite, very low
        likelihood instead of NaN.

    Returns
    -------
    The pointwise log-likelihood, same shape as the broadcast inputs.
    """
    xp = _ops(ipred) if not is_tensor(dv) else _ops(dv)
    ip = xp.maximum(ipred, floor)
    if error == "exponential":
        sd = sigma["exp"]
        y = xp.log(xp.maximum(dv, floor))
        mu = xp.log(ip)
        z = (y - mu) / sd
        # density of DV itself (Jacobian 1/DV) so that LOO compares across error models
        ll_obs = -0.5 * z * z - xp.log(sd) - 0.5 * _LOG_2PI - y
        if blq is not None:
            zc = (xp.log(xp.maximum(lloq, floor)) - mu) / sd
            ll = xp.where(blq, log_ndtr(zc), ll_obs)
        else:
            ll = ll_obs
        return ll
    sd = residual_sd(ip, sigma, error)
    z = (dv - ip) / sd
    ll_obs = -0.5 * z * z - xp.log(sd) - 0.5 * _LOG_2PI
    if blq is not None:
        zc = (lloq - ip) / sd
        ll = xp.where(blq, log_ndtr(zc), ll_obs)
    else:
        ll = ll_obs
    if truncate_at_zero:
        ll = ll - log_ndtr(ip / sd)
        if blq is not None:
            # M3 with truncation: P(0 < DV < LLOQ) / P(DV > 0)
            lower = log_ndtr(-ip / sd)
            cens = _log_diff_exp(log_ndtr(zc), lower, xp)
            ll = xp.where(blq, cens - log_ndtr(ip / sd), ll)
    return ll


def _log_diff_exp(a: Any, b: Any, xp: Any) -> Any:
    """log(exp(a) - exp(b)) for a > b."""
    return a + xp.log1p(-xp.exp(xp.minimum(b - a, -1e-12)))
