"""Shared test fixtures: paths, the public benchmark (skipped when absent), simulated studies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _studies import simulate_study  # noqa: F401  (re-exported for test modules)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCHMARK_CSV = SHARED / "benchmarks" / "iv_2cmt_multiple_dose.csv"

os.environ.setdefault("MPLBACKEND", "Agg")
# compiled model structures: a store of the test runs' own (inherited by subprocesses, notebook
# kernels and dask workers), kept between local runs, never the user's ~/.cache/poppk
os.environ.setdefault("POPPK_COMPILE_CACHE", str(REPO / ".pytest_compile_store"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def benchmark_csv() -> Path:
    if not BENCHMARK_CSV.is_file():
        pytest.skip("../shared/benchmarks is not available on this machine")
    return BENCHMARK_CSV


@pytest.fixture(scope="session")
def small_study():
    """A 1-cmt IV bolus study of 24 subjects with known truth (fast to fit)."""
    from poppk.data import read_nonmem

    df, truth = simulate_study()
    return read_nonmem(df), truth


@pytest.fixture(scope="session")
def small_fit(small_study):
    """One real (small) fit shared by the whole session."""
    from poppk.model import ModelSpec, fit

    data, _ = small_study
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional",
                     units={"time": "h"})
    return fit(spec, data, draws=300, tune=300, chains=2, seed=3, progress=False)


@pytest.fixture(scope="session")
def bundled_out(tmp_path_factory) -> Path:
    """One output directory of the bundled analysis for the session (``poppk run --quick --out``).

    Its ``fits/`` is also the notebooks' fit store (``POPPK_FIT_STORE``): the demo's quick
    fits and the notebooks' fits of the same model, data and settings are made once and
    reused by whichever runs later (``poppk.fit(..., file=)``).
    """
    out = tmp_path_factory.mktemp("bundled") / "out"
    (out / "fits").mkdir(parents=True)
    return out
