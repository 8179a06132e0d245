"""The closed-form PK kernel: concentrations from a padded dose matrix.

One function, :func:`concentration`, serves both the PyMC likelihood (PyTensor
tensors, gradients by autodiff) and NumPy simulation.  It superposes, over the
dose axis, the closed-form response of every dose (bolus, zero-order infusion
or first-order absorption from a depot, optionally at steady state) on each
disposition mode (see :mod:`poppk.pk.disposition`).

Formulas, per mode with rate :math:`\\lambda` and coefficient :math:`c`, for a
dose of amount A given ``dt`` time units before the observation:

*IV (bolus and infusion), one expression.*  With infusion duration T (0 for
a bolus) and :math:`m = \\min(dt, T)`:

.. math:: c A\\, e^{-\\lambda \\max(dt-T, 0)}\\, \\varphi(\\lambda m)\\, m/T,
   \\qquad \\varphi(x) = (1-e^{-x})/x,

with m/T := 1 when T = 0.  For T = 0 this is :math:`cAe^{-\\lambda dt}`;
during an infusion it is :math:`cA(1-e^{-\\lambda dt})/(\\lambda T)`; after
it, :math:`cA e^{-\\lambda(dt-T)}(1-e^{-\\lambda T})/(\\lambda T)`.

*Oral (first-order absorption, rate KA, bioavailability F1, lag ALAG1).*
With t = dt - ALAG1 (contribution 0 for t < 0):

.. math:: c F A K_a \\frac{e^{-\\lambda t}-e^{-K_a t}}{K_a-\\lambda}
   = c F A K_a\\, t\\, E(\\lambda t, K_a t),

where :math:`E(x, y) = (e^{-x}-e^{-y})/(y-x)` is evaluated stably (see
:func:`dexp`): exact and never 0/0 when :math:`K_a = \\lambda`.

*Steady state* (``ss`` True, interval ``ii`` = :math:`\\tau`): the dose stands
for an infinite train of identical doses every :math:`\\tau`, the last one at
dt = 0; the infinite sum is summed in closed form (geometric series per
exponential).  IV: the single-dose term above plus the tail of all earlier
doses, :math:`\\sum_{n\\ge1}` post-infusion term at :math:`dt+n\\tau`
:math:`= c A e^{-\\lambda(dt+\\tau-T)}\\varphi(\\lambda T)/(1-e^{-\\lambda\\tau})`,
valid for dt both during and after the infusion provided
:math:`T \\le \\tau` (required).  Oral, with s = t reduced into
:math:`[0, \\tau)` if t < 0 (lag longer than dt):

.. math:: c F A K_a \\frac{s E(\\lambda s, K_a s)
   + (\\tau - s) E(\\lambda\\tau + K_a s, \\lambda s + K_a\\tau)}
   {(1-e^{-\\lambda\\tau})(1-e^{-K_a\\tau})}

which is the exact geometric sum
:math:`[e^{-\\lambda s}/(1-e^{-\\lambda\\tau}) - e^{-K_a s}/(1-e^{-K_a\\tau})]
/(K_a-\\lambda)` rewritten with two non-negative terms for
:math:`0 \\le s \\le \\tau`, so that it stays exact when :math:`K_a \\approx \\lambda`
(for s > tau, an observation after the train has stopped, the second term is
negative but the expression is still exact).

Every branch that is not selected is fed safe arguments (the "double where"
trick), so that neither values nor gradients are ever NaN or inf, including
for padded entries (amt = 0), doses after the observation (dt < 0), boluses
(T = 0) and :math:`K_a = \\lambda`.

Implementation notes: the disposition modes are stacked on a new leading axis
and evaluated at once (the PyTensor graph does not grow with the number of
compartments).  Inputs whose values are known when the function is called
(NumPy arrays, also on the PyTensor path) are validated eagerly and used to
prune branches: no oral doses, no SS doses or no infusions mean those
formulas are not built at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from poppk.errors import DatasetError, ModelSpecError
from poppk.pk.analytes import Formation, analyte_coefficients, formed_modes
from poppk.pk.disposition import disposition
from poppk.pk.ops import Ops, concrete_value, get_ops, is_tensor

__all__ = ["concentration", "phi", "dexp"]

# Below these thresholds the special functions switch to short Taylor series
# (truncation error < 1e-17 relative); above them the closed forms are exact to
# a few ulp (their first derivatives to ~1e-13 relative at the thresholds).
_DEXP_NEAR = 1e-2
_PHI_SMALL = 1e-3


def dexp(x: Any, y: Any, ops: Ops | None = None) -> Any:
    """Divided difference (e^{-x} - e^{-y}) / (y - x), stable for all x, y >= 0.

    Equal to e^{-x} when x == y.  For |y - x| < 1e-2 it is evaluated as
    e^{-(x+y)/2} sinh(z)/z with z = (y-x)/2 by its series (smooth and even in
    y - x, so autodiff gives the right derivative at x == y); otherwise as
    e^{-min(x, y)} (1 - e^{-|y-x|})/|y-x|.  The unused branch is fed safe
    arguments so it never produces NaN/inf in values or gradients.

    >>> float(dexp(1.0, 1.0)), round(float(dexp(0.0, 2.0)), 12)
    (0.36787944117144233, 0.432332358382)
    """
    if ops is None:
        ops = get_ops(x, y)
    d = y - x
    ad = ops.abs(d)
    near = ops.lt(ad, _DEXP_NEAR)
    # near: e^{-(x+y)/2} (1 + d^2/24 + d^4/1920)
    w = ops.square(ops.where(near, d, 0.0))
    near_val = ops.exp(-0.5 * (x + y)) * (1.0 + w * (1.0 / 24.0 + w * (1.0 / 1920.0)))
    # far: |d| >= 1e-2
    ad_safe = ops.where(near, 1.0, ad)
    far_val = ops.exp(-ops.minimum(x, y)) * (-ops.expm1(-ad_safe)) / ad_safe
    return ops.where(near, near_val, far_val)


def phi(x: Any, ops: Ops | None = None) -> Any:
    """phi(x) = (1 - e^{-x}) / x for x >= 0, with phi(0) = 1 (stable).

    Series 1 - x/2 + x^2/6 - x^3/24 + x^4/120 below 1e-3, -expm1(-x)/x above
    (double-where: the unused branch never sees x = 0).

    >>> float(phi(0.0)), round(float(phi(2.0)), 12)
    (1.0, 0.432332358382)
    """
    if ops is None:
        ops = get_ops(x)
    small = ops.lt(x, _PHI_SMALL)
    xs = ops.where(small, x, 0.0)
    series = 1.0 + xs * (-0.5 + xs * (1.0 / 6.0 + xs * (-1.0 / 24.0 + xs * (1.0 / 120.0))))
    xl = ops.where(small, 1.0, x)
    return ops.where(small, series, -ops.expm1(-xl) / xl)


def _get(params: Mapping[str, Any], name: str, default: float | None, ops: Ops):
    if name in params and params[name] is not None:
        return ops.as_array(params[name])
    if default is None:
        raise ModelSpecError(
            f"oral doses need the absorption rate constant {name!r} in params; "
            f"got {sorted(params)}"
        )
    return default


def _ndim(x: Any) -> int:
    if x is None:
        return 0
    return x.ndim if is_tensor(x) else np.ndim(x)


def _validate(dt, amt, dur, oral, ss, ii) -> tuple[bool, bool]:
    """Eager checks on concrete (NumPy) inputs.

    Returns (any_iv, any_oral) when known; (True, True) when not.
    """
    c_dur = concrete_value(dur)
    c_oral = concrete_value(oral)
    c_ss = concrete_value(ss)
    c_ii = concrete_value(ii)
    if c_dur is not None:
        if not np.all(np.isfinite(c_dur)) or np.any(c_dur < 0):
            raise DatasetError(
                "infusion durations must be finite and >= 0",
                column="DUR",
                valid="0 for a bolus, > 0 for a zero-order infusion",
            )
    any_iv = any_oral = True
    if oral is None:
        any_oral = False
    elif c_oral is not None:
        c_oral = c_oral.astype(bool)
        any_oral = bool(np.any(c_oral))
        any_iv = not bool(np.all(c_oral))
        if c_dur is not None and any_oral:
            if np.any(np.broadcast_to(c_oral, np.broadcast_shapes(c_oral.shape, c_dur.shape)) & (c_dur > 0)):
                raise DatasetError(
                    "zero-order input into the depot (an oral dose with a "
                    "duration) is not supported",
                    column="DUR",
                    valid="DUR = 0 for doses into the depot",
                )
    if ss is not None and c_ss is not None and np.any(c_ss):
        if ii is None:
            raise DatasetError(
                "steady-state doses need a dosing interval", column="II",
                valid="II > 0 on every SS dose",
            )
        if c_ii is not None:
            shape = np.broadcast_shapes(np.shape(c_ss), np.shape(c_ii))
            s_b = np.broadcast_to(c_ss.astype(bool), shape)
            i_b = np.broadcast_to(c_ii, shape)
            if np.any(s_b & ~(i_b > 0)):
                raise DatasetError(
                    "steady-state doses need a positive dosing interval",
                    column="II", value=float(np.min(i_b[s_b])),
                    valid="II > 0 on every SS dose",
                )
            if c_dur is not None:
                shape = np.broadcast_shapes(shape, np.shape(c_dur))
                s_b = np.broadcast_to(c_ss.astype(bool), shape)
                bad = s_b & (np.broadcast_to(c_dur, shape) > np.broadcast_to(c_ii, shape))
                if np.any(bad):
                    raise DatasetError(
                        "a steady-state infusion must not last longer than the "
                        "dosing interval",
                        column="DUR",
                        value=float(np.broadcast_to(c_dur, shape)[bad][0]),
                        valid="DUR <= II for SS doses",
                    )
    return any_iv, any_oral


def concentration(
    dt: Any,
    amt: Any,
    params: Mapping[str, Any],
    *,
    n_cmt: int,
    dur: Any = None,
    oral: Any = None,
    ss: Any = None,
    ii: Any = None,
    ops: Ops | None = None,
    dose_axis: int = -1,
    formation: tuple[Formation, ...] = (),
    analyte: Any = None,
) -> Any:
    """Central-compartment concentration by superposition of closed-form doses.

    Parameters
    ----------
    dt
        Time since each dose, t_obs - t_dose.  The axis ``dose_axis`` indexes
        doses and is summed over.  Entries with dt < 0 (doses after the
        observation) contribute exactly 0.
    amt
        Dose amounts, broadcastable to ``dt``.  Padded entries have amt = 0
        and contribute exactly 0 (with finite gradients).
    params
        Parameter arrays broadcastable to ``dt`` (e.g. shape (n_obs, 1), or
        (n_patients, 1, 1) against (1, n_times, n_doses)): ``CL``, ``V1``
        (or ``V``), plus ``Q``, ``V2`` (2-cmt), ``Q3``, ``V3`` (3-cmt), and for
        oral doses ``KA`` with optional ``F1`` (default 1) and ``ALAG1``
        (default 0).  KA, F1 and ALAG1 apply only to oral doses.
    n_cmt
        1, 2 or 3.
    dur
        Infusion durations >= 0 (0 = bolus), broadcastable; ``None``: all IV
        doses are boluses.  Must be 0 for oral doses (zero-order input into
        the depot is not supported; NumPy inputs are checked).
    oral
        Boolean, broadcastable: True for doses into the depot (first-order
        absorption); ``None``: no oral doses.
    ss
        Boolean, broadcastable: True for steady-state doses (the dose stands
        for an infinite train of identical doses every ``ii``, the last one at
        dt = 0); ``None``: no steady-state doses.  Requires ii > 0 and, for
        infusions, dur <= ii (NumPy inputs are checked).
    ii
        Dosing intervals, broadcastable; only used where ``ss`` is True.
    ops
        Backend (:data:`poppk.pk.ops.NUMPY` or :data:`~poppk.pk.ops.PYTENSOR`);
        detected from the inputs when ``None``.
    dose_axis
        The axis that indexes doses, counted in the broadcast shape of all
        inputs (negative values count from the end; default: the last).
    formation, analyte
        Formed analytes (:class:`poppk.pk.analytes.Formation`, their clearances
        and volumes in ``params``) and the analyte index of each observation
        (0 the parent, k the k-th formed analyte; broadcastable to ``dt``):
        each observation is then the concentration of its analyte.  Default:
        the parent only.

    Returns
    -------
    array or tensor
        Concentration (amount / volume) with the dose axis summed out.

    Examples
    --------
    >>> import numpy as np
    >>> dt = np.array([[2.0, -1.0], [5.0, 1.0]])    # 2 observations x 2 doses
    >>> amt = np.array([[100.0, 100.0], [100.0, 100.0]])
    >>> c = concentration(dt, amt, {"CL": 1.0, "V1": 10.0}, n_cmt=1)
    >>> np.round(c, 4)
    array([ 8.1873, 15.1137])
    """
    if ops is None:
        ops = get_ops(dt, amt, dur, oral, ss, ii, dict(params))
    any_iv, any_oral = _validate(dt, amt, dur, oral, ss, ii)
    has_ss = ss is not None and not (
        concrete_value(ss) is not None and not np.any(concrete_value(ss))
    )

    lams, coefs = disposition(params, n_cmt, ops)
    if formation:
        if analyte is None:
            raise ModelSpecError("formed analytes need the analyte index of each observation (analyte=)")
        lams, sets = formed_modes(lams, coefs, params, formation, ops)
        coefs = analyte_coefficients(sets, analyte, ops)
    dt = ops.as_array(dt)
    amt = ops.as_array(amt)
    # All modes are evaluated at once along a new leading axis (the graph does
    # not grow with the number of compartments).
    nd = max(_ndim(v) for v in [dt, amt, *lams, *coefs, dur, oral, ss, ii])
    if any_oral:
        nd = max(nd, *(_ndim(params.get(name)) for name in ("KA", "F1", "ALAG1")))
    lam = ops.stack_broadcast([ops.pad_left(v, nd - ops.ndim(v)) for v in lams])
    coef = ops.stack_broadcast([ops.pad_left(v, nd - ops.ndim(v)) for v in coefs])
    dose_axis = dose_axis if dose_axis < 0 else dose_axis - nd

    after = ops.ge(dt, 0.0)
    tpos = ops.maximum(dt, 0.0)

    if has_ss:
        if ii is None:
            raise DatasetError(
                "steady-state doses need a dosing interval", column="II",
                valid="II > 0 on every SS dose",
            )
        ss_b = ops.as_bool(ss)
        ii_a = ops.as_array(ii)
        ok = ops.logical_and(ss_b, ops.gt(ii_a, 0.0))
        tau = ops.where(ok, ii_a, 1.0)  # safe interval where not at SS
    else:
        ss_b = tau = None

    iv_unit = oral_unit = None
    if any_iv:
        c_dur, c_oral = concrete_value(dur), concrete_value(oral)
        if dur is None:
            T = None
        elif c_dur is not None and (oral is None or c_oral is not None):
            # durations known now: drop the infusion branch if all are boluses
            c_T = np.asarray(c_dur, dtype=float)
            if oral is not None:
                c_T = np.where(c_oral.astype(bool), 0.0, c_T)
            T = ops.as_array(c_T) if np.any(c_T > 0) else None
        else:
            T = ops.as_array(dur)
            if oral is not None:
                # oral doses have no duration (zero-order depot input is not
                # supported); keep the IV branch safe for them
                T = ops.where(ops.as_bool(oral), 0.0, T)
        iv_unit = ops.sum(coef * _iv(lam, tpos, T, ss_b, tau, ops), axis=0)
    if any_oral:
        ka = _get(params, "KA", None, ops)
        f1 = _get(params, "F1", 1.0, ops)
        alag = _get(params, "ALAG1", 0.0, ops)
        t = dt - alag
        oral_unit = ops.sum(coef * _oral(lam, ka, t, ss_b, tau, ops), axis=0) * (f1 * ka)

    if iv_unit is not None and oral_unit is not None:
        unit = ops.where(ops.as_bool(oral), oral_unit, iv_unit)
    elif oral_unit is not None:
        unit = oral_unit
    else:
        unit = iv_unit
    conc = ops.where(after, amt * unit, 0.0)
    return ops.sum(conc, axis=dose_axis)


def _iv(lam, tpos, T, ss_b, tau, ops: Ops):
    """Unit-amount IV response per mode (bolus or infusion), or its SS sum."""
    if T is None:  # all boluses
        single = ops.exp(-lam * tpos)
        if ss_b is None:
            return single
        tail = ops.exp(-lam * (tpos + tau)) / (-ops.expm1(-lam * tau))
        return single + ops.where(ss_b, tail, 0.0)
    m = ops.minimum(tpos, T)
    has_dur = ops.gt(T, 0.0)
    ratio = ops.where(has_dur, m / ops.where(has_dur, T, 1.0), 1.0)  # m/T, := 1 for a bolus
    since_end = ops.maximum(tpos - T, 0.0)
    single = ops.exp(-lam * since_end) * phi(lam * m, ops) * ratio
    if ss_b is None:
        return single
    # all earlier doses of the train, each past its infusion end (T <= tau)
    tail = (
        ops.exp(-lam * ops.maximum(tpos + tau - T, 0.0))
        * phi(lam * T, ops)
        / (-ops.expm1(-lam * tau))
    )
    return single + ops.where(ss_b, tail, 0.0)


def _oral(lam, ka, t, ss_b, tau, ops: Ops):
    """(e^{-lam t} - e^{-ka t})/(ka - lam) per mode (0 for t < 0), or its SS sum."""
    t0 = ops.maximum(t, 0.0)
    if ss_b is None:
        return t0 * dexp(lam * t0, ka * t0, ops)
    # For SS doses, t < 0 (observation within the lag time of the last dose
    # of the train) is reduced into [0, tau): sum_{n>=0} h(t + n tau) equals
    # the same sum at s = t + k tau with k = ceil(-t / tau).
    k = ops.ceil(ops.maximum(-t, 0.0) / tau)
    s = ops.maximum(t + k * tau, 0.0)
    s = ops.where(ss_b, s, t0)
    first = s * dexp(lam * s, ka * s, ops)  # the single dose, or the last of the train
    rest = (tau - s) * dexp(lam * tau + ka * s, lam * s + ka * tau, ops)
    ss_val = (first + rest) / ((-ops.expm1(-lam * tau)) * (-ops.expm1(-ka * tau)))
    return ops.where(ss_b, ss_val, first)
