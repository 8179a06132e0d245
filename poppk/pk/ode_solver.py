"""The compiled core of :mod:`poppk.pk.ode`: the compartment equations with their forward
sensitivities, integrated by the explicit Dormand–Prince 5(4) pair, subject by subject.

Plain numba functions on arrays (parameters in the slot order of
:mod:`poppk.pk.ode`, designs as CSR pointers); the model, the numerics and the
Python entry points are described and wrapped there.
"""

from __future__ import annotations

import numba
import numpy as np

#: Status codes of the compiled solver.
_OK, _STEP_LIMIT, _STEP_UNDERFLOW, _BAD_PARAMETER, _SKIPPED = 0, 1, 2, 3, 4


@numba.njit(cache=True)
def _rhs(t, z, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, dz, jy, jt):  # pragma: no cover - numba
    """dz/dt for the state (first ns entries) and, if ndir > 0, the sensitivities.

    Sensitivity d is ``z[ns + d*ns : ns + (d+1)*ns]`` (direction-major), forced by
    parameter slot ``dslot[d]`` with weight ``dw[d]`` (the derivative of that slot's
    current value with respect to the direction's parameter).
    """
    cl, v1, q, v2, vmax, km, tda, kdes, ka = th[0], th[1], th[2], th[3], th[4], th[5], th[6], th[7], th[8]
    a1 = z[0]
    c = a1 / v1
    f = 1.0
    e = 0.0
    tau = 0.0
    if elim == 3:
        tau = t - t0 if t > t0 else 0.0
        e = np.exp(-kdes * tau)
        f = 1.0 + tda * e
    cle = cl * f
    mm = 0.0
    dmm = 0.0  # d(mm)/dC
    den = 1.0
    if elim == 1 or elim == 2:
        den = km + c
        mm = vmax * c / den
        dmm = vmax * km / (den * den)
    d0 = rate - cle * c - mm
    c2 = 0.0
    if n_cmt == 2:
        c2 = z[1] / v2
        flow = q * (c - c2)
        d0 -= flow
        dz[1] = flow
    if depot >= 0:
        d0 += ka * z[depot]
        dz[depot] = -ka * z[depot]
    dz[0] = d0
    if ndir == 0:
        return
    # state Jacobian J_A (ns x ns) and parameter Jacobian J_theta (ns x 9 slots)
    for i in range(ns):
        for k in range(ns):
            jy[i, k] = 0.0
        for k in range(9):
            jt[i, k] = 0.0
    g = cle + dmm  # d(elimination)/dC
    jy[0, 0] = -(g + (q if n_cmt == 2 else 0.0)) / v1
    jt[0, 0] = -f * c  # CL
    jt[0, 1] = (g + (q if n_cmt == 2 else 0.0)) * c / v1  # V1 (dC/dV1 = -C/V1)
    if elim == 1 or elim == 2:
        jt[0, 4] = -c / den  # VMAX
        jt[0, 5] = vmax * c / (den * den)  # KM
    if elim == 3:
        jt[0, 6] = -cl * e * c  # TDA
        jt[0, 7] = cl * tda * tau * e * c  # KDES
    if n_cmt == 2:
        jy[0, 1] = q / v2
        jy[1, 0] = q / v1
        jy[1, 1] = -q / v2
        jt[1, 1] = -q * c / v1
        jt[0, 2] = -(c - c2)  # Q
        jt[1, 2] = c - c2
        jt[0, 3] = -q * c2 / v2  # V2
        jt[1, 3] = q * c2 / v2
    if depot >= 0:
        jy[0, depot] = ka
        jy[depot, depot] = -ka
        jt[0, 8] = z[depot]  # KA
        jt[depot, 8] = -z[depot]
    for d in range(ndir):
        base = ns + d * ns
        slot = dslot[d]
        w = dw[d]
        for i in range(ns):
            s = jt[i, slot] * w
            for k in range(ns):
                s += jy[i, k] * z[base + k]
            dz[base + i] = s


# Dormand–Prince 5(4) tableau
_C2, _C3, _C4, _C5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
_A21 = 1.0 / 5.0
_A31, _A32 = 3.0 / 40.0, 9.0 / 40.0
_A41, _A42, _A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
_A51, _A52, _A53, _A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
_A61, _A62, _A63, _A64, _A65 = 9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0
_A71, _A73, _A74, _A75, _A76 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
_E1, _E3, _E4, _E5, _E6, _E7 = (71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0,
                                22.0 / 525.0, -1.0 / 40.0)


@numba.njit(cache=True)
def _integrate(ta, tb, z, n, h, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, sc_abs, rtol,
               steps, max_steps, k1, k2, k3, k4, k5, k6, k7, zt, jy, jt):  # pragma: no cover - numba
    """Advance the first n entries of z (state and active sensitivities) from ta to tb in place.

    Returns (status, proposed next h, steps used)."""
    t = ta
    _rhs(t, z, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k1, jy, jt)
    rejected = False
    while t < tb:
        if steps >= max_steps:
            return _STEP_LIMIT, h, steps
        steps += 1
        last = False
        h_try = h
        if t + h >= tb or tb - (t + h) < 1e-12 * (tb - ta):
            h_try = tb - t
            last = True
        for i in range(n):
            zt[i] = z[i] + h_try * _A21 * k1[i]
        _rhs(t + _C2 * h_try, zt, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k2, jy, jt)
        for i in range(n):
            zt[i] = z[i] + h_try * (_A31 * k1[i] + _A32 * k2[i])
        _rhs(t + _C3 * h_try, zt, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k3, jy, jt)
        for i in range(n):
            zt[i] = z[i] + h_try * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
        _rhs(t + _C4 * h_try, zt, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k4, jy, jt)
        for i in range(n):
            zt[i] = z[i] + h_try * (_A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
        _rhs(t + _C5 * h_try, zt, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k5, jy, jt)
        for i in range(n):
            zt[i] = z[i] + h_try * (_A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i] + _A65 * k5[i])
        _rhs(t + h_try, zt, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k6, jy, jt)
        for i in range(n):
            zt[i] = z[i] + h_try * (_A71 * k1[i] + _A73 * k3[i] + _A74 * k4[i] + _A75 * k5[i] + _A76 * k6[i])
        _rhs(t + h_try, zt, th, dslot, dw, ns, ndir, n_cmt, depot, elim, rate, t0, k7, jy, jt)
        err = 0.0
        for i in range(n):
            ei = h_try * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i] + _E7 * k7[i])
            a = abs(z[i])
            b = abs(zt[i])
            sc = sc_abs[i] + rtol * (a if a > b else b)
            r = abs(ei) / sc
            if not (r <= err):  # also catches NaN
                err = r if r == r else np.inf
        if err <= 1.0:
            t = tb if last else t + h_try
            for i in range(n):
                z[i] = zt[i]
                k1[i] = k7[i]
            fac = 0.9 * (err ** -0.2) if err > 1e-10 else 5.0
            if fac > 5.0:
                fac = 5.0
            if rejected and fac > 1.0:
                fac = 1.0
            h_new = h_try * fac
            # a truncated last step says nothing against the step size in use
            h = h_new if not (last and h_new < h) else h
            rejected = False
        else:
            fac = 0.9 * (err ** -0.2) if err < np.inf else 0.2
            if fac < 0.2:
                fac = 0.2
            h = h_try * fac
            rejected = True
            if h <= 1e-13 * (abs(t) + abs(tb - ta)):
                return _STEP_UNDERFLOW, h, steps
    return _OK, h, steps


@numba.njit(cache=True)
def _segment_values(th, pidx, tv, seg_off, s, ths):  # pragma: no cover - numba
    """Slot values of segment s: the base values with exp(offset) on the time-varying columns."""
    for k in range(9):
        ths[k] = th[k]
    for jj in range(tv.shape[0]):
        slot = pidx[tv[jj]]
        ths[slot] = th[slot] * np.exp(seg_off[s, jj])


@numba.njit(cache=True)
def _solve_subject(th, pidx, npar, n_cmt, depot, elim, obs_t, d_t, d_amt, d_dur, d_oral, seg_t, seg_off, tv,
                   rtol, atol, max_steps, conc, jac, jseg, obs_out):  # pragma: no cover - numba
    """Integrate one subject; write concentrations (and Jacobian rows) at obs_out.

    ``th`` holds the subject's base slot values; on ``[seg_t[s], seg_t[s+1])`` the
    columns ``tv`` of the parameters are multiplied by ``exp(seg_off[s])`` (segment 0
    also covers the times before ``seg_t[0]``).  With ``npar > 0`` the Jacobian has the
    base parameters' columns (``jac``) and one per segment and time-varying column
    (``jseg[o, s, jj]``, with respect to the offset ``seg_off[s, jj]``).
    """
    ns = n_cmt + (1 if depot >= 0 else 0)
    n_seg = seg_t.shape[0]
    ntv = tv.shape[0] if npar > 0 else 0
    ndir = npar + n_seg * ntv if npar > 0 else 0
    n = ns + ndir * ns
    z = np.zeros(n)
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    k5 = np.empty(n)
    k6 = np.empty(n)
    k7 = np.empty(n)
    zt = np.empty(n)
    jy = np.zeros((ns, ns))
    jt = np.zeros((ns, 9))
    nd = d_t.shape[0]
    no = obs_t.shape[0]
    amax = 0.0
    for d in range(nd):
        if d_amt[d] > amax:
            amax = d_amt[d]
    if amax == 0.0:
        amax = 1.0
    # forcing slot and error scale of each sensitivity direction: the base parameters, then
    # (segment, time-varying column) pairs in segment order
    dslot = np.zeros(ndir, dtype=np.int64)
    dw = np.zeros(ndir)
    sc_abs = np.empty(n)
    for i in range(ns):
        sc_abs[i] = atol * amax
    for d in range(ndir):
        if d < npar:
            dslot[d] = pidx[d]
            w = abs(th[pidx[d]])
            scale = atol * amax / (w if w > 0.0 else 1.0)
        else:
            dslot[d] = pidx[tv[(d - npar) % ntv]]
            scale = atol * amax
        for i in range(ns):
            sc_abs[ns + d * ns + i] = scale
    t0 = d_t[0] if nd > 0 else 0.0
    # event times: observations, dose starts, infusion ends, parameter changes
    n_inf = 0
    for d in range(nd):
        if d_dur[d] > 0.0:
            n_inf += 1
    ev = np.empty(no + nd + n_inf + n_seg)
    for k in range(no):
        ev[k] = obs_t[k]
    m = no
    for d in range(nd):
        ev[m] = d_t[d]
        m += 1
        if d_dur[d] > 0.0:
            ev[m] = d_t[d] + d_dur[d]
            m += 1
    first = obs_t[0] if no > 0 else (d_t[0] if nd > 0 else 0.0)
    for s in range(n_seg):
        ev[m] = seg_t[s] if np.isfinite(seg_t[s]) else first
        m += 1
    ev = np.unique(ev)
    ths = np.empty(9)
    seg = -1
    v1 = th[1]
    h = 0.0
    steps = 0
    dp = 0
    op = 0
    nact = ns
    for b in range(ev.shape[0]):
        tb = ev[b]
        s_now = 0
        while s_now + 1 < n_seg and seg_t[s_now + 1] <= tb:
            s_now += 1
        if s_now != seg:  # parameters change at tb
            seg = s_now
            _segment_values(th, pidx, tv, seg_off, seg, ths)
            v1 = ths[1]
            for d in range(npar if ndir > 0 else 0):
                dw[d] = ths[pidx[d]] / th[pidx[d]] if th[pidx[d]] != 0.0 else 1.0
            for d in range(npar, ndir):
                dw[d] = ths[dslot[d]] if (d - npar) // ntv == seg else 0.0
            if ndir > 0:
                nact = ns + (npar + (seg + 1) * ntv) * ns  # later segments' sensitivities are still 0
        while dp < nd and d_t[dp] <= tb:  # doses at tb, before the observations at tb
            if d_dur[dp] == 0.0:
                z[depot if d_oral[dp] != 0 else 0] += d_amt[dp]
            dp += 1
        while op < no and obs_t[op] <= tb:
            o = obs_out[op]
            conc[o] = z[0] / v1
            for d in range(ndir):
                g = z[ns + d * ns] / v1
                if dslot[d] == 1:  # V1 divides the amount
                    g -= z[0] / (v1 * v1) * dw[d]
                if d < npar:
                    jac[o, d] = g
                else:
                    jseg[o, (d - npar) // ntv, (d - npar) % ntv] = g
            op += 1
        if b + 1 == ev.shape[0] or op == no:
            break
        rate = 0.0
        for d in range(nd):
            if d_dur[d] > 0.0 and d_t[d] <= tb and d_t[d] + d_dur[d] > tb:
                rate += d_amt[d] / d_dur[d]
        quiet = rate == 0.0
        if quiet:
            for i in range(n):
                if z[i] != 0.0:
                    quiet = False
                    break
        if quiet:  # nothing in the body and nothing going in: the solution stays 0
            continue
        te = ev[b + 1]
        if h <= 0.0:
            h = 1e-3 * (te - tb)
        status, h, steps = _integrate(tb, te, z, nact, h, ths, dslot, dw, ns, (nact - ns) // ns, n_cmt, depot,
                                      elim, rate, t0, sc_abs, rtol, steps, max_steps, k1, k2, k3, k4, k5, k6,
                                      k7, zt, jy, jt)
        if status != _OK:
            return status
    # observations after the last event cannot exist (every observation is an event)
    return _OK


@numba.njit(cache=True)
def _solve_all(theta, pidx, n_cmt, depot_flag, elim, lower, obs_ptr, obs_t, obs_out, dose_ptr, d_t, d_amt,
               d_dur, d_oral, seg_ptr, seg_t, seg_off, tv, rtol, atol, max_steps, want_jac, conc, jac, jseg,
               status):  # pragma: no cover - numba
    """All subjects; theta is (n_sub, 9) in slot order, pidx the active slots (Jacobian columns).

    Subject i's parameter segments are ``seg_ptr[i]:seg_ptr[i+1]`` of ``seg_t`` (start
    times) and ``seg_off`` (log offsets of the columns ``tv``, one row per segment);
    ``jseg`` is ``(n_obs, max segments per subject, len(tv))``.  With the Jacobian (the
    likelihood's use) the first subject that fails ends the evaluation: the others are
    marked skipped, since one NaN already rejects the point.
    """
    n_sub = theta.shape[0]
    npar = pidx.shape[0] if want_jac else 0
    failed = False
    ths = np.empty(9)
    for i in range(n_sub):
        if failed:
            status[i] = _SKIPPED
            continue
        th = theta[i]
        g0, g1 = seg_ptr[i], seg_ptr[i + 1]
        ok = g1 > g0
        for s in range(g0, g1):
            _segment_values(th, pidx, tv, seg_off[g0:g1], s - g0, ths)
            for j in range(pidx.shape[0]):
                v = ths[pidx[j]]
                if not (v > lower[j]) or not np.isfinite(v):
                    ok = False
        if not ok:
            status[i] = _BAD_PARAMETER
            failed = want_jac
            continue
        d0, d1 = dose_ptr[i], dose_ptr[i + 1]
        o0, o1 = obs_ptr[i], obs_ptr[i + 1]
        has_depot = False
        if depot_flag:
            for d in range(d0, d1):
                if d_oral[d] != 0:
                    has_depot = True
        depot = n_cmt if (depot_flag or has_depot) else -1
        status[i] = _solve_subject(th, pidx, npar, n_cmt, depot, elim, obs_t[o0:o1], d_t[d0:d1], d_amt[d0:d1],
                                   d_dur[d0:d1], d_oral[d0:d1], seg_t[g0:g1], seg_off[g0:g1], tv, rtol, atol,
                                   max_steps, conc, jac, jseg, obs_out[o0:o1])
        if want_jac and status[i] != _OK:
            failed = True
