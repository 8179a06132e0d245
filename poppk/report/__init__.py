"""Reports of a fit: parameter table, covariate effects (forest plot) and HTML/CSV/JSON export.

>>> from poppk.model import load_fit                          # doctest: +SKIP
>>> from poppk.report import export_covariate_report
>>> fit = load_fit("out/fits/AIBW")                           # doctest: +SKIP
>>> export_covariate_report(fit, "out/report")                # doctest: +SKIP

:func:`parameter_table` and :func:`covariate_effects` return the tables;
:func:`plot_forest` draws the second; :func:`export_covariate_report` writes
them with provenance as ``report.html`` (self-contained), CSV and JSON.
"""

from __future__ import annotations

from poppk.plots.forest import plot_forest
from poppk.report.covariates import COVARIATE_COLUMNS, REFERENCE_BAND, covariate_effects
from poppk.report.export import FORMATS, REPORT_FILES, export_covariate_report, report_provenance
from poppk.report.tables import PARAMETER_COLUMNS, SECTIONS, parameter_table

__all__ = [
    "parameter_table",
    "covariate_effects",
    "plot_forest",
    "export_covariate_report",
    "report_provenance",
    "PARAMETER_COLUMNS",
    "COVARIATE_COLUMNS",
    "SECTIONS",
    "REFERENCE_BAND",
    "FORMATS",
    "REPORT_FILES",
]
