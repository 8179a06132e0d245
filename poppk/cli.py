"""The ``poppk`` command.

A thin layer over the public functions: each subcommand parses its options,
calls the library and prints.  A :class:`~poppk.errors.PopPKError` is printed
as ``error: <message>`` on stderr with exit code 2 (no traceback).

To add a command group, write an ``_add_<group>(subparsers)`` function that
registers its parsers with ``set_defaults(func=...)`` (``func(args) -> int``)
and call it from :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from poppk.errors import BodySizeError, DatasetError, PopPKError

__all__ = ["main", "build_parser"]

#: Exit code for bad input (a :class:`PopPKError`), as for usage errors.
EXIT_ERROR = 2
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
                       sex_female_code=args.female_code)
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
    check.set_defaults(func=_data_check)


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

    data = read_nonmem(args.data, columns=dict(args.map), sex_female_code=args.female_code)
    if {"WT", "HT", "SEX"} <= set(data.covariate_names):
        data = data.with_size_descriptors()
    spec = _load_spec(args.model)
    if args.size:
        spec = spec.with_size_covariate(args.size)
    print(spec.describe())
    result = fit(spec, data, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                 progress=not args.quiet)
    print(result.summary().round(4).to_string())
    print(result.convergence().message())
    path = result.save(args.out)
    print(f"fit saved to {path}")
    return 0


def _add_fit(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fit", help="fit a model to a dataset and save the fit",
                              description="Fit a ModelSpec (TOML or JSON; a [model] table or the spec itself) "
                              "to a NONMEM-style dataset with NUTS and save the fit directory.")
    p.add_argument("data", metavar="DATA", help="NONMEM-style dataset")
    p.add_argument("--model", required=True, metavar="SPEC", help="model spec file (.toml or .json)")
    p.add_argument("--out", required=True, metavar="FIT_DIR", help="directory to write the fit to")
    p.add_argument("--size", metavar="DESCRIPTOR", help="use this body-size descriptor (TBW, AIBW, LBW, ...)")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--map", metavar="OLD=NEW", type=_mapping, action="append", default=[])
    p.add_argument("--female-code", metavar="CODE", default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fit)


def _demo(args: argparse.Namespace) -> int:
    """``poppk demo``: the end-to-end analysis of the bundled trial."""
    from poppk.workflow import run_demo

    return run_demo(out=args.out, quick=args.quick)


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the end-to-end analysis of the bundled IMGN853-like trial",
                              description="Check the bundled trial, fit TBW and AIBW size models, check, "
                              "compare, simulate dosing strategies and write a report to OUT.")
    p.add_argument("--out", default="out", metavar="DIR")
    p.add_argument("--quick", action="store_true", help="fewer draws (a smoke test)")
    p.set_defaults(func=_demo)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``poppk`` argument parser with all subcommands."""
    from poppk import __version__

    parser = argparse.ArgumentParser(
        prog="poppk", description="Bayesian population pharmacokinetics with body-size covariates."
    )
    parser.add_argument("--version", action="version", version=f"poppk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data(subparsers)
    _add_fit(subparsers)
    _add_demo(subparsers)
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
