"""The patient's page: one self-contained HTML file (figures embedded as base64 PNG) and its JSON twin.

The page answers, in order, what a clinician asks: what dose (the
recommendation beside the label's rule, the probability of meeting the
target, and why), what her exposure will be against the population's, how
her measured concentrations compare with her forecast curve, and how much
to trust it (Pareto k̂, effective sample size, covariates outside the
fitted range).  The figures only draw what :func:`~poppk.forecast.predict.forecast`
and :func:`~poppk.forecast.recommend.recommend_dose` computed
(:func:`forecast_json` is the same content as numbers).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from poppk.forecast.posterior import ESS_WARN, K_WARN
from poppk.forecast.predict import Forecast
from poppk.io import atomic_directory, jsonable
from poppk.plots.forecast import plot_exposure, plot_forecast_curve

__all__ = ["forecast_json", "forecast_html", "write_forecast", "plot_forecast_curve", "plot_exposure"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def forecast_json(fc: Forecast, recommendation: Any = None) -> dict[str, Any]:
    """The page's content as JSON-ready numbers."""
    s = fc.summary
    out: dict[str, Any] = {
        "patient": {k: v for k, v in fc.record.covariates.iloc[0].items()},
        "time_unit": fc.time_unit,
        "doses": fc.record.doses[[c for c in ("TIME", "AMT", "DUR", "SS", "II") if c in fc.record.doses]]
        .to_dict(orient="records"),
        "observations": fc.record.observations.to_dict(orient="records"),
        "cycle": fc.cycle,
        "diagnostics": {"pareto_k": fc.posterior.pareto_k, "ess": fc.posterior.ess,
                        "n_population_draws": fc.posterior.n_draws, "elapsed_s": fc.elapsed_s},
        "quantiles": list(s["quantile"].values),
        "parameters": {pred: {str(p): list(s["parameter_q"].sel(prediction=pred, parameter=p).values)
                              for p in s["parameter"].values} for pred in s["prediction"].values},
        "exposure": {pred: {str(m): list(s["exposure"].sel(prediction=pred, metric=m).values)
                            for m in s["metric"].values} for pred in s["prediction"].values},
        "metric_units": dict(zip(s["metric"].values.tolist(), s["metric_unit"].values.tolist())),
        "curve": {"time": list(s["time"].values),
                  **{pred: s["conc"].sel(prediction=pred).values.tolist() for pred in s["prediction"].values}},
    }
    if recommendation is not None:
        out["recommendation"] = recommendation.to_dict()
    return jsonable(out)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if np.isfinite(x) else "–"


def forecast_html(fc: Forecast, recommendation: Any = None, *, title: str = "Individual dosing forecast") -> str:
    """The one-page HTML report of a forecast (and a recommendation)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    plot_forecast_curve(fc, ax)
    curve = _png(fig)
    n_m = fc.summary.sizes["metric"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * n_m + 1.2))
    plot_exposure(fc, recommendation, ax)
    expo = _png(fig)
    cov = fc.record.covariates.iloc[0]
    patient = ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float, np.floating)) else f"{k} {v}"
                        for k, v in cov.items())
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p class='who'>{html.escape(patient)}</p>"]
    if recommendation is not None:
        r = recommendation
        dose = f"{r.dose_mg:g} mg" if np.isfinite(r.dose_mg) else "no dose meets the target"
        parts.append("<h2>Recommendation</h2>")
        parts.append(f"<p class='big'>{html.escape(dose)} per administration ({html.escape(r.schedule)})</p>")
        if getattr(r, "schedule_changed", False):
            parts.append(f"<p class='change'>Schedule change: from {html.escape(r.current_schedule)} "
                         f"to {html.escape(r.schedule)}</p>")
        parts.append(f"<p>Target: {html.escape(' and '.join(c.text for c in r.target))}</p>")
        sched = getattr(r, "schedules", None)
        if sched is not None and len(sched) > 2:  # several schedules searched: each one's best dose
            has_event = "p_event" in sched.columns
            rows = []
            for _, s in sched.iterrows():
                tag = ("chosen" if s["chosen"] else "") + (" (current)" if s["current"] and s["rule"] ==
                                                           "recommended" else "")
                row = [s["rule"] if s["rule"] != "recommended" else tag.strip() or "alternative", s["schedule"],
                       f"{s['dose_mg']:g} mg" if np.isfinite(s["dose_mg"]) else "none meets",
                       _fmt(s["mg_per_week"]), _fmt(s["probability"])]
                rows.append(row + ([_fmt(s["p_event"])] if has_event else []))
            parts.append(_table(rows, ["", "schedule", "dose", "mg/week", "P(target met)"]
                                + (["P(event)"] if has_event else [])))
        else:
            parts.append(_table([["recommended", f"{r.dose_mg:g} mg", _fmt(r.probability)],
                                 [f"label: {r.label}", f"{r.label_dose_mg:.0f} mg", _fmt(r.label_probability)]],
                                ["", "dose", "P(target met)"]))
        ex = r.exposure.reset_index()
        parts.append(_table([[row["dose"], row["metric"], _fmt(row["q5"]), _fmt(row["median"]), _fmt(row["q95"]),
                              row["unit"]] for _, row in ex.iterrows()],
                            ["dose", "metric", "5%", "median", "95%", "unit"]))
        parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in r.reasoning) + "</ul>")
    parts.append("<h2>Her concentrations</h2>")
    parts.append(f"<img alt='concentration-time forecast' src='data:image/png;base64,{curve}'>")
    parts.append("<h2>Her exposure against the population's (current doses)</h2>")
    parts.append(f"<img alt='exposure' src='data:image/png;base64,{expo}'>")
    tab = fc.table()
    parts.append(_table([[q] + [_fmt(v) for v in row.values] for q, row in tab.iterrows()],
                        ["quantity"] + list(tab.columns)))
    k, ess = fc.posterior.pareto_k, fc.posterior.ess
    trust = "reliable" if (not fc.record.n_obs) or (k <= K_WARN and ess >= ESS_WARN) else "NOT reliable"
    parts.append("<h2>How the forecast was made</h2>")
    parts.append(
        f"<p>Her individual posterior integrates over {fc.posterior.n_draws} draws of the population posterior "
        f"(Laplace approximation corrected by importance sampling; samples below the LLOQ by M3). "
        f"{fc.record.n_obs} measured concentration(s), {len(fc.record.doses)} dose(s). Pareto k̂ {_fmt(k)}, "
        f"effective sample size {ess:.0f}: the importance weights are {trust}. Exposure metrics refer to a "
        f"cycle of {fc.cycle:g} {html.escape(fc.time_unit)}.</p>")
    style = ("body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "font-size:0.9em;text-align:right}th{background:#f3f3f3}.big{font-size:1.6em;font-weight:bold}"
             ".who{color:#555}img{max-width:100%}.change{font-weight:bold;color:#a33}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_forecast(fc: Forecast, out: str | Path, recommendation: Any = None) -> list[Path]:
    """Write ``forecast.html`` and ``forecast.json`` to directory ``out`` atomically; return the paths."""
    page = forecast_html(fc, recommendation)
    doc = json.dumps(forecast_json(fc, recommendation), indent=1)
    with atomic_directory(out) as tmp:
        (tmp / "forecast.html").write_text(page, encoding="utf-8")
        (tmp / "forecast.json").write_text(doc, encoding="utf-8")
    return [Path(out) / "forecast.html", Path(out) / "forecast.json"]
