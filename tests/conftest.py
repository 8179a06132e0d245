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


# ------------------------------------------------------------------ parallel runs (pytest-xdist)
#: Test files that share the bundled analysis' fit store (the ``bundled_out`` fixture): one worker.
_BUNDLED = ("test_notebooks.py", "test_workflow.py")


#: Files in a package that fit only their own module fixtures: groups of their own, so that the
#: package's worker does not carry them too.
_OWN_GROUP = {"model/test_analytes_fit.py": "analytes_fit"}


def _group(path: Path) -> str:
    """The xdist group of a test file: tests that share fitted fixtures run on one worker.

    Session fixtures and the ``lru_cache`` fits of ``_diag_fixtures``/``_report_fixtures``
    live per process, so a package's tests stay together (each fit made once); the bundled
    analysis' store is shared by the notebooks and the end-to-end run; other top-level files
    are groups of their own.
    """
    try:
        rel = path.relative_to(REPO / "tests")
    except ValueError:  # e.g. doctests of the package
        return "outside-tests"
    if rel.as_posix() in _OWN_GROUP:
        return _OWN_GROUP[rel.as_posix()]
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "bundled" if rel.name in _BUNDLED else rel.stem


#: Tests (by a part of their node id) in a group of their own, away from their file's group: the
#: multi-analyte notebook fits its own data, so it need not wait behind the bundled analysis.
_OWN_SCOPE = {"05_several_analytes": "notebook_analytes"}

#: Groups started first (the longest), so that no long group starts last on a worker.  The
#: calibration smoke test is long only when it compiles the bundled analysis' structures itself:
#: started later, it finds them in the compile store that the bundled run (started first) fills.
_FIRST = ("bundled", "notebook_analytes", "model", "simulate", "diagnostics", "analytes_fit")


def _scope(nodeid: str) -> str:
    """The xdist group of a test by its node id: :data:`_OWN_SCOPE`, else its file's (:func:`_group`)."""
    for part, group in _OWN_SCOPE.items():
        if part in nodeid:
            return group
    return _group(REPO / nodeid.split("::", 1)[0])


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the longest groups first; the order within a group is unchanged."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    rank = {g: i for i, g in enumerate(_FIRST)}
    items.sort(key=lambda it: rank.get(_scope(it.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config, log):
    """``-n N --dist loadgroup`` (``make test``): each group (:func:`_group`) runs on one worker.

    A scheduler of scopes whose scope is the group, rather than ``xdist_group``
    marks: pytest-xdist 3.8 renames a marked test's node id, which pytest 9.2
    no longer allows, so marks are silently ignored.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection's order (longest first), not by test count

    class _GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return _GroupScheduling(config, log)
