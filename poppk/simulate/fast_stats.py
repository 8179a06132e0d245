"""Compiled (numba) per-draw statistics over patients, without the exposure array.

:func:`draw_statistics` computes the unweighted statistics of
:func:`poppk.simulate.execution._stats` (log mean and variance, mean, SD,
NumPy's "linear" quantiles, exceedance fractions) straight from unit-dose
exposures and the strategies' doses: each (draw, strategy, metric) column is
formed in a buffer of one column, reduced, and its order statistics found,
so the (draw, patient, strategy, metric) array is never built.  The loop
releases the GIL, so threads run it in parallel.

The statistics are the same numbers as NumPy's to rounding: sums are
accumulated in another order, and the quantiles are the same order
statistics interpolated by the same formula (bit for bit).  The order
statistics of a large column are found in two passes that rarely mispredict
a branch: the quantiles of a strided sample bracket each wanted rank
generously, one pass counts the values below and inside the brackets, a
second gathers the values inside, and a quickselect on those few finds
them; when a bracket misses its rank (rare, or for adversarial data) the
whole column is selected instead.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

__all__ = ["quantile_positions", "draw_statistics"]

#: Size of the sample that brackets the wanted ranks of a large column.
_SAMPLE = 4096
#: Half-width of a bracket in standard deviations of the sample quantile's position.
_BRACKET_SD = 4.5




def quantile_positions(n: int, quantiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The order statistics and weights of NumPy's "linear" quantiles of ``n`` values.

    Returns
    -------
    previous, next, gamma
        Positions (int) in the sorted values and interpolation weights, as
        ``numpy.quantile`` computes them: the quantile is
        ``lerp(sorted[previous], sorted[next], gamma)``.
    """
    q = np.asarray(quantiles, dtype=float)
    vi = (n - 1) * q
    prev = np.floor(vi)
    nxt = prev + 1
    above = vi >= n - 1
    prev[above] = -1
    nxt[above] = -1
    below = vi < 0
    prev[below] = 0
    nxt[below] = 0
    prev_i, next_i = prev.astype(np.intp), nxt.astype(np.intp)
    gamma = np.asarray(vi - prev_i, dtype=vi.dtype)
    return np.where(prev_i < 0, prev_i + n, prev_i), np.where(next_i < 0, next_i + n, next_i), gamma


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _split(a: np.ndarray, lo: int, hi: int, pivot: float, le: bool) -> int:  # pragma: no cover - numba
    """Move the values of a[lo:hi+1] below ``pivot`` (``le``: at most it) to the front; return where the rest begins.

    Branch-free Lomuto partition: every element is swapped and the boundary
    advances by the comparison, so random data costs no branch mispredictions.
    """
    b = lo
    for i in range(lo, hi + 1):
        x = a[i]
        a[i] = a[b]
        a[b] = x
        b += (x <= pivot) if le else (x < pivot)
    return b


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _select(a: np.ndarray, k: int, lo: int, hi: int) -> None:  # pragma: no cover - numba
    """Partially order a[lo:hi+1] so that a[k] is its (k-lo)-th smallest value (quickselect, median of 3)."""
    if k == lo or k == hi:  # the smallest or largest: one scan
        best = k
        for i in range(lo, hi + 1):
            if (a[i] < a[best]) if k == lo else (a[i] > a[best]):
                best = i
        a[k], a[best] = a[best], a[k]
        return
    budget = 64
    n = hi - lo + 1
    while n > 1:
        n >>= 1
        budget += 2
    while hi - lo > 16:
        budget -= 1
        if budget < 0:  # pathological input: sort what is left
            a[lo:hi + 1].sort()
            return
        x, y, z = a[lo], a[(lo + hi) >> 1], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        b = _split(a, lo, hi, pivot, False)  # a[lo:b] < pivot <= a[b:hi+1]
        if k < b:
            hi = b - 1
        elif b > lo:
            lo = b
        else:  # nothing below the pivot: the values equal to it come first
            e = _split(a, lo, hi, pivot, True)
            if k < e:
                return
            lo = e
    for i in range(lo + 1, hi + 1):  # insertion sort of the last few
        x = a[i]
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _multiselect(a: np.ndarray, ks: np.ndarray) -> None:  # pragma: no cover - numba
    """Place the order statistics ``ks`` (sorted, distinct) of ``a`` at their positions."""
    stack = np.empty((2 * ks.shape[0] + 2, 4), dtype=np.int64)
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, ks.shape[0] - 1, 0, a.shape[0] - 1
    top = 1
    while top > 0:
        top -= 1
        k0, k1, lo, hi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        if k0 > k1:
            continue
        km = (k0 + k1) >> 1
        k = ks[km]
        _select(a, k, lo, hi)
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = k0, km - 1, lo, k - 1
        top += 1
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = km + 1, k1, k + 1, hi
        top += 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sort_small(a: np.ndarray, n: int) -> None:  # pragma: no cover - numba
    """Insertion sort of a[:n] (n is a handful)."""
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _order_stats(x: np.ndarray, ks: np.ndarray, vals: np.ndarray, work: np.ndarray,
                 samp: np.ndarray) -> None:  # pragma: no cover - numba
    """``vals[j]`` = the ``ks[j]``-th smallest value of ``x`` (``ks`` sorted, distinct); ``x`` is not changed.

    ``work`` holds at least ``len(x) + 2 * len(ks)`` values, ``samp`` :data:`_SAMPLE`.
    """
    n = x.shape[0]
    K = ks.shape[0]
    m = samp.shape[0]
    if K == 0:
        return
    if n >= 8 * m:
        stride = n // m
        for i in range(m):
            samp[i] = x[i * stride]
        # sample positions bracketing each wanted rank, and those sample order statistics
        pos = np.empty(2 * K, dtype=np.int64)
        for j in range(K):
            p = (ks[j] + 0.5) / n
            half = _BRACKET_SD * np.sqrt(p * (1.0 - p) * m) + 2.0
            pos[2 * j] = int(np.floor(p * m - half))
            pos[2 * j + 1] = int(np.ceil(p * m + half))
        want = np.empty(2 * K, dtype=np.int64)
        nw = 0
        for j in range(2 * K):
            if 0 <= pos[j] < m:
                want[nw] = pos[j]
                nw += 1
        _sort_small(want, nw)
        nu = 0
        for j in range(nw):
            if nu == 0 or want[j] != want[nu - 1]:
                want[nu] = want[j]
                nu += 1
        _multiselect(samp, want[:nu])
        # brackets [lo, hi] in value, merged where they overlap (both ends increase with the rank)
        g_lo = np.empty(K)
        g_hi = np.empty(K)
        g_of = np.empty(K, dtype=np.int64)
        G = 0
        for j in range(K):
            lo = samp[pos[2 * j]] if pos[2 * j] >= 0 else -np.inf
            hi = samp[pos[2 * j + 1]] if pos[2 * j + 1] < m else np.inf
            if G > 0 and lo <= g_hi[G - 1]:
                g_hi[G - 1] = max(g_hi[G - 1], hi)
            else:
                g_lo[G] = lo
                g_hi[G] = hi
                G += 1
            g_of[j] = G - 1
        below = np.zeros(G, dtype=np.int64)
        inside = np.zeros(G, dtype=np.int64)
        for g in range(G):  # counts: branch-free loops that vectorise
            lo, hi = g_lo[g], g_hi[g]
            nb_, ni_ = 0, 0
            for i in range(n):
                v = x[i]
                nb_ += v < lo
                ni_ += (v >= lo) & (v <= hi)
            below[g] = nb_
            inside[g] = ni_
        ok = True
        for j in range(K):
            g = g_of[j]
            ok = ok and below[g] <= ks[j] < below[g] + inside[g]
        if ok:
            off = np.empty(G + 1, dtype=np.int64)
            off[0] = 0
            for g in range(G):
                off[g + 1] = off[g] + inside[g] + 1  # one spare slot: every value is written, kept if inside
            for g in range(G):
                lo, hi = g_lo[g], g_hi[g]
                c = off[g]
                for i in range(n):
                    v = x[i]
                    work[c] = v
                    c += (v >= lo) & (v <= hi)
            local = np.empty(K, dtype=np.int64)
            j = 0
            while j < K:
                g = g_of[j]
                j1 = j
                while j1 < K and g_of[j1] == g:
                    local[j1] = ks[j1] - below[g]
                    j1 += 1
                seg = work[off[g]:off[g] + inside[g]]
                _multiselect(seg, local[j:j1])
                for q in range(j, j1):
                    vals[q] = seg[local[q]]
                j = j1
            return
    work[:n] = x
    w = work[:n]
    _multiselect(w, ks)
    for j in range(K):
        vals[j] = w[ks[j]]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _stats_loop(unit: np.ndarray, lin_of: np.ndarray, doses_t: np.ndarray, nb: int, exceed: np.ndarray,
                q_prev: np.ndarray, q_next: np.ndarray, q_gamma: np.ndarray, ks: np.ndarray, samp: np.ndarray,
                log_mean: np.ndarray, log_var: np.ndarray, mean: np.ndarray, sd: np.ndarray,
                quant: np.ndarray, p_exceed: np.ndarray) -> None:  # pragma: no cover - numba
    S, npat = doses_t.shape
    M = lin_of.shape[0]
    Q = q_prev.shape[0]
    buf = np.empty(npat)
    lbuf = np.empty(npat)
    work = np.empty(npat + 2 * ks.shape[0] + 2)
    vals = np.empty(ks.shape[0])
    ddof = 1 if npat > 1 else 0
    div = max(npat - ddof, 0)
    # log(unit * dose) = log(unit) + log(dose): one logarithm per metric and patient-draw, not one per strategy too
    log_dose = np.empty((S, npat))
    dose_positive = np.empty(S, dtype=np.bool_)
    for s in range(S):
        ok = True
        for i in range(npat):
            d = doses_t[s, i]
            ok = ok and d > 0.0
            log_dose[s, i] = np.log(d) if d > 0.0 else 0.0
        dose_positive[s] = ok
    log_unit = np.empty((M, npat))
    unit_positive = np.empty(M, dtype=np.bool_)
    for b in range(nb):
        base = b * npat
        for jm in range(M):
            u = unit[lin_of[jm]]
            ok = True
            for i in range(npat):
                v = u[base + i]
                ok = ok and v > 0.0
                log_unit[jm, i] = np.log(v) if v > 0.0 else 0.0
            unit_positive[jm] = ok
        for s in range(S):
            dose = doses_t[s]
            ldose = log_dose[s]
            for jm in range(M):
                u = unit[lin_of[jm]]
                lu = log_unit[jm]
                positive = unit_positive[jm] and dose_positive[s]
                tot = 0.0
                ltot = 0.0
                thr = exceed[jm]
                has_thr = np.isfinite(thr)
                above = 0
                for i in range(npat):
                    e = u[base + i] * dose[i]
                    buf[i] = e
                    tot += e
                    le = lu[i] + ldose[i]
                    lbuf[i] = le
                    ltot += le
                    if has_thr and e > thr:
                        above += 1
                mu = tot / npat
                lmu = ltot / npat
                ss = 0.0
                lss = 0.0
                for i in range(npat):
                    dv = buf[i] - mu
                    ss += dv * dv
                    dl = lbuf[i] - lmu
                    lss += dl * dl
                mean[b, s, jm] = mu
                sd[b, s, jm] = np.sqrt(ss / div)
                log_mean[b, s, jm] = lmu if positive else np.nan
                log_var[b, s, jm] = lss / div if positive else np.nan
                p_exceed[b, s, jm] = above / npat if has_thr else np.nan
                _order_stats(buf, ks, vals, work, samp)
                for qi in range(Q):
                    lo = vals[q_prev[qi]]
                    hi = vals[q_next[qi]]
                    g = q_gamma[qi]
                    diff = hi - lo
                    v = lo + diff * g
                    if g >= 0.5:
                        v = hi - diff * (1.0 - g)
                    quant[b, s, jm, qi] = v


def draw_statistics(unit: np.ndarray, lin_of: Sequence[int], doses: np.ndarray, nb: int, exceed: np.ndarray,
                    quantiles: np.ndarray) -> dict[str, np.ndarray]:
    """Per-draw statistics over patients of the exposures ``unit[lin_of[m]] * doses[:, s]``.

    Parameters
    ----------
    unit
        (L, nb * n_patients) unit-dose exposures, draw-major along the second axis.
    lin_of
        For each metric, its row of ``unit``.
    doses
        (n_patients, S) doses of the strategies.
    nb
        Draws in ``unit``.
    exceed, quantiles
        As in :func:`poppk.simulate.execution._stats`.

    Returns
    -------
    dict
        The arrays of :func:`poppk.simulate.execution._stats`: ``log_mean``,
        ``log_var``, ``mean``, ``sd``, ``p_exceed`` (nb, S, M) and
        ``quantiles`` (nb, S, M, Q).
    """
    npat, S = doses.shape
    M = len(lin_of)
    qs = np.asarray(quantiles, dtype=float)
    prev, nxt, gamma = quantile_positions(npat, qs)
    ks = np.unique(np.concatenate([prev, nxt])).astype(np.int64)
    at_prev, at_next = np.searchsorted(ks, prev), np.searchsorted(ks, nxt)  # where each is among ks
    out = {k: np.empty((nb, S, M)) for k in ("log_mean", "log_var", "mean", "sd", "p_exceed")}
    out["quantiles"] = np.empty((nb, S, M, len(qs)))
    _stats_loop(np.ascontiguousarray(unit, dtype=float), np.asarray(lin_of, dtype=np.int64),
                np.ascontiguousarray(np.asarray(doses, dtype=float).T), int(nb), np.asarray(exceed, dtype=float),
                at_prev.astype(np.int64), at_next.astype(np.int64), gamma.astype(float), ks, np.empty(_SAMPLE),
                out["log_mean"], out["log_var"], out["mean"], out["sd"], out["quantiles"], out["p_exceed"])
    return out
