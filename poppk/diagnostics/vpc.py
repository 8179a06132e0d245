"""Visual predictive checks: binned VPC, prediction-corrected VPC, censored VPC.

:func:`vpc_table` compares percentiles of the observed concentrations in
time bins with the distribution of the same percentiles over replicate
studies simulated from the posterior with new subjects
(:func:`~poppk.diagnostics.simulate.simulate_observations` with
``new_subjects=True``: each replicate uses one posterior draw of the
population parameters, fresh η ~ N(0, Ω), the observed design and residual
error).

Conventions (those of the ``vpc`` R package and PsN):

* **Bins** on the time axis (time after first dose, or time after the most
  recent dose): ``"quantile"`` bins hold about equal numbers of observations
  and never split observations recorded at the same time (edges are placed
  half-way between distinct times); ``"equal"`` bins have equal width;
  ``"time"`` makes one bin per distinct time (nominal sampling designs);
  ``"jenks"`` / ``"log-jenks"`` place natural breaks in time / log time
  (exact 1-D k-means, as the ``vpc`` package's default Jenks binning);
  ``"auto"`` (the default) picks ``"time"`` for at most 20 distinct times,
  otherwise ``"log-jenks"`` on the time-after-dose axis (samples cluster
  geometrically after a dose: end of infusion, hours, days) and
  ``"quantile"`` on the time-after-first-dose axis; an array gives the
  edges; an integer is a number of quantile bins.  On the time-after-first-dose axis, quantile
  and Jenks bins never straddle a dose time shared by most subjects
  (``split_at_doses``).  Bins are
  ``[lower, upper)``, the last one closed; ``bin_mid`` is the mean time of
  the observations in the bin.
* **Observed percentiles** use NumPy's default (linear) interpolation.
* **Censoring (BLQ).**  A BLQ record (observed or simulated) stands for a
  value below its LLOQ: it is placed below every quantified value and a
  percentile whose interpolation touches a BLQ record is *censored* — it
  lies below the LLOQ and is reported as NaN (``observed_below_lloq``).
  This is ``quantile_cens`` of the ``vpc`` R package.  The same rule is
  applied to every simulated replicate and to the summaries of the simulated
  percentiles, so a NaN ``sim_lower`` means the lower end of the interval is
  below the LLOQ.  The fraction of BLQ records per bin is reported for the
  observed data and, as a median with interval, for the simulations
  (censored VPC).
* **Prediction correction** (pcVPC, Bergstrand et al. 2011, AAPS J 13:143):
  every value, observed and simulated, is multiplied by
  ``median(PRED in bin) / PRED`` where PRED is the posterior median of the
  record's population prediction (typical parameters with covariates, η =
  0).  Records with PRED <= 0 (e.g. before the first dose) cannot be
  corrected and are left out (counted in ``attrs["n_excluded"]``).  The
  variability correction of Bergstrand et al. is not applied.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from poppk.diagnostics._common import (
    DiagnosticsError,
    median_predictions,
    observation_frame,
    unit_labels,
)
from poppk.diagnostics.simulate import simulate_observations

__all__ = ["vpc_table", "vpc_observations", "bin_edges", "censored_quantile", "common_dose_times"]

#: ``bins="auto"`` bins by distinct time up to this many distinct times.
_AUTO_MAX_TIMES = 20
#: Jenks breaks pool the times into at most this many groups first.
_JENKS_MAX_VALUES = 1000

_TIME_LABEL = {"tafd": "Time after first dose", "tad": "Time after dose"}


# ----------------------------------------------------------------- helpers
def censored_quantile(values: np.ndarray, q: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray:
    """Quantiles with left-censored values coded as ``-inf``.

    Linear interpolation between order statistics (NumPy's default method);
    a quantile whose lower order statistic is censored is ``-inf``.  Without
    ``-inf`` values the result equals :func:`numpy.quantile`.

    Parameters
    ----------
    values
        Array with censored entries set to ``-inf``.
    q
        Probabilities in [0, 1].
    axis
        Axis along which to compute.

    Returns
    -------
    ndarray with the quantile axis first, then the remaining axes.

    Examples
    --------
    >>> censored_quantile(np.array([-np.inf, -np.inf, 1.0, 2.0, 3.0]), [0.25, 0.5, 0.75])
    array([-inf,   1.,   2.])
    """
    a = np.sort(np.moveaxis(np.asarray(values, dtype=float), axis, -1), axis=-1)
    n = a.shape[-1]
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if n == 0:
        return np.full(q.shape + a.shape[:-1], np.nan)
    pos = q * (n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    vlo = np.moveaxis(a[..., lo], -1, 0)
    vhi = np.moveaxis(a[..., hi], -1, 0)
    f = frac.reshape((-1,) + (1,) * (vlo.ndim - 1))
    with np.errstate(invalid="ignore"):
        out = np.where(np.isneginf(vlo), -np.inf, vlo + (vhi - vlo) * f)
    # vhi may be +inf only if values hold +inf; keep NumPy semantics otherwise
    return out


def bin_edges(x: np.ndarray, bins: Any = "quantile", n_bins: int = 8, *, cuts: Sequence[float] = ()) -> np.ndarray:
    """Bin edges on the time axis.

    Parameters
    ----------
    x
        Times of the observations.
    bins
        ``"quantile"`` (about equal counts, ties never split), ``"jenks"``
        (Jenks natural breaks: the partition minimising the within-bin
        variance of time, i.e. exact 1-D k-means), ``"log-jenks"`` (Jenks
        breaks of log time, natural for the geometric sampling after a
        dose), ``"equal"`` (equal widths), ``"time"`` (one bin per distinct
        time: nominal designs), ``"auto"`` (``"time"`` when there are at
        most 20 distinct times, else ``"quantile"``), an integer (that many
        quantile bins) or an array of edges (returned sorted).
    n_bins
        Number of bins for ``"quantile"``, ``"jenks"``, ``"log-jenks"`` and ``"equal"``.
    cuts
        Times that must be bin edges for quantile and Jenks bins (e.g. common dose
        times, so that no bin mixes troughs with post-dose peaks).  The bins
        are shared among the stretches between cuts in proportion to their
        numbers of observations (at least one each), so there may be more
        than ``n_bins`` bins.

    Returns
    -------
    Increasing edges; observations fall in ``[e_i, e_{i+1})``, the last bin
    closed.

    Examples
    --------
    >>> bin_edges(np.array([1, 1, 1, 2, 2, 2, 4, 4, 4.0]), "quantile", 3)
    array([1. , 1.5, 3. , 4. ])
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        n_bins, bins = int(bins), "quantile"
    if isinstance(bins, str):
        if n_bins < 1:
            raise DiagnosticsError(f"n_bins must be >= 1, got {n_bins}")
        if x.size == 0:
            return np.array([0.0, 1.0])
        lo, hi = float(x.min()), float(x.max())
        u = np.unique(x)
        if bins == "auto":
            bins = "time" if len(u) <= _AUTO_MAX_TIMES else "quantile"
        if bins == "time":
            if len(u) == 1:
                return np.array([lo, hi])
            return np.concatenate([[lo], 0.5 * (u[:-1] + u[1:]), [hi]])
        if bins == "equal":
            if hi == lo:
                return np.array([lo, hi])
            return np.linspace(lo, hi, n_bins + 1)
        if bins not in ("quantile", "jenks", "log-jenks"):
            raise DiagnosticsError(
                f"bins={bins!r}: use 'quantile', 'jenks', 'log-jenks', 'equal', 'time', 'auto', a number "
                "of bins or an array of edges"
            )
        method = {"quantile": _quantile_edges, "jenks": _jenks_edges, "log-jenks": _log_jenks_edges}[bins]
        cuts = np.unique([c for c in np.asarray(cuts, dtype=float) if lo < c <= hi and (x < c).any()])
        if cuts.size == 0:
            return method(x, n_bins)
        bounds = np.concatenate([[-np.inf], cuts, [np.inf]])
        parts = [x[(x >= a) & (x < b)] for a, b in zip(bounds[:-1], bounds[1:])]
        parts = [p for p in parts if p.size]
        alloc = np.maximum(1, np.round(n_bins * np.array([p.size for p in parts]) / x.size)).astype(int)
        edges = [method(p, k) for p, k in zip(parts, alloc)]
        inner = np.concatenate([e[1:-1] for e in edges] + [cuts])
        return np.unique(np.concatenate([[lo], inner, [hi]]))
    edges = np.sort(np.asarray(bins, dtype=float).ravel())
    if edges.size < 2 or not np.all(np.isfinite(edges)):
        raise DiagnosticsError("bin edges must be at least two finite numbers")
    return edges


def _jenks_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Jenks natural breaks: 1-D k-means solved exactly by dynamic programming.

    Minimises the within-bin sum of squared deviations of the times
    (weighted by the number of observations at each distinct time); edges
    are placed half-way between the last time of a bin and the first of the
    next.
    """
    lo, hi = float(x.min()), float(x.max())
    u, w = np.unique(x, return_counts=True)
    if len(u) > _JENKS_MAX_VALUES:  # keep the O(k·m²) search fast: pool neighbouring times
        groups = np.minimum((np.cumsum(w) - 1) * _JENKS_MAX_VALUES // w.sum(), _JENKS_MAX_VALUES - 1)
        keep = np.r_[True, groups[1:] != groups[:-1]]
        bounds = np.flatnonzero(keep)
        w_g = np.add.reduceat(w, bounds)
        u = np.add.reduceat(u * w, bounds) / w_g
        w = w_g
    m = len(u)
    k = min(int(n_bins), m)
    if k <= 1:
        return np.array([lo, hi])
    w = w.astype(float)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    c1 = np.concatenate([[0.0], np.cumsum(w * u)])
    c2 = np.concatenate([[0.0], np.cumsum(w * u * u)])

    def cost(i: np.ndarray, j: int) -> np.ndarray:  # bins u[i..j] for every start i
        ww = cw[j + 1] - cw[i]
        s1 = c1[j + 1] - c1[i]
        return (c2[j + 1] - c2[i]) - s1 * s1 / ww

    jj = np.arange(m)
    best = (c2[jj + 1] - c2[0]) - (c1[jj + 1] - c1[0]) ** 2 / (cw[jj + 1] - cw[0])  # one bin u[0..j]
    back = np.zeros((k, m), dtype=int)
    for b in range(1, k):
        new = np.full(m, np.inf)
        for j in range(b, m):
            starts = np.arange(b, j + 1)  # first index of the last bin
            tot = best[starts - 1] + cost(starts, j)
            t = int(np.argmin(tot))
            new[j] = tot[t]
            back[b, j] = starts[t]
        best = new
    cuts = []
    j = m - 1
    for b in range(k - 1, 0, -1):
        i = back[b, j]
        cuts.append(0.5 * (u[i - 1] + u[i]))
        j = i - 1
    return np.concatenate([[lo], np.sort(cuts), [hi]])


def _log_jenks_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Jenks breaks of log(time) (times of 0 are shifted by half the smallest positive time)."""
    pos = x[x > 0]
    if x.min() < 0 or pos.size == 0:
        return _jenks_edges(x, n_bins)
    shift = 0.5 * pos.min() if (x == 0).any() else 0.0
    e = np.exp(_jenks_edges(np.log(x + shift), n_bins)) - shift
    e[0], e[-1] = x.min(), x.max()
    return e


def _quantile_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges for about equal counts, each placed half-way between distinct times."""
    lo, hi = float(x.min()), float(x.max())
    u, counts = np.unique(x, return_counts=True)
    if len(u) == 1:
        return np.array([lo, hi])
    mids = 0.5 * (u[:-1] + u[1:])
    cum = np.cumsum(counts)[:-1]  # number of observations below each midpoint
    targets = x.size * np.arange(1, n_bins) / n_bins
    chosen = np.unique([mids[np.argmin(np.abs(cum - t))] for t in targets]) if n_bins > 1 else np.array([])
    return np.concatenate([[lo], chosen, [hi]])


def common_dose_times(fit: Any, min_fraction: float = 0.5) -> np.ndarray:
    """Dose times after the first dose shared by at least ``min_fraction`` of the subjects."""
    doses = fit.data.doses
    if not len(doses):
        return np.array([])
    first = doses.groupby("ID", sort=False)["TIME"].transform("min")
    t = pd.DataFrame({"ID": doses["ID"], "T": np.round(doses["TIME"] - first, 6)})
    per = t.drop_duplicates().groupby("T")["ID"].nunique()
    n = doses["ID"].nunique()
    shared = per[per >= min_fraction * n].index.to_numpy(dtype=float)
    return shared[shared > 0]


def _assign(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each x (-1 outside the edges)."""
    b = np.searchsorted(edges, x, side="right") - 1
    b = np.where(x == edges[-1], len(edges) - 2, b)
    return np.where((b < 0) | (b > len(edges) - 2) | ~np.isfinite(x), -1, b)


def _strata(fit: Any, obs: pd.DataFrame, stratify: Any) -> tuple[np.ndarray, str | None]:
    """Stratum label of each observation (per analyte first, in a multi-analyte model)."""
    labels, name = _user_strata(fit, obs, stratify)
    if "ANALYTE" not in obs.columns:
        return labels, name
    analyte = obs["ANALYTE"].to_numpy(dtype=object)
    if stratify is None:
        return analyte.copy(), "ANALYTE"
    return np.array([f"{a} · {lab}" for a, lab in zip(analyte, labels)], dtype=object), f"ANALYTE, {name}"


def _analyte_labels(fit: Any, obs: pd.DataFrame, table: pd.DataFrame, conc: str) -> dict[str, str]:
    """``{stratum: y label in its analyte's unit}`` of a multi-analyte model ({} otherwise)."""
    if "ANALYTE" not in obs.columns or not len(table):
        return {}
    from poppk.model.analytes import analyte_unit

    out = {}
    for s in pd.unique(table["strata"]):
        name = str(s).split(" · ", 1)[0]
        out[str(s)] = f"{conc}, {name} ({analyte_unit(fit.spec, name)})"
    return out


def _user_strata(fit: Any, obs: pd.DataFrame, stratify: Any) -> tuple[np.ndarray, str | None]:
    if stratify is None:
        return np.full(len(obs), "all", dtype=object), None
    if callable(stratify):
        frame = obs.merge(_subject_covariates(fit), left_on="SUBJECT", right_index=True, how="left")
        labels = np.asarray(stratify(frame))
        if labels.shape != (len(obs),):
            raise DiagnosticsError(
                f"stratify callable returned shape {labels.shape}; it must return one label per observation ({len(obs)})"
            )
        return labels.astype(object), getattr(stratify, "__name__", "stratum")
    name = str(stratify)
    if name == "DOSE":
        values = obs["DOSE"].to_numpy()
    else:
        cov = _subject_covariates(fit)
        if name not in cov.columns:
            raise DiagnosticsError(
                f"stratify={name!r} is not a covariate of the data ({list(cov.columns)}) nor 'DOSE' "
                "(amount of the most recent dose); pass a callable for other groupings"
            )
        values = cov[name].to_numpy()[obs["SUBJECT"].to_numpy()]
    return _labels(name, values), name


def _labels(name: str, values: np.ndarray) -> np.ndarray:
    """Category labels; a numeric covariate with more than 6 values is split at its median."""
    num = pd.to_numeric(pd.Series(values), errors="coerce")
    if num.notna().all() and num.nunique() > 6:
        med = float(np.median(num))
        return np.where(num <= med, f"{name} ≤ {med:.4g}", f"{name} > {med:.4g}").astype(object)
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        out.append(f"{name} = {v}")
    return np.array(out, dtype=object)


def _subject_covariates(fit: Any) -> pd.DataFrame:
    """Covariates per subject, indexed by subject position (0..n-1)."""
    cov = fit.data.covariates
    cov = cov.loc[list(fit.design.subject_ids)] if len(cov) else cov
    return cov.reset_index(drop=True)


def _prepare(fit: Any, time: str, pred_corrected: bool, stratify: Any, bins: Any, n_bins: int,
             split_at_doses: bool = True):
    if time not in _TIME_LABEL:
        raise DiagnosticsError(f"time={time!r}: use 'tafd' (time after first dose) or 'tad' (time after dose)")
    obs = observation_frame(fit)
    obs["X"] = obs["TAFD" if time == "tafd" else "TAD"]
    obs["STRATUM"], strat_name = _strata(fit, obs, stratify)
    keep = np.isfinite(obs["X"].to_numpy())
    cuts = common_dose_times(fit) if (time == "tafd" and split_at_doses) else ()
    obs["BIN"] = -1
    edges_by_stratum: dict[Any, np.ndarray] = {}
    for s in pd.unique(obs["STRATUM"]):
        m = (obs["STRATUM"] == s).to_numpy() & keep
        x = obs.loc[m, "X"].to_numpy()
        method = bins
        if isinstance(bins, str) and bins == "auto":
            many = np.unique(x).size > _AUTO_MAX_TIMES
            method = ("log-jenks" if time == "tad" else "quantile") if many else "time"
        edges = bin_edges(x, method, n_bins, cuts=cuts)
        edges_by_stratum[s] = edges
        obs.loc[m, "BIN"] = _assign(obs.loc[m, "X"].to_numpy(), edges)
    obs["FACTOR"] = 1.0
    if pred_corrected:
        pred = median_predictions(fit)["PRED"].to_numpy()
        obs["PRED"] = pred
        ok = np.isfinite(pred) & (pred > 0)
        obs.loc[~ok, "BIN"] = -1
        for (s, b), g in obs[obs["BIN"] >= 0].groupby(["STRATUM", "BIN"], sort=False):
            obs.loc[g.index, "FACTOR"] = np.median(g["PRED"]) / g["PRED"]
    return obs, edges_by_stratum, strat_name


def vpc_observations(
    fit: Any,
    *,
    time: str = "tafd",
    pred_corrected: bool = False,
    stratify: Any = None,
    bins: Any = "auto",
    n_bins: int = 8,
    split_at_doses: bool = True,
) -> pd.DataFrame:
    """The observations as a VPC shows them (points of :func:`~poppk.plots.plot_vpc`).

    Columns: ``ID``, ``X`` (the time axis), ``DV`` (prediction-corrected when
    asked; LLOQ on BLQ records), ``BLQ``, ``STRATUM``, ``BIN``.
    """
    obs, _, _ = _prepare(fit, time, pred_corrected, stratify, bins, n_bins, split_at_doses)
    out = obs.loc[obs["BIN"] >= 0, ["ID", "X", "DV", "BLQ", "STRATUM", "BIN"]].copy()
    out["DV"] = out["DV"] * obs.loc[out.index, "FACTOR"]
    return out.reset_index(drop=True)


def vpc_table(
    fit: Any,
    *,
    bins: Any = "auto",
    n_bins: int = 8,
    percentiles: Sequence[float] = (5, 50, 95),
    ci: float = 0.9,
    stratify: str | Callable[[pd.DataFrame], Any] | None = None,
    pred_corrected: bool = False,
    time: str = "tafd",
    n_draws: int = 200,
    seed: int = 0,
    simulations: Any = None,
    split_at_doses: bool = True,
) -> pd.DataFrame:
    """Binned (pc)VPC table: observed percentiles against their simulated distribution.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    bins, n_bins
        Binning of the time axis, see :func:`bin_edges` (computed per
        stratum).  Default ``"auto"``: one bin per distinct time for nominal
        designs (at most 20 times), otherwise ``n_bins`` bins: Jenks natural
        breaks of log time on the time-after-dose axis, quantile bins on the
        time-after-first-dose axis.
    percentiles
        Percentiles (0-100) of the concentrations per bin.
    ci
        Probability of the interval of each simulated percentile (the shaded
        band of the plot), e.g. 0.9 for the 5th-95th percentiles over
        replicates.
    stratify
        ``None``; a covariate column of ``fit.data.covariates`` (a numeric
        covariate with more than 6 distinct values is split at its median);
        ``"DOSE"`` (amount of the most recent dose); or a callable receiving
        the observation frame (``ID, TIME, TAFD, TAD, DOSE, DV, BLQ, ...`` and
        the covariates) and returning one label per observation.
    pred_corrected
        Prediction-corrected VPC (see module notes).
    time
        ``"tafd"`` (time after first dose) or ``"tad"`` (time after the most
        recent dose).
    n_draws
        Number of replicate studies.
    seed
        Seed of the simulation.
    simulations
        Replicates from :func:`simulate_observations` (``new_subjects=True``)
        to reuse instead of simulating.
    split_at_doses
        With ``time="tafd"`` and quantile or Jenks bins, make every dose time shared by
        at least half of the subjects a bin edge, so that no bin mixes
        pre-dose troughs with post-dose peaks (see :func:`bin_edges`).

    Returns
    -------
    pandas.DataFrame
        One row per (stratum, bin, percentile): ``strata, bin, bin_lower,
        bin_upper, bin_mid, n_obs, percentile, observed, observed_below_lloq,
        sim_median, sim_lower, sim_upper, outside`` (observed percentile
        outside the simulated interval), ``lloq`` (median LLOQ in the bin,
        prediction-corrected for a pcVPC), ``blq_observed`` (fraction),
        ``blq_sim_median, blq_sim_lower, blq_sim_upper``.  ``attrs`` holds the
        settings and axis labels with units.

    Examples
    --------
    >>> tab = vpc_table(fit, pred_corrected=True)          # doctest: +SKIP
    >>> tab.groupby("percentile")["outside"].mean()          # doctest: +SKIP
    """
    if not 0 < ci < 1:
        raise DiagnosticsError(f"ci must be in (0, 1), got {ci}")
    pct = np.asarray(percentiles, dtype=float)
    if pct.ndim != 1 or pct.size == 0 or np.any((pct < 0) | (pct > 100)):
        raise DiagnosticsError(f"percentiles must be numbers in [0, 100], got {percentiles!r}")
    obs, edges_by_stratum, strat_name = _prepare(fit, time, pred_corrected, stratify, bins, n_bins, split_at_doses)
    if simulations is None:
        simulations = simulate_observations(fit, n_draws=n_draws, new_subjects=True, seed=seed)
    y_rep = np.asarray(simulations["y_rep"].values, dtype=float)
    blq_rep = np.asarray(simulations["blq_rep"].values, dtype=bool)
    if y_rep.shape[1] != len(obs):
        raise DiagnosticsError(f"simulations have {y_rep.shape[1]} observations, the fit {len(obs)}")
    factor = obs["FACTOR"].to_numpy()
    y_obs = np.where(obs["BLQ"].to_numpy(), -np.inf, obs["DV"].to_numpy() * factor)
    y_sim = np.where(blq_rep, -np.inf, y_rep * factor[None, :])
    lloq = obs["LLOQ"].to_numpy() * factor
    alpha = (1 - ci) / 2
    rows = []
    for s in pd.unique(obs["STRATUM"]):
        edges = edges_by_stratum[s]
        for b in range(len(edges) - 1):
            m = ((obs["STRATUM"] == s) & (obs["BIN"] == b)).to_numpy()
            n = int(m.sum())
            if n == 0:
                continue
            o = censored_quantile(y_obs[m], pct / 100)  # (nq,)
            sim_p = censored_quantile(y_sim[:, m], pct / 100, axis=1)  # (nq, K)
            summ = censored_quantile(sim_p, [0.5, alpha, 1 - alpha], axis=1)  # (3, nq)
            frac_sim = blq_rep[:, m].mean(axis=1)
            fs = np.quantile(frac_sim, [0.5, alpha, 1 - alpha])
            ll = lloq[m]
            ll = float(np.median(ll[np.isfinite(ll)])) if np.isfinite(ll).any() else np.nan
            for j, p in enumerate(pct):
                out = bool(o[j] < summ[1, j] or o[j] > summ[2, j])
                rows.append(
                    {
                        "strata": s,
                        "bin": b,
                        "bin_lower": edges[b],
                        "bin_upper": edges[b + 1],
                        "bin_mid": float(obs.loc[m, "X"].mean()),
                        "n_obs": n,
                        "percentile": float(p),
                        "observed": o[j],
                        "observed_below_lloq": bool(np.isneginf(o[j])),
                        "sim_median": summ[0, j],
                        "sim_lower": summ[1, j],
                        "sim_upper": summ[2, j],
                        "outside": out,
                        "lloq": ll,
                        "blq_observed": float(obs.loc[m, "BLQ"].mean()),
                        "blq_sim_median": fs[0],
                        "blq_sim_lower": fs[1],
                        "blq_sim_upper": fs[2],
                    }
                )
    table = pd.DataFrame(rows)
    for c in ("observed", "sim_median", "sim_lower", "sim_upper"):
        table[c] = table[c].astype(float).replace(-np.inf, np.nan)
    units = unit_labels(fit)
    conc = "Prediction-corrected concentration" if pred_corrected else "Concentration"
    table.attrs.update(
        {
            "kind": "pcVPC" if pred_corrected else "VPC",
            "time": time,
            "x_label": f"{_TIME_LABEL[time]} ({units['time_unit']})",
            "y_label": f"{conc} ({units['concentration_unit']})",
            "y_labels": _analyte_labels(fit, obs, table, conc),
            "ci": float(ci),
            "n_draws": int(y_rep.shape[0]),
            "pred_corrected": bool(pred_corrected),
            "stratify": strat_name or "",
            "has_lloq": bool(np.isfinite(obs["LLOQ"]).any()),
            "n_excluded": int((obs["BIN"] < 0).sum()),
        }
    )
    return table
