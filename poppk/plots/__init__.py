"""Figures: one ``plot_*`` per figure, each drawing a table computed by
:mod:`poppk.diagnostics`, :mod:`poppk.simulate`, :mod:`poppk.report` (the
forest plot) or :mod:`poppk.forecast` (plots do no statistics
beyond trend lines).

The diagnostics figures and the forest plot return a
:class:`matplotlib.figure.Figure` made without pyplot (Agg canvas): save it
with ``fig.savefig(path)``; in Jupyter it is shown inline.  The
dosing-strategy figures (:mod:`poppk.plots.strategies`, loaded on first use)
and a patient's forecast figures (:mod:`poppk.plots.forecast`) draw on an
``Axes`` and return it.
"""

from __future__ import annotations

from typing import Any

from poppk.plots.forecast import plot_exposure, plot_forecast_curve
from poppk.plots.forest import plot_forest
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

_STRATEGY_PLOTS = ("plot_exposure_by_strategy", "plot_exposure_vs_weight", "plot_variance_ratio",
                   "plot_model_answers", "plot_incidence", "plot_exposure_response")

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
    "plot_forest",
    "plot_forecast_curve",
    "plot_exposure",
    *_STRATEGY_PLOTS,
]


def __getattr__(name: str) -> Any:
    # the strategy figures import poppk.simulate, which imports them: loaded on first use, not here
    if name in _STRATEGY_PLOTS:
        from poppk.plots import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'poppk.plots' has no attribute {name!r}")
