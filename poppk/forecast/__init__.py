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

from poppk.forecast.patient import PatientRecord, make_patient, parse_patient
from poppk.forecast.posterior import IndividualPosterior, individual_posterior
from poppk.forecast.predict import Forecast, forecast

__all__ = [
    "PatientRecord",
    "make_patient",
    "parse_patient",
    "IndividualPosterior",
    "individual_posterior",
    "Forecast",
    "forecast",
]
