"""The model checks in the report: figures and tables of a ``write_checks`` directory, with captions.

:func:`poppk.diagnostics.write_checks` (``poppk check``, step 3 of ``poppk
run``) writes every check of a fit as CSV tables and PNG figures.  This module
embeds them into ``report.html`` — nothing is recomputed — each figure with a
caption that says what it shows and how to read it, each table with its
terms defined:

* :func:`checks_section` — VPC, pcVPC, VPC by time after dose, goodness of
  fit, NPDE and their tests, LOO-PIT, shrinkage, leave-one-subject-out Pareto
  k, prior predictive VPC;
* :func:`eta_covariate_section` — random effects against covariates (for the
  covariate part of the report).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from poppk.report.html import E, _figure_html, _image_uri, generic_html

__all__ = ["CheckFigure", "CHECK_FIGURES", "ETA_FIGURES", "checks_section", "eta_covariate_section",
           "check_figure_files"]


@dataclass(frozen=True)
class CheckFigure:
    """A figure of a checks directory: file stem, title, and a caption saying what it shows and how to read it."""

    stem: str
    title: str
    caption: str


#: The check figures the report embeds, in reading order (missing files are skipped).
CHECK_FIGURES: tuple[CheckFigure, ...] = (
    CheckFigure(
        "vpc", "Visual predictive check (VPC)",
        "Observed 5th, 50th and 95th percentiles of the concentrations in each time bin (lines with points) "
        "against the 90% interval of the same percentiles over studies simulated from the posterior with new "
        "subjects given the observed doses, covariates and sampling times (shaded bands). How to read it: each "
        "observed line should run inside its band; a filled point is a percentile outside its band. With data "
        "below the LLOQ a lower panel compares the observed fraction BLQ with its simulated interval."),
    CheckFigure(
        "pcvpc", "Prediction-corrected VPC (pcVPC)",
        "The VPC after scaling every observed and simulated value by the median population prediction (PRED) of "
        "its bin over its own PRED (Bergstrand et al. 2011), which removes the spread due to different doses "
        "and covariates within a bin. Read it as the VPC; trust it over the plain VPC when doses vary."),
    CheckFigure(
        "vpc_tad_log", "VPC against time after dose (log scale)",
        "The VPC with every dosing cycle overlaid on time after the most recent dose, on a log concentration "
        "axis: peaks, distribution phase and troughs. How to read it: as the VPC; a band missing the observed "
        "troughs or peaks points at the structural model or the residual error."),
    CheckFigure(
        "gof", "Goodness of fit",
        "Top: observed concentrations (DV) against the population prediction (PRED, typical subject with the "
        "covariates, no random effect) and the individual prediction (IPRED), with the line of identity. "
        "Bottom: NPDE against time after first dose and against PRED, with a smooth (LOWESS). How to read it: "
        "points scatter evenly around the identity line and residuals around 0 with no trend."),
    CheckFigure(
        "npde", "Normalised prediction distribution errors (NPDE)",
        "Each observation's position within its simulated predictive distribution, decorrelated within subject "
        "and mapped to the normal scale (Brendel et al. 2006). Under the model the NPDE follow N(0, 1): the QQ "
        "plot follows the line, the histogram the density, and there is no trend against time or prediction. "
        "The tests are in the table below."),
    CheckFigure(
        "loo_pit", "Leave-one-out probability integral transform (LOO-PIT)",
        "For each observation the leave-one-out predictive probability of a value at or below the one observed "
        "(PSIS weights, replicates of the same subjects); a BLQ record gets a random value in [0, F(LLOQ)]. "
        "Calibrated predictions give uniform values: flat histogram, ECDF difference inside its band. A U shape "
        "means predictive distributions too narrow, a hump too wide, a slope a bias."),
    CheckFigure(
        "pareto_k_integrated", "Leave-one-subject-out diagnostics (Pareto k)",
        "Pareto k of each subject's leave-one-out importance weights with the random effects integrated out. "
        "How to read it: k below 0.7 means that subject's LOO estimate is reliable; above 0.7 the subject is "
        "influential and the LOO comparison refits without it or treats it with care."),
    CheckFigure(
        "prior_vpc_log", "Prior predictive VPC (log scale)",
        "The VPC with replicate studies simulated from the priors instead of the posterior, on the observed "
        "design: what the model says before seeing the data. How to read it: the bands should cover the "
        "observations and may be wide, but not span impossible concentrations; observations outside the bands "
        "mean the priors rule the data out."),
)

#: Random-effect figures, shown with the covariate effects.
ETA_FIGURES: tuple[CheckFigure, ...] = (
    CheckFigure(
        "eta_covariates", "Random effects against covariates",
        "Each subject's posterior mean random effect η (log scale of the parameter) against each covariate, with "
        "a smooth. How to read it: no trend means the covariate model captures the covariate; a trend is an "
        "effect missing or mis-shaped. Uninformative for a parameter whose η-shrinkage is above about 30%."),
    CheckFigure(
        "eta_distributions", "Distribution of the random effects",
        "Histogram of the subjects' posterior mean η per parameter against the N(0, ω²) the model assumes. How "
        "to read it: a narrower histogram than the curve is shrinkage; skewness or two modes suggest a "
        "missing covariate or a subpopulation."),
)

_SHRINKAGE_TERMS = (
    "η-shrinkage of a parameter: 1 − SD of the subjects' posterior mean η / ω (Savic & Karlsson 2009); "
    "ε-shrinkage: 1 − SD of the individual weighted residuals. Above about 30%, individual η and IPRED carry "
    "little information of their own and plots based on them (η against covariates, DV against IPRED) can "
    "mislead."
)
_NPDE_TERMS = (
    "Each test checks one property of N(0, 1): mean 0 (t-test), variance 1 (Fisher's test), normal shape "
    "(Shapiro-Wilk); the global p-value is the smallest of the three times 3 (Bonferroni). A small p-value "
    "(< 0.05) flags a misfit; with many observations small departures become significant."
)
_LOO_TERMS = (
    "elpd loo: expected log predictive density of left-out data (higher is better); se: its standard error; "
    "p loo: effective number of parameters; n (Pareto k > 0.7): units whose leave-one-out estimate is "
    "unreliable. 'subject (integrated)' leaves out a whole subject with its random effects integrated out."
)


def check_figure_files(checks_dir: str | os.PathLike[str] | None,
                       figures: tuple[CheckFigure, ...] = CHECK_FIGURES) -> list[tuple[CheckFigure, Path]]:
    """The figures of ``figures`` present as PNG files in ``checks_dir``, in order."""
    if checks_dir is None:
        return []
    d = Path(checks_dir)
    return [(f, d / f"{f.stem}.png") for f in figures if (d / f"{f.stem}.png").is_file()]


def _figures_html(items: list[tuple[CheckFigure, Path]]) -> str:
    return "".join(f"<h3>{E(f.title)}</h3>" + _figure_html(_image_uri(path), f.caption, alt=f.title)
                   for f, path in items)


def _read(path: Path, **kw: object) -> pd.DataFrame | None:
    return pd.read_csv(path, **kw) if path.is_file() else None


def _shrinkage_html(tab: pd.DataFrame) -> str:
    view = pd.DataFrame({
        "Random effect / residual": tab["name"].astype(str),
        "Parameter": tab["parameter"].astype(str),
        "Shrinkage %": tab["shrinkage_pct"].round(1),
        "SD of individual estimates": tab["sd"],
        "Model SD (ω or 1)": tab["reference"],
        "n": tab["n"],
    })
    return (generic_html(view, caption="Shrinkage of the random effects and of the residuals", dedupe=False)
            + f'<p class="terms">{E(_SHRINKAGE_TERMS)}</p>')


def checks_section(checks_dir: str | os.PathLike[str] | None) -> str:
    """HTML of the model checks written by :func:`~poppk.diagnostics.write_checks` into ``checks_dir``.

    Parameters
    ----------
    checks_dir
        A directory written by ``write_checks`` (figures as PNG).

    Returns
    -------
    str
        Figures with titles and captions, the NPDE tests, shrinkage and LOO
        tables with their terms defined; a note when the directory holds none.
    """
    items = check_figure_files(checks_dir)
    if not items:
        return ('<p class="lead">No model checks were found for this fit (run <code>poppk check FIT_DIR --out '
                "DIR</code> and pass the directory as <code>checks</code>).</p>")
    d = Path(checks_dir)  # type: ignore[arg-type]
    lead = ('<p class="lead">Checks of the fitted model against the data, from replicate studies simulated '
            "from the posterior. Each figure says what it shows and how to read it.</p>")
    parts = [lead]
    by_stem = {f.stem: (f, p) for f, p in items}
    for stem in [f.stem for f in CHECK_FIGURES]:
        if stem not in by_stem:
            continue
        parts.append(_figures_html([by_stem[stem]]))
        if stem == "npde":
            tests = _read(d / "npde_tests.csv", index_col=0)
            if tests is not None:
                tests.index.name = "statistic"
                parts.append(generic_html(tests, caption="NPDE against N(0, 1): summary and tests",
                                          index_name="statistic") + f'<p class="terms">{E(_NPDE_TERMS)}</p>')
            shrink = _read(d / "shrinkage.csv")
            if shrink is not None:
                parts.append("<h3>Shrinkage</h3>" + _shrinkage_html(shrink))
        if stem == "pareto_k_integrated":
            loo = _read(d / "loo_summary.csv")
            if loo is not None:
                parts.append(generic_html(loo, caption="PSIS leave-one-out summary of this fit", terms=False)
                             + f'<p class="terms">{E(_LOO_TERMS)}</p>')
    return "".join(parts)


def eta_covariate_section(checks_dir: str | os.PathLike[str] | None) -> str:
    """HTML of the random-effect figures (η against covariates, η distributions) of ``checks_dir``; ``""`` if none."""
    items = check_figure_files(checks_dir, ETA_FIGURES)
    return _figures_html(items) if items else ""
