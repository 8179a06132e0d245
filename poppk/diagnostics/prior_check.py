"""Prior predictive checks: what the model's priors say about the observed design, before the data.

Every Bayesian workflow starts here (Gabry et al. 2019, J R Stat Soc A
182:389): draw the population parameters from the priors
(:func:`~poppk.diagnostics.predictive.prior_fit`), simulate replicate
studies of new subjects on the observed design (same subjects' covariates,
doses and sampling times; the simulator of the VPC,
:func:`~poppk.diagnostics.simulate.simulate_observations`) and compare them
with the data in a VPC (:func:`~poppk.diagnostics.vpc_table`).  Priors are
sensible when the simulated percentile bands cover the observations without
being absurdly wide (concentrations of 10⁶ mg/L or of 10⁻⁹ say the priors
allow impossible drugs); they are too narrow when the observations fall
outside the bands.

``poppk check FIT_DIR --out DIR --prior`` runs :func:`write_prior_checks`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from poppk.diagnostics._common import DiagnosticsError
from poppk.diagnostics.predictive import prior_fit
from poppk.diagnostics.simulate import simulate_observations
from poppk.diagnostics.vpc import vpc_observations, vpc_table

__all__ = ["prior_vpc_table", "prior_parameter_table", "write_prior_checks"]


def _prior(fit: Any, spec: Any, data: Any, n_draws: int, seed: int, prior: Any) -> Any:
    if prior is not None:
        return prior
    return prior_fit(fit, spec=spec, data=data, n_draws=n_draws, seed=seed)


def prior_vpc_table(
    fit: Any = None,
    *,
    spec: Any = None,
    data: Any = None,
    n_draws: int = 200,
    seed: int = 0,
    prior: Any = None,
    **vpc_kwargs: Any,
) -> pd.DataFrame:
    """Prior predictive VPC table on the observed design (the compute twin of the prior VPC figure).

    Parameters
    ----------
    fit
        A fitted model (its spec and data are used), or give ``spec`` and ``data``.
    spec, data
        A :class:`~poppk.model.ModelSpec` and :class:`~poppk.data.PKData`: no fit needed.
    n_draws
        Prior draws, one replicate study each.
    seed
        Seed of the prior draws and of the simulation.
    prior
        A :func:`~poppk.diagnostics.predictive.prior_fit` to reuse.
    **vpc_kwargs
        Passed to :func:`~poppk.diagnostics.vpc_table` (``time``, ``bins``,
        ``pred_corrected``, ``percentiles``, ``ci``, ...).

    Returns
    -------
    pandas.DataFrame
        The :func:`~poppk.diagnostics.vpc_table` columns; ``attrs["kind"]`` is
        ``"Prior predictive VPC"`` and ``attrs["prior"]`` True.

    Examples
    --------
    >>> from poppk.plots import plot_vpc                              # doctest: +SKIP
    >>> plot_vpc(prior_vpc_table(spec=spec, data=data), log_y=True)   # doctest: +SKIP
    """
    pf = _prior(fit, spec, data, n_draws, seed, prior)
    sims = simulate_observations(pf, n_draws=None, new_subjects=True, seed=seed)
    table = vpc_table(pf, simulations=sims, **vpc_kwargs)
    kind = "Prior predictive pcVPC" if vpc_kwargs.get("pred_corrected") else "Prior predictive VPC"
    table.attrs.update({"kind": kind, "prior": True})
    return table


def prior_parameter_table(prior: Any, *, ci: float = 0.9) -> pd.DataFrame:
    """Quantiles of the prior draws of the population parameters.

    Parameters
    ----------
    prior
        A :func:`~poppk.diagnostics.predictive.prior_fit`.
    ci
        Mass of the interval.

    Returns
    -------
    pandas.DataFrame
        Index ``parameter``; columns ``median``, ``lower``, ``upper``.
    """
    from poppk.model.fit import population_variables

    if not 0 < ci < 1:
        raise DiagnosticsError(f"ci must be in (0, 1), got {ci}")
    post = prior.idata.posterior
    rows = []
    for name in population_variables(prior.spec):
        v = post[name].values.ravel()
        lo, med, hi = np.quantile(v, [(1 - ci) / 2, 0.5, 1 - (1 - ci) / 2])
        rows.append({"parameter": name, "median": med, "lower": lo, "upper": hi})
    out = pd.DataFrame(rows).set_index("parameter")
    out.attrs["ci"] = float(ci)
    return out


def write_prior_checks(
    fit: Any,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = ("png",),
    *,
    n_draws: int = 200,
    seed: int = 0,
    bins: Any = "auto",
    n_bins: int = 10,
    dpi: int = 130,
) -> list[Path]:
    """Write the prior predictive checks of a fit's model and data (``poppk check --prior``).

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` (only its spec and data are used).
    out_dir
        Output directory (created if needed).
    formats
        Figure formats (``"png"``, ``"svg"``, ``"pdf"``).
    n_draws
        Prior draws (replicate studies).
    seed
        Seed.
    bins, n_bins
        VPC binning (see :func:`~poppk.diagnostics.vpc_table`).
    dpi
        Resolution of raster figures.

    Returns
    -------
    list of pathlib.Path
        Tables ``prior_parameters.csv``, ``prior_vpc.csv``; figures
        ``prior_vpc_log`` (log concentration axis: prior replicates span
        decades) and ``prior_vpc``.
    """
    from poppk import plots
    from poppk.diagnostics.check_files import FIGURE_FORMATS, _csv, _fig

    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats:
        raise DiagnosticsError(f"figure formats {bad or list(formats)}: choose from {FIGURE_FORMATS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pf = prior_fit(fit, n_draws=n_draws, seed=seed)
    tables = [_csv(prior_parameter_table(pf), out / "prior_parameters.csv", index=True)]
    tab = prior_vpc_table(prior=pf, seed=seed, bins=bins, n_bins=n_bins)
    tables.append(_csv(tab, out / "prior_vpc.csv"))
    obs = vpc_observations(pf, bins=bins, n_bins=n_bins)
    figures = []
    for name, log in (("prior_vpc_log", True), ("prior_vpc", False)):
        fig = plots.plot_vpc(tab, obs, log_y=log)
        figures += [_fig(fig, out / f"{name}.{fmt}", fmt, dpi) for fmt in formats]
    return tables + figures
