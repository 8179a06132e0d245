"""Model specification, PyMC model assembly, fitting and fit persistence."""

from poppk.model.build import build_model
from poppk.model.convergence import ConvergenceReport, check_convergence
from poppk.model.design import ModelDesign, build_design
from poppk.model.fit import Fit, fit, load_fit
from poppk.model.init import LaplaceInit, laplace_init
from poppk.model.priors import Prior
from poppk.model.runner import FitJob, FitOutcome, fit_many, iter_fits
from poppk.model.spec import CovariateEffect, ModelSpec, structural_parameters

__all__ = [
    "ModelSpec",
    "CovariateEffect",
    "Prior",
    "structural_parameters",
    "ModelDesign",
    "build_design",
    "build_model",
    "LaplaceInit",
    "laplace_init",
    "Fit",
    "fit",
    "load_fit",
    "FitJob",
    "FitOutcome",
    "fit_many",
    "iter_fits",
    "ConvergenceReport",
    "check_convergence",
]
