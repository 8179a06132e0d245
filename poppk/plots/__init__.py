"""Figures: one ``plot_*`` per figure, each drawing a table computed by
:mod:`poppk.diagnostics` (plots do no statistics beyond trend lines).

Every function returns a :class:`matplotlib.figure.Figure` made without
pyplot (Agg canvas): save it with ``fig.savefig(path)``; in Jupyter it is
shown inline.
"""

from __future__ import annotations

from poppk.plots.gof import (
    plot_dv_vs_ipred,
    plot_dv_vs_pred,
    plot_gof,
    plot_individual_fits,
    plot_residuals,
)
from poppk.plots.loo import plot_compare, plot_pareto_k
from poppk.plots.npde import plot_npde
from poppk.plots.pit import plot_loo_pit
from poppk.plots.random_effects import plot_eta_covariates, plot_eta_distributions
from poppk.plots.vpc import plot_vpc

__all__ = [
    "plot_vpc",
    "plot_gof",
    "plot_dv_vs_pred",
    "plot_dv_vs_ipred",
    "plot_residuals",
    "plot_individual_fits",
    "plot_npde",
    "plot_eta_distributions",
    "plot_eta_covariates",
    "plot_compare",
    "plot_pareto_k",
    "plot_loo_pit",
]
