"""One-trial version of benchmarks/calibrate_ratio.py: the calibration machinery end to end, small."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "calibrate_ratio.py"


def _load():
    spec = importlib.util.spec_from_file_location("calibrate_ratio", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("calibrate_ratio", mod)  # its dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return sys.modules["calibrate_ratio"]


def test_true_ratio_moves_with_the_truth():
    """In the generator's population: AIBW dosing narrows exposure when PK follow AIBW, widens it under TBW^1."""
    cal = _load()
    small = cal.Settings(n_truth=20_000)
    aibw, tbw1 = cal.true_ratio("AIBW", small), cal.true_ratio("TBW^1", small)
    for m in cal.METRICS:
        assert aibw["var_ratio"][m] < 1 < tbw1["var_ratio"][m]
    assert tbw1["f_opt"]["auc_c1"] > 0.9 and aibw["f_opt"]["auc_c1"] < 0.6


def test_one_replicate_is_analysed_cached_and_summarised(tmp_path):
    cal = _load()
    # size on every clearance and volume, as the bundled analysis: the same compiled structures as the
    # bundled run's candidates, which this test then loads from the suite's compile store instead of
    # compiling them again (hence it is not among conftest's _FIRST groups)
    settings = cal.Settings(chains=2, tune=150, draws=150, n_patients=400, n_sim_draws=40, n_truth=20_000,
                            cohort_scale=0.6, size_parameters=("CL", "V1", "Q", "V2"))
    truth = cal.true_ratio("TBW^1", settings)
    res = cal.run_replicate("TBW^1", 0, settings)
    assert set(res["answers"]) == {"averaged", "TBW", "AIBW", "ADJ"}
    assert sum(res["weights"].values()) == pytest.approx(1.0)
    a = res["answers"]["averaged"]["cmax_c1"]
    assert a["lo"] <= a["median"] <= a["hi"]
    assert res["size_fraction"]["lo"] < res["size_fraction"]["median"] < res["size_fraction"]["hi"]
    path = cal._cache_path(tmp_path, "TBW^1", 0)
    cal._write_json(path, res)
    failed = cal._failure("TBW^1", 1, RuntimeError("boom"))
    table = cal.summarize([json.loads(path.read_text()), failed], {"TBW^1": truth})
    row = table.loc[("averaged", "cmax_c1", "pooled")]
    t = truth["var_ratio"]["cmax_c1"]
    assert row["n"] == 1 and row["n_failed"] == 1
    assert row["coverage"] == float(a["lo"] <= t <= a["hi"])
    assert row["wrong_side"] == float(a["hi"] < 1 <= t or a["lo"] > 1 >= t)
    assert row["median_log_bias"] == pytest.approx(np.log(a["median"] / t))
    assert ("f*", "cmax_c1", "pooled") in table.index
    png = cal.plot_coverage(table, tmp_path / "coverage.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cal.clopper_pearson(18, 20) == pytest.approx((0.683, 0.988), abs=1e-3)
