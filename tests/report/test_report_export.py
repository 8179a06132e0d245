"""export_covariate_report: self-contained, escaped HTML; CSV/JSON agree with the tables; atomic, reproducible."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from poppk.report import REPORT_FILES, covariate_effects, export_covariate_report, parameter_table

from _report_fixtures import (
    EVIL,
    EVIL_COV,
    comparison_table,
    covariate_fit,
    data_file,
    plain_fit,
    strategy_table,
)

SECTION_IDS = ("provenance", "model", "convergence", "parameters", "covariates", "strategies", "comparison",
               "methods")


def _extra_figure() -> Figure:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([1, 2, 3], [1, 4, 9])
    return fig


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    _extra_figure().savefig(buf, format="png")
    return buf.getvalue()


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    png = out.parent / "extra.png"
    png.write_bytes(_png_bytes())
    paths = export_covariate_report(
        covariate_fit(), out, formats=("html", "csv", "json", "png"),
        strategy_table=strategy_table(), comparison_table=comparison_table(),
        figures={EVIL: _extra_figure(), "fig_png_bytes": _png_bytes(), "from a file": png},
        title=f"Report {EVIL} & co",
    )
    return out, paths


def test_files_written(full_report):
    out, paths = full_report
    assert set(paths) == set(REPORT_FILES)
    for key, p in paths.items():
        assert p == out / REPORT_FILES[key] and p.is_file() and p.stat().st_size > 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        paths = export_covariate_report(plain_fit(), tmp_path, formats=("csv",))
    finally:
        os.umask(old)
    for p in paths.values():
        assert p.stat().st_mode & 0o777 == 0o644  # readable by the team, not mkstemp's 0600


def test_html_is_self_contained(full_report):
    _, paths = full_report
    page = paths["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    low = page.lower()
    for bad in ("<script", "<link", "<iframe", "@import", "url(", "javascript:"):
        assert bad not in low, bad
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(srcs) == page.count("<img") == 4  # forest + three extra figures
    from matplotlib.image import imread

    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert imread(io.BytesIO(data)).shape[0] > 50  # a whole, decodable image
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page
    assert "Content-Security-Policy" in page


def test_html_escapes_every_user_string(full_report):
    _, paths = full_report
    page = paths["html"].read_text(encoding="utf-8")
    # hostile strings: title, covariate column (upper-cased by the reader), strategy label and column,
    # model name, figure caption, subject ID, data file name
    assert EVIL not in page and EVIL_COV not in page and "<b>" not in page
    assert html.escape(EVIL) in page  # title, strategy label, model name, caption
    assert html.escape(EVIL_COV) in page  # covariate in parameter and covariate tables, spec text
    assert html.escape(f"Report {EVIL} & co") in page
    assert html.escape(data_file().name) in page
    tags = set(re.findall(r"<\s*([a-zA-Z0-9]+)", page))
    allowed = {"html", "head", "meta", "title", "style", "body", "main", "header", "div", "h1", "h2", "p", "span",
               "nav", "strong", "ol", "li", "a", "section", "dl", "dt", "dd", "pre", "ul", "table", "thead", "tbody",
               "tr", "th", "td", "figure", "img", "figcaption", "footer", "caption"}
    assert tags <= allowed, tags - allowed


def test_csv_match_tables(full_report):
    out, paths = full_report
    fit = covariate_fit()
    params = pd.read_csv(paths["parameters"])
    direct = parameter_table(fit)
    assert params["parameter"].tolist() == direct["parameter"].tolist()
    np.testing.assert_allclose(params["median"], direct["median"], rtol=1e-15)
    np.testing.assert_allclose(params["upper"], direct["upper"], rtol=1e-15, equal_nan=True)
    assert "unit" in params.columns and params.loc[params["parameter"] == "sigma_add", "unit"].item() == "mg/L"
    covs = pd.read_csv(paths["covariate_effects"])
    cdirect = covariate_effects(fit)
    np.testing.assert_allclose(covs["mid"], cdirect["mid"], rtol=1e-15)
    assert "covariate_unit" in covs.columns
    st = pd.read_csv(paths["strategies"])
    assert {"strategy", "metric", "label", "unit"} <= set(st.columns) and EVIL in set(st["label"])
    cmp_ = pd.read_csv(paths["comparison"])
    assert cmp_["model"].tolist() == ["TBW", EVIL]


def test_json_parses_with_provenance(full_report):
    _, paths = full_report
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    prov = doc["provenance"]
    data = covariate_fit().data
    assert prov["data_sha256"] == data.sha256 and len(prov["data_sha256"]) == 64
    assert prov["data_file"] == data_file().name
    assert prov["seed"] == 1234 and prov["sampler"] == "nutpie"
    assert prov["backend"] == "numba"  # a fit saved without the setting was compiled by numba
    assert prov["chains"] == 2 and prov["draws_per_chain"] == 200
    assert prov["versions"]["pymc"] == "5.0" and prov["report_created"]
    assert doc["spec"]["structure"] == "1cmt"
    tables = doc["tables"]
    assert set(tables) == {"parameters", "covariate_effects", "strategy_comparison", "model_comparison"}
    fixed = next(r for r in tables["parameters"] if r["parameter"] == "beta_V1_WT")
    assert fixed["fixed"] is True and fixed["lower"] is None  # NaN -> null
    csv = pd.read_csv(paths["parameters"])
    assert [r["median"] for r in tables["parameters"]] == csv["median"].tolist()
    assert tables["strategy_comparison"][0]["strategy"] == "tbw"
    assert doc["convergence"]["ok"] is True and doc["convergence"]["divergences"] == 0


def test_rerun_overwrites_and_drops_stale_optional_tables(tmp_path):
    fit = covariate_fit()
    first = export_covariate_report(fit, tmp_path, strategy_table=strategy_table(), comparison_table=comparison_table())
    assert first["strategies"].is_file()
    second = export_covariate_report(fit, tmp_path, formats=("csv", "json", "html"), title="second")
    assert "strategies" not in second and not (tmp_path / REPORT_FILES["strategies"]).exists()
    assert not (tmp_path / REPORT_FILES["comparison"]).exists()
    assert "second" in second["html"].read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        REPORT_FILES[k] for k in ("html", "json", "parameters", "covariate_effects"))


def test_writes_are_atomic(tmp_path, monkeypatch):
    fit = plain_fit()
    export_covariate_report(fit, tmp_path, formats=("csv",))
    before = (tmp_path / "parameters.csv").read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("parameters.csv"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        export_covariate_report(fit, tmp_path, formats=("csv",), title="x")
    monkeypatch.undo()
    assert (tmp_path / "parameters.csv").read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def _same_data(a, b) -> bool:
    for name in ("observations", "covariates", "doses"):
        x, y = getattr(a, name), getattr(b, name)
        for c in x.columns:
            if x[c].dtype.kind == "f" and not np.array_equal(x[c].to_numpy(), y[c].to_numpy(), equal_nan=True):
                return False
    return True


def test_reloaded_fit_gives_identical_report(tmp_path, monkeypatch):
    from poppk.model import load_fit

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    fit = covariate_fit()
    fit.save(tmp_path / "fit")
    again = load_fit(tmp_path / "fit")
    a = export_covariate_report(fit, tmp_path / "a")
    b = export_covariate_report(again, tmp_path / "b")
    # the report is a function of (posterior, spec, data): the data must round-trip exactly
    assert _same_data(fit.data, again.data)
    for key in ("parameters", "covariate_effects", "json", "html"):
        assert a[key].read_bytes() == b[key].read_bytes(), key


def test_report_is_a_function_of_the_saved_fit(tmp_path, monkeypatch):
    from poppk.model import load_fit

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    fit = covariate_fit()
    fit.save(tmp_path / "fit")
    a = export_covariate_report(load_fit(tmp_path / "fit"), tmp_path / "a")
    b = export_covariate_report(load_fit(tmp_path / "fit"), tmp_path / "b")
    for key in ("parameters", "covariate_effects", "json", "html"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
    # and agrees with the fit in memory up to the data round-trip
    fresh = export_covariate_report(fit, tmp_path / "c", formats=("csv",))
    for key in ("parameters", "covariate_effects"):
        x, y = pd.read_csv(a[key]), pd.read_csv(fresh[key])
        num = [c for c in x.columns if x[c].dtype.kind == "f"]
        np.testing.assert_allclose(x[num].to_numpy(), y[num].to_numpy(), rtol=1e-8, equal_nan=True)
        assert x.drop(columns=num).equals(y.drop(columns=num))


def test_plain_model_report(tmp_path):
    paths = export_covariate_report(plain_fit(), tmp_path, formats=("html", "json"))
    page = paths["html"].read_text(encoding="utf-8")
    assert "no covariate effects" in page
    assert page.count("<img") == 0
    assert '<section id="strategies">' not in page and '<section id="comparison">' not in page
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["tables"]["covariate_effects"] == []


def test_bad_arguments(tmp_path):
    from poppk.errors import PopPKError

    with pytest.raises(PopPKError, match="formats"):
        export_covariate_report(plain_fit(), tmp_path, formats=("pdf",))
    with pytest.raises(PopPKError, match="DataFrame"):
        export_covariate_report(plain_fit(), tmp_path, strategy_table={"a": 1})  # type: ignore[arg-type]
    with pytest.raises(PopPKError, match="figure"):
        export_covariate_report(plain_fit(), tmp_path, formats=("html",), figures={"x": b"GIF89a"})
    assert not list(Path(tmp_path).iterdir())


def test_report_without_subject_level_covariate_values(tmp_path):
    """subject_level=False drops the η-against-covariates figures (each subject's own values) and says so."""
    checks = tmp_path / "checks"
    checks.mkdir()
    for stem in ("vpc", "eta_covariates", "eta_distributions"):
        fig = _extra_figure()
        fig.savefig(checks / f"{stem}.png", format="png")
    fit = plain_fit()
    full = export_covariate_report(fit, tmp_path / "full", formats=("html",), checks=checks)
    shared = export_covariate_report(fit, tmp_path / "shared", formats=("html", "json"), checks=checks,
                                     subject_level=False)
    page_full, page_shared = full["html"].read_text(), shared["html"].read_text()
    assert "Random effects against covariates" in page_full
    assert "Random effects against covariates" not in page_shared
    assert page_shared.count("<img") < page_full.count("<img")
    assert "Subject-level data" in page_shared and "Subject-level data" not in page_full
    assert "left out" in json.loads(shared["json"].read_text())["provenance"]["subject_level_data"]


def test_report_lists_forecasts_with_links_to_existing_pages(tmp_path):
    pages = tmp_path / "forecast"
    (pages / "A").mkdir(parents=True)
    (pages / "A" / "forecast.html").write_text("<html></html>")
    summary = pd.DataFrame({"ID": ["A", "B"], "dose_mg": [420.0, float("nan")], "schedule": ["Q3W x6", "Q3W x6"],
                            "error": [float("nan"), "no HT given"]})
    paths = export_covariate_report(plain_fit(), tmp_path / "report", formats=("html", "json"),
                                    forecasts=summary, forecast_dir=pages)
    page = paths["html"].read_text()
    assert "Individual forecasts" in page and 'href="../forecast/A/forecast.html"' in page
    assert 'href="../forecast/B' not in page and "no HT given" in page
    assert [r["ID"] for r in json.loads(paths["json"].read_text())["tables"]["forecasts"]] == ["A", "B"]
