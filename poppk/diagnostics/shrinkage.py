"""η- and ε-shrinkage (SD-based, Savic & Karlsson 2009, AAPS J 11:558).

* η-shrinkage of parameter P: ``1 − SD_i(E[η_iP | data]) / ω_P``, with the
  posterior mean of each subject's η and ω_P the posterior median of
  ``omega_P``.  (``method="variance"``: ``1 − Var_i(E[η_iP]) / ω_P²``.)
* ε-shrinkage: ``1 − SD(IWRES)`` over the quantified observations, IWRES from
  the posterior mean IPRED and the posterior median residual-error magnitudes
  (:func:`poppk.diagnostics.gof.iwres`).

High shrinkage (above 20–30%) makes plots of individual η against covariates
and of IPRED against DV uninformative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from poppk.diagnostics._common import DiagnosticsError, median_predictions, observation_frame
from poppk.model.analytes import error_terms

__all__ = ["shrinkage_table", "omega_point_estimates"]


def omega_point_estimates(fit: Any) -> dict[str, float]:
    """Posterior median of each ω (fixed values for fixed priors)."""
    post = fit.idata.posterior
    given = dict(fit.spec.omega)
    out = {}
    for p in fit.spec.iiv:
        name = f"omega_{p}"
        if name in post:
            out[p] = float(np.median(post[name].values))
        else:
            out[p] = float(given[p]["value"])
    return out


def shrinkage_table(fit: Any, *, method: str = "sd") -> pd.DataFrame:
    """η-shrinkage of every random effect and ε-shrinkage of the residuals.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    method
        ``"sd"`` (default) or ``"variance"`` for the η-shrinkage.

    Returns
    -------
    pandas.DataFrame
        Index: ``eta_<P>`` for each IIV parameter, then ``epsilon``.  Columns:
        ``kind`` (eta/epsilon), ``parameter``, ``sd`` (SD of the posterior
        mean η, or of IWRES), ``reference`` (ω, or 1 for ε), ``shrinkage``
        (fraction), ``shrinkage_pct``, ``n``.

    Examples
    --------
    >>> shrinkage_table(fit)["shrinkage_pct"]             # doctest: +SKIP
    """
    from poppk.diagnostics.gof import iwres

    if method not in ("sd", "variance"):
        raise DiagnosticsError(f"method={method!r}: use 'sd' or 'variance'")
    rows = []
    if fit.spec.iiv:
        eta_mean = fit.eta().mean(dim=("chain", "draw"))
        omega = omega_point_estimates(fit)
        for p in fit.spec.iiv:
            e = eta_mean.sel(iiv=p).values
            sd = float(np.std(e, ddof=1))
            sh = 1 - sd / omega[p] if method == "sd" else 1 - sd**2 / omega[p] ** 2
            rows.append({"name": f"eta_{p}", "kind": "eta", "parameter": p, "sd": sd,
                         "reference": omega[p], "shrinkage": sh, "n": int(e.size)})
    obs = observation_frame(fit)
    ip = median_predictions(fit)["IPRED_MEAN"].to_numpy()
    sig = {k: float(np.median(v)) for k, v in fit.sigma_draws().items()}
    sig_obs, error = error_terms(fit.spec, sig, fit.design.obs_analyte)
    w = iwres(obs["DV"].to_numpy(), ip, sig_obs, error)
    w = w[~obs["BLQ"].to_numpy() & np.isfinite(w)]
    sd = float(np.std(w, ddof=1)) if w.size > 1 else np.nan
    rows.append({"name": "epsilon", "kind": "epsilon", "parameter": fit.spec.error, "sd": sd,
                 "reference": 1.0, "shrinkage": 1 - sd, "n": int(w.size)})
    out = pd.DataFrame(rows).set_index("name")
    out["shrinkage_pct"] = 100 * out["shrinkage"]
    out.attrs["method"] = method
    return out
