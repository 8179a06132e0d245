"""Individual dosing: forecast a new patient from the population posterior, and recommend her dose.

* :mod:`~poppk.forecast.patient` -- her covariates, doses and concentrations, checked;
* :mod:`~poppk.forecast.posterior` -- her individual posterior (Laplace + importance sampling
  over the population posterior);
* :mod:`~poppk.forecast.predict` -- :func:`forecast`: her curve, exposure and parameters;
* :mod:`~poppk.forecast.recommend` -- :func:`recommend_dose` for an exposure target;
* :mod:`~poppk.forecast.page` -- the one-page HTML and JSON report;
* :mod:`~poppk.forecast.cli` -- ``poppk forecast``.

Names are loaded on first use (PEP 562), so that the command line can register
``poppk forecast`` without importing PyMC.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

#: public name -> module that defines it
_LAZY = {
    "PatientRecord": "poppk.forecast.patient",
    "make_patient": "poppk.forecast.patient",
    "parse_patient": "poppk.forecast.patient",
    "IndividualPosterior": "poppk.forecast.posterior",
    "individual_posterior": "poppk.forecast.posterior",
    "Forecast": "poppk.forecast.predict",
    "forecast": "poppk.forecast.predict",
    "Clause": "poppk.forecast.target",
    "Recommendation": "poppk.forecast.recommend",
    "parse_target": "poppk.forecast.target",
    "parse_regimen": "poppk.forecast.recommend",
    "recommend_dose": "poppk.forecast.recommend",
    "write_forecast": "poppk.forecast.page",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'poppk.forecast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _CallablePackage(types.ModuleType):
    """``poppk.forecast`` is both this package and the function :func:`~poppk.forecast.predict.forecast`:
    once the package has been imported (``import poppk.forecast``), ``poppk.forecast`` names the package,
    and calling it calls the function, so ``poppk.forecast(fit, patient, doses)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from poppk.forecast.predict import forecast

        return forecast(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
