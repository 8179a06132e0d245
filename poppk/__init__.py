"""poppk: Bayesian population pharmacokinetics with body-size covariates.

The public API is flat: everything a notebook needs is importable from
``poppk`` directly.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from poppk.errors import (
    BodySizeError,
    ConfigError,
    ConvergenceWarning,
    DatasetError,
    DataWarning,
    FitError,
    ModelSpecError,
    PopPKError,
)

from poppk import bodysize
from poppk.data import PKData, read_nonmem
from poppk.model import (
    CovariateEffect,
    Fit,
    ModelSpec,
    Prior,
    build_model,
    fit,
    load_fit,
)

from poppk.diagnostics import compare, write_checks
from poppk.report import covariate_effects, export_covariate_report, parameter_table, plot_forest

try:
    __version__ = _version("poppk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "bodysize",
    "read_nonmem",
    "PKData",
    "ModelSpec",
    "CovariateEffect",
    "Prior",
    "build_model",
    "fit",
    "Fit",
    "load_fit",
    "compare",
    "write_checks",
    "parameter_table",
    "covariate_effects",
    "plot_forest",
    "export_covariate_report",
    "PopPKError",
    "DatasetError",
    "ModelSpecError",
    "ConfigError",
    "FitError",
    "ConvergenceWarning",
    "DataWarning",
    "BodySizeError",
]
