"""Compiled ODE solutions for elimination without a closed form.

Michaelis–Menten elimination and time-dependent clearance have no closed-form
solution with infusions, so :func:`poppk.pk.kernel.concentration` cannot serve
them.  This module integrates the compartment equations numerically, with
numba, together with their forward sensitivities, so that the same function
gives concentrations and their Jacobian (used by the PyTensor Op in
:mod:`poppk.model.ode_op` for gradients).

Model
-----
Amounts ``A1`` (central, volume ``V1``), ``A2`` (peripheral, volume ``V2``,
2-compartment models) and ``Ad`` (depot, only with oral doses), with
concentration ``C = A1/V1``::

    dA1/dt = R(t) - CL(t) C - VMAX C/(KM + C) - Q (C - A2/V2) + KA Ad
    dA2/dt = Q (C - A2/V2)
    dAd/dt = -KA Ad

``R(t)`` is the sum of the rates ``amt/dur`` of the zero-order infusions
running at ``t``; boluses add ``amt`` to ``A1`` and oral doses add ``amt`` to
``Ad`` (bioavailability 1, no lag time).  The elimination term is one of
(``elimination=``):

``"linear"``
    ``CL C`` (parameters CL);
``"michaelis-menten"``
    ``VMAX C/(KM + C)`` (VMAX, KM);
``"linear+michaelis-menten"``
    both (CL, VMAX, KM);
``"time-dependent"``
    ``CL(t) C`` with ``CL(t) = CL (1 + TDA exp(-KDES tau))``, ``tau`` the time
    since the subject's first dose (CL, TDA, KDES; ``TDA > -1`` keeps
    ``CL(t) > 0``; TDA may be negative, so that clearance rises over time).

The parameter order of the Jacobian's columns is :func:`parameter_names`.

Numerics
--------
(The compiled core is :mod:`poppk.pk.ode_solver`.)  Each subject is integrated piecewise between its event times (dose times,
infusion ends, observation times), so that no step ever crosses a
discontinuity of the input.  Within a piece, the explicit Dormand–Prince 5(4)
pair with FSAL and error control in the max norm integrates the state and, when
asked, the forward sensitivities ``S = dA/dθ`` (``dS/dt = J_A S + J_θ``;
doses do not depend on θ, so ``S`` does not jump).  The error is controlled
on the state and on the scaled sensitivities ``|θ_j| S_ij`` (same units as
the state), each with ``rtol`` and an absolute tolerance ``atol`` times the
subject's largest dose.  The returned Jacobian is ``dC/dθ`` with respect to
the *natural* parameters (not their logarithms: TDA may be negative); for log
parameters multiply column j by θ_j.  It is exact up to the solver tolerance
(the sensitivities are integrated, not finite-differenced).

For typical pharmacokinetic parameter values these models are not stiff:
the fastest rate, ``(CL + Q)/V1 + Q/V2`` (or ``VMAX/KM/V1``), times the time
between events is at most a few hundred, which an explicit method handles in
a few hundred steps.  They do become stiff when that product is large (a very
fast distribution or low-concentration elimination against a long dosing
interval, e.g. ``VMAX/KM/V1`` of 1000/h against 24-h intervals, which a
sampler's warm-up can visit): the step count then grows in proportion.  The
step count per subject is capped (``max_steps``) and :class:`ODESolverError`
says so instead of running on; a stiff (implicit or Rosenbrock) method is
not implemented.  Inside a likelihood (with the Jacobian) the first subject
that fails ends the evaluation, so that a rejected point costs at most one
subject's cap (:mod:`poppk.model.elimination` sets the cap for sampling).

Examples
--------
>>> import numpy as np
>>> c = ode_concentration({"CL": 1.0, "V1": 10.0}, n_cmt=1,
...     obs_subject=[0, 0], obs_time=[2.0, 5.0],
...     dose_subject=[0, 0], dose_time=[0.0, 4.0], dose_amt=[100.0, 100.0])
>>> np.round(c, 4)
array([ 8.1873, 15.1137])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from poppk.errors import DatasetError, ModelSpecError, PopPKError
from poppk.pk.ode_solver import _BAD_PARAMETER, _OK, _STEP_LIMIT, _solve_all

__all__ = [
    "ELIMINATIONS",
    "ODESolverError",
    "OdeDesign",
    "ode_design",
    "parameter_names",
    "solve_ode",
    "ode_concentration",
]

#: Elimination models and their integer codes in the compiled solver.
ELIMINATIONS: dict[str, int] = {
    "linear": 0,
    "michaelis-menten": 1,
    "linear+michaelis-menten": 2,
    "time-dependent": 3,
}
_ELIM_PARAMS = {
    "linear": ("CL",),
    "michaelis-menten": ("VMAX", "KM"),
    "linear+michaelis-menten": ("CL", "VMAX", "KM"),
    "time-dependent": ("CL", "TDA", "KDES"),
}
# Internal parameter slots of the compiled solver, and the value an unused slot takes.
_SLOTS = ("CL", "V1", "Q", "V2", "VMAX", "KM", "TDA", "KDES", "KA")
_SLOT_DEFAULT = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
# Lower bounds: every parameter must be > 0, except TDA (> -1).
_LOWER = {"TDA": -1.0}



class ODESolverError(PopPKError, RuntimeError):
    """The ODE solver could not integrate a subject to the requested tolerance."""


def parameter_names(n_cmt: int, elimination: str = "linear", oral: bool = False) -> tuple[str, ...]:
    """Parameters of an ODE model, in the order of the Jacobian's columns.

    Elimination parameters first, then V1 (and Q, V2 for 2 compartments), then
    KA when there are oral doses.

    >>> parameter_names(2, "michaelis-menten")
    ('VMAX', 'KM', 'V1', 'Q', 'V2')
    >>> parameter_names(1, "time-dependent", oral=True)
    ('CL', 'TDA', 'KDES', 'V1', 'KA')
    """
    if elimination not in ELIMINATIONS:
        raise ModelSpecError(
            f"unknown elimination {elimination!r}; valid: {', '.join(map(repr, ELIMINATIONS))}"
        )
    if n_cmt not in (1, 2):
        raise ModelSpecError(f"the ODE solver supports n_cmt = 1 or 2, got {n_cmt!r}")
    names = _ELIM_PARAMS[elimination] + (("V1",) if n_cmt == 1 else ("V1", "Q", "V2"))
    return names + (("KA",) if oral else ())


# ---------------------------------------------------------------------------
# subject design: sorted, validated event arrays in CSR layout
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OdeDesign:
    """Observation and dose arrays grouped by subject (CSR layout), validated.

    Built by :func:`ode_design`.  Subject ``i``'s observations are
    ``obs_time[obs_ptr[i]:obs_ptr[i+1]]`` (non-decreasing), and the
    concentration of the k-th of them in that order is written to position
    ``obs_out[k]`` of the result (the caller's order).  Doses likewise, with
    ``dose_ptr``; ``dose_oral`` is 1 for a dose into the depot.

    Parameters may change at given times (time-varying covariates,
    inter-occasion variability): subject ``i``'s *segments* start at
    ``seg_time[seg_ptr[i]:seg_ptr[i+1]]`` (increasing; the first also covers
    the times before it); sorted segment ``j`` is the caller's segment
    ``seg_order[j]`` (offsets are given in the caller's order).
    By default every subject has one segment starting at ``-inf``.
    """

    n_subjects: int
    obs_ptr: np.ndarray
    obs_time: np.ndarray
    obs_out: np.ndarray
    dose_ptr: np.ndarray
    dose_time: np.ndarray
    dose_amt: np.ndarray
    dose_dur: np.ndarray
    dose_oral: np.ndarray
    seg_ptr: np.ndarray | None = None
    seg_time: np.ndarray | None = None
    seg_order: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.seg_ptr is None:  # one segment per subject: parameters constant in time
            object.__setattr__(self, "seg_ptr", np.arange(self.n_subjects + 1, dtype=np.int64))
            object.__setattr__(self, "seg_time", np.full(self.n_subjects, -np.inf))
            object.__setattr__(self, "seg_order", np.arange(self.n_subjects, dtype=np.int64))

    @property
    def n_segments(self) -> int:
        """Parameter segments over all subjects (one per subject when nothing varies)."""
        return int(self.seg_time.shape[0])  # type: ignore[union-attr]

    @property
    def max_segments(self) -> int:
        """Largest number of parameter segments of one subject."""
        return int(np.diff(self.seg_ptr).max(initial=1))  # type: ignore[arg-type]

    @property
    def n_obs(self) -> int:
        return int(self.obs_time.shape[0])

    @property
    def has_oral(self) -> bool:
        return bool(np.any(self.dose_oral))


def _vector(x: Any, n: int | None, name: str, dtype: Any = float) -> np.ndarray:
    a = np.asarray(x, dtype=dtype)
    if a.ndim == 0 and n is not None:
        a = np.full(n, a.item(), dtype=dtype)
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        want = f"length {n}" if n is not None else "1-D"
        raise DatasetError(f"{name} must be a 1-D array of {want}, got shape {np.shape(x)}", column=name)
    return a


def _group(subject: np.ndarray, time: np.ndarray, n_sub: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort by subject; check times are finite and sorted within subjects."""
    if subject.size and (subject.min() < 0 or subject.max() >= n_sub):
        raise DatasetError(
            f"{what} subject indices must lie in 0..{n_sub - 1}",
            column=f"{what}_subject", value=int(subject.min() if subject.min() < 0 else subject.max()),
        )
    if not np.all(np.isfinite(time)):
        bad = int(np.flatnonzero(~np.isfinite(time))[0])
        raise DatasetError(f"{what} times must be finite", row=bad, column=f"{what}_time", value=float(time[bad]))
    order = np.argsort(subject, kind="stable")
    s, t = subject[order], time[order]
    back = np.flatnonzero((s[1:] == s[:-1]) & (t[1:] < t[:-1]))
    if back.size:
        k = back[0]
        raise DatasetError(
            f"{what} times of subject {int(s[k])} are not sorted: {float(t[k])!r} comes before {float(t[k + 1])!r} "
            f"(entry {int(order[k + 1])})",
            column=f"{what}_time", value=float(t[k + 1]),
            valid=f"each subject's {what} times in non-decreasing order (sort by subject, then time)",
        )
    ptr = np.searchsorted(s, np.arange(n_sub + 1), side="left").astype(np.int64)
    return order, ptr


def ode_design(
    obs_subject: Any,
    obs_time: Any,
    dose_subject: Any,
    dose_time: Any,
    dose_amt: Any,
    dose_dur: Any = None,
    dose_oral: Any = None,
    *,
    n_subjects: int | None = None,
    seg_subject: Any = None,
    seg_time: Any = None,
) -> OdeDesign:
    """Validate and group a dosing and sampling design for :func:`solve_ode`.

    Parameters
    ----------
    obs_subject, dose_subject
        Integer subject indices 0..n_subjects-1 (any interleaving).
    obs_time, dose_time
        Event times, non-decreasing within each subject.  A dose at an
        observation's time is given before the observation (it counts).
    dose_amt
        Amounts >= 0.
    dose_dur
        Infusion durations >= 0 (0 = bolus); ``None``: all boluses.
    dose_oral
        True for doses into the depot (first-order absorption, duration 0);
        ``None``: none.
    n_subjects
        Number of subjects; default ``max(subject index) + 1``.
    seg_subject, seg_time
        Parameter segments (piecewise-constant parameters): the subject and
        start time of each, in any order; every subject needs at least one, and
        no two of a subject's may start at the same time (its first segment
        also covers the times before it; ``-inf`` is allowed).  ``None``: one
        segment per subject.

    Returns
    -------
    OdeDesign
    """
    o_sub = _vector(obs_subject, None, "obs_subject", np.int64)
    o_t = _vector(obs_time, o_sub.shape[0], "obs_time")
    d_sub = _vector(dose_subject, None, "dose_subject", np.int64)
    n_d = d_sub.shape[0]
    d_t = _vector(dose_time, n_d, "dose_time")
    d_amt = _vector(dose_amt, n_d, "dose_amt")
    d_dur = np.zeros(n_d) if dose_dur is None else _vector(dose_dur, n_d, "dose_dur")
    d_oral = np.zeros(n_d, bool) if dose_oral is None else _vector(dose_oral, n_d, "dose_oral", bool)
    if n_subjects is None:
        n_subjects = int(max(o_sub.max(initial=-1), d_sub.max(initial=-1))) + 1
    for name, v in (("dose_amt", d_amt), ("dose_dur", d_dur)):
        bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
        if bad.size:
            raise DatasetError(f"{name} must be finite and >= 0", row=int(bad[0]), column=name,
                               value=float(v[bad[0]]),
                               valid="amounts >= 0; durations 0 (bolus) or > 0 (zero-order infusion)")
    bad = np.flatnonzero(d_oral & (d_dur > 0))
    if bad.size:
        raise DatasetError("an oral dose (into the depot) cannot have an infusion duration",
                           row=int(bad[0]), column="dose_dur", value=float(d_dur[bad[0]]),
                           valid="dose_dur = 0 for oral doses")
    o_order, o_ptr = _group(o_sub, o_t, n_subjects, "obs")
    d_order, d_ptr = _group(d_sub, d_t, n_subjects, "dose")
    segments: dict[str, Any] = {}
    if seg_subject is not None or seg_time is not None:
        g_sub = _vector(seg_subject, None, "seg_subject", np.int64)
        g_t = np.asarray(_vector(seg_time, g_sub.shape[0], "seg_time"), dtype=np.float64)
        if np.isnan(g_t).any() or np.isposinf(g_t).any():
            bad = int(np.flatnonzero(np.isnan(g_t) | np.isposinf(g_t))[0])
            raise DatasetError("segment start times must be finite or -inf", row=bad, column="seg_time",
                               value=float(g_t[bad]))
        if g_sub.size and (g_sub.min() < 0 or g_sub.max() >= n_subjects):
            raise DatasetError(f"segment subject indices must lie in 0..{n_subjects - 1}", column="seg_subject",
                               value=int(g_sub.min() if g_sub.min() < 0 else g_sub.max()))
        g_key = np.where(np.isfinite(g_t), g_t, -1e300)
        g_order = np.lexsort((g_key, g_sub))  # any order in, (subject, time) order inside
        g_ptr = np.searchsorted(g_sub[g_order], np.arange(n_subjects + 1), side="left").astype(np.int64)
        counts = np.diff(g_ptr)
        if (counts == 0).any():
            raise DatasetError(f"subject {int(np.flatnonzero(counts == 0)[0])} has no parameter segment",
                               column="seg_subject", valid="at least one segment per subject")
        gt = g_t[g_order]
        same = np.flatnonzero((np.diff(g_key[g_order]) <= 0)
                              & (np.diff(np.repeat(np.arange(n_subjects), counts)) == 0))
        if same.size:
            raise DatasetError("two parameter segments of a subject start at the same time",
                               row=int(g_order[same[0] + 1]), column="seg_time", value=float(gt[same[0] + 1]),
                               valid="strictly increasing start times within a subject")
        segments = {"seg_ptr": g_ptr, "seg_time": np.ascontiguousarray(gt), "seg_order": g_order.astype(np.int64)}
    return OdeDesign(
        n_subjects=n_subjects,
        obs_ptr=o_ptr,
        obs_time=np.ascontiguousarray(o_t[o_order]),
        obs_out=o_order.astype(np.int64),
        dose_ptr=d_ptr,
        dose_time=np.ascontiguousarray(d_t[d_order]),
        dose_amt=np.ascontiguousarray(d_amt[d_order]),
        dose_dur=np.ascontiguousarray(d_dur[d_order]),
        dose_oral=d_oral[d_order].astype(np.int64),
        **segments,
    )


# ---------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------
def solver_arguments(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Slot indices and lower bounds of the named parameters (for the compiled core)."""
    pidx = np.array([_SLOTS.index(n) for n in names], dtype=np.int64)
    lower = np.array([_LOWER.get(n, 0.0) for n in names], dtype=np.float64)
    return pidx, lower


def slot_matrix(theta: np.ndarray, pidx: np.ndarray) -> np.ndarray:
    """(n_sub, 9) slot-ordered parameter matrix from (n_sub, P) columns in ``pidx`` order."""
    full = np.tile(_SLOT_DEFAULT, (theta.shape[0], 1))
    full[:, pidx] = theta
    return full


def solve_ode(
    design: OdeDesign,
    theta: Any,
    *,
    n_cmt: int,
    elimination: str = "linear",
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 100_000,
    jacobian: bool = False,
    offsets: Any = None,
    varying: tuple[str, ...] = (),
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Concentrations (and their Jacobian) of an ODE model on a design.

    Parameters
    ----------
    design
        From :func:`ode_design`.
    theta
        Natural-scale parameters, shape ``(n_subjects, P)``, columns in the
        order of ``parameter_names(n_cmt, elimination, design.has_oral)``.
        All must be finite and > 0, except TDA (> -1).
    n_cmt
        1 or 2.
    elimination
        One of :data:`ELIMINATIONS`.
    rtol, atol
        Relative tolerance, and absolute tolerance as a fraction of each
        subject's largest dose amount (per step, max norm; see module notes).
    max_steps
        Step attempts allowed per subject before :class:`ODESolverError`.
    jacobian
        Also return ``dC/dθ`` (natural scale), shape ``(n_obs, P)``.
    offsets, varying
        Piecewise-constant parameters: on segment k of the design (caller's
        order) the parameters named in ``varying`` are ``theta ·
        exp(offsets[k])``; ``offsets`` has shape ``(n_segments, len(varying))``.
        With ``jacobian`` a third array ``dC/d offsets`` of shape ``(n_obs,
        max_segments, len(varying))`` is returned (segment index within the
        observation's subject, in time order).

    Returns
    -------
    ndarray or tuple of ndarray
        Concentrations in the design's original observation order, and the
        Jacobian(s) if asked for.
    """
    names = parameter_names(n_cmt, elimination, design.has_oral)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (design.n_subjects, len(names)):
        raise ModelSpecError(
            f"theta must have shape (n_subjects, {len(names)}) = ({design.n_subjects}, {len(names)}) "
            f"with columns {names}, got {theta.shape}"
        )
    tv = varying_columns(names, varying)
    off = segment_offsets(design, offsets, len(tv))
    pidx, lower = solver_arguments(names)
    bad = ~np.isfinite(theta) | ~(theta > lower)
    if np.any(bad):
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ModelSpecError(
            f"parameter {names[j]} of subject {i} is {float(theta[i, j])!r}; valid: a finite value "
            + ("> -1 (so that CL(t) > 0)" if names[j] == "TDA" else "> 0")
        )
    if not (0.0 < rtol < 1.0 and atol > 0.0 and max_steps > 0):
        raise ModelSpecError(f"need 0 < rtol < 1, atol > 0, max_steps > 0; got {rtol}, {atol}, {max_steps}")
    conc, jac, jseg, status = run_solver(design, slot_matrix(theta, pidx), pidx, lower, n_cmt=n_cmt,
                                         elimination=elimination, rtol=rtol, atol=atol, max_steps=max_steps,
                                         jacobian=jacobian, offsets=off, varying=tv)
    if np.any(status != _OK):
        i = int(np.flatnonzero(status != _OK)[0])
        s = int(status[i])
        p = {n: float(v) for n, v in zip(names, theta[i])}
        if s == _STEP_LIMIT:
            raise ODESolverError(
                f"subject {i}: the ODE solver reached max_steps={max_steps} step attempts with parameters {p}. "
                "The explicit Runge-Kutta method needs many steps only when the system is stiff (a rate "
                "constant much faster than the spacing of the events); raise max_steps or check the "
                "parameter values"
            )
        if s == _BAD_PARAMETER:
            raise ModelSpecError(f"subject {i}: a segment's parameters {varying} leave their domain "
                                 f"(base values {p}, offsets {off[design.seg_ptr[i]:design.seg_ptr[i + 1]].tolist()})")
        raise ODESolverError(
            f"subject {i}: the ODE solver's step size underflowed with parameters {p} "
            "(the solution is not finite or varies too fast to resolve); check the parameter values"
        )
    if not jacobian:
        return conc
    return (conc, jac, jseg) if tv.size else (conc, jac)


def varying_columns(names: tuple[str, ...], varying: Any) -> np.ndarray:
    """Column indices (into ``names``) of the time-varying parameters, validated."""
    unknown = [v for v in varying if v not in names]
    if unknown:
        raise ModelSpecError(f"time-varying parameters {unknown} are not parameters of this model {names}")
    if len(set(varying)) != len(tuple(varying)):
        raise ModelSpecError(f"time-varying parameters {tuple(varying)} name one twice")
    return np.array([names.index(v) for v in varying], dtype=np.int64)


def segment_offsets(design: OdeDesign, offsets: Any, ntv: int) -> np.ndarray:
    """Log offsets per segment, ``(n_segments, ntv)`` in the caller's order, validated."""
    if offsets is None:
        if ntv:
            raise ModelSpecError("time-varying parameters need offsets= (one row per segment)")
        return np.zeros((design.n_segments, 0))
    off = np.asarray(offsets, dtype=np.float64)
    if off.shape != (design.n_segments, ntv):
        raise ModelSpecError(f"offsets must have shape (n_segments, n_varying) = ({design.n_segments}, {ntv}), "
                             f"got {off.shape}")
    if not np.all(np.isfinite(off)):
        k = int(np.flatnonzero(~np.isfinite(off).all(axis=1))[0])
        raise ModelSpecError(f"offsets of segment {k} are not finite: {off[k].tolist()}")
    return off


def run_solver(design: OdeDesign, slots: np.ndarray, pidx: np.ndarray, lower: np.ndarray, *, n_cmt: int,
               elimination: str, rtol: float, atol: float, max_steps: int, jacobian: bool,
               offsets: np.ndarray | None = None,
               varying: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The compiled core without checks: (conc, jac, jseg, status per subject; 0 = ok).

    ``offsets`` ``(n_segments, len(varying))`` in the caller's segment order
    (default none); ``jseg`` is ``(n_obs, max_segments, len(varying))``.
    """
    tv = np.zeros(0, dtype=np.int64) if varying is None else np.asarray(varying, dtype=np.int64)
    off = np.zeros((design.n_segments, tv.shape[0])) if offsets is None else np.asarray(offsets, np.float64)
    conc = np.zeros(design.n_obs)
    jac = np.zeros((design.n_obs, pidx.shape[0]))
    jseg = np.zeros((design.n_obs, design.max_segments if jacobian else 0, tv.shape[0]))
    status = np.zeros(design.n_subjects, dtype=np.int64)
    _solve_all(np.ascontiguousarray(slots), pidx, n_cmt, design.has_oral, ELIMINATIONS[elimination], lower,
               design.obs_ptr, design.obs_time, design.obs_out, design.dose_ptr, design.dose_time,
               design.dose_amt, design.dose_dur, design.dose_oral, design.seg_ptr, design.seg_time,
               np.ascontiguousarray(off[design.seg_order]), tv, float(rtol), float(atol), int(max_steps),
               bool(jacobian), conc, jac, jseg, status)
    return conc, jac, jseg, status


def ode_concentration(
    params: Mapping[str, Any],
    *,
    n_cmt: int,
    elimination: str = "linear",
    obs_subject: Any,
    obs_time: Any,
    dose_subject: Any,
    dose_time: Any,
    dose_amt: Any,
    dose_dur: Any = None,
    dose_oral: Any = None,
    n_subjects: int | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 100_000,
    jacobian: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Concentrations of an ODE model from per-subject parameters and flat event arrays.

    ``params`` maps each name of :func:`parameter_names` (``V`` is accepted
    for ``V1``) to a scalar or an array of length n_subjects; extra names are
    ignored.  The other arguments are those of :func:`ode_design` and
    :func:`solve_ode`; the Jacobian's columns follow ``parameter_names``.
    """
    design = ode_design(obs_subject, obs_time, dose_subject, dose_time, dose_amt, dose_dur, dose_oral,
                        n_subjects=n_subjects)
    names = parameter_names(n_cmt, elimination, design.has_oral)
    p = dict(params)
    if "V1" not in p and "V" in p:
        p["V1"] = p["V"]
    missing = [n for n in names if n not in p]
    if missing:
        raise ModelSpecError(f"{elimination} elimination with n_cmt={n_cmt} needs parameters {names}; "
                             f"missing {missing}")
    cols = []
    for n in names:
        v = np.asarray(p[n], dtype=np.float64)
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != design.n_subjects):
            raise ModelSpecError(f"parameter {n} must be a scalar or have length {design.n_subjects}, "
                                 f"got shape {v.shape}")
        cols.append(np.broadcast_to(v, (design.n_subjects,)))
    theta = np.stack(cols, axis=1) if cols else np.zeros((design.n_subjects, 0))
    return solve_ode(design, theta, n_cmt=n_cmt, elimination=elimination, rtol=rtol, atol=atol,
                     max_steps=max_steps, jacobian=jacobian)
