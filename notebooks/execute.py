"""Execute the notebooks and write them with their outputs as ``.ipynb`` (``make notebooks``).

The notebooks are kept as jupytext ``.py`` files (reviewable diffs); this writes
``notebooks/executed/NN_name.ipynb`` with every output and figure, so a reader of
the repository sees them without running anything.  Fits are taken from
``--fit-store`` when they match (``poppk.fit(..., file=)``): after ``make demo``
the notebooks reuse the demo's fits instead of sampling again.

    .venv/bin/python notebooks/execute.py [--quick] [--fit-store out/fits] [NAME ...]

Each file is written atomically; a notebook that raises is reported with its
cell and the others are still written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The jupytext notebooks (``NN_*.py``), all or those whose stem starts with one of ``names``."""
    paths = sorted(HERE.glob("[0-9][0-9]_*.py"))
    if names:
        paths = [p for p in paths if any(p.stem.startswith(n) for n in names)]
    return paths


def execute(path: Path, *, workdir: Path, quick: bool = False, fit_store: Path | None = None,
            timeout: int = 3600) -> Any:
    """Run one jupytext notebook in a fresh kernel and return the executed notebook.

    Parameters
    ----------
    path
        The ``.py`` notebook.
    workdir
        The kernel's working directory.
    quick
        Small settings (``POPPK_QUICK=1``).
    fit_store
        ``POPPK_FIT_STORE``: where fits are kept and reused.
    timeout
        Seconds per cell.

    Returns
    -------
    nbformat.NotebookNode
        With outputs; a failing cell raises :class:`nbclient.exceptions.CellExecutionError`.
    """
    import jupytext
    import nbclient

    env = {"POPPK_QUICK": "1" if quick else "0"}
    if fit_store is not None:
        env["POPPK_FIT_STORE"] = str(fit_store)
    old = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend renders the figures
    try:
        nb = jupytext.read(path)
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def figures(nb: Any) -> int:
    """Number of PNG figures among the notebook's outputs."""
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def write(nb: Any, target: Path) -> Path:
    """Write the executed notebook atomically."""
    import nbformat

    from poppk.io import atomic_write_text

    atomic_write_text(target, nbformat.writes(nb))
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="notebooks to run (stem prefixes, e.g. 01); default all")
    ap.add_argument("--quick", action="store_true", help="small settings (POPPK_QUICK=1)")
    ap.add_argument("--fit-store", default="out/fits", help="POPPK_FIT_STORE (default out/fits, where make demo saves)")
    ap.add_argument("--out", default=str(HERE / "executed"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in notebook_paths(args.names):
        print(f"== {path.name}", flush=True)
        try:
            nb = execute(path, workdir=HERE, quick=args.quick, fit_store=Path(args.fit_store).resolve())
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"   failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", flush=True)
            failed += 1
            continue
        target = write(nb, out / f"{path.stem}.ipynb")
        print(f"   {figures(nb)} figures -> {target} ({target.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
