"""Every notebook runs top to bottom (small settings), renders its figures, and is written as .ipynb.

The same code as ``make notebooks`` (``notebooks/execute.py``), on quick settings.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

pytestmark = pytest.mark.slow


def _executor():
    spec = importlib.util.spec_from_file_location("notebooks_execute", ROOT / "notebooks" / "execute.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("notebooks_execute", mod)
    spec.loader.exec_module(mod)
    return mod


def test_the_executor_finds_every_notebook():
    ex = _executor()
    assert ex.notebook_paths() == NOTEBOOKS
    assert [p.stem[:2] for p in ex.notebook_paths(["03"])] == ["03"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, bundled_out):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    ex = _executor()
    # fits shared with the other notebooks and the demo (test_workflow) through one store
    nb = ex.execute(path, workdir=tmp_path, quick=True, fit_store=bundled_out / "fits", timeout=900)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert ex.figures(nb) > 0, "the notebook rendered no figure"
    written = ex.write(nb, tmp_path / f"{path.stem}.ipynb")
    saved = json.loads(written.read_text())
    assert saved["nbformat"] == 4 and any(c.get("outputs") for c in saved["cells"] if c["cell_type"] == "code")
