"""Individual dosing: forecast a new patient from the population posterior, and recommend her dose.

* :mod:`~poppk.forecast.patient` -- her covariates, doses and concentrations, checked;
* :mod:`~poppk.forecast.posterior` -- her individual posterior (Laplace + importance sampling
  over the population posterior);
* :mod:`~poppk.forecast.predict` -- :func:`forecast`: her curve, exposure and parameters;
* :mod:`~poppk.forecast.recommend` -- :func:`recommend_dose` for an exposure target;
* :mod:`~poppk.forecast.page` -- the one-page HTML and JSON report;
* :mod:`~poppk.forecast.cli` -- ``poppk forecast``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from poppk.forecast.patient import PatientRecord, make_patient, parse_patient
from poppk.forecast.posterior import IndividualPosterior, individual_posterior
from poppk.forecast.predict import Forecast, forecast
from poppk.forecast.recommend import Clause, Recommendation, parse_target, recommend_dose

__all__ = [
    "PatientRecord",
    "make_patient",
    "parse_patient",
    "IndividualPosterior",
    "individual_posterior",
    "Forecast",
    "forecast",
    "Clause",
    "Recommendation",
    "parse_target",
    "recommend_dose",
]


class _CallablePackage(types.ModuleType):
    """``poppk.forecast`` is both this package and the function :func:`forecast`: once the package has
    been imported (``import poppk.forecast``), ``poppk.forecast`` names the package, and calling it
    calls the function, so ``poppk.forecast(fit, patient, doses)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Forecast:
        return forecast(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
