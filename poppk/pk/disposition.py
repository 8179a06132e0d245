"""Disposition of linear mammillary 1-, 2- and 3-compartment models.

The unit-impulse response of the central-compartment concentration (amount 1
bolused into the central compartment at t = 0) is written in macro-constant
(poly-exponential) form

.. math:: C(t) = \\sum_i c_i \\, e^{-\\lambda_i t}

with :math:`\\lambda_1 \\ge \\lambda_2 \\ge \\lambda_3 > 0`.  Everything
else (infusions, oral absorption, steady state) is built from these modes in
:mod:`poppk.pk.kernel`.

Parameters use NONMEM-like names:

=======  =====================================================
n_cmt    parameters
=======  =====================================================
1        ``CL``, ``V1`` (``V`` is accepted as an alias of ``V1``)
2        ``CL``, ``V1``, ``Q``, ``V2``
3        ``CL``, ``V1``, ``Q``, ``V2``, ``Q3``, ``V3``
=======  =====================================================

Micro constants: k10 = CL/V1, k12 = Q/V1, k21 = Q/V2, k13 = Q3/V1,
k31 = Q3/V3.

Numerical method
----------------
*Two compartments.*  The eigenvalues are the roots of
:math:`\\lambda^2 - (k_{10}+k_{12}+k_{21})\\lambda + k_{10}k_{21} = 0`.  The
discriminant is evaluated as the cancellation-free sum of non-negative terms
:math:`(k_{10}-k_{21})^2 + k_{12}(k_{12} + 2k_{10} + 2k_{21})`; the larger
root takes the ``+`` sign and the smaller is :math:`k_{10}k_{21}/\\lambda_1`
(no cancellation when :math:`\\lambda_2 \\ll \\lambda_1`).  The coefficients
:math:`c_i = (k_{21}-\\lambda_i)/(V_1(\\lambda_j-\\lambda_i))` are written as
:math:`(d \\pm u)/(2dV_1)` with :math:`d = \\lambda_1-\\lambda_2` (the square
root of the discriminant) and :math:`u = k_{10}+k_{12}-k_{21}`; whichever of
:math:`d \\pm u` would cancel is computed as :math:`4k_{12}k_{21}/(d \\mp u)`
(their product is exactly :math:`4k_{12}k_{21}`).  The coefficients stay
bounded (|c_i V1| <= 3/2) even when the eigenvalues nearly coincide.

*Three compartments.*  The eigenvalues are the roots of the cubic
:math:`\\lambda^3 - a_2\\lambda^2 + a_1\\lambda - a_0` with
:math:`a_2 = k_{10}+k_{12}+k_{13}+k_{21}+k_{31}`,
:math:`a_1 = k_{10}k_{21}+k_{10}k_{31}+k_{21}k_{31}+k_{13}k_{21}+k_{12}k_{31}`,
:math:`a_0 = k_{10}k_{21}k_{31}`.  For a mammillary model with positive rate
constants the roots are real and distinct, and the trigonometric (Viète)
solution of the depressed cubic is used, as in the closed-form 3-compartment
literature (e.g. Abuhelwa, Foster & Upton, *J Pharmacol Toxicol Methods* 2015;
NONMEM ADVAN11): with :math:`p = a_1 - a_2^2/3`,
:math:`q = -2a_2^3/27 + a_1a_2/3 - a_0`, :math:`r = \\sqrt{-p/3}` and
:math:`\\theta = \\arccos(-q/(2r^3))`, the largest root is
:math:`\\lambda_1 = a_2/3 + 2r\\cos(\\theta/3)`.
Only the largest root is taken from the trigonometric formula (the smaller
ones would lose relative accuracy to cancellation when they are much smaller
than :math:`\\lambda_1`); the cubic is then deflated:
:math:`\\lambda_2\\lambda_3 = a_0/\\lambda_1`,
:math:`\\lambda_2+\\lambda_3 = (a_1 - a_0/\\lambda_1)/\\lambda_1`, and the
quadratic is solved as in the 2-compartment case (larger root with the ``+``
sign, smaller from the product).
The arccos argument is clipped to :math:`\\pm(1-10^{-15})` so that neither its
value nor its gradient can be NaN.  Coefficients are the partial-fraction
residues :math:`c_i = (k_{21}-\\lambda_i)(k_{31}-\\lambda_i) /
(V_1(\\lambda_j-\\lambda_i)(\\lambda_k-\\lambda_i))`.

All functions accept NumPy arrays or PyTensor tensors (any mutually
broadcastable shapes) and use only differentiable operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from poppk.errors import ModelSpecError
from poppk.pk.ops import Ops, get_ops

__all__ = [
    "PARAMETERS",
    "required_parameters",
    "micro_constants",
    "disposition",
    "half_lives",
]

#: Structural parameters needed by each number of compartments.
PARAMETERS: dict[int, tuple[str, ...]] = {
    1: ("CL", "V1"),
    2: ("CL", "V1", "Q", "V2"),
    3: ("CL", "V1", "Q", "V2", "Q3", "V3"),
}

_ARCCOS_LIMIT = 1.0 - 1e-15


def required_parameters(n_cmt: int, oral: bool = False) -> tuple[str, ...]:
    """Names of the parameters :func:`poppk.pk.kernel.concentration` needs.

    ``oral=True`` adds ``KA`` (``F1`` and ``ALAG1`` are optional).

    >>> required_parameters(2, oral=True)
    ('CL', 'V1', 'Q', 'V2', 'KA')
    """
    _check_n_cmt(n_cmt)
    names = PARAMETERS[n_cmt]
    return names + ("KA",) if oral else names


def _check_n_cmt(n_cmt: int) -> None:
    if n_cmt not in PARAMETERS:
        raise ModelSpecError(
            f"n_cmt={n_cmt!r} is not supported (valid: 1, 2 or 3 compartments)"
        )


def _param(params: Mapping[str, Any], name: str, n_cmt: int, ops: Ops):
    if name in params:
        return ops.as_array(params[name])
    if name == "V1" and "V" in params:
        return ops.as_array(params["V"])
    raise ModelSpecError(
        f"a {n_cmt}-compartment model needs parameter {name!r}; got "
        f"{sorted(params)} (needed: {', '.join(PARAMETERS[n_cmt])})"
    )


def micro_constants(
    params: Mapping[str, Any], n_cmt: int, ops: Ops | None = None
) -> dict[str, Any]:
    """Micro rate constants (1/time) and the central volume.

    Returns a dict with ``V1``, ``k10`` and, for 2 compartments, ``k12``,
    ``k21``; for 3 compartments also ``k13``, ``k31``.

    >>> mc = micro_constants({"CL": 2.0, "V1": 10.0, "Q": 1.0, "V2": 20.0}, 2)
    >>> float(mc["k10"]), float(mc["k12"]), float(mc["k21"])
    (0.2, 0.1, 0.05)
    """
    _check_n_cmt(n_cmt)
    if ops is None:
        ops = get_ops(dict(params))
    v1 = _param(params, "V1", n_cmt, ops)
    out = {"V1": v1, "k10": _param(params, "CL", n_cmt, ops) / v1}
    if n_cmt >= 2:
        q = _param(params, "Q", n_cmt, ops)
        out["k12"] = q / v1
        out["k21"] = q / _param(params, "V2", n_cmt, ops)
    if n_cmt >= 3:
        q3 = _param(params, "Q3", n_cmt, ops)
        out["k13"] = q3 / v1
        out["k31"] = q3 / _param(params, "V3", n_cmt, ops)
    return out


def disposition(
    params: Mapping[str, Any], n_cmt: int, ops: Ops | None = None
) -> tuple[list[Any], list[Any]]:
    """Macro constants of the central-compartment unit-impulse response.

    Parameters
    ----------
    params
        Mapping of parameter name to array (NumPy or PyTensor), see the module
        docstring for the names.
    n_cmt
        Number of compartments: 1, 2 or 3.
    ops
        Backend; detected from ``params`` when ``None``.

    Returns
    -------
    lambdas, coefs
        Lists of length ``n_cmt``: the rates (1/time, in decreasing order) and
        coefficients (1/volume) with C(t) = sum_i coefs[i] * exp(-lambdas[i] t)
        for a unit bolus into the central compartment.

    Examples
    --------
    >>> lam, c = disposition({"CL": 2.0, "V": 10.0}, 1)
    >>> float(lam[0]), float(c[0])
    (0.2, 0.1)
    """
    if ops is None:
        ops = get_ops(dict(params))
    mc = micro_constants(params, n_cmt, ops)
    v1, k10 = mc["V1"], mc["k10"]
    if n_cmt == 1:
        return [k10], [1.0 / v1]

    if n_cmt == 2:
        k12, k21 = mc["k12"], mc["k21"]
        s = k10 + k12 + k21
        disc = ops.square(k10 - k21) + k12 * (k12 + 2.0 * (k10 + k21))
        d = ops.sqrt(disc)
        lam1 = 0.5 * (s + d)
        lam2 = k10 * k21 / lam1
        u = k10 + k12 - k21
        pos = ops.gt(u, 0.0)
        # |u| written with where (not abs) so its derivative at u == 0 matches
        # the branch that is selected there.
        w = d + ops.where(pos, u, -u)  # = d + |u|, no cancellation
        small = 4.0 * k12 * k21 / w  # = d - |u|, computed without cancellation
        d_plus_u = ops.where(pos, w, small)
        d_minus_u = ops.where(pos, small, w)
        denom = 2.0 * d * v1
        return [lam1, lam2], [d_plus_u / denom, d_minus_u / denom]

    # n_cmt == 3
    k12, k21, k13, k31 = mc["k12"], mc["k21"], mc["k13"], mc["k31"]
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k21 + k10 * k31 + k21 * k31 + k13 * k21 + k12 * k31
    a0 = k10 * k21 * k31
    third = a2 / 3.0
    # -p/3 = (a2^2 - 3 a1)/9 = sum_{i<j} (lam_i - lam_j)^2 / 18 > 0
    r2 = ops.maximum((a2 * a2 - 3.0 * a1) / 9.0, 1e-300)
    r = ops.sqrt(r2)
    q = -2.0 * a2 * a2 * a2 / 27.0 + a1 * a2 / 3.0 - a0
    arg = -q / (2.0 * r2 * r)
    arg = ops.minimum(ops.maximum(arg, -_ARCCOS_LIMIT), _ARCCOS_LIMIT)
    theta3 = ops.arccos(arg) / 3.0
    lam1 = third + 2.0 * r * ops.cos(theta3)
    # Deflate: lam2 + lam3 = (a1 - a0/lam1)/lam1 and lam2 lam3 = a0/lam1 (both
    # without serious cancellation), then the stable quadratic formula.
    prod = a0 / lam1
    tot = (a1 - prod) / lam1
    disc = ops.maximum(tot * tot - 4.0 * prod, 1e-30 * tot * tot)
    gap = ops.sqrt(disc)  # lam2 - lam3
    lam2 = 0.5 * (tot + gap)
    lam3 = prod / lam2
    diff12 = lam1 - lam2
    diff13 = lam1 - lam3
    coefs = [
        (k21 - lam1) * (k31 - lam1) / (v1 * diff12 * diff13),
        (k21 - lam2) * (k31 - lam2) / (-v1 * diff12 * gap),
        (k21 - lam3) * (k31 - lam3) / (v1 * diff13 * gap),
    ]
    lams = [lam1, lam2, lam3]
    return lams, coefs


def half_lives(
    params: Mapping[str, Any], n_cmt: int, ops: Ops | None = None
) -> list[Any]:
    """Half-lives ln(2)/lambda_i of the disposition modes (fastest first).

    The last one is the terminal half-life.

    >>> [round(float(h), 4) for h in half_lives({"CL": 1.0, "V1": 10.0}, 1)]
    [6.9315]
    """
    if ops is None:
        ops = get_ops(dict(params))
    lams, _ = disposition(params, n_cmt, ops)
    ln2 = 0.6931471805599453
    return [ln2 / lam for lam in lams]
