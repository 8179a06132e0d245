r"""The Bayesian bootstrap of the population distribution: per-draw patient weights and weighted statistics.

A virtual population drawn by :func:`~poppk.simulate.population.resample_population`
bootstraps the covariate vectors of the ``n_src`` trial subjects.  Holding
it fixed across posterior draws treats the trial's few dozen patients as if
they *were* the population the dose will be given to.  The Bayesian
bootstrap (Rubin 1981) instead gives the population distribution a
posterior: for posterior draw ``d``

.. math:: g_d \sim \operatorname{Dirichlet}(1, \dots, 1) \quad\text{over the source subjects},

and virtual patient ``j`` (drawn from source ``s_j``, with its own random
effects) weighs

.. math:: w_{dj} = g_{d, s_j} / c_{s_j}, \qquad c_s = \#\{j : s_j = s\},

normalised to sum 1 per draw.  Every between-patient statistic of draw ``d``
is then the statistic of the weighted population, and its spread across
draws carries parameter uncertainty *and* the uncertainty of the covariate
distribution, with the trial's covariate vectors as its support.

This module is pure NumPy: the random weights (which depend only on the
simulation seed and the draw index, never on chunking or executors) and the
weighted statistics used by :mod:`poppk.simulate.execution` and
:mod:`poppk.simulate.summaries`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["source_weights", "weight_parts", "expand_weights", "weighted_variance", "weighted_quantiles"]

#: Stream key of the bootstrap weights in ``default_rng([seed, key, draw])`` (η use 1, the draw choice 0).
BOOTSTRAP_STREAM = 3


def source_weights(seed: int, draws: np.ndarray, n_sources: int) -> np.ndarray:
    """Dirichlet(1, ..., 1) weights over ``n_sources`` source subjects, one row per draw index.

    Row ``i`` depends only on ``seed`` and ``draws[i]`` (the draw's index in
    the simulation), so any block of draws gets the same weights wherever
    it is computed.

    Returns
    -------
    numpy.ndarray
        (len(draws), n_sources), each row positive and summing to 1.

    Examples
    --------
    >>> g = source_weights(0, np.arange(3), 5)
    >>> g.shape, bool(np.allclose(g.sum(axis=1), 1.0))
    ((3, 5), True)
    >>> bool(np.array_equal(source_weights(0, np.array([2]), 5)[0], g[2]))
    True
    """
    draws = np.asarray(draws, dtype=int).reshape(-1)
    out = np.empty((draws.size, int(n_sources)))
    for i, d in enumerate(draws):
        e = np.random.default_rng([int(seed), BOOTSTRAP_STREAM, int(d)]).standard_exponential(int(n_sources))
        out[i] = e / e.sum()
    return out


def weight_parts(g: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's source count (n_patients,) and each draw's normaliser (n_draws,) of :func:`expand_weights`.

    A draw's normaliser is summed over its own row only, so it does not
    depend on which other draws are computed alongside (bit for bit).
    """
    source = np.asarray(source, dtype=np.intp)
    count = np.bincount(source, minlength=g.shape[1]).astype(float)[source]
    total = np.array([np.sum(row[source] / count) for row in np.atleast_2d(g)])
    return count, total


def expand_weights(g: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Per-patient weights from per-source ones: ``g[:, s_j] / count(s_j)``, normalised per row.

    Parameters
    ----------
    g
        (n_draws, n_sources) source weights.
    source
        (n_patients,) integer position of each patient's source in ``g``'s
        columns.  Counts are taken over these patients; sources with no
        patient drop out (the Dirichlet weights of the others, renormalised,
        are again Dirichlet(1, ..., 1)).

    Returns
    -------
    numpy.ndarray
        (n_draws, n_patients), each row summing to 1.
    """
    source = np.asarray(source, dtype=np.intp)
    count, total = weight_parts(g, source)
    return g[:, source] / count[None, :] / total[:, None]


def weighted_variance(x: np.ndarray, w: np.ndarray, axis: int = 1) -> np.ndarray:
    r"""Weighted variance along ``axis`` with reliability-weight correction.

    :math:`\sum_j w_j (x_j - \bar x_w)^2 / (1 - \sum_j w_j^2)` for weights
    summing to 1: with equal weights this is the usual ``ddof=1`` variance
    (and with one value, 0).  ``w`` must broadcast against ``x``.
    """
    w = np.broadcast_to(w, x.shape)
    m = np.sum(w * x, axis=axis, keepdims=True)
    ss = np.sum(w * (x - m) ** 2, axis=axis)
    s2 = np.sum(w * w, axis=axis)
    denom = np.where(s2 < 1.0, 1.0 - s2, 1.0)
    return ss / denom


def weighted_quantiles(x: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    r"""Weighted quantiles along the last axis, by sorting and cumulative weights.

    NumPy's default (linear, "type 7") quantile written as a weighted sum of
    the order statistics, :math:`Q(p) = \sum_k x_{(k)} [F(S_k) - F(S_{k-1})]`,
    with :math:`S_k` the cumulative weight of the k smallest values and
    :math:`F` the CDF of the uniform distribution on
    :math:`[(h - 1)/n^*, h/n^*]`, :math:`h = (n^* - 1)p + 1`, where
    :math:`n^* = 1/\sum_k w_k^2` is Kish's effective sample size (the
    weighted type-7 estimator of Akinshin, 2023).  With equal weights
    (:math:`S_k = k/n`, :math:`n^* = n`) this is ``numpy.quantile``; a value
    carrying most of the weight takes most of the quantile function (a
    plateau), and quantiles never decrease with ``p``.

    Parameters
    ----------
    x
        (..., n) values.
    w
        Non-negative weights broadcasting against ``x`` (normalised here).
    q
        (Q,) probabilities in [0, 1].

    Returns
    -------
    numpy.ndarray
        (..., Q); NaN where a row holds a NaN.

    Examples
    --------
    >>> x = np.array([3.0, 1.0, 2.0, 4.0])
    >>> bool(np.allclose(weighted_quantiles(x, np.full(4, 0.25), np.array([0.1, 0.5])),
    ...                  np.quantile(x, [0.1, 0.5])))
    True
    """
    q = np.asarray(q, dtype=float).reshape(-1)
    n = x.shape[-1]
    if n == 1:
        return np.repeat(x, q.size, axis=-1)
    order = np.argsort(x, axis=-1)
    xs = np.take_along_axis(x, order, axis=-1)
    ws = np.take_along_axis(np.broadcast_to(w, x.shape), order, axis=-1)
    ws = ws / ws.sum(axis=-1, keepdims=True)
    n_eff = 1.0 / np.sum(ws * ws, axis=-1, keepdims=True)
    cum = np.concatenate([np.zeros(ws.shape[:-1] + (1,)), np.cumsum(ws, axis=-1)], axis=-1)
    cum[..., -1] = 1.0
    out = np.empty(x.shape[:-1] + (q.size,))
    with np.errstate(invalid="ignore"):
        for i, level in enumerate(q):
            h = (n_eff - 1.0) * level + 1.0
            lo, hi = (h - 1.0) / n_eff, h / n_eff
            F = np.clip((cum - lo) / (hi - lo), 0.0, 1.0)
            share = np.diff(F, axis=-1)
            out[..., i] = np.sum(np.where(share > 0, share * xs, 0.0), axis=-1)
    bad = np.isnan(x).any(axis=-1)
    if bad.any():
        out[bad] = np.nan
    return out
