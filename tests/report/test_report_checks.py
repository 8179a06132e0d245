"""The report's checks section, simulated-data banner, term definitions and repeated rows/columns."""

from __future__ import annotations

import types

import pandas as pd
from matplotlib.figure import Figure

from poppk.report.checks import CHECK_FIGURES, checks_section, eta_covariate_section
from poppk.report.export import simulated_data_note
from poppk.report.html import drop_repeats, generic_html, terms_html


def _png(path):
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(path, format="png")


def test_checks_section_embeds_figures_in_order_with_captions(tmp_path):
    for stem in ("prior_vpc_log", "vpc", "npde", "eta_covariates"):
        _png(tmp_path / f"{stem}.png")
    pd.DataFrame({"statistic": ["mean", "global test"], "value": [0.1, None], "p_value": [None, 0.3],
                  "n": [50, 50]}).to_csv(tmp_path / "npde_tests.csv", index=False)
    pd.DataFrame({"name": ["eta_CL"], "kind": ["eta"], "parameter": ["CL"], "sd": [0.2], "reference": [0.3],
                  "shrinkage": [0.33], "n": [20], "shrinkage_pct": [33.3]}).to_csv(tmp_path / "shrinkage.csv",
                                                                                  index=False)
    html = checks_section(tmp_path)
    assert html.count("<img") == 3  # eta_covariates goes to the covariate section
    assert html.index("Visual predictive check") < html.index("NPDE") < html.index("Prior predictive VPC")
    captions = {f.stem: f.caption for f in CHECK_FIGURES}
    assert "How to read it" in captions["vpc"] and "How to read it" in captions["prior_vpc_log"]
    assert "global test" in html and "Bonferroni" in html
    assert "33.3" in html and "η-shrinkage" in html
    assert eta_covariate_section(tmp_path).count("<img") == 1
    assert "No model checks" in checks_section(tmp_path / "missing")


def test_banner_when_the_data_file_says_simulated(tmp_path, repo_root):
    bundled = types.SimpleNamespace(data=types.SimpleNamespace(source=str(repo_root / "data" / "imgn853_phase1.csv")))
    note = simulated_data_note(bundled)
    assert note and note.startswith("Simulated data: imgn853_phase1.csv")
    real = tmp_path / "study.csv"
    real.write_text("ID,TIME\n")
    assert simulated_data_note(types.SimpleNamespace(data=types.SimpleNamespace(source=str(real)))) is None
    (tmp_path / "study_truth.csv").write_text("ID\n")
    assert "study_truth.csv" in simulated_data_note(types.SimpleNamespace(data=types.SimpleNamespace(source=str(real))))
    assert simulated_data_note(types.SimpleNamespace(data=types.SimpleNamespace(source="<DataFrame>"))) is None


def test_tables_define_their_terms_and_drop_repeats():
    tab = pd.DataFrame({"label": ["5 mg/kg AIBW", "6 mg/kg AIBW", "6 mg/kg AIBW"],
                        "weight": [0.5, 0.5, 0.5],
                        "var_ratio_median": [0.8, 0.8, 0.8], "var_ratio_lo": [0.7, 0.7, 0.7],
                        "var_ratio_hi": [0.9, 0.9, 0.9], "var_ratio_copy": [0.8, 0.8, 0.8]})
    flat = drop_repeats(tab)
    assert len(flat) == 2 and "var_ratio_copy" not in flat and "weight" in flat
    html = generic_html(tab)
    assert html.count("<tr>") == 1 + 2  # header + two distinct rows
    assert "<dt>variance ratio</dt>" in html and "<dt>CrI</dt>" in html and "<dt>weight</dt>" in html
    assert terms_html(["strategy", "dose"]) == ""


def test_a_table_with_table_metadata_renders():
    """compare()'s table carries its exact-refit tables in .attrs (full runs only: the quick
    demo has no refits); make demo failed on it: pandas compares attrs cell-wise when copying."""
    tab = pd.DataFrame({"elpd": [-10.0, -12.0], "weight": [1.0, 0.0]}, index=["TBW", "AIBW"])
    tab.attrs["refits"] = {"TBW": pd.DataFrame({"id": [1, 2], "elpd": [-1.0, -2.0]})}
    tab.attrs["by"] = "subject"
    assert len(drop_repeats(tab)) == 2
    assert generic_html(tab, index_name="model").count("<tr>") == 3
    assert "refits" in tab.attrs  # the caller's table is left as it was
