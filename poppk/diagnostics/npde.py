"""Normalised prediction distribution errors (NPDE) and their tests.

Method (Brendel et al. 2006, Pharm Res 23:2036; Comets et al. 2008, Comput
Methods Programs Biomed 90:154 — the ``npde`` R package), computed from
``K`` replicate studies simulated from the posterior with *new subjects*
(:func:`~poppk.diagnostics.simulate.simulate_observations` with
``new_subjects=True``: a posterior draw of the population parameters, fresh
η ~ N(0, Ω), residual error), i.e. the population predictive distribution
of each subject's observation vector given its design and covariates:

1. for subject i with observations y_i and simulated vectors y_i^(k),
   compute the mean E_i and covariance V_i of the simulations;
2. decorrelate with the Cholesky factor V_i = L_i L_iᵀ:
   y*_i = L_i⁻¹ (y_i − E_i) and y*_i^(k) = L_i⁻¹ (y_i^(k) − E_i);
3. ``pde_ij`` = fraction of the K decorrelated simulations below the
   decorrelated observation, set to 1/(2K) when 0 and 1 − 1/(2K) when 1;
4. ``npde_ij = Φ⁻¹(pde_ij)``, which is N(0, 1) under the model.

``pd`` / ``npd`` are the same without decorrelation.  Observations whose
simulated values do not vary (e.g. a pre-dose sample predicted as exactly 0)
carry no information and get NaN.

**BLQ records** (``blq="impute"``, the default; Nguyen et al. 2012, AAPS J
14:803, the ``cens.method="cdf"`` of the ``npde`` package): the pd of a
censored observation is drawn uniformly in [0, P(y < LLOQ)] under the
(uncensored) simulated distribution of that record, and the observation is
replaced by the matching quantile of that distribution before decorrelation.
``blq="omit"`` drops BLQ records from the vectors instead (their npde is
NaN).

:func:`npde_tests` gives the usual summary: mean (Student t-test against 0),
variance (Fisher's χ² test against 1), normality (Shapiro-Wilk) and a global
test (smallest p-value times 3, Bonferroni), as ``npde`` reports them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import solve_triangular
from scipy.special import ndtri

from poppk.diagnostics._common import DiagnosticsError, observation_frame
from poppk.diagnostics.simulate import simulate_observations

__all__ = ["npde_table", "npde_tests", "npde_from_simulations"]


def _decorrelator(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse Cholesky factor-applying matrix of simulations (K, n)."""
    mean = sims.mean(axis=0)
    n = sims.shape[1]
    if n == 1:
        sd = sims.std(axis=0, ddof=1)
        return mean, np.array([[1.0 / sd[0]]])
    cov = np.cov(sims, rowvar=False)
    scale = np.mean(np.diag(cov))
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        try:
            chol = np.linalg.cholesky(cov + jitter * scale * np.eye(n))
            return mean, solve_triangular(chol, np.eye(n), lower=True)
        except np.linalg.LinAlgError:
            continue
    # not positive definite (more observations than replicates, or collinear
    # records): symmetric inverse square root on the positive eigenvalues
    w, v = np.linalg.eigh(cov)
    w = np.where(w > 1e-12 * max(w.max(), 1e-300), w, np.inf)
    return mean, (v / np.sqrt(w)) @ v.T


def npde_from_simulations(
    dv: np.ndarray,
    blq: np.ndarray,
    lloq: np.ndarray,
    subject: np.ndarray,
    sims: np.ndarray,
    *,
    blq_method: str = "impute",
    seed: int = 0,
) -> pd.DataFrame:
    """NPDE of observations given simulations of the same records (the computation).

    Parameters
    ----------
    dv, blq, lloq, subject
        Per observation: value, BLQ flag, LLOQ and subject (any labels).
    sims
        Uncensored simulated values, shape (K, n_obs).
    blq_method
        ``"impute"`` or ``"omit"`` (see module notes).
    seed
        Seed of the random pd of BLQ records.

    Returns
    -------
    DataFrame with columns ``EPRED`` (simulated mean), ``SDPRED`` (simulated
    SD), ``PD``, ``NPD``, ``PDE``, ``NPDE``, ``DV_IMPUTED``.
    """
    if blq_method not in ("impute", "omit"):
        raise DiagnosticsError(f"blq={blq_method!r}: use 'impute' or 'omit'")
    rng = np.random.default_rng(seed)
    dv = np.asarray(dv, dtype=float)
    blq = np.asarray(blq, dtype=bool)
    lloq = np.asarray(lloq, dtype=float)
    sims = np.asarray(sims, dtype=float)
    k, n_obs = sims.shape
    if dv.shape != (n_obs,):
        raise DiagnosticsError(f"{n_obs} simulated records but {dv.shape[0]} observations")
    tie = 1.0 / (2 * k)
    epred = sims.mean(axis=0)
    sd = sims.std(axis=0, ddof=1) if k > 1 else np.zeros(n_obs)
    informative = sd > 1e-12 * np.maximum(np.abs(epred), 1e-300)

    # pd without decorrelation; imputation of BLQ records
    pd_ = (sims < dv[None, :]).mean(axis=0) + 0.5 * (sims == dv[None, :]).mean(axis=0)
    y = dv.copy()
    if blq.any():
        p_loq = (sims[:, blq] < lloq[None, blq]).mean(axis=0)
        p_loq = np.maximum(p_loq, tie)
        draw = rng.uniform(size=p_loq.shape) * p_loq
        pd_[blq] = draw
        if blq_method == "impute":
            srt = np.sort(sims[:, blq], axis=0)
            pos = draw * (k - 1)
            lo = np.floor(pos).astype(int)
            hi = np.minimum(lo + 1, k - 1)
            cols = np.arange(srt.shape[1])
            y[blq] = srt[lo, cols] + (srt[hi, cols] - srt[lo, cols]) * (pos - lo)
    pd_ = np.clip(pd_, tie, 1 - tie)
    npd = ndtri(pd_)
    use = informative & (~blq if blq_method == "omit" else True)
    npd = np.where(use, npd, np.nan)
    pd_ = np.where(use, pd_, np.nan)

    pde = np.full(n_obs, np.nan)
    codes = pd.factorize(pd.Series(subject))[0]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for rows in np.split(order, bounds):
        rows = rows[use[rows]]
        if rows.size == 0:
            continue
        s = sims[:, rows]
        mean, w = _decorrelator(s)
        ys = w @ (y[rows] - mean)
        ss = (s - mean[None, :]) @ w.T
        pde[rows] = (ss < ys[None, :]).mean(axis=0)
    pde = np.where(np.isnan(pde), np.nan, np.clip(pde, tie, 1 - tie))
    return pd.DataFrame(
        {
            "EPRED": epred,
            "SDPRED": sd,
            "PD": pd_,
            "NPD": npd,
            "PDE": pde,
            "NPDE": ndtri(pde),
            "DV_IMPUTED": np.where(use, y, np.nan),
        }
    )


def npde_table(
    fit: Any,
    *,
    n_draws: int = 1000,
    seed: int = 0,
    blq: str = "impute",
    simulations: Any = None,
) -> pd.DataFrame:
    """NPDE (and NPD, PWRES) of every observation.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    n_draws
        Number of replicate studies K (the ``npde`` package recommends ≥ 1000).
    seed
        Seed of the simulation and of the BLQ imputation.
    blq
        ``"impute"`` (default) or ``"omit"`` (see module notes).
    simulations
        Replicates from :func:`simulate_observations` with
        ``new_subjects=True`` to reuse (``y_rep_uncensored`` is used).

    Returns
    -------
    pandas.DataFrame
        One row per observation: ``OBS, ID, TIME, TAFD, TAD, DV, BLQ, LLOQ``,
        ``EPRED`` (mean of the simulations), ``PWRES`` (``(DV − EPRED)/SD`` of
        the simulations, not decorrelated; NaN on BLQ records), ``PD``,
        ``NPD``, ``PDE``, ``NPDE``, ``DV_IMPUTED``.

    Examples
    --------
    >>> tab = npde_table(fit)                         # doctest: +SKIP
    >>> npde_tests(tab)                               # doctest: +SKIP
    """
    if simulations is None:
        simulations = simulate_observations(fit, n_draws=n_draws, new_subjects=True, seed=seed)
    elif not int(simulations.attrs.get("new_subjects", 1)):
        raise DiagnosticsError(
            "NPDE needs simulations of new subjects (simulate_observations(..., new_subjects=True))"
        )
    obs = observation_frame(fit)
    sims = np.asarray(simulations["y_rep_uncensored"].values, dtype=float)
    res = npde_from_simulations(
        obs["DV"].to_numpy(), obs["BLQ"].to_numpy(), obs["LLOQ"].to_numpy(), obs["SUBJECT"].to_numpy(), sims,
        blq_method=blq, seed=seed,
    )
    out = obs[["OBS", "ID", "TIME", "TAFD", "TAD", "DV", "BLQ", "LLOQ"]].copy()
    out["EPRED"] = res["EPRED"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        pw = (out["DV"].to_numpy() - res["EPRED"].to_numpy()) / res["SDPRED"].to_numpy()
    out["PWRES"] = np.where(out["BLQ"].to_numpy() | ~np.isfinite(pw), np.nan, pw)
    for c in ("PD", "NPD", "PDE", "NPDE", "DV_IMPUTED"):
        out[c] = res[c].to_numpy()
    out.attrs.update({"n_draws": int(sims.shape[0]), "blq": blq})
    return out


def npde_tests(npde: Any) -> pd.DataFrame:
    """Tests that the NPDE follow N(0, 1), as reported by the ``npde`` R package.

    Parameters
    ----------
    npde
        NPDE values, or a table with an ``NPDE`` column (NaN ignored).

    Returns
    -------
    pandas.DataFrame
        Index ``mean, variance, skewness, kurtosis, t-test, Fisher variance
        test, SW test of normality, global test``; columns ``value``
        (estimate or test statistic), ``p_value``, ``n``.  Kurtosis is the
        excess kurtosis (0 under normality).  The global p-value is the
        smallest of the three test p-values times 3, capped at 1.

    Examples
    --------
    >>> bool(npde_tests(np.random.default_rng(0).normal(size=500)).loc["global test", "p_value"] > 0.05)
    True
    """
    x = np.asarray(npde["NPDE"] if hasattr(npde, "columns") else npde, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 3:
        raise DiagnosticsError(f"need at least 3 finite NPDE values, got {n}")
    mean = float(x.mean())
    var = float(x.var(ddof=1))
    t = stats.ttest_1samp(x, 0.0)
    chi = (n - 1) * var
    p_var = float(min(1.0, 2 * min(stats.chi2.cdf(chi, n - 1), stats.chi2.sf(chi, n - 1))))
    sw_x = x if n <= 5000 else np.random.default_rng(0).choice(x, 5000, replace=False)
    sw = stats.shapiro(sw_x)
    pvals = [float(t.pvalue), p_var, float(sw.pvalue)]
    rows = {
        "mean": (mean, np.nan),
        "variance": (var, np.nan),
        "skewness": (float(stats.skew(x)), np.nan),
        "kurtosis": (float(stats.kurtosis(x)), np.nan),
        "t-test": (float(t.statistic), pvals[0]),
        "Fisher variance test": (float(chi), pvals[1]),
        "SW test of normality": (float(sw.statistic), pvals[2]),
        "global test": (np.nan, min(1.0, 3 * min(pvals))),
    }
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["value", "p_value"])
    out["n"] = n
    out.index.name = "statistic"
    return out
