"""Formed analytes: a payload or metabolite made from the parent, in closed form.

An antibody-drug conjugate releases its payload as it is cleared, and the
payload is metabolised in turn.  With linear kinetics every such chain is a
linear system, so the unit-impulse response of each analyte's concentration
to a dose of the parent is again a sum of exponentials, and the kernel
(:func:`poppk.pk.kernel.concentration`, :mod:`poppk.pk.recursion`) evaluates
it with the same per-mode formulas as the parent's (bolus, infusion, oral,
steady state): only the coefficients differ by analyte.

The model of a formed analyte ``m`` (one compartment, volume ``V_m``,
clearance ``CL_m``) made from a source analyte ``s`` (the parent, or an
earlier formed analyte):

.. math:: \\frac{dA_m}{dt} = S_m\\, CL_s\\, C_s(t) - \\frac{CL_m}{V_m} A_m,
   \\qquad C_m = A_m / V_m,

i.e. the whole clearance of the source forms ``m`` with the mass
conversion ``S_m`` (e.g. drug-to-antibody ratio × payload/conjugate molar
mass).  The fraction of the source's clearance that forms ``m`` cannot be told
apart from ``V_m`` and ``CL_m`` without dosing ``m`` itself, so ``V_m`` and
``CL_m`` are *apparent* (true value divided by that fraction), as is usual in
parent–metabolite models.  With :math:`C_s(t) = \\sum_i c_i e^{-\\lambda_i t}`
and :math:`k_m = CL_m/V_m`:

.. math:: C_m(t) = \\sum_i b_i \\left(e^{-\\lambda_i t} - e^{-k_m t}\\right),
   \\qquad b_i = \\frac{S_m CL_s}{V_m} \\frac{c_i}{k_m - \\lambda_i},

so ``m`` adds one mode (rate :math:`k_m`, coefficient :math:`-\\sum_i b_i`) and
gives new coefficients on the source's modes.

A two-compartment formed analyte (``Q_m`` to a peripheral volume ``V2_m``) has
its own unit-impulse response :math:`h_m(t) = \\sum_j d_j e^{-\\mu_j t}`
(:func:`poppk.pk.disposition.disposition` of ``CL_m, V_m, Q_m, V2_m``), and the
convolution of its input :math:`S_m CL_s C_s(t)` with it gives

.. math:: C_m(t) = \\sum_i \\sum_j S_m CL_s\\, c_i d_j
   \\frac{e^{-\\lambda_i t} - e^{-\\mu_j t}}{\\mu_j - \\lambda_i},

two new modes :math:`\\mu_j`; the one-compartment case is :math:`d_1 = 1/V_m`,
:math:`\\mu_1 = k_m`.

Near-equal rates.  When :math:`k_m` comes within a relative
:data:`SEPARATION` of a source mode, the coefficients grow as
:math:`1/(k_m-\\lambda_i)` and cancel.  There :math:`k_m` is moved to
:math:`\\lambda_i (1 \\pm` :data:`SEPARATION` :math:`)` *consistently* (in the
coefficients and in the new mode), so the response is that of a system whose
elimination rate differs from the given one by at most that relative amount:
exact to about 1e-6 relative (times λt), with cancellation error about 1e-10, and
finite gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from poppk.errors import ModelSpecError
from poppk.pk.disposition import disposition
from poppk.pk.ops import Ops

__all__ = ["Formation", "formed_modes", "analyte_coefficients", "SEPARATION"]

#: Relative distance below which a formed analyte's rate is moved off a source mode.
SEPARATION = 1e-6


@dataclass(frozen=True)
class Formation:
    """How one formed analyte is made (see the module docstring).

    Attributes
    ----------
    source
        Index of the analyte it is formed from: 0 the parent, ``k`` the k-th
        formed analyte (which must come earlier).
    clearance, volume
        Names of its apparent clearance and volume in the parameters.
    source_clearance
        Name of the source's clearance (``"CL"`` for the parent).
    scale
        Mass conversion from source amount to formed amount.
    intercompartmental, peripheral
        Names of its ``Q`` and peripheral volume (a two-compartment formed
        analyte), or ``None`` (one compartment).
    """

    source: int
    clearance: str
    volume: str
    source_clearance: str
    scale: float = 1.0
    intercompartmental: str | None = None
    peripheral: str | None = None


def _param(params: Mapping[str, Any], name: str, ops: Ops) -> Any:
    if name not in params or params[name] is None:
        raise ModelSpecError(f"a formed analyte needs parameter {name!r}; got {sorted(params)}")
    return ops.as_array(params[name])


def formed_modes(
    lams: Sequence[Any], coefs: Sequence[Any], params: Mapping[str, Any],
    formation: Sequence[Formation], ops: Ops,
) -> tuple[list[Any], list[list[Any]]]:
    """Modes and per-analyte coefficients of the parent and its formed analytes.

    Parameters
    ----------
    lams, coefs
        The parent's disposition (:func:`poppk.pk.disposition.disposition`).
    params
        Parameters, broadcastable with ``lams`` (the formed analytes' clearances
        and volumes, and each source clearance).
    formation
        One :class:`Formation` per formed analyte, in order.
    ops
        Backend.

    Returns
    -------
    lams, coefficient_sets
        ``lams``: the parent's modes then one per formed analyte;
        ``coefficient_sets[a][i]``: coefficient of mode ``i`` in analyte ``a``'s
        unit-impulse response (analyte 0 is the parent).  Structural zeros are
        ``0.0`` (a Python float).
    """
    lams = list(lams)
    sets: list[list[Any]] = [list(coefs)]
    for k, f in enumerate(formation):
        if not 0 <= f.source <= k:
            raise ModelSpecError(
                f"formed analyte {k + 1} is formed from analyte {f.source}: the source must be the parent (0) "
                f"or an earlier formed analyte (1..{k})"
            )
        cl = _param(params, f.clearance, ops)
        v = _param(params, f.volume, ops)
        src = sets[f.source]
        if f.intercompartmental is None:  # one compartment: mode k_m, d = 1/V_m (folded into the gain)
            own, weights = [cl / v], [None]
            gain = f.scale * _param(params, f.source_clearance, ops) / v
        else:
            own, weights = disposition({"CL": cl, "V1": v, "Q": _param(params, f.intercompartmental, ops),
                                        "V2": _param(params, f.peripheral or "", ops)}, 2, ops)
            gain = f.scale * _param(params, f.source_clearance, ops)
        own = [_separate(mu, lams, src, ops) for mu in own]
        acc: list[Any] = [None] * len(lams)  # coefficients on the source's modes
        tail: list[Any] = []  # on the analyte's own modes
        for mu, d in zip(own, weights):
            g = gain if d is None else gain * d
            total = None
            for i, (lam, c) in enumerate(zip(lams, src)):
                if isinstance(c, float) and c == 0.0:
                    continue
                b = g * c / (mu - lam)
                acc[i] = b if acc[i] is None else acc[i] + b
                total = b if total is None else total + b
            tail.append(-total if total is not None else 0.0)
        new: list[Any] = [0.0 if a is None else a for a in acc] + tail
        for other in sets:
            other.extend([0.0] * len(own))
        sets.append(new)
        lams.extend(own)
    return lams, sets


def _separate(mu: Any, lams: Sequence[Any], src: Sequence[Any], ops: Ops) -> Any:
    """``mu`` moved off every source mode it nearly equals (consistently: see the module docstring)."""
    for lam, c in zip(lams, src):
        if isinstance(c, float) and c == 0.0:
            continue
        near = ops.lt(ops.abs(mu - lam), SEPARATION * lam)
        mu = ops.where(near, ops.where(ops.ge(mu, lam), lam * (1.0 + SEPARATION), lam * (1.0 - SEPARATION)), mu)
    return mu


def analyte_coefficients(sets: Sequence[Sequence[Any]], analyte: Any, ops: Ops) -> list[Any]:
    """Per-mode coefficients of each observation's analyte.

    Parameters
    ----------
    sets
        ``coefficient_sets`` of :func:`formed_modes`.
    analyte
        Analyte index of each observation (0 the parent), broadcastable with the
        coefficients.
    ops
        Backend.

    Returns
    -------
    list
        One coefficient array per mode: ``sets[analyte][i]`` element-wise.
    """
    is_analyte = [ops.where(ops.eq(analyte, a), 1.0, 0.0) for a in range(len(sets))]  # once, not per mode
    out = []
    for i in range(len(sets[0])):
        acc: Any = None
        for a, s in enumerate(sets):
            c = s[i]
            if isinstance(c, float) and c == 0.0:
                continue
            term = c * is_analyte[a]
            acc = term if acc is None else acc + term
        out.append(acc if acc is not None else 0.0 * ops.as_array(analyte, float))
    return out
