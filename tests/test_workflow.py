"""The main end-to-end analysis (what `make demo` runs), on quick settings."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_bundled_analysis_end_to_end(tmp_path):
    from poppk.cli import main

    out = tmp_path / "out"
    assert main(["run", "data/imgn853_analysis.toml", "--quick", "--out", str(out)]) == 0
    # fits for each descriptor, reloadable
    from poppk import load_fit

    for d in ("TBW", "AIBW"):
        f = load_fit(out / "fits" / d)
        assert any(c.covariate == d for c in f.spec.covariates)
        assert (out / "checks" / d).is_dir() and any((out / "checks" / d).glob("*.png"))
    # dosing simulation summary with variance ratios against 5 mg/kg TBW
    summary = pd.read_csv(out / "simulation" / "summary.csv")
    assert {"strategy", "metric", "var_ratio_median"} <= set(summary.columns)
    # the report: one self-contained HTML file plus tables with provenance
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    meta = json.loads((out / "report.json").read_text())
    assert meta["provenance"]["data"]["sha256"] if isinstance(meta["provenance"].get("data"), dict) else meta["provenance"]
    assert (out / "parameters.csv").is_file() and (out / "covariate_effects.csv").is_file()
