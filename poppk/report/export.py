"""Export of the covariate report: one self-contained HTML file, CSV tables and a JSON document.

``report.html`` has no external resources and needs no JavaScript: figures are
PNG ``data:`` URIs, the style sheet is inline and a Content-Security-Policy
forbids anything else.  Every string that comes from the user (titles, file
names, column names, covariate names and levels, strategy and model names,
spec text) is HTML-escaped.

Every file is written with :func:`poppk.io.atomic_write_bytes` (a temporary
file in the output directory renamed into place), so a reader never sees a
partial file and rerunning overwrites cleanly.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from poppk.io import atomic_write_bytes, jsonable
from poppk.report.covariates import REFERENCE_BAND, covariate_effects, plot_forest
from poppk.report.html import _caption, _csv_bytes, _image_uri, _records
from poppk.report.page import render_html
from poppk.report.tables import parameter_table

__all__ = ["export_covariate_report", "report_provenance", "render_html", "FORMATS", "REPORT_FILES"]

#: Output formats of :func:`export_covariate_report`.
FORMATS = ("html", "csv", "json", "png")

#: File names written into the output directory, by key.
REPORT_FILES = {
    "html": "report.html",
    "json": "report.json",
    "parameters": "parameters.csv",
    "covariate_effects": "covariate_effects.csv",
    "strategies": "strategy_comparison.csv",
    "comparison": "model_comparison.csv",
    "forest": "covariate_forest.png",
}

JSON_FORMAT = "poppk.Report/1"


# ---------------------------------------------------------------- provenance
def _now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = time.gmtime(int(epoch)) if epoch and epoch.isdigit() else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


def report_provenance(fit: Any) -> dict[str, Any]:
    """Where a fit's numbers come from: data file and hash, sampler settings, seed, versions, dates.

    ``report_created`` is the current UTC time, or ``SOURCE_DATE_EPOCH`` when set
    (reproducible builds).
    """
    from importlib.metadata import PackageNotFoundError, version

    s = dict(fit.settings or {})
    post = fit.idata.posterior
    src = str(getattr(fit.data, "source", "") or "")
    name = src if src.startswith("<") else Path(src).name
    try:
        report_version = version("poppk")
    except PackageNotFoundError:  # pragma: no cover
        report_version = "unknown"
    try:
        n_obs = int(fit.design.n_obs)
    except Exception:  # pragma: no cover - design needs the data
        n_obs = None
    return {
        "data_file": name,
        "data_source": src,
        "data_sha256": getattr(fit.data, "sha256", None),
        "n_subjects": int(fit.data.n_subjects),
        "n_observations": n_obs,
        "model": fit.spec.structure,
        "sampler": s.get("sampler"),
        "chains": int(post.sizes["chain"]),
        "draws_per_chain": int(post.sizes["draw"]),
        "tune": s.get("tune"),
        "seed": s.get("seed"),
        "cores": s.get("cores"),
        "target_accept": s.get("target_accept"),
        "low_rank": s.get("low_rank"),
        "timings_s": s.get("timings", {}),
        "fit_created": s.get("created"),
        "versions": s.get("versions", {}),
        "report_poppk_version": report_version,
        "report_created": _now(),
    }


def _convergence(fit: Any) -> dict[str, Any]:
    try:
        rep = fit.convergence()
    except (AttributeError, KeyError) as err:
        return {"ok": None, "message": f"convergence diagnostics unavailable ({type(err).__name__}: {err})",
                "problems": [], "divergences": None, "max_treedepth_hits": None, "mean_steps": None,
                "max_r_hat": None, "min_ess_bulk": None, "min_ess_tail": None}
    t = rep.table
    return {
        "ok": bool(rep.ok),
        "message": rep.message(),
        "problems": list(rep.problems),
        "divergences": int(rep.divergences),
        "max_treedepth_hits": int(rep.max_treedepth_hits),
        "mean_steps": jsonable(rep.mean_steps),
        "max_r_hat": jsonable(t["r_hat"].max()) if len(t) else None,
        "min_ess_bulk": jsonable(t["ess_bulk"].min()) if len(t) else None,
        "min_ess_tail": jsonable(t["ess_tail"].min()) if len(t) else None,
    }


# ---------------------------------------------------------------- export
def export_covariate_report(
    fit: Any,
    out_dir: str | os.PathLike[str],
    formats: Iterable[str] = ("html", "csv", "json"),
    *,
    strategy_table: pd.DataFrame | None = None,
    comparison_table: pd.DataFrame | None = None,
    figures: Mapping[str, Any] | Sequence[Any] | None = None,
    title: str | None = None,
    ci: float = 0.95,
    covariate_ci: float = 0.90,
    dosing: Iterable[str] = ("flat",),
    covariate_units: Mapping[str, str] | None = None,
    answer: Sequence[str] = (),
    answer_tables: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Path]:
    """Write the covariate report of a fit: self-contained HTML, CSV tables and JSON.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit` (fresh or from :func:`~poppk.model.load_fit`).
    out_dir
        Output directory (created if needed).  Files (see :data:`REPORT_FILES`):
        ``report.html``; ``parameters.csv``, ``covariate_effects.csv`` and,
        when given, ``strategy_comparison.csv``, ``model_comparison.csv``;
        ``report.json``; ``covariate_forest.png`` (format ``"png"``).
    formats
        Any of ``"html"``, ``"csv"``, ``"json"``, ``"png"``.
    strategy_table
        Optional dosing-strategy comparison (e.g.
        :func:`poppk.simulate.summarize_strategies` or its CSV), included as is.
    comparison_table
        Optional model comparison (e.g. :func:`poppk.diagnostics.compare`).
    figures
        Optional extra figures ``{caption: Figure | PNG bytes | PNG path}``
        (or a list of them), embedded in the HTML after the strategy table
        (or in a *Figures* section).
    title
        Report title (default: from the model and the data file).
    ci
        Credible-interval mass of the parameter table (0.95).
    covariate_ci
        Credible-interval mass of the covariate effects (0.90).
    dosing
        Dose assumptions of the exposure ratios, see :func:`covariate_effects`.
    covariate_units
        Unit labels of covariates.
    answer, answer_tables
        The dosing answer that leads the report: sentences (e.g.
        :attr:`poppk.simulate.answer.AveragedAnswer.headline`) and
        ``{caption: table}`` (the per-model and averaged variance ratios, f*).

    Returns
    -------
    dict
        ``{key: path}`` of the files written (keys of :data:`REPORT_FILES`).

    Examples
    --------
    >>> from poppk.model import load_fit                                   # doctest: +SKIP
    >>> export_covariate_report(load_fit("out/fits/AIBW"), "out/report")  # doctest: +SKIP
    """
    from poppk.errors import ConfigError

    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(dict.fromkeys(str(f).lower() for f in formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"formats {bad or list(formats)}: choose one or more of {FORMATS}")
    for name, tab in (("strategy_table", strategy_table), ("comparison_table", comparison_table)):
        if tab is not None and not isinstance(tab, pd.DataFrame):
            raise ConfigError(f"{name} must be a pandas DataFrame, got {type(tab).__name__}")
    dosing = tuple(dosing)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    params = parameter_table(fit, ci=ci, covariate_units=covariate_units)
    covs = covariate_effects(fit, ci=covariate_ci, dosing=dosing, covariate_units=covariate_units)
    prov = report_provenance(fit)
    conv = _convergence(fit)
    if title is None:
        title = f"Population PK report: {fit.spec.structure} model, {prov['data_file']}"
    written: dict[str, Path] = {}

    def write(key: str, data: bytes) -> None:
        written[key] = atomic_write_bytes(out / REPORT_FILES[key], data)

    def drop_stale(key: str) -> None:
        (out / REPORT_FILES[key]).unlink(missing_ok=True)

    if "csv" in formats:
        write("parameters", _csv_bytes(params))
        write("covariate_effects", _csv_bytes(covs))
        for key, tab, idx in (("strategies", strategy_table, "index"), ("comparison", comparison_table, "model")):
            if tab is not None:
                write(key, _csv_bytes(tab, idx))
            else:
                drop_stale(key)

    forest = None
    if "html" in formats or "png" in formats:
        forest = plot_forest(covs, title=None)
    if "png" in formats and forest is not None:
        buf = io.BytesIO()
        forest.savefig(buf, format="png", dpi=150, bbox_inches="tight", facecolor="white")
        write("forest", buf.getvalue())

    companions = []
    if "csv" in formats:
        companions += ["parameters", "covariate_effects"] + [
            k for k, t in (("strategies", strategy_table), ("comparison", comparison_table)) if t is not None]
    if "json" in formats:
        companions.append("json")
    if "png" in formats:
        companions.append("forest")
    if "html" in formats:
        items = list(figures.items()) if isinstance(figures, Mapping) else [
            (f"Figure {i}", f) for i, f in enumerate(figures or (), 1)]
        fig_uris = [(_caption(k), _image_uri(v)) for k, v in items]
        page = render_html(
            title=str(title), provenance=prov, spec_text=fit.spec.describe(), convergence=conv,
            parameters=params, covariates=covs, forest_uri=_image_uri(forest),
            strategy_table=strategy_table, comparison_table=comparison_table, figures=fig_uris,
            companions=[REPORT_FILES[k] for k in companions], answer=tuple(answer),
            answer_tables=answer_tables,
        )
        write("html", page.encode("utf-8"))

    if "json" in formats:
        tables: dict[str, Any] = {"parameters": _records(params), "covariate_effects": _records(covs)}
        notes: dict[str, Any] = {"parameters": params.attrs.get("notes", []),
                                 "covariate_effects": covs.attrs.get("notes", [])}
        if strategy_table is not None:
            tables["strategy_comparison"] = _records(strategy_table)
        if comparison_table is not None:
            tables["model_comparison"] = _records(comparison_table, "model")
        doc = {
            "format": JSON_FORMAT,
            "title": str(title),
            "provenance": prov,
            "spec": fit.spec.to_dict(),
            "convergence": conv,
            "settings": {"parameter_ci": ci, "covariate_ci": covariate_ci, "dosing": list(dosing),
                         "reference_band": list(covs.attrs.get("band", REFERENCE_BAND))},
            "tables": tables,
            "notes": notes,
            "answer": list(answer),
        }
        write("json", (json.dumps(jsonable(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
    return written
