"""poppk: Bayesian population pharmacokinetics with body-size covariates.

The public API is flat: everything a notebook needs is importable from
``poppk`` directly.  Attributes are loaded on first use (PEP 562), so that
``import poppk.bodysize`` or ``import poppk.pk`` stays light (no PyMC).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _version
from typing import Any

from poppk.errors import (
    BodySizeError,
    ConfigError,
    ConvergenceWarning,
    DatasetError,
    DataWarning,
    DiagnosticsError,
    FitError,
    ModelSpecError,
    PopPKError,
)

try:
    __version__ = _version("poppk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: public name -> module that defines it
_LAZY = {
    "bodysize": "poppk.bodysize",
    "read_nonmem": "poppk.data",
    "PKData": "poppk.data",
    "ModelSpec": "poppk.model",
    "CovariateEffect": "poppk.model",
    "Prior": "poppk.model",
    "build_model": "poppk.model",
    "fit": "poppk.model",
    "Fit": "poppk.model",
    "load_fit": "poppk.model",
    "compare": "poppk.diagnostics",
    "write_checks": "poppk.diagnostics",
    "parameter_table": "poppk.report",
    "covariate_effects": "poppk.report",
    "plot_forest": "poppk.report",
    "export_covariate_report": "poppk.report",
    "simulate_strategies": "poppk.simulate",
    "summarize_strategies": "poppk.simulate",
    "PerKg": "poppk.simulate",
    "PerM2": "poppk.simulate",
    "Flat": "poppk.simulate",
    "Capped": "poppk.simulate",
    "Rounded": "poppk.simulate",
    "Schedule": "poppk.simulate",
    "resample_population": "poppk.simulate",
    "sample_population": "poppk.simulate",
    "match_dose": "poppk.simulate",
    "fit_exposure_toxicity": "poppk.simulate",
    "predict_incidence": "poppk.simulate",
    "forecast": "poppk.forecast",
    "recommend_dose": "poppk.forecast",
}

__all__ = [
    "__version__",
    "PopPKError",
    "DatasetError",
    "ModelSpecError",
    "ConfigError",
    "FitError",
    "DiagnosticsError",
    "ConvergenceWarning",
    "DataWarning",
    "BodySizeError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if name == "bodysize" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'poppk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
