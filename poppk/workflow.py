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

__all__ = ["bundled_trial_path", "trial_spec", "run_demo"]


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


def run_demo(out: str | Path = "out", *, quick: bool = False, echo: Any = print) -> int:
    """Run the whole analysis on the bundled trial and write results to ``out``.

    Parameters
    ----------
    out
        Output directory.
    quick
        Fewer draws (a smoke test, not for inference).
    echo
        Where progress lines go.
    """
    from poppk.data import format_summary, read_nonmem, summarize
    from poppk.model import fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    path = bundled_trial_path()
    echo(f"== 1. data: {path.name}")
    data = read_nonmem(path).with_size_descriptors(ibw_method="label")
    echo(format_summary(summarize(data)))
    draws, tune, chains = (150, 150, 2) if quick else (1000, 500, 4)
    fits = {}
    for descriptor in ("TBW", "AIBW"):
        echo(f"\n== 2. fit: 2-cmt model with {descriptor} as the size covariate "
             f"({chains} chains x ({tune} warm-up + {draws}))")
        spec = trial_spec(descriptor)
        t0 = time.perf_counter()
        f = fit(spec, data, draws=draws, tune=tune, chains=chains, seed=1, progress=False)
        echo(f"   {time.perf_counter() - t0:.0f} s; {f.convergence().message()}")
        echo(f.summary()[["median", "lower", "upper", "rse", "r_hat", "ess_bulk"]].round(3).to_string())
        f.save(out / "fits" / descriptor)
        fits[descriptor] = f
    _after_fits(fits, data, out, quick=quick, echo=echo)
    echo(f"\nall results are in {out.resolve()} ({time.perf_counter() - t_start:.0f} s)")
    return 0


def _after_fits(fits: dict[str, Any], data: Any, out: Path, *, quick: bool, echo: Any) -> None:
    """Checks, comparison, simulation and report (each step when its module is present)."""
    try:
        from poppk.diagnostics import compare, write_checks
    except ImportError:  # pragma: no cover - during development
        return
    for name, f in fits.items():
        echo(f"\n== 3. checks of the {name} model -> {out / 'checks' / name}")
        write_checks(f, out / "checks" / name)
    echo("\n== 4. comparison by leave-one-subject-out PSIS-LOO")
    echo(compare(fits).round(2).to_string())
