"""The ``poppk`` command.

A thin layer over the public functions: each subcommand parses its options,
calls the library and prints.  A :class:`~poppk.errors.PopPKError` is printed
as ``error: <message>`` on stderr with exit code 2 (no traceback); a fit that
did not converge makes ``poppk fit`` and ``poppk run`` exit 3 after writing
every output, unless ``--allow-unconverged`` is given (see :data:`EXIT_CODES`).

To add a command group, write an ``_add_<group>(subparsers)`` function that
registers its parsers with ``set_defaults(func=...)`` (``func(args) -> int``)
and call it from :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from poppk import defaults
from poppk.errors import BodySizeError, DatasetError, PopPKError

__all__ = ["main", "build_parser"]

#: Exit code for bad input (a :class:`PopPKError`), as for usage errors.
EXIT_ERROR = 2
#: Exit code when a fit did not converge (``poppk fit``, ``poppk run``); its outputs are still written.
EXIT_UNCONVERGED = 3
#: The exit codes, as shown at the end of ``poppk --help``.
EXIT_CODES = f"""\
exit codes:
  0  success
  1  an unexpected internal error (a traceback; please report it)
  {EXIT_ERROR}  bad input: an invalid dataset, model spec or analysis file, or a usage error
     (the message on stderr says what to change)
  {EXIT_UNCONVERGED}  a fit did not converge (poppk fit, poppk run): every output is still written and the
     message names the parameters; --allow-unconverged (or [fit] allow_unconverged = true
     in the analysis file) makes this exit 0
"""
_DESCRIPTOR_HINT = (
    "pass --female-code CODE for numeric sex codes, or --no-descriptors to skip "
    "the size descriptors"
)


def _mapping(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old.strip(), new.strip()


def _data_check(args: argparse.Namespace) -> int:
    """``poppk data check FILE``: read, check and summarise a dataset."""
    from poppk.data import format_summary, read_nonmem, summarize

    data = read_nonmem(args.file, columns=dict(args.map), drop=args.drop,
                       sex_female_code=args.female_code, dvid=args.dvid, time_unit=args.time_unit)
    if not args.no_descriptors and {"WT", "HT", "SEX"} <= set(data.covariate_names):
        try:
            data = data.with_size_descriptors()
        except DatasetError as err:
            raise DatasetError(f"{err.message} -- {_DESCRIPTOR_HINT}", row=err.row,
                               column=err.column, value=err.value, valid=err.valid) from err
        except BodySizeError as err:
            raise BodySizeError(f"{err} -- {_DESCRIPTOR_HINT}") from err
    print(format_summary(summarize(data)))
    print("ok: the dataset is valid")
    return 0


def _add_data(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="read and check NONMEM-style datasets")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="check a dataset and print a summary",
        description="Read a NONMEM-style dataset, check it and print a summary. "
        "Exit code 0 when valid, 2 with 'error: ...' when not.",
    )
    check.add_argument("file", metavar="FILE", help="CSV or whitespace-separated dataset")
    check.add_argument("--map", metavar="OLD=NEW", type=_mapping, action="append", default=[],
                       help="use column OLD as NEW, e.g. --map SUBJ=ID --map CONC=DV")
    check.add_argument("--drop", metavar="COLUMN", action="append", default=[],
                       help="leave a column out (repeatable)")
    check.add_argument("--female-code", metavar="CODE", default=None,
                       help="SEX code meaning female (needed for numeric codes)")
    check.add_argument("--no-descriptors", action="store_true",
                       help="do not derive IBW/AIBW/LBW/BSA/BMI from WT, HT and SEX")
    _add_data_options(check)
    check.set_defaults(func=_data_check)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """Options of read_nonmem shared by ``data check`` and ``fit``."""
    p.add_argument("--time-unit", metavar="UNIT", default=None,
                   help="unit of TIME: h, day, min or week (needed by fit unless the model's units say it)")
    p.add_argument("--dvid", metavar="VALUE", default=None,
                   help="with several analytes in a DVID column: fit the observations with this DVID")


def _load_spec(path: str):
    from pathlib import Path

    from poppk.model import ModelSpec

    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        return ModelSpec.from_json(text)
    import tomllib

    from poppk.errors import ModelSpecError

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ModelSpecError(f"{path}: not valid TOML: {err}") from None
    return ModelSpec.from_dict(doc.get("model", doc))


def _fit(args: argparse.Namespace) -> int:
    """``poppk fit DATA --model SPEC --out FIT_DIR``."""
    from poppk.data import read_nonmem
    from poppk.model import fit

    data = read_nonmem(args.data, columns=dict(args.map), sex_female_code=args.female_code, dvid=args.dvid,
                       time_unit=args.time_unit)
    if {"WT", "HT", "SEX"} <= set(data.covariate_names):
        data = data.with_size_descriptors()
    spec = _load_spec(args.model)
    if args.size:
        spec = spec.with_size_covariate(args.size)
    from poppk.model.time_unit import resolve_time_unit

    spec = resolve_time_unit(spec, data)  # before anything is printed: no unit, no fit
    print(spec.describe())
    result = fit(spec, data, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                 progress=not args.quiet, backend=args.backend)
    print(result.summary().round(4).to_string())
    report = result.convergence()
    print(report.message())
    path = result.save(args.out)
    print(f"fit saved to {path}")
    if report.ok or args.allow_unconverged:
        return 0
    print(f"error: the fit did not converge ({'; '.join(report.problems)}); it was saved to {path} all the same. "
          "Run longer (--tune, --draws), simplify the model, or pass --allow-unconverged to exit 0 anyway",
          file=sys.stderr)
    return EXIT_UNCONVERGED


def _add_fit(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fit", help="fit a model to a dataset and save the fit",
                              description="Fit a ModelSpec (TOML or JSON; a [model] table or the spec itself) "
                              "to a NONMEM-style dataset with NUTS and save the fit directory.")
    p.add_argument("data", metavar="DATA", help="NONMEM-style dataset")
    p.add_argument("--model", required=True, metavar="SPEC", help="model spec file (.toml or .json)")
    p.add_argument("--out", required=True, metavar="FIT_DIR", help="directory to write the fit to")
    p.add_argument("--size", metavar="DESCRIPTOR", help="use this body-size descriptor (TBW, AIBW, LBW, ...)")
    p.add_argument("--draws", type=int, default=defaults.FIT_DRAWS)
    p.add_argument("--tune", type=int, default=defaults.FIT_TUNE)
    p.add_argument("--chains", type=int, default=defaults.FIT_CHAINS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("numba", "jax"), default="numba",
                   help="what compiles the model: numba (once per structure, reused) or jax (XLA: seconds, "
                        "slower sampling; needs poppk[jax])")
    p.add_argument("--map", metavar="OLD=NEW", type=_mapping, action="append", default=[])
    p.add_argument("--female-code", metavar="CODE", default=None)
    _add_data_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_allow_unconverged(p)
    p.set_defaults(func=_fit)


def _add_allow_unconverged(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-unconverged", action="store_true",
                   help=f"exit 0 even when a fit did not converge (default: exit {EXIT_UNCONVERGED})")


def _check(args: argparse.Namespace) -> int:
    """``poppk check FIT_DIR --out DIR``: every diagnostic table (CSV) and figure."""
    from poppk.diagnostics import write_checks
    from poppk.model import load_fit

    fit = load_fit(args.fit_dir)
    if args.prior:
        from poppk.diagnostics import write_prior_checks

        paths = write_prior_checks(fit, args.out, formats=tuple(args.format), n_draws=args.draws, seed=args.seed)
    else:
        paths = write_checks(fit, args.out, formats=tuple(args.format), n_draws=args.draws, seed=args.seed,
                             stratify=args.stratify)
    for p in paths:
        print(p)
    print(f"{len(paths)} files written to {args.out}")
    return 0


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check", help="write diagnostics of a saved fit (VPC, GOF, NPDE, shrinkage, LOO)",
                              description="Compute every model check of a saved fit and write the tables (CSV) "
                              "and figures to DIR.")
    p.add_argument("fit_dir", metavar="FIT_DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--format", action="append", choices=("png", "svg", "pdf"), default=None,
                   help="figure format (repeatable; default png)")
    p.add_argument("--draws", type=int, default=defaults.CHECK_DRAWS, help="replicate studies for VPC/NPDE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stratify", metavar="COVARIATE", default=None)
    p.add_argument("--prior", action="store_true",
                   help="prior predictive checks instead: draws from the priors, prior VPC on the observed design")
    p.set_defaults(func=lambda a: _check(_default_format(a)))


def _default_format(args: argparse.Namespace) -> argparse.Namespace:
    if not args.format:
        args.format = ["png"]
    return args


def _simulate(args: argparse.Namespace) -> int:
    """``poppk simulate FIT_DIR --strategy ... --schedule ... --population ... --out DIR``."""
    from poppk.simulate import run_simulation

    exceed = dict(_float_mapping(x) for x in args.exceed)
    paths = run_simulation(
        args.fit_dir, args.strategy, args.schedule, args.population, args.out,
        infusion=args.infusion, n_draws=args.draws, seed=args.seed, metrics=args.metric or None,
        threshold=args.threshold, exceed=exceed or None, reference=args.reference,
        ibw_method=args.ibw_method, progress=not args.quiet, figures=not args.no_figures, workers=args.workers,
        parallel="processes" if args.processes else "threads", scheduler_address=args.dask_scheduler,
        analyte=args.analyte,
    )
    for name, p in paths.items():
        print(f"{name}: {p}")
    return 0


def _float_mapping(text: str) -> tuple[str, float]:
    from poppk.errors import ConfigError

    key, value = _mapping(text)
    try:
        return key, float(value)
    except ValueError:
        raise ConfigError(f"--exceed {text!r}: the value must be a number (e.g. cmax_c1=150)") from None


def _add_simulate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="simulate dosing strategies over a virtual population",
                              description="For every posterior draw, simulate a virtual population under each "
                              "dosing strategy and summarise between-patient exposure variability.")
    p.add_argument("fit_dir", metavar="FIT_DIR")
    p.add_argument("--strategy", action="append", required=True,
                   help='e.g. "5 mg/kg", "6 mg/kg AIBW", "150 mg", "5 mg/kg max 100 kg" (repeatable)')
    p.add_argument("--schedule", default="q3w:6",
                   help='e.g. "q3w:6", "weekly:12", "weekly_x3_q4w:4", "q3w:6; loading=2" (first dose x2)')
    p.add_argument("--infusion", default="1 h", help='infusion duration, e.g. "90 min"')
    p.add_argument("--population", default="resample:5000",
                   help='"resample:N" (trial covariates), "sample:N[:female_fraction]" or a CSV file')
    p.add_argument("--draws", type=int, default=defaults.SIMULATION_DRAWS, help="posterior draws to simulate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metric", action="append", help="exposure metric (repeatable)")
    p.add_argument("--threshold", type=float, default=None, help="concentration threshold for time above")
    p.add_argument("--exceed", action="append", default=[], metavar="METRIC=VALUE",
                   help="report P(metric > value) per strategy")
    p.add_argument("--reference", default=None, help="reference strategy for variance ratios")
    p.add_argument("--ibw-method", default=None)
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run blocks of draws on N threads (default 0: serially)")
    p.add_argument("--processes", action="store_true",
                   help="with --workers: a local dask.distributed cluster of N processes instead of threads")
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="run on the dask.distributed cluster whose scheduler is at ADDRESS (tcp://host:8786)")
    p.add_argument("--analyte", default=None, metavar="NAME",
                   help="a multi-analyte fit: simulate this analyte's exposure (e.g. DM4; default: the parent)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_simulate)


def _report(args: argparse.Namespace) -> int:
    """``poppk report FIT_DIR --out DIR``: the covariate report (HTML, CSV, JSON)."""
    from poppk.model import load_fit
    from poppk.report import export_covariate_report

    fit = load_fit(args.fit_dir)
    paths = export_covariate_report(fit, args.out, formats=tuple(args.format or ("html", "csv", "json")),
                                    title=args.title, dosing=("flat", "per_kg") if args.per_kg else ("flat",),
                                    checks=args.checks, subject_level=not args.no_subject_level)
    for name, p in paths.items():
        print(f"{name}: {p}")
    return 0


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="export the covariate report of a saved fit",
                              description="Parameter table, covariate effects (forest plot) and provenance as "
                              "a self-contained HTML file plus CSV and JSON tables.")
    p.add_argument("fit_dir", metavar="FIT_DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--format", action="append", choices=("html", "csv", "json", "png"))
    p.add_argument("--title", default=None)
    p.add_argument("--per-kg", action="store_true",
                   help="also show exposure ratios under mg/kg dosing (TBW/WT covariates)")
    p.add_argument("--checks", default=None, metavar="DIR",
                   help="embed the checks written for this fit (poppk check ... --out DIR)")
    p.add_argument("--no-subject-level", action="store_true",
                   help="leave out every figure or table showing a subject's own covariate values "
                        "(a report to share outside the team)")
    p.set_defaults(func=_report)


def _run(args: argparse.Namespace) -> int:
    """``poppk run analysis.toml``: the whole analysis described in one file."""
    from dataclasses import replace

    from poppk.config import load_config, run_analysis

    config = load_config(args.config)
    if args.allow_unconverged:
        config = replace(config, sections={**config.sections,
                                           "fit": {**config.sections.get("fit", {}), "allow_unconverged": True}})
    return run_analysis(config, out=args.out, quick=args.quick)


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run an analysis described in a TOML file",
                              description="Data check, fits, checks, comparison, simulation and report, "
                              "as configured in one TOML file (see poppk.config).")
    p.add_argument("config", metavar="ANALYSIS_TOML")
    p.add_argument("--out", default=None, metavar="DIR", help="override [output].dir")
    p.add_argument("--quick", action="store_true",
                   help="few draws everywhere (a smoke test: non-convergence is reported but exits 0)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (warnings and errors only)")
    _add_allow_unconverged(p)
    p.set_defaults(func=_run)


def _demo(args: argparse.Namespace) -> int:
    """``poppk demo``: the end-to-end analysis of the bundled trial."""
    from poppk.workflow import run_demo

    return run_demo(out=args.out, quick=args.quick, analytes=args.analytes)


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the end-to-end analysis of the bundled IMGN853-like trial",
                              description="Check the bundled trial, fit TBW and AIBW size models, check, "
                              "compare, simulate dosing strategies and write a report to OUT.")
    p.add_argument("--out", default="out", metavar="DIR")
    p.add_argument("--quick", action="store_true", help="fewer draws (a smoke test)")
    p.add_argument("--analytes", action="store_true",
                   help="the optional second analysis: conjugate, payload and metabolite fitted jointly "
                   "(data/imgn853_analytes_analysis.toml)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (warnings and errors only)")
    p.set_defaults(func=_demo)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``poppk`` argument parser with all subcommands."""
    from poppk import __version__

    parser = argparse.ArgumentParser(
        prog="poppk", description="Bayesian population pharmacokinetics with body-size covariates.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"poppk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data(subparsers)
    _add_fit(subparsers)
    _add_check(subparsers)
    _add_simulate(subparsers)
    _add_report(subparsers)
    _add_run(subparsers)
    _add_demo(subparsers)
    from poppk.forecast.cli import add_parser as _add_forecast

    _add_forecast(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``poppk`` command; return the exit code.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, usage errors
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else EXIT_ERROR)
    func: Callable[[argparse.Namespace], int] = args.func
    from poppk.progress import to_stderr

    to_stderr(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)  # progress on stderr; results on stdout
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = func(args)
        except PopPKError as err:
            _print_warnings(caught)
            print(f"error: {err}", file=sys.stderr)
            return EXIT_ERROR
    _print_warnings(caught)
    return code


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    from poppk.errors import ConvergenceWarning, DataWarning

    seen = set()
    for item in caught:
        own = issubclass(item.category, (DataWarning, ConvergenceWarning)) or "poppk" in str(item.filename)
        text = str(item.message)
        if own and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
