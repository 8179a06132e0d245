"""The parameter table of a fit: structural, covariate, IIV and residual-error parameters.

Every number is computed from the posterior draws in ``fit.idata.posterior``
(pooled over chains): posterior median, equal-tailed credible interval,
RSE-like spread (posterior SD / |median|, in %), rank-normalised split R-hat
and bulk/tail ESS (ArviZ).  Inter-individual variability is reported both as
the SD ω of η (log scale) and as the CV% of the log-normal parameter,
``CV% = 100·sqrt(exp(ω²) − 1)``, computed draw by draw; η-shrinkage is
``1 − SD_i(E[η_i | data]) / ω`` (Savic & Karlsson 2009).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from poppk.report._common import covariate_unit, cv_from_sd, draws_2d, fixed_value, interval_stats
from poppk.model.spec import SIZE_FRACTION

__all__ = ["parameter_table", "PARAMETER_COLUMNS", "SECTIONS", "shrinkage_by_parameter"]

#: Section names, in table order.
SECTIONS = ("Structural", "Covariate effects", "Inter-individual variability", "Residual error")

#: Columns of :func:`parameter_table`, in order.
PARAMETER_COLUMNS = (
    "section", "parameter", "label", "unit", "median", "lower", "upper", "rse_pct",
    "cv_pct", "cv_lower", "cv_upper", "shrinkage_pct", "r_hat", "ess_bulk", "ess_tail", "fixed", "note",
)

CV_NOTE = "CV% = 100·sqrt(exp(ω²) − 1): the CV of a log-normal parameter with SD ω of η (log scale), per draw"


def _reference_text(c: Any, units: Mapping[str, str] | None) -> str:
    u = covariate_unit(c.covariate, units)
    if c.form == "categorical":
        return f"{c.covariate} ≠ {c.level}"
    if c.form == "adjusted":
        return (f"{c.covariate} = {c.reference:.6g}{(' ' + u) if u else ''}, "
                f"{c.base} = {c.base_reference:.6g}{(' ' + u) if u else ''}")
    return f"{c.covariate} = {c.reference:.6g}{(' ' + u) if u else ''}"


def _covariate_label(c: Any, units: Mapping[str, str] | None) -> tuple[str, str, str]:
    """(label, unit, note) of a covariate coefficient."""
    u = covariate_unit(c.covariate, units)
    ref = f"{c.reference:.6g}" if c.reference is not None else "median"
    ref_u = f"{ref} {u}" if u else ref
    if c.form == "power":
        return (f"{c.parameter} ~ {c.covariate}: exponent", "",
                f"{c.parameter} = TV·({c.covariate}/{ref_u})^β")
    if c.form == "adjusted":
        size = f"{c.base} + f·({c.covariate} − {c.base})"
        return (f"{c.parameter} ~ adjusted size: exponent", "",
                f"{c.parameter} = TV·(S/S_ref)^β, S = {size}, reference {_reference_text(c, units)}")
    if c.form == "exponential":
        return (f"{c.parameter} ~ {c.covariate}: exponential coefficient", f"1/{u}" if u else f"per unit {c.covariate}",
                f"{c.parameter} = TV·exp(β·({c.covariate} − {ref_u}))")
    if c.form == "linear":
        return (f"{c.parameter} ~ {c.covariate}: linear slope", f"1/{u}" if u else f"per unit {c.covariate}",
                f"{c.parameter} = TV·(1 + β·({c.covariate} − {ref_u}))")
    return (f"{c.parameter} ~ {c.covariate} = {c.level}: log ratio", "log ratio",
            f"{c.parameter} = TV·exp(β) if {c.covariate} = {c.level}")


def shrinkage_by_parameter(fit: Any) -> tuple[dict[str, float], float, str]:
    """η-shrinkage (%) by IIV parameter, ε-shrinkage (%) and the method used.

    From :func:`poppk.diagnostics.shrinkage_table` (SD-based).
    """
    from poppk.diagnostics.shrinkage import shrinkage_table

    tab = shrinkage_table(fit)
    eta = {str(r["parameter"]): float(r["shrinkage_pct"]) for _, r in tab.iterrows() if r["kind"] == "eta"}
    eps_rows = tab[tab["kind"] == "epsilon"]
    eps = float(eps_rows["shrinkage_pct"].iloc[0]) if len(eps_rows) else math.nan
    return eta, eps, "poppk.diagnostics.shrinkage_table (SD-based)"


def parameter_table(
    fit: Any,
    *,
    ci: float = 0.95,
    shrinkage: Any = None,
    covariate_units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Posterior summary of every population parameter, grouped in sections.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    ci
        Credible-interval mass (default 0.95, equal-tailed: 2.5th–97.5th
        percentiles of the draws).
    shrinkage
        ``None`` (default): η-shrinkage from :func:`shrinkage_by_parameter`;
        ``False``: leave it out; or a mapping ``{parameter: shrinkage %}``.
    covariate_units
        Unit labels of covariates (size descriptors default to kg, m², kg/m²).

    Returns
    -------
    pandas.DataFrame
        One row per parameter, columns :data:`PARAMETER_COLUMNS`:

        * ``section`` -- one of :data:`SECTIONS`;
        * ``parameter`` -- posterior variable (``CL``, ``beta_CL_TBW``,
          ``omega_CL``, ``corr_CL_V1``, ``sigma_prop``);
        * ``label``, ``unit`` -- readable name and unit ("CL (L/day)");
        * ``median``, ``lower``, ``upper`` -- posterior median and ``ci``
          interval, on the scale of ``unit`` (``sigma_prop`` in %);
        * ``rse_pct`` -- 100·posterior SD/|median|;
        * ``cv_pct``, ``cv_lower``, ``cv_upper`` -- IIV (and exponential
          residual error) as CV%, see ``attrs["notes"]``;
        * ``shrinkage_pct`` -- η-shrinkage (IIV rows), ε-shrinkage (residual rows);
        * ``r_hat``, ``ess_bulk``, ``ess_tail`` -- convergence diagnostics;
        * ``fixed`` -- the parameter was fixed (value in ``median``);
        * ``note`` -- the formula or reference subject.

        ``attrs``: ``ci``, ``notes`` (list of str), ``shrinkage_method``.

    Examples
    --------
    >>> parameter_table(fit)[["label", "median", "lower", "upper"]]   # doctest: +SKIP
    """
    if not 0 < ci < 1:
        from poppk.errors import ConfigError

        raise ConfigError(f"ci must be in (0, 1), got {ci!r}")
    spec = fit.spec
    post = fit.idata.posterior
    units = spec.unit
    rows: list[dict[str, Any]] = []

    def add(section: str, parameter: str, label: str, unit: str, draws: np.ndarray | None, *,
            value: float | None = None, scale: float = 1.0, cv: bool = False, shrink: float = math.nan,
            note: str = "") -> None:
        row: dict[str, Any] = {"section": section, "parameter": parameter, "label": label, "unit": unit}
        if draws is not None:
            st = interval_stats(draws, ci)
            row.update({k: st[k] * scale if k in ("median", "lower", "upper") else st[k]
                        for k in ("median", "lower", "upper", "rse_pct", "r_hat", "ess_bulk", "ess_tail")})
            row["fixed"] = False
            if cv:
                cst = interval_stats(cv_from_sd(draws), ci, diagnostics=False)
                row.update({"cv_pct": cst["median"], "cv_lower": cst["lower"], "cv_upper": cst["upper"]})
        else:
            row.update({"median": float(value) * scale, "fixed": True})  # type: ignore[arg-type]
            if cv:
                row["cv_pct"] = float(cv_from_sd(float(value)))  # type: ignore[arg-type]
        row["shrinkage_pct"] = shrink
        row["note"] = note
        rows.append(row)

    # structural
    for p, prior in spec.typical:
        u = units.get(p, "")
        refs = [_reference_text(c, covariate_units) for c in spec.covariates_on(p)]
        note = "typical value" + (f" at {', '.join(refs)}" if refs else "")
        label = f"{p} ({u})" if u else p
        if prior.is_fixed:
            add("Structural", p, label, u, None, value=fixed_value(prior), note=note)
        else:
            add("Structural", p, label, u, draws_2d(fit, p), note=note)

    # covariate effects
    for c in spec.covariates:
        label, u, note = _covariate_label(c, covariate_units)
        if c.prior.is_fixed:  # type: ignore[union-attr]
            add("Covariate effects", c.name, label, u, None, value=fixed_value(c.prior), note=note)
        else:
            add("Covariate effects", c.name, label, u, draws_2d(fit, c.name), note=note)
    if spec.size_fraction is not None:
        label = "size fraction f of IBW + f·(TBW − IBW)"
        note = "which size the PK follow: 0 = IBW, 0.4 = AIBW, 1 = TBW"
        if spec.size_fraction.is_fixed:
            add("Covariate effects", SIZE_FRACTION, label, "", None, value=fixed_value(spec.size_fraction), note=note)
        else:
            add("Covariate effects", SIZE_FRACTION, label, "", draws_2d(fit, SIZE_FRACTION), note=note)

    # inter-individual variability
    shrink: dict[str, float] = {}
    eps_shrink = math.nan
    method = ""
    if shrinkage is None and spec.iiv:
        shrink, eps_shrink, method = shrinkage_by_parameter(fit)
    elif isinstance(shrinkage, Mapping):
        shrink, method = {str(k): float(v) for k, v in shrinkage.items()}, "given"
    omega_given = dict(spec.omega)
    for p in spec.iiv:
        name = f"omega_{p}"
        label = f"IIV {p}: ω (SD of η)"
        note = "η ~ Normal(0, ω²) on the log scale"
        if omega_given[p].is_fixed:
            add("Inter-individual variability", name, label, "", None, value=fixed_value(omega_given[p]), cv=True,
                shrink=shrink.get(p, math.nan), note=note)
        else:
            add("Inter-individual variability", name, label, "", draws_2d(fit, name), cv=True,
                shrink=shrink.get(p, math.nan), note=note)
    if "omega_corr" in post and len(spec.iiv) > 1:
        corr = post["omega_corr"]
        dims = [d for d in corr.dims if d not in ("chain", "draw")]
        for i, a in enumerate(spec.iiv):
            for b in spec.iiv[i + 1:]:
                if dims[0] in corr.coords and dims[1] in corr.coords:
                    cell = corr.sel({dims[0]: a, dims[1]: b})
                else:
                    cell = corr.isel({dims[0]: i, dims[1]: spec.iiv.index(b)})
                x = cell.transpose("chain", "draw").values
                add("Inter-individual variability", f"corr_{a}_{b}", f"Correlation η {a}, η {b}", "",
                    np.asarray(x, dtype=np.float64), note="correlation of the random effects (LKJ prior)")

    # residual error
    sig_given = dict(spec.sigma)
    for k in spec.sigma_names:
        name = f"sigma_{k}"
        k, _, analyte = k.partition("_")  # "prop_DM4": the payload's proportional error
        if k == "prop":
            label, unit, scale, cv, note = "Proportional error σ (%)", "%", 100.0, False, "SD = σ·IPRED; shown ×100"
        elif k == "add":
            conc = units.get("concentration", "")
            if analyte:
                conc = next((a.unit for a in spec.analytes if a.name == analyte and a.unit), conc)
            label, unit, scale, cv, note = (f"Additive error σ ({conc})" if conc else "Additive error σ"), conc, 1.0, \
                False, "SD in concentration units"
            if spec.error == "combined":
                note = "SD = sqrt(σ_add² + (σ_prop·IPRED)²)"
        else:
            label, unit, scale, cv, note = "Exponential error σ (SD of log DV)", "", 1.0, True, \
                "log DV ~ Normal(log IPRED, σ²); CV% as for IIV"
        if analyte:
            label = f"{label} [{analyte}]"
        k = name[len("sigma_"):]
        if k in sig_given and sig_given[k].is_fixed:
            add("Residual error", name, label, unit, None, value=fixed_value(sig_given[k]), scale=scale, cv=cv,
                shrink=eps_shrink, note=note)
        else:
            add("Residual error", name, label, unit, draws_2d(fit, name), scale=scale, cv=cv, shrink=eps_shrink,
                note=note)

    out = pd.DataFrame(rows)
    for col in PARAMETER_COLUMNS:
        if col not in out.columns:
            out[col] = math.nan
    out = out[list(PARAMETER_COLUMNS)]
    out["fixed"] = out["fixed"].astype(bool)
    num = [c for c in PARAMETER_COLUMNS if c not in ("section", "parameter", "label", "unit", "fixed", "note")]
    out[num] = out[num].astype(np.float64)
    pct = f"{100 * ci:g}%"
    notes = [
        f"Median and {pct} equal-tailed credible interval of the posterior draws (all chains pooled).",
        "RSE% = 100·posterior SD/|posterior median| (the Bayesian analogue of NONMEM's relative standard error).",
        CV_NOTE + ".",
        "η-shrinkage = 1 − SD over subjects of the posterior mean η / ω (posterior median)."
        + (" ε-shrinkage = 1 − SD(IWRES), shown on the residual-error rows." if not math.isnan(eps_shrink) else ""),
        "R-hat: rank-normalised split R-hat; ESS: bulk and tail effective sample sizes (Vehtari et al. 2021).",
    ]
    out.attrs.update({"ci": ci, "notes": notes, "shrinkage_method": method})
    return out
