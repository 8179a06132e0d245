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


def build_parser() -> argparse.ArgumentParser:
    """Return the ``poppk`` argument parser with all subcommands."""
    from poppk import __version__

    parser = argparse.ArgumentParser(
        prog="poppk", description="Bayesian population pharmacokinetics with body-size covariates."
    )
    parser.add_argument("--version", action="version", version=f"poppk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data(subparsers)
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
    for item in caught:
        print(f"warning: {item.message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
