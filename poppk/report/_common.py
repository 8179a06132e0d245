"""Helpers shared by the report modules: posterior draws, interval statistics, units, number formatting."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = [
    "SIZE_UNITS",
    "covariate_unit",
    "draws_2d",
    "interval_stats",
    "cv_from_sd",
    "fmt_number",
    "fixed_value",
]

#: Units of the body-size descriptors as :mod:`poppk.bodysize` computes them.
SIZE_UNITS: dict[str, str] = {
    "TBW": "kg",
    "WT": "kg",
    "IBW": "kg",
    "AIBW": "kg",
    "LBW": "kg",
    "FFM": "kg",
    "BSA": "m²",
    "BMI": "kg/m²",
    "HT": "cm",
}


def covariate_unit(name: str, overrides: Mapping[str, str] | None = None) -> str:
    """Unit label of a covariate: ``overrides`` first, then the size descriptors, else ``""``."""
    if overrides and name in overrides:
        return str(overrides[name])
    return SIZE_UNITS.get(str(name).upper(), "")


def draws_2d(fit: Any, name: str) -> np.ndarray:
    """Posterior draws of a scalar variable as a ``(chain, draw)`` float array."""
    da = fit.idata.posterior[name]
    return np.asarray(da.transpose("chain", "draw").values, dtype=np.float64)


def fixed_value(prior: Any) -> float:
    """The value of a fixed prior."""
    return float(prior["value"])


def cv_from_sd(omega: Any) -> Any:
    """CV% of a log-normal variable with log-scale SD ``omega``: ``100·sqrt(exp(ω²) − 1)``."""
    return 100.0 * np.sqrt(np.expm1(np.square(omega)))


def interval_stats(x: np.ndarray, ci: float, *, diagnostics: bool = True) -> dict[str, float]:
    """Median, equal-tailed ``ci`` interval, SD, RSE% and (optionally) R-hat and ESS of draws.

    Parameters
    ----------
    x
        Draws, shape ``(chain, draw)``.
    ci
        Interval mass (0.95: 2.5th and 97.5th percentiles).
    diagnostics
        Compute rank-normalised split R-hat and bulk/tail ESS (ArviZ).
    """
    import arviz as az

    x = np.asarray(x, dtype=np.float64)
    v = x.ravel()
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    med = float(np.median(v))
    sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
    out = {
        "median": med,
        "lower": float(np.quantile(v, lo_q)),
        "upper": float(np.quantile(v, hi_q)),
        "sd": sd,
        "rse_pct": 100.0 * sd / abs(med) if med != 0 else math.nan,
        "r_hat": math.nan,
        "ess_bulk": math.nan,
        "ess_tail": math.nan,
    }
    if diagnostics and x.ndim == 2 and np.ptp(v) > 0:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["r_hat"] = float(az.rhat(x))
            out["ess_bulk"] = float(az.ess(x, method="bulk"))
            out["ess_tail"] = float(az.ess(x, method="tail"))
    return out


def fmt_number(x: Any, sig: int = 3) -> str:
    """A number with ``sig`` significant digits, fixed-point where readable; ``"–"`` for missing."""
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):d}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e6:
        decimals = max(0, sig - 1 - int(math.floor(math.log10(a))))
        text = f"{v:.{decimals}f}"
    else:
        text = f"{v:.{sig - 1}e}"
    return text.replace("-", "−")
