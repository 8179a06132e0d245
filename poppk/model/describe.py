"""A readable description of a :class:`~poppk.model.spec.ModelSpec`: structure and every prior."""

from __future__ import annotations

from typing import Any

from poppk.model.analytes import analyte_unit
from poppk.model.effects import SIZE_FRACTION
from poppk.model.priors import Prior

__all__ = ["describe_spec"]


def describe_spec(spec: Any) -> str:
    """A readable table of the model and every prior with its 90% interval."""
    u = spec.unit
    lines = [
        f"ModelSpec: {spec.structure} "
        + ("linear PK" if spec.elimination == "linear" else f"PK with {spec.elimination} elimination (ODE)")
        + (f", first-order absorption{' with lag' if spec.lag else ''}" if spec.absorption else ", IV dosing"),
        f"  residual error: {spec.error}; BLQ: {spec.blq.upper()}; IIV: {', '.join(spec.iiv) or 'none'} "
        f"({spec.iiv_correlation}, {spec.parametrization})",
        *([f"  analytes: {spec.analytes[0].name} (DVID {spec.analytes[0].dvid})"
           + "".join(f", {a.name} (DVID {a.dvid}) formed from {a.source} × {a.scale:g}" for a in spec.analytes[1:])]
          if spec.analytes else []),
        *([f"  per record (value carried forward from its record's time): {', '.join(spec.time_varying)}"]
          if spec.time_varying else []),
        *([f"  inter-occasion variability on {', '.join(p for p, _ in spec.iov)}, occasions from column "
           f"{spec.occasion}"] if spec.iov else []),
        "",
        f"  {'quantity':<22}{'prior':<38}{'90% prior interval':<24}unit",
    ]

    def row(name: str, prior: Prior, unit: str = "") -> None:
        lo, hi = prior.interval(0.9)
        lines.append(f"  {name:<22}{str(prior):<38}{f'{lo:.3g} – {hi:.3g}':<24}{unit}")

    for k, p in spec.typical:
        row(k, p, u.get(k, ""))
    for c in spec.covariates:
        desc = {
            "power": f"({c.covariate}/{c.reference if c.reference is not None else 'median'})^beta",
            "exponential": f"exp(beta·({c.covariate}-{c.reference if c.reference is not None else 'median'}))",
            "linear": f"1+beta·({c.covariate}-{c.reference if c.reference is not None else 'median'})",
            "categorical": f"exp(beta) if {c.covariate}=={c.level!r}",
            "adjusted": f"(({c.base}+f·({c.covariate}-{c.base}))/ref)^beta",
        }[c.form]
        row(c.name, c.prior, desc)  # type: ignore[arg-type]
    if spec.size_fraction is not None:
        row(SIZE_FRACTION, spec.size_fraction, "f of IBW+f·(TBW-IBW): 0 IBW, 0.4 AIBW, 1 TBW")
    for k, p in spec.omega:
        row(f"omega_{k}", p, "SD of eta (log scale)")
    for k, p in spec.iov:
        row(f"omega_iov_{k}", p, "SD of kappa per occasion (log scale)")
    if spec.iiv_correlation == "full":
        lines.append(f"  {'corr(eta)':<22}{f'lkj(eta={spec.lkj_eta:g})':<38}")
    sig = dict(spec.sigma)
    for k in spec.sigma_names:
        if k in sig:
            row(f"sigma_{k}", sig[k], analyte_unit(spec, k.partition("_")[2] or None) if k.startswith("add") else "fraction")
        else:
            default = (f"halfnormal(sigma=median DV{' of ' + k.partition('_')[2] if '_' in k else ''})"
                       if k.startswith("add") else "halfnormal(sigma=0.5)")
            lines.append(f"  {f'sigma_{k}':<22}{default:<38}{'(default)':<24}")
    return "\n".join(lines)
