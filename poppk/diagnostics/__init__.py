"""Model checking from the posterior: posterior predictive simulation, VPC/pcVPC,
goodness of fit, NPDE, shrinkage, random effects and PSIS-LOO; ArviZ's
predictive groups on a fit and LOO-PIT; predictions for new subjects; prior predictive checks.

Each check is a compute function returning a table (pandas/xarray); the
matching figure is drawn by :mod:`poppk.plots` from that table.
:func:`write_checks` writes every table (CSV) and figure (PNG/SVG) of a fit.

>>> from poppk.model import load_fit                       # doctest: +SKIP
>>> from poppk.diagnostics import vpc_table, npde_table, npde_tests
>>> fit = load_fit("fit_dir")                              # doctest: +SKIP
>>> npde_tests(npde_table(fit))                            # doctest: +SKIP
"""

from __future__ import annotations

from poppk.diagnostics._common import DiagnosticsError, observation_frame, time_after_dose
from poppk.diagnostics.gof import gof_table, individual_fit_table, iwres
from poppk.diagnostics.loo import compare, integrated_loglik, loo, loo_pointwise, pareto_k_summary
from poppk.diagnostics.loo_integrated import EtaProposal, IntegratedLoglik, integrate_subjects
from poppk.diagnostics.loo_refit import exact_subject_elpd, loo_refit
from poppk.diagnostics.new_subjects import add_predictions, new_subject_predictions
from poppk.diagnostics.npde import npde_from_simulations, npde_table, npde_tests
from poppk.diagnostics.predictive import add_predictive_groups, loo_pit, predictive_idata, prior_fit
from poppk.diagnostics.prior_check import prior_parameter_table, prior_vpc_table, write_prior_checks
from poppk.diagnostics.random_effects import eta_covariate_table, eta_distribution_table, eta_table
from poppk.diagnostics.check_files import write_checks
from poppk.diagnostics.shrinkage import shrinkage_table
from poppk.diagnostics.simulate import simulate_observations
from poppk.diagnostics.vpc import bin_edges, censored_quantile, vpc_observations, vpc_table

__all__ = [
    "DiagnosticsError",
    "simulate_observations",
    "observation_frame",
    "time_after_dose",
    "vpc_table",
    "vpc_observations",
    "bin_edges",
    "censored_quantile",
    "gof_table",
    "iwres",
    "individual_fit_table",
    "npde_table",
    "npde_tests",
    "npde_from_simulations",
    "shrinkage_table",
    "eta_table",
    "eta_covariate_table",
    "eta_distribution_table",
    "loo",
    "loo_pointwise",
    "pareto_k_summary",
    "compare",
    "integrated_loglik",
    "integrate_subjects",
    "EtaProposal",
    "IntegratedLoglik",
    "loo_refit",
    "exact_subject_elpd",
    "write_checks",
    "add_predictive_groups",
    "add_predictions",
    "new_subject_predictions",
    "loo_pit",
    "predictive_idata",
    "prior_fit",
    "prior_vpc_table",
    "prior_parameter_table",
    "write_prior_checks",
]
