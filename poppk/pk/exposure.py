"""Exposure metrics in closed form: AUC, Cmax and time above a threshold.

Pure NumPy on dose arrays (no pandas, no schedules): the metrics' maths,
built on the kernel of the fit.  Every concentration is computed by
:func:`poppk.pk.kernel.concentration` (:func:`concentrations_at`).  The one
closed form written here is the time integral of the kernel's intravenous
response (:func:`iv_auc`, built on the kernel's own modes from
:func:`poppk.pk.disposition.disposition` and its ``phi``); it is checked
against Gauss-Legendre quadrature of the kernel (:func:`quadrature_auc`, any
route).  :func:`cmax` finds the maximum concentration over a window (exact up
to a bisection tolerance for intravenous doses), :func:`time_above_threshold`
the time above a concentration on a grid.

Dose arrays have shape ``(r, D)``: r = 1 (one schedule shared by all
patients) or r = the number of patients ``u``; padding has amount 0.
Parameters are ``{name: (u,)}`` in model units.  The plans that fill these
arrays from a schedule, and the metric names, live in
:mod:`poppk.simulate.exposure`.

Formed analytes.  Every function takes ``formation`` and ``analyte``
(:mod:`poppk.pk.analytes`): with ``analyte = k > 0`` the metrics are those of
the k-th formed analyte (a payload or metabolite) after doses of the parent.
Its response is again a sum of exponentials, so the concentrations and the
exact intravenous AUC use the same formulas with that analyte's modes; its
Cmax is searched on a grid (a formed analyte rises after the infusion ends,
so the parent's monotonicity argument does not hold).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from poppk.pk.analytes import Formation, formed_modes
from poppk.pk.disposition import disposition
from poppk.pk.kernel import concentration, phi
from poppk.pk.ops import NUMPY

__all__ = ["concentrations_at", "take_rows", "analyte_modes", "check_target", "target_kw", "iv_auc", "quadrature_auc", "cmax", "iv_search_nodes",
           "time_above_threshold"]

#: Largest (patients x times x doses) block evaluated at once by the kernel.
_EVAL_BUDGET = 1_000_000


def check_target(formation: tuple[Formation, ...], analyte: int) -> int:
    """The analyte index, checked against ``formation`` (0: the parent)."""
    k = int(analyte)
    if not 0 <= k <= len(formation):
        raise ValueError(f"analyte {analyte!r}: 0 (the parent) to {len(formation)} (the formed analytes)")
    return k


def target_kw(formation: tuple[Formation, ...], analyte: int) -> dict[str, Any]:
    """The kernel's keywords for analyte ``analyte`` ({} for the parent)."""
    k = check_target(formation, analyte)
    return {"formation": tuple(formation[:k]), "analyte": np.asarray(k)} if k else {}


def analyte_modes(params: Mapping[str, Any], n_cmt: int, formation: tuple[Formation, ...] = (),
                  analyte: int = 0) -> tuple[list[Any], list[Any]]:
    """Rates and coefficients of an analyte's unit-impulse response (the parent's disposition for 0)."""
    lams, coefs = disposition(params, n_cmt)
    k = check_target(formation, analyte)
    if not k:
        return list(lams), list(coefs)
    lams, sets = formed_modes(lams, coefs, params, tuple(formation[:k]), NUMPY)
    return lams, sets[k]


def take_rows(x: np.ndarray | None, rows: np.ndarray | None) -> np.ndarray | None:
    """Rows ``rows`` of a (r, ...) array, or the array itself when it has one row (shared) or ``rows`` is None."""
    if x is None or rows is None or x.shape[0] == 1:
        return x
    return x[rows]


def concentrations_at(
    params: Mapping[str, np.ndarray],
    times: np.ndarray,
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    *,
    n_cmt: int,
    oral: bool,
    ss_tau: float | None = None,
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> np.ndarray:
    """Concentrations at ``times`` (r_t, n_t) for params (u,) and doses (r_d, D) -> (u, n_t).

    Evaluated in row blocks of at most ``_EVAL_BUDGET`` (patient x time x dose)
    elements, so memory stays bounded whatever the number of patients.
    ``analyte = k > 0``: the concentration of the k-th formed analyte of
    ``formation`` (see the module docstring).
    """
    u = len(next(iter(params.values())))
    n_t, D = times.shape[1], dose_t.shape[1]
    step = max(1, _EVAL_BUDGET // max(n_t * D, 1))
    if u > step:
        out = np.empty((u, n_t))
        for a in range(0, u, step):
            rows = np.arange(a, min(u, a + step))
            out[rows] = concentrations_at(
                {k: np.asarray(v)[rows] for k, v in params.items()},
                take_rows(times, rows), take_rows(dose_t, rows),  # type: ignore[arg-type]
                take_rows(amt, rows), take_rows(dur, rows),  # type: ignore[arg-type]
                n_cmt=n_cmt, oral=oral, ss_tau=ss_tau, formation=formation, analyte=analyte,
            )
        return out
    dt = times[:, :, None] - dose_t[:, None, :]
    kw: dict[str, Any] = target_kw(formation, analyte)
    if ss_tau is not None:
        dt = np.where(dt < 0.0, dt + ss_tau, dt)
        kw["ss"] = np.ones((1, 1, 1), dtype=bool)
        kw["ii"] = np.full((1, 1, 1), float(ss_tau))
    if oral:
        kw["oral"] = np.ones((1, 1, 1), dtype=bool)
    elif np.any(dur > 0):
        kw["dur"] = dur[:, None, :]
    pr = {k: np.asarray(v, dtype=float)[:, None, None] for k, v in params.items()}
    return np.asarray(concentration(dt, amt[:, None, :], pr, **kw, n_cmt=n_cmt))


# --------------------------------------------------------------------------
# AUC
# --------------------------------------------------------------------------


def _psi(x: np.ndarray) -> np.ndarray:
    """(x - 1 + e^{-x}) / x² for x >= 0, psi(0) = 1/2 (stable)."""
    small = x < 1e-2
    xs = np.where(small, x, 0.0)
    series = 0.5 + xs * (-1.0 / 6 + xs * (1.0 / 24 + xs * (-1.0 / 120 + xs * (1.0 / 720 - xs / 5040))))
    xl = np.where(small, 1.0, x)
    return np.where(small, series, (xl + np.expm1(-xl)) / (xl * xl))


def _unit_cumulative(lam: np.ndarray, coef: np.ndarray, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    """∫_0^t of one mode's response to a unit dose infused over T (T = 0: bolus); 0 for t <= 0.

    With m = min(t, T), r = max(t - T, 0): c [m²/T ψ(λm) + φ(λT) r φ(λr)],
    the exact integral of the kernel's IV expression.
    """
    tp = np.maximum(t, 0.0)
    m = np.minimum(tp, T)
    r = np.maximum(tp - T, 0.0)
    has = T > 0
    during = np.where(has, m * (m / np.where(has, T, 1.0)) * _psi(lam * m), 0.0)
    after = phi(lam * T) * r * phi(lam * r)
    return coef * (during + after)


def iv_auc(
    params: Mapping[str, np.ndarray],
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    start: float,
    end: float,
    *,
    n_cmt: int,
    ss_tau: float | None = None,
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> np.ndarray:
    """Exact AUC over [start, end] of intravenous doses, per patient.

    The kernel's response to a dose is a sum over the disposition modes
    (λ_i, c_i) of :func:`poppk.pk.disposition`; each mode's response is
    integrated in closed form.  At steady state (``ss_tau``: every dose is a
    train with interval τ, and [start, end] is one cycle) the AUC of a cycle
    is Σ amt · Σ_i c_i/λ_i = Σ amt / CL.  A formed analyte (``analyte`` > 0)
    uses its own modes (:func:`analyte_modes`); its steady-state AUC of a
    cycle is then Σ amt · S / CL_m for a payload made from the parent.

    Parameters
    ----------
    params
        ``{name: (u,)}``.
    dose_t, amt, dur
        Doses, shape (r, D) with r = 1 or u.

    Returns
    -------
    ndarray (u,)
    """
    p = {k: np.asarray(v, dtype=float)[:, None] for k, v in params.items()}
    lams, coefs = analyte_modes(p, n_cmt, formation, analyte)
    if ss_tau is not None:
        per_unit = sum(c / lam for lam, c in zip(lams, coefs))
        return np.sum(amt * per_unit, axis=-1)
    total = 0.0
    for lam, c in zip(lams, coefs):
        u_end = _unit_cumulative(lam, c, end - dose_t, dur)
        u_start = _unit_cumulative(lam, c, start - dose_t, dur)
        total = total + amt * (u_end - u_start)
    return np.sum(total, axis=-1)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(6)


def quadrature_auc(
    params: Mapping[str, np.ndarray],
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    start: float,
    end: float,
    *,
    n_cmt: int,
    oral: bool = False,
    ss_tau: float | None = None,
    levels: int = 14,
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> np.ndarray:
    """AUC over [start, end] by quadrature of the kernel (any route).

    The window is split at every dose, end-of-infusion and lag time; each
    piece [s, e] is split geometrically at s + (e - s)·2^-k, k = 0..levels,
    and each panel integrated by 6-point Gauss-Legendre.  The panels are
    fine where fast exponentials decay, so the error is far below 1e-6 for
    any rate up to ~2^levels / (e - s).

    Returns
    -------
    ndarray (u,)
    """
    u = len(next(iter(params.values())))
    r = dose_t.shape[0]
    events = [dose_t, dose_t + (0.0 if oral else dur)]
    if oral and "ALAG1" in params:
        lag = np.asarray(params["ALAG1"], dtype=float)[:, None]
        events.append(dose_t + lag)
    ev = [np.broadcast_to(e, (max(r, e.shape[0]), e.shape[1])) for e in events]
    rows = max(e.shape[0] for e in ev)
    ev = [np.broadcast_to(e, (rows, e.shape[1])) for e in ev]
    pts = np.concatenate(ev, axis=1)
    if ss_tau is not None:
        pts = np.mod(pts - start, ss_tau) + start
    bounds = np.concatenate([np.full((rows, 1), start), np.clip(pts, start, end), np.full((rows, 1), end)], axis=1)
    bounds = np.sort(bounds, axis=1)  # (rows, nb)
    frac = np.concatenate([[0.0], 2.0 ** -np.arange(levels, -1, -1)])  # 0, 2^-levels, ..., 1/2, 1
    seg_a, seg_b = bounds[:, :-1], bounds[:, 1:]  # (rows, ns)
    edges = seg_a[:, :, None] + (seg_b - seg_a)[:, :, None] * frac[None, None, :]  # (rows, ns, levels+2)
    pa, pb = edges[:, :, :-1], edges[:, :, 1:]
    half = 0.5 * (pb - pa)
    nodes = (0.5 * (pa + pb))[..., None] + half[..., None] * _GL_X  # (rows, ns, np, 6)
    weights = half[..., None] * _GL_W
    nodes = nodes.reshape(rows, -1)
    weights = weights.reshape(rows, -1)
    # chunk the nodes so (u, n_nodes, D) stays moderate
    total = np.zeros(u)
    step = max(1, 2_000_000 // max(u * dose_t.shape[1], 1))
    for j in range(0, nodes.shape[1], step):
        c = concentrations_at(params, nodes[:, j:j + step], dose_t, amt, dur, n_cmt=n_cmt, oral=oral, ss_tau=ss_tau,
                              formation=formation, analyte=analyte)
        total += np.sum(c * weights[:, j:j + step], axis=1)
    return total


# --------------------------------------------------------------------------
# Cmax search
# --------------------------------------------------------------------------


def _max_search(
    evaluate: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    cand: np.ndarray,
    interior: np.ndarray,
    half: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    u: int,
    *,
    n_refine: int = 9,
    levels: int = 2,
) -> np.ndarray:
    """Maximum over candidate times (r, n_c), zooming around interior best points."""
    c = evaluate(cand, None)  # (u, n_c)
    j = np.argmax(c, axis=1)
    best = c[np.arange(u), j]

    def pick(a: np.ndarray) -> np.ndarray:
        return a[np.zeros(u, int) if a.shape[0] == 1 else np.arange(u), j]

    inner = pick(interior)
    rows = np.flatnonzero(inner)
    if rows.size == 0:
        return best
    center, h = pick(cand)[rows], pick(half)[rows]
    lo_r, hi_r = pick(lo)[rows], pick(hi)[rows]
    grid = np.linspace(-1.0, 1.0, n_refine)
    for _ in range(levels):
        pts = np.clip(center[:, None] + h[:, None] * grid[None, :], lo_r[:, None], hi_r[:, None])
        cc = evaluate(pts, rows)  # (len(rows), n_refine)
        k = np.argmax(cc, axis=1)
        center = pts[np.arange(rows.size), k]
        best[rows] = np.maximum(best[rows], cc[np.arange(rows.size), k])
        h = h * 2.0 / (n_refine - 1)
    return best


def cmax(
    params: Mapping[str, np.ndarray],
    dose_t: np.ndarray,
    amt: np.ndarray,
    dur: np.ndarray,
    window: float,
    *,
    n_cmt: int,
    oral: bool,
    ss_tau: float | None,
    n_search: int,
    n_grid: int,
    formation: tuple[Formation, ...] = (),
    analyte: int = 0,
) -> np.ndarray:
    """Maximum concentration over [0, window], per patient.

    Intravenous doses: exact up to a bisection tolerance (:func:`_cmax_iv`).
    Oral doses: a uniform grid of ``n_grid`` points plus the dose times, then
    two zoom levels around the best point.  A formed analyte (``analyte`` >
    0): the same grid plus every end of infusion, then four zoom levels (its
    concentration can rise after an infusion ends).

    Parameters
    ----------
    params
        ``{name: (u,)}``.
    dose_t, amt, dur
        Doses, shape (r, D) with r = 1 or u.
    window
        End of the window (the cycle length τ).
    ss_tau
        Steady state: every dose is a train with interval ``ss_tau``.
    n_search
        3-compartment IV models: nodes per infusion piece at which the sign of
        dC/dt is checked (1 and 2 compartments need only the ends).
    n_grid
        Grid points of the oral search.

    Returns
    -------
    ndarray (u,)
    """
    u = len(next(iter(params.values())))
    r, D = dose_t.shape

    def evaluate(times: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        p = params if rows is None else {k: np.asarray(v)[rows] for k, v in params.items()}
        return concentrations_at(p, times, take_rows(dose_t, rows), take_rows(amt, rows),
                                 take_rows(dur, rows), n_cmt=n_cmt, oral=oral, ss_tau=ss_tau,
                                 formation=formation, analyte=analyte)

    formed = check_target(formation, analyte) > 0
    if not oral and not formed:
        return _cmax_iv(evaluate, dose_t, dur, window, ss_tau=ss_tau, n_cmt=n_cmt, n_search=n_search, u=u)
    grid = np.linspace(0.0, window, max(n_grid, 3))
    events = [dose_t] if not formed else [dose_t, dose_t + (0.0 if oral else dur)]
    if formed and ss_tau is not None:  # infusions running over the cycle's end finish in the next one
        events.append(dose_t + (0.0 if oral else dur) - ss_tau)
    cand = np.concatenate([np.broadcast_to(grid, (r, grid.size))] + [np.clip(e, 0.0, window) for e in events], axis=1)
    interior = np.ones_like(cand, dtype=bool)
    half = np.full_like(cand, window / (max(n_grid, 3) - 1))
    lo, hi = np.zeros_like(cand), np.full_like(cand, window)
    return _max_search(evaluate, cand, interior, half, lo, hi, u, levels=4 if formed else 2)


def iv_search_nodes(
    dose_t: np.ndarray,
    dur: np.ndarray,
    window: float,
    *,
    ss_tau: float | None,
    n_cmt: int,
    n_search: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The times at which :func:`_cmax_iv` evaluates the concentration, before any bisection.

    Parameters
    ----------
    dose_t, dur
        Dose times and infusion durations, shape (r, D).
    window
        End of the window [0, window].
    ss_tau
        Steady state: every dose is a train with this interval (or None).
    n_cmt, n_search
        As in :func:`cmax`.

    Returns
    -------
    cuts : ndarray (r, n_cuts)
        The window's cut points (0, window, dose starts and infusion ends, clipped and sorted).
    a, b : ndarray (r, P)
        Pieces of the window where some patient has an infusion running.
    active : ndarray (r, P) of bool
        The pieces where this row's infusion runs.
    x, x_minus, x_plus : ndarray (r, P, m + 1)
        Nodes of each piece and the one-sided points around them at which the sign of dC/dt is taken.
    m : int
        Parts per piece (1 for 1 and 2 compartments).
    """
    r = dose_t.shape[0]
    s, e = dose_t, dose_t + dur
    starts, ends = [s], [e]
    if ss_tau is not None:  # an infusion running over the end of the cycle continues at its start
        starts.append(s - ss_tau)
        ends.append(e - ss_tau)
    s_all, e_all = np.concatenate(starts, axis=1), np.concatenate(ends, axis=1)  # (r, G)
    running = e_all > s_all
    cuts = np.concatenate([np.zeros((r, 1)), np.full((r, 1), window), s_all, e_all], axis=1)
    cuts = np.sort(np.clip(cuts, 0.0, window), axis=1)
    a, b = cuts[:, :-1], cuts[:, 1:]  # pieces (r, P)
    mid = 0.5 * (a + b)
    active = (b > a) & np.any(running[:, None, :] & (s_all[:, None, :] < mid[:, :, None])
                              & (mid[:, :, None] < e_all[:, None, :]), axis=2)
    keep = active.any(axis=0)  # pieces where some patient has an infusion running
    a, b, active = a[:, keep], b[:, keep], active[:, keep]
    m = 1 if n_cmt <= 2 else max(int(n_search) - 1, 1)
    j = np.arange(m + 1)
    width = (b - a)[..., None]
    x = a[..., None] + width * (j / m)  # nodes (r, P, m+1)
    delta = np.where(active[..., None], 1e-6 * width / m, 0.0)
    x_minus = x - delta * (j > 0)  # one-sided differences at the ends of a piece (kinks there)
    x_plus = x + delta * (j < m)
    return cuts, a, b, active, x, x_minus, x_plus, m


def _cmax_iv(
    evaluate: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    dose_t: np.ndarray,
    dur: np.ndarray,
    window: float,
    *,
    ss_tau: float | None,
    n_cmt: int,
    n_search: int,
    u: int,
    bisections: int = 28,
) -> np.ndarray:
    """Maximum over [0, window] of intravenous doses.

    The window is cut at every dose start and infusion end.  On a piece where
    no infusion runs, C is a sum of decaying exponentials with positive
    coefficients: it decreases, so its maximum is at its start (a cut
    point).  On a piece where infusions run, dC/dt is a sum of ``n_cmt``
    exponentials with the model's rates, so it changes sign at most
    ``n_cmt - 1`` times: for 1 and 2 compartments the signs of dC/dt at the
    two ends decide whether there is an interior maximum; for 3 the piece is
    cut into ``n_search - 1`` parts first.  An interior maximum is located by
    bisection on the sign of dC/dt (finite differences of the kernel).
    """
    r = dose_t.shape[0]
    cuts, a, b, active, x, x_minus, x_plus, m = iv_search_nodes(dose_t, dur, window, ss_tau=ss_tau, n_cmt=n_cmt,
                                                                n_search=n_search)
    if r == 1:  # one schedule for all: evaluate each distinct time once
        allt = np.unique(np.concatenate([cuts[0], x_minus.ravel(), x_plus.ravel()]))
        c = evaluate(allt[None, :], None)  # (u, n): true concentrations within the window
        best = c.max(axis=1)
        cm = c[:, np.searchsorted(allt, x_minus.ravel())].reshape(u, -1, m + 1)
        cp = c[:, np.searchsorted(allt, x_plus.ravel())].reshape(u, -1, m + 1)
    else:
        K = x.shape[1] * (m + 1)
        nc = cuts.shape[1]
        c = evaluate(np.concatenate([cuts, x_minus.reshape(r, -1), x_plus.reshape(r, -1)], axis=1), None)
        best = c.max(axis=1)
        cm = c[:, nc:nc + K].reshape(u, -1, m + 1)
        cp = c[:, nc + K:].reshape(u, -1, m + 1)
    g = cp - cm  # sign of dC/dt at the nodes
    act = np.broadcast_to(active, (u,) + active.shape[1:]) if r == 1 else active
    bracket = (g[..., :-1] > 0) & (g[..., 1:] < 0) & act[..., None]  # rising then falling
    row_u, piece, node = np.nonzero(bracket)
    if row_u.size == 0:
        return best
    row_r = np.zeros_like(row_u) if r == 1 else row_u
    lo, hi = x[row_r, piece, node], x[row_r, piece, node + 1]
    db = 1e-9 * (b - a)[row_r, piece]
    for _ in range(bisections):
        mid_t = 0.5 * (lo + hi)
        cc = evaluate(np.stack([mid_t - db, mid_t + db], axis=1), row_u)
        rising = cc[:, 1] > cc[:, 0]
        lo, hi = np.where(rising, mid_t, lo), np.where(rising, hi, mid_t)
        np.maximum.at(best, row_u, cc.max(axis=1))
    final = evaluate(0.5 * (lo + hi)[:, None], row_u)[:, 0]
    np.maximum.at(best, row_u, final)
    return best


# --------------------------------------------------------------------------
# time above a threshold
# --------------------------------------------------------------------------


def time_above_threshold(times: np.ndarray, conc: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Time with conc > thr, interpolating the crossings.

    ``times`` and ``conc`` are (u, n_t) and ``thr`` is (u,).  Crossings are
    interpolated log-linearly on falling intervals (exact for an exponential
    decay) and linearly on rising ones.  Returns an ndarray (u,).
    """
    c0, c1 = conc[:, :-1], conc[:, 1:]
    dt = np.diff(times, axis=1)
    th = thr[:, None]
    a0, a1 = c0 > th, c1 > th
    # log-linear on falling intervals (exact for an exponential decay), linear on rising ones
    both_pos = (c0 > 0) & (c1 > 0) & (c1 < c0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lc0 = np.log(np.where(both_pos, c0, 1.0))
        lc1 = np.log(np.where(both_pos, c1, 1.0))
        lt = np.log(np.maximum(th, 1e-300))
        f_log = (lt - lc0) / np.where(lc1 != lc0, lc1 - lc0, 1.0)
        f_lin = (th - c0) / np.where(c1 != c0, c1 - c0, 1.0)
    f = np.clip(np.where(both_pos, f_log, f_lin), 0.0, 1.0)  # fraction of the interval before the crossing
    part = np.where(a0 & a1, 1.0, np.where(a0 & ~a1, f, np.where(~a0 & a1, 1.0 - f, 0.0)))
    return np.sum(part * dt, axis=1)
