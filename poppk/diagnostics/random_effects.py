"""Random effects: per-subject η with covariates, η-covariate relations, η distribution.

η are the log-scale deviations of each subject's parameter from its typical
value *given the covariates in the model*, summarised by the posterior mean
(``fit.eta()``).  A trend of η against a covariate not in the model (e.g.
η_CL against weight) points to a missing covariate effect; read it with the
η-shrinkage in mind (:mod:`poppk.diagnostics.shrinkage`): shrunk η hide and
distort relationships.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from poppk.diagnostics._common import DiagnosticsError

__all__ = ["eta_table", "eta_covariate_table", "eta_distribution_table", "is_continuous", "level_labels"]


def level_labels(values: Any) -> np.ndarray:
    """Category labels as text; whole-number floats lose their ``.0`` (SEX 1.0 -> "1")."""
    out = []
    for v in pd.Series(values).tolist():
        if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
            v = int(v)
        out.append(str(v))
    return np.array(out, dtype=object)


def is_continuous(values: Any, max_levels: int = 5) -> bool:
    """Numeric with more than ``max_levels`` distinct values."""
    num = pd.to_numeric(pd.Series(values), errors="coerce")
    return bool(num.notna().all() and num.nunique() > max_levels)


def eta_table(fit: Any) -> pd.DataFrame:
    """Posterior mean (and SD) of each subject's η, with its covariates.

    Returns
    -------
    pandas.DataFrame
        One row per subject, index ``ID``: ``eta_<P>`` (posterior mean),
        ``eta_<P>_sd`` (posterior SD) for each IIV parameter, then every
        column of ``fit.data.covariates``.  ``attrs`` holds ``omega`` and
        ``shrinkage`` (percent) per parameter.
    """
    from poppk.diagnostics.shrinkage import omega_point_estimates, shrinkage_table

    if not fit.spec.iiv:
        raise DiagnosticsError("the model has no random effects (iiv=())")
    eta = fit.eta()
    mean = eta.mean(dim=("chain", "draw"))
    sd = eta.std(dim=("chain", "draw"), ddof=1)
    ids = list(fit.design.subject_ids)
    out = pd.DataFrame(index=pd.Index(ids, name="ID"))
    for p in fit.spec.iiv:
        out[f"eta_{p}"] = mean.sel(iiv=p).values
        out[f"eta_{p}_sd"] = sd.sel(iiv=p).values
    cov = fit.data.covariates
    if len(cov.columns):
        cov = cov.loc[ids]
        for c in cov.columns:
            out[c] = cov[c].to_numpy()
    sh = shrinkage_table(fit)
    out.attrs["omega"] = omega_point_estimates(fit)
    out.attrs["shrinkage"] = {p: float(sh.loc[f"eta_{p}", "shrinkage_pct"]) for p in fit.spec.iiv}
    out.attrs["parameters"] = list(fit.spec.iiv)
    out.attrs["covariates"] = [str(c) for c in cov.columns]
    out.attrs["units"] = {str(k): str(v) for k, v in _covariate_units(cov.columns).items()}
    return out


def _covariate_units(columns: Any) -> dict[str, str]:
    known = {"WT": "kg", "TBW": "kg", "IBW": "kg", "AIBW": "kg", "LBW": "kg", "FFM": "kg", "HT": "cm",
             "BSA": "m²", "BMI": "kg/m²", "AGE": "y", "ALB": "g/dL", "CRCL": "mL/min"}
    return {c: known[str(c).upper()] for c in columns if str(c).upper() in known}


def eta_covariate_table(fit_or_table: Any) -> pd.DataFrame:
    """Relation of each η with each covariate.

    Continuous covariates (numeric, more than 5 values): Pearson correlation
    ``r``, least-squares ``slope`` and ``intercept`` of η on the covariate and
    the p-value of the slope (t-test, as :func:`scipy.stats.linregress`),
    Spearman ``rho`` and its p-value.  Categorical covariates: mean η per
    level (``levels``), and the p-value of a one-way ANOVA.

    Parameters
    ----------
    fit_or_table
        A Fit or the output of :func:`eta_table`.

    Returns
    -------
    pandas.DataFrame
        One row per (parameter, covariate): ``parameter, covariate, type, n,
        r, slope, intercept, p_value, rho, rho_p_value, levels``.
    """
    tab = fit_or_table if isinstance(fit_or_table, pd.DataFrame) else eta_table(fit_or_table)
    params = tab.attrs.get("parameters") or [c[4:] for c in tab.columns if c.startswith("eta_") and not c.endswith("_sd")]
    covs = tab.attrs.get("covariates") or [c for c in tab.columns if not c.startswith("eta_")]
    rows = []
    for p in params:
        e_all = tab[f"eta_{p}"].to_numpy(dtype=float)
        for c in covs:
            x_raw = tab[c]
            ok = x_raw.notna().to_numpy() & np.isfinite(e_all)
            row: dict[str, Any] = {"parameter": p, "covariate": c, "n": int(ok.sum())}
            if is_continuous(x_raw[ok]):
                x = pd.to_numeric(x_raw[ok]).to_numpy(dtype=float)
                e = e_all[ok]
                lr = stats.linregress(x, e)
                sp = stats.spearmanr(x, e)
                row.update({"type": "continuous", "r": float(lr.rvalue), "slope": float(lr.slope),
                            "intercept": float(lr.intercept), "p_value": float(lr.pvalue),
                            "rho": float(sp.statistic), "rho_p_value": float(sp.pvalue), "levels": ""})
            else:
                groups = pd.Series(e_all[ok]).groupby(level_labels(x_raw[ok]))
                means = groups.mean()
                samples = [g.to_numpy() for _, g in groups]
                p_val = (float(stats.f_oneway(*samples).pvalue)
                         if len(samples) > 1 and all(len(s) > 1 for s in samples) else np.nan)
                row.update({"type": "categorical", "r": np.nan, "slope": np.nan, "intercept": np.nan,
                            "p_value": p_val, "rho": np.nan, "rho_p_value": np.nan,
                            "levels": "; ".join(f"{k}: {v:+.3f} (n={len(groups.get_group(k))})" for k, v in means.items())})
            rows.append(row)
    cols = ["parameter", "covariate", "type", "n", "r", "slope", "intercept", "p_value", "rho", "rho_p_value", "levels"]
    return pd.DataFrame(rows, columns=cols)


def eta_distribution_table(fit_or_table: Any) -> pd.DataFrame:
    """Summary of each η distribution (posterior means across subjects).

    Columns: ``omega`` (posterior median ω), ``mean``, ``sd``, ``shrinkage_pct``,
    ``skewness``, ``shapiro_p`` (Shapiro-Wilk test of normality), ``n``;
    index: the IIV parameters.
    """
    tab = fit_or_table if isinstance(fit_or_table, pd.DataFrame) else eta_table(fit_or_table)
    rows = {}
    for p in tab.attrs.get("parameters", []):
        e = tab[f"eta_{p}"].to_numpy(dtype=float)
        e = e[np.isfinite(e)]
        rows[p] = {
            "omega": tab.attrs.get("omega", {}).get(p, np.nan),
            "mean": float(e.mean()),
            "sd": float(e.std(ddof=1)) if e.size > 1 else np.nan,
            "shrinkage_pct": tab.attrs.get("shrinkage", {}).get(p, np.nan),
            "skewness": float(stats.skew(e)) if e.size > 2 else np.nan,
            "shapiro_p": float(stats.shapiro(e).pvalue) if e.size >= 3 else np.nan,
            "n": int(e.size),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "parameter"
    return out
