"""The end-to-end analysis: data check → fits per size descriptor → checks →
comparison → dosing simulation → report.

:func:`run_demo` runs it on the bundled IMGN853-like trial; ``poppk run
analysis.toml`` (see :mod:`poppk.config`) runs the same steps on a user's
dataset.  Each step calls the same public functions a notebook would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from poppk.errors import PopPKError

__all__ = ["bundled_trial_path", "bundled_analysis_path", "trial_spec", "run_demo"]


def bundled_trial_path() -> Path:
    """Path of the bundled simulated trial (``data/imgn853_phase1.csv``)."""
    here = Path(__file__).resolve().parents[1] / "data" / "imgn853_phase1.csv"
    if not here.is_file():
        raise PopPKError(
            f"the bundled trial is not at {here}; poppk must be installed from its source tree "
            "(pip install -e .) for the demo data to be available"
        )
    return here


def trial_spec(descriptor: str = "TBW") -> Any:
    """The 2-compartment model used for the bundled ADC trial.

    Initial estimates are round numbers a pharmacometrician would start from
    (not the simulation truth); the body-size descriptor acts as a power
    covariate on CL and V1 with estimated exponents, albumin on CL.
    """
    from poppk.model import CovariateEffect, ModelSpec

    spec = ModelSpec(
        structure="2cmt",
        typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0},
        covariates=(CovariateEffect("CL", "ALB", "power", reference=4.0),),
        iiv=("CL", "V1"),
        iiv_correlation="full",
        error="combined",
        units={"time": "day", "amount": "mg", "volume": "L"},
    )
    return spec.with_size_covariate(descriptor, parameters=("CL", "V1"), reference=70.0 if descriptor == "TBW" else None)


def bundled_analysis_path() -> Path:
    """Path of the bundled analysis configuration (``data/imgn853_analysis.toml``)."""
    return bundled_trial_path().with_name("imgn853_analysis.toml")


def run_demo(out: str | Path = "out", *, quick: bool = False, echo: Any = print) -> int:
    """Run the whole analysis of the bundled trial and write results to ``out``.

    The steps are those of ``data/imgn853_analysis.toml`` run by
    :func:`poppk.config.run_analysis`: data check, fits with TBW and AIBW as
    the size covariate, checks, LOO comparison, dosing-strategy simulation and
    the covariate report (``out/report.html``).

    Parameters
    ----------
    out
        Output directory.
    quick
        Few draws (a smoke test, not for inference).
    echo
        Where progress lines go.
    """
    from poppk.config import load_config, run_analysis

    return run_analysis(load_config(bundled_analysis_path()), out=out, quick=quick, echo=echo)
