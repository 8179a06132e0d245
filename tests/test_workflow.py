"""The main end-to-end analysis (what `make demo` runs), on quick settings."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_bundled_analysis_end_to_end(bundled_out, tmp_path, capsys):
    from pathlib import Path

    from poppk.cli import main

    out = bundled_out  # the notebooks' fit store is out/fits: fits they made are reused here, and vice versa
    # the bundled config with its candidate fits run at once on two local worker processes
    bundled = Path("data/imgn853_analysis.toml").resolve()
    text = bundled.read_text().replace('path = "imgn853_phase1.csv"', f'path = "{bundled.parent / "imgn853_phase1.csv"}"')
    assert "\n[fit]\n" in text
    config = tmp_path / "analysis.toml"
    config.write_text(text.replace("\n[fit]\n", "\n[fit]\nworkers = 2\n", 1))
    assert main(["run", str(config), "--quick", "--out", str(out)]) == 0
    log = capsys.readouterr().err  # progress goes to stderr (logging), stdout stays for results
    assert "at once on 2 local worker processes" in log and "'ADJ':" in log
    assert "VPC (time after dose)" in log and "PSIS-LOO per subject" in log
    # fits for each descriptor, reloadable
    from poppk import load_fit

    for d in ("TBW", "AIBW"):
        f = load_fit(out / "fits" / d)
        assert any(c.covariate == d for c in f.spec.covariates)
        assert (out / "checks" / d).is_dir() and any((out / "checks" / d).glob("*.png"))
    adj = load_fit(out / "fits" / "ADJ")  # the adjusted size model: its fraction reloads with the fit
    assert adj.spec.size_fraction is not None and "size_fraction" in adj.idata.posterior
    # every model simulated, each with its own summary, and the answer averaged by stacking weights
    for d in ("TBW", "AIBW", "ADJ"):
        summary = pd.read_csv(out / "simulation" / d / "summary.csv")
        assert {"strategy", "metric", "var_ratio_median"} <= set(summary.columns)
    averaged = pd.read_csv(out / "simulation" / "averaged_strategies.csv")
    assert list(averaged["model"].unique()) == ["averaged", "TBW", "AIBW", "ADJ"]
    weights = averaged.drop_duplicates("model").set_index("model")["weight"]
    assert weights.drop("averaged").sum() == pytest.approx(1.0)
    answer = json.loads((out / "simulation" / "answer.json").read_text())
    assert answer["headline"] and {v["metric"] for v in answer["verdicts"]} >= {"cmax_c1", "auc_c1"}
    optimal = pd.read_csv(out / "simulation" / "optimal_fraction.csv")
    assert ((optimal["f_opt_median"] >= 0) & (optimal["f_opt_median"] <= 1)).all()
    # the report: one self-contained HTML file plus tables with provenance, led by the averaged answer
    html = (out / "report.html").read_text()
    assert "The dosing answer" in html and "averaged over 3 fits" in html and "f* =" in html
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    meta = json.loads((out / "report.json").read_text())
    assert meta["provenance"]["data"]["sha256"] if isinstance(meta["provenance"].get("data"), dict) else meta["provenance"]
    assert (out / "parameters.csv").is_file() and (out / "covariate_effects.csv").is_file()
    # [forecast]: the bundled table of patients, one page each and the summary (poppk forecast --patients' code)
    assert "== 6. individual forecasts from the 'AIBW' fit" in log
    summary = pd.read_csv(out / "forecast" / "patients.csv").set_index("ID")
    assert list(summary.index) == ["A", "B", "C"] and "error" not in summary.columns
    assert list(summary["n_observations"]) == [3, 1, 0] and summary["schedule"].notna().all()
    assert (summary["dose_mg"].dropna() % 10 == 0).all() and (summary["dose_mg"].dropna() <= 1000).all()
    for p in "ABC":
        page = (out / "forecast" / p / "forecast.html").read_text()
        assert "Recommendation" in page and "mg/week" in page  # the table of schedules searched
    # the report (written after the forecasts) lists the patients with a link to each page
    assert "Individual forecasts" in html and all(f'href="forecast/{p}/forecast.html"' in html for p in "ABC")
    assert [r["ID"] for r in meta["tables"]["forecasts"]] == ["A", "B", "C"]
    rec = json.loads((out / "forecast" / "A" / "forecast.json").read_text())["recommendation"]
    assert [s["schedule"].split(",")[0] for s in rec["schedules"]] == ["Q3W x6", "Q4W x6", "D1", "Q3W x6"]
    assert sum(s["chosen"] for s in rec["schedules"]) == (1 if rec["dose_mg"] == rec["dose_mg"] else 0)
