"""Covariate effects on parameters and exposure, as ratios to the typical subject (forest plots).

For each covariate of the model, a *reference subject* has every covariate at
its reference value (the ``reference`` of the effect, by default the dataset
median; for a categorical covariate the categories that receive no effect).
The table gives, for subjects at the 5th and 95th percentiles of a continuous
covariate in the data (or in each category of a categorical one), all other
covariates at reference and η = 0, the ratio of each parameter to the
reference subject's, draw by draw:

    ratio_P = exp(Σ_c log f_c(x) − log f_c(x_ref))

(:func:`poppk.model.parameters.covariate_log_effect`), summarised by the
posterior median and an equal-tailed credible interval (90% by default).

Exposure ratios (linear PK):

* **AUC, flat dose**: ``AUC = Dose/CL`` so the ratio is ``1/ratio_CL``;
* **AUC, mg/kg dose** (``dosing`` includes ``"per_kg"``; rows for the dosing
  weight TBW/WT only): ``AUC ∝ TBW/CL``, ratio ``(TBW/TBW_ref)/ratio_CL``;
* **Cmax** (approximate): ``Cmax ≈ Dose/V1`` (bolus or short infusion, peak
  dominated by the central volume), ratio ``1/ratio_V1`` (× weight ratio for
  mg/kg dosing).

The columns follow coveffectsplot (``paramname, covname, label, mid, lower,
upper``); a ratio whose credible interval lies inside 0.8–1.25 is commonly
read as not clinically relevant.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from poppk.model.parameters import _indicator, covariate_log_effect, population_draws
from poppk.model.spec import SIZE_FRACTION
from poppk.report._common import covariate_unit, fmt_number

__all__ = ["covariate_effects", "COVARIATE_COLUMNS", "REFERENCE_BAND"]

#: Columns of :func:`covariate_effects`, in order.
COVARIATE_COLUMNS = (
    "paramname", "covname", "label", "mid", "lower", "upper", "reference", "value", "percentile",
    "covariate_unit", "kind", "dosing", "in_band", "note",
)

#: The conventional no-relevant-effect band of a ratio.
REFERENCE_BAND = (0.8, 1.25)

_WEIGHT_COVARIATES = ("TBW", "WT")
_DOSING = ("flat", "per_kg")


def _coefficient_draws(fit: Any, name: str, prior: Any) -> np.ndarray:
    return population_draws(fit.spec, fit.idata.posterior, [name])[name]


def _log_effect(effect: Any, beta: np.ndarray, value: float, fraction: np.ndarray | None,
                vary_base: bool = False) -> np.ndarray:
    """Log effect at ``value``.

    An adjusted size effect varies its upper size (TBW) with the lower one
    (IBW) at its reference, or with ``vary_base`` the lower size with TBW at
    its reference: the adjusted model's weight effect and its height (IBW)
    effect shown apart.
    """
    if effect.form == "adjusted":
        total, base = (effect.reference, value) if vary_base else (value, effect.base_reference)
        return np.asarray(covariate_log_effect(effect, beta, total, base=base, fraction=fraction))
    return np.asarray(covariate_log_effect(effect, beta, value))


def _scenarios(fit: Any, covariate: str, effects: Sequence[Any], percentiles: Sequence[float],
               units: Mapping[str, str] | None) -> list[dict[str, Any]]:
    """Covariate subjects to compare with the reference: value, label and per-effect log ratio draws."""
    data_cov = fit.data.covariates
    if covariate not in data_cov.columns:
        from poppk.errors import ModelSpecError

        raise ModelSpecError(f"covariate {covariate!r} of the model is not in the fit's data covariates "
                             f"{list(data_cov.columns)}")
    col = data_cov[covariate]
    betas = {e.name: _coefficient_draws(fit, e.name, e.prior) for e in effects}
    fraction = None
    if any(e.form == "adjusted" for e in effects):
        fraction = _coefficient_draws(fit, SIZE_FRACTION, fit.spec.size_fraction)
    unit = covariate_unit(covariate, units)
    out = []
    if effects[0].form == "categorical":
        values = pd.unique(col.dropna().to_numpy())
        levels: list[Any] = []
        for e in effects:
            if not any(_same_level(e.level, lev) for lev in levels):
                levels.append(e.level)
        in_ref = np.ones(len(values), dtype=bool)
        for lev in levels:
            in_ref &= _indicator(values, lev) == 0
        ref_values = [str(v) for v in values[in_ref]]
        ref_text = ", ".join(ref_values) if ref_values else "other"
        for lev in levels:
            log_ratio = {e.name: betas[e.name] * float(_same_level(e.level, lev)) for e in effects}
            out.append({"value": str(lev), "reference": ref_text, "percentile": math.nan, "unit": unit,
                        "label": f"{covariate} = {lev} vs {ref_text}", "log_ratio": log_ratio,
                        "weight_ratio": math.nan})
        return out
    x = col.astype(float).dropna().to_numpy()
    vary_base = effects[0].form == "adjusted" and covariate == effects[0].base
    ref_value = effects[0].base_reference if vary_base else effects[0].reference
    ref = float(ref_value if ref_value is not None else np.median(x))
    qs = np.percentile(x, list(percentiles)) if x.size else [math.nan] * len(percentiles)
    for pct, v in zip(percentiles, qs):
        v = float(v)
        log_ratio = {e.name: np.asarray(_log_effect(e, betas[e.name], v, fraction, vary_base)
                                        - _log_effect(e, betas[e.name], ref, fraction, vary_base), dtype=np.float64)
                     for e in effects}
        ordinal = _ordinal(pct)
        out.append({"value": v, "reference": ref, "percentile": float(pct), "unit": unit,
                    "label": f"{covariate} {fmt_number(v)}{(' ' + unit) if unit else ''} ({ordinal} pct)",
                    "log_ratio": log_ratio,
                    "weight_ratio": v / ref if covariate.upper() in _WEIGHT_COVARIATES else math.nan})
    return out


def _same_level(a: Any, b: Any) -> bool:
    return bool(_indicator(np.asarray([a], dtype=object), b)[0])


def _ordinal(p: float) -> str:
    n = int(p) if float(p).is_integer() else p
    if not isinstance(n, int):
        return f"{n:g}th"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def covariate_effects(
    fit: Any,
    *,
    metrics: Iterable[str] | None = None,
    exposure: bool = True,
    ci: float = 0.90,
    percentiles: Sequence[float] = (5, 95),
    dosing: Iterable[str] = ("flat",),
    covariate_units: Mapping[str, str] | None = None,
    band: tuple[float, float] = REFERENCE_BAND,
) -> pd.DataFrame:
    """Effect of each covariate on parameters and exposure, as ratios to the reference subject.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    metrics
        Structural parameters to report (default: every parameter with a
        covariate effect, in model order).  A covariate appears only for the
        parameters it acts on.
    exposure
        Add exposure ratios: ``AUC`` (∝ Dose/CL) and ``Cmax`` (≈ Dose/V1).
    ci
        Credible-interval mass (default 0.90: 5th–95th percentiles of the draws).
    percentiles
        Percentiles of a continuous covariate in the data to compare with
        the reference (default 5th and 95th).
    dosing
        Dose assumptions of the exposure rows: ``"flat"`` (same dose for all,
        default) and/or ``"per_kg"`` (dose ∝ total body weight; rows only for
        the covariates TBW/WT, since other covariates at reference leave the
        weight unchanged).
    covariate_units
        Unit labels of covariates (size descriptors default to kg, m², kg/m²).
    band
        Reference band for ``in_band``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COVARIATE_COLUMNS`: ``paramname`` (parameter, or
        exposure metric with its dose assumption), ``covname``, ``label``
        (the compared subject), ``mid``, ``lower``, ``upper`` (posterior
        median and ``ci`` interval of the ratio), ``reference`` (reference
        value or categories), ``value`` (compared value or category),
        ``percentile``, ``covariate_unit``, ``kind`` (``parameter`` or
        ``exposure``), ``dosing``, ``in_band`` (interval inside ``band``),
        ``note``.  ``attrs``: ``ci``, ``band``, ``percentiles``, ``notes``.

    Examples
    --------
    >>> covariate_effects(fit)[["paramname", "label", "mid", "lower", "upper"]]   # doctest: +SKIP
    """
    from poppk.errors import ConfigError

    if not 0 < ci < 1:
        raise ConfigError(f"ci must be in (0, 1), got {ci!r}")
    dosing = tuple(dosing)
    bad = [d for d in dosing if d not in _DOSING]
    if bad:
        raise ConfigError(f"dosing {bad}: valid values are {_DOSING}")
    spec = fit.spec
    with_effects = [p for p in spec.parameters if spec.covariates_on(p)]
    metrics = list(metrics) if metrics is not None else with_effects
    unknown = [m for m in metrics if m not in spec.parameters]
    if unknown:
        raise ConfigError(f"metrics {unknown} are not parameters of the model {spec.parameters}")
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2

    groups: dict[tuple[str, bool], list[Any]] = {}
    for c in spec.covariates:
        groups.setdefault((c.covariate, c.form == "categorical"), []).append(c)
        if c.form == "adjusted":  # the adjusted size also moves with IBW (height): shown as its own covariate
            groups.setdefault((c.base, False), []).append(c)
    scenarios = {key: _scenarios(fit, key[0], effs, percentiles, covariate_units) for key, effs in groups.items()}

    def log_ratio(key: tuple[str, bool], sc: dict[str, Any], param: str) -> np.ndarray | None:
        terms = [sc["log_ratio"][e.name] for e in groups[key] if e.parameter == param]
        return np.sum(terms, axis=0) if terms else None

    rows: list[dict[str, Any]] = []

    def add(paramname: str, key: tuple[str, bool], sc: dict[str, Any], ratio: np.ndarray, kind: str,
            dose: str, note: str) -> None:
        ratio = np.asarray(ratio, dtype=np.float64)
        mid, lo, hi = (float(v) for v in np.quantile(ratio, [0.5, lo_q, hi_q]))
        rows.append({
            "paramname": paramname, "covname": key[0], "label": sc["label"], "mid": mid, "lower": lo, "upper": hi,
            "reference": sc["reference"], "value": sc["value"], "percentile": sc["percentile"],
            "covariate_unit": sc["unit"], "kind": kind, "dosing": dose,
            "in_band": bool(lo >= band[0] and hi <= band[1]), "note": note,
        })

    for p in metrics:
        for key, scs in scenarios.items():
            for sc in scs:
                lr = log_ratio(key, sc, p)
                if lr is not None:
                    add(p, key, sc, np.exp(lr), "parameter", "",
                        f"{p} of the subject / {p} of the reference subject (η = 0)")
    if exposure:
        clear, vol = "CL", "V1"
        exposure_defs = (
            ("AUC", clear, "AUC = Dose/CL (linear PK)"),
            ("Cmax", vol, "Cmax ≈ Dose/V1 (approximation: bolus or short infusion)"),
        )
        for metric, param, formula in exposure_defs:
            for dose in dosing:
                for key, scs in scenarios.items():
                    for sc in scs:
                        lr = log_ratio(key, sc, param)
                        if dose == "flat":
                            if lr is None:
                                continue
                            add(f"{metric} (flat dose)", key, sc, np.exp(-lr), "exposure", "flat",
                                f"{formula}; same dose for every subject")
                        else:
                            w = sc["weight_ratio"]
                            if not np.isfinite(w):
                                continue
                            base = np.exp(-lr) if lr is not None else np.ones_like(
                                next(iter(sc["log_ratio"].values())))
                            add(f"{metric} (mg/kg dose)", key, sc, w * base, "exposure", "per_kg",
                                f"{formula}; dose ∝ body weight {key[0]}, ratio = weight ratio × 1/{param} ratio")
    out = pd.DataFrame(rows, columns=list(COVARIATE_COLUMNS))
    pct = f"{100 * ci:g}%"
    out.attrs.update({
        "ci": ci, "band": tuple(band), "percentiles": tuple(float(p) for p in percentiles),
        "notes": [
            f"Ratio to the reference subject (every covariate at its reference, η = 0): posterior median and "
            f"{pct} equal-tailed credible interval.",
            f"Continuous covariates: subjects at the {', '.join(_ordinal(p) for p in percentiles)} percentiles "
            "of the covariate in the data; categorical covariates: each category with an effect vs the others.",
            "AUC = Dose/CL (linear PK); flat dose: AUC ratio = 1/CL ratio"
            + ("; mg/kg dosing: AUC ratio = (weight ratio)/(CL ratio)" if "per_kg" in dosing else "") + ".",
            "Cmax ≈ Dose/V1 (approximation for a bolus or short infusion): Cmax ratio = 1/V1 ratio.",
            f"Reference band {band[0]:g}–{band[1]:g}: a ratio whose interval lies inside it is commonly read "
            "as not clinically relevant.",
        ],
    })
    return out
