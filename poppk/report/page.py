"""The report page: sections in reading order, assembled into one self-contained HTML document."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from poppk.report._common import fmt_number
from poppk.report.html import (
    _CSS,
    E,
    _covariates_html,
    _figure_html,
    _generic_html,
    _kv,
    _parameters_html,
    terms_html,
)

__all__ = ["render_html", "SECTION_ORDER"]

#: Order of the report's sections (methods and definitions close it).
SECTION_ORDER = ("model", "parameters", "convergence", "checks", "comparison", "covariates", "strategies", "answer",
                 "figures", "forecasts", "provenance")


def render_html(
    *,
    title: str,
    provenance: Mapping[str, Any],
    spec_text: str,
    convergence: Mapping[str, Any],
    parameters: pd.DataFrame,
    covariates: pd.DataFrame,
    forest_uri: str,
    strategy_table: pd.DataFrame | None = None,
    comparison_table: pd.DataFrame | None = None,
    figures: Sequence[tuple[str, str]] = (),
    companions: Sequence[str] = (),
    answer: Sequence[str] = (),
    answer_tables: Mapping[str, pd.DataFrame] | None = None,
    checks_html: str = "",
    eta_html: str = "",
    banner: str | None = None,
    forecasts: pd.DataFrame | None = None,
    forecast_links: Mapping[str, str] | None = None,
) -> str:
    """The report as one self-contained HTML document (see :func:`export_covariate_report`).

    Sections in reading order (:data:`SECTION_ORDER`): model, parameters,
    convergence, model checks, model comparison, covariate effects, dosing
    strategies and answer, provenance, methods.

    ``figures`` are ``(caption, data URI)`` pairs; ``companions`` names the
    files written next to it (listed in the footer); ``checks_html`` and
    ``eta_html`` are the HTML of :mod:`poppk.report.checks` (trusted: built
    from escaped parts); ``banner`` is shown in a box under the title (e.g.
    that the data are simulated); ``forecasts`` is the summary of the
    individual forecasts (one row per patient, ``ID`` first) and
    ``forecast_links`` maps a patient's ID to her page's relative path.
    """
    prov = dict(provenance)
    ok = convergence.get("ok")
    badge = ('<span class="badge ok">Converged</span>' if ok else
             '<span class="badge na">Convergence not checked</span>' if ok is None else
             '<span class="badge warn">Convergence problems</span>')
    chains, draws = prov.get("chains"), prov.get("draws_per_chain")
    sections: list[tuple[str, str, str]] = []
    if answer or answer_tables:
        body = "".join(f"<p>{E(line)}</p>" for line in answer)
        for caption, tab in (answer_tables or {}).items():
            body += f"<h3>{E(caption)}</h3>" + _generic_html(tab)
        sections.append(("answer", "The dosing answer", body))

    versions = prov.get("versions") or {}
    timings = prov.get("timings_s") or {}
    sha = prov.get("data_sha256")
    prov_items = [
        ("Data file", str(prov.get("data_file") or "–")),
        ("Data SHA-256", str(sha) if sha else "– (data given as a DataFrame)"),
        ("Subjects / observations", f"{prov.get('n_subjects')} / {prov.get('n_observations')}"),
        ("Sampler", str(prov.get("sampler") or "–") + (f" (compiled by {prov['backend']})" if prov.get("backend") else "")),
        ("Chains × draws (warm-up)", f"{chains} × {draws} ({prov.get('tune', '–')} warm-up per chain)"),
        ("Seed", str(prov.get("seed", "–"))),
        ("Target acceptance", "sampler default" if prov.get("target_accept") is None else str(prov["target_accept"])),
        ("Timings", ", ".join(f"{k.removesuffix('_s')} {float(v):.1f} s" for k, v in timings.items()) or "–"),
        ("Fit created", str(prov.get("fit_created") or "–")),
        ("Package versions at fit",
         ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("poppk", "pymc", "nutpie", "pytensor", "numba", "jax", "arviz",
                                                                      "numpy", "python")) or "–"),
        ("Report generated", f"{prov.get('report_created')} with poppk {prov.get('report_poppk_version')}"),
    ]
    if prov.get("subject_level_data"):
        prov_items.append(("Subject-level data", str(prov["subject_level_data"])))
    sections.append(("provenance", "Provenance", _kv(prov_items)))

    sections.append(("model", "Model", f"<pre>{E(spec_text)}</pre>"))

    conv_items = [
        ("Status", str(convergence.get("message", "–"))),
        ("Divergent transitions", convergence.get("divergences")),
        ("Draws hitting max tree depth", convergence.get("max_treedepth_hits")),
        ("Mean leapfrog steps per draw", convergence.get("mean_steps")),
        ("Largest R-hat", convergence.get("max_r_hat")),
        ("Smallest bulk / tail ESS", f"{fmt_number(convergence.get('min_ess_bulk'))} / "
                                     f"{fmt_number(convergence.get('min_ess_tail'))}"),
    ]
    problems = convergence.get("problems") or []
    conv_html = f"<p>{badge}</p>" + _kv(conv_items)
    if problems:
        conv_html += '<ul class="problems">' + "".join(f"<li>{E(p)}</li>" for p in problems) + "</ul>"
    conv_html += ('<p class="lead">Thresholds: rank-normalised split R-hat ≤ 1.01, bulk and tail ESS ≥ 100 per '
                  "chain, no divergent transitions (Vehtari et al. 2021).</p>")
    sections.append(("convergence", "Convergence", conv_html))

    par_notes = "".join(f"<li>{E(n)}</li>" for n in parameters.attrs.get("notes", []))
    sections.append(("parameters", "Parameter estimates",
                     _parameters_html(parameters) + (f'<ul class="notes">{par_notes}</ul>' if par_notes else "")
                     + terms_html(["CrI"])))  # the notes above define RSE, CV, shrinkage, R-hat and ESS

    cov_notes = "".join(f"<li>{E(n)}</li>" for n in covariates.attrs.get("notes", []))
    ci = covariates.attrs.get("ci", 0.9)
    cov_html = ""
    if len(covariates):
        cov_html += _figure_html(forest_uri, f"Covariate effects on the parameters and on exposure: ratio to the "
                                 f"reference subject, posterior median and {100 * ci:g}% credible interval.",
                                 alt="Forest plot of covariate effects")
    cov_html += _covariates_html(covariates) + (f'<ul class="notes">{cov_notes}</ul>' if cov_notes else "")
    cov_html += eta_html
    sections.append(("covariates", "Covariate effects", cov_html))

    figs_html = ('<div class="fig-grid">' + "".join(_figure_html(uri, cap) for cap, uri in figures) + "</div>"
                 if figures else "")
    if strategy_table is not None:
        attrs = {k: v for k, v in strategy_table.attrs.items() if isinstance(v, (str, int, float))}
        lead = ('<p class="lead">Simulated exposure under each dosing strategy: each value is the posterior '
                "median across parameter draws with its credible interval (between-patient variability and "
                "parameter uncertainty kept apart).")
        if attrs:
            lead += " " + E("; ".join(f"{k} = {v}" for k, v in attrs.items())) + "."
        lead += "</p>"
        sections.append(("strategies", "Dosing-strategy comparison",
                         lead + _generic_html(strategy_table) + figs_html))
        figs_html = ""
    if comparison_table is not None:
        cols = {str(c).lower() for c in comparison_table.columns}
        lead = ('<p class="lead">Models ranked by expected log predictive density (ELPD, leave-one-out); higher '
                "is better; d elpd and dse: difference to the best model and its standard error.</p>"
                if "elpd" in cols else "")
        sections.append(("comparison", "Model comparison",
                         lead + _generic_html(comparison_table, index_name="model")))
    if figs_html:
        sections.append(("figures", "Figures", figs_html))
    if forecasts is not None and len(forecasts):
        sections.append(("forecasts", "Individual forecasts", _forecasts_html(forecasts, forecast_links or {})))

    method_notes = [
        "All summaries are computed from the posterior draws of the fit (all chains pooled); CrI = equal-tailed "
        "credible interval.",
        "Typical values refer to a subject with every covariate at its reference value.",
        "This file is self-contained: figures are embedded, no network access or JavaScript is needed.",
    ]
    if checks_html:
        sections.append(("checks", "Model checks", checks_html))
    sections.sort(key=lambda item: SECTION_ORDER.index(item[0]))
    sections.append(("methods", "Methods and definitions",
                     '<ul class="notes">' + "".join(f"<li>{E(n)}</li>" for n in method_notes) + "</ul>"))

    toc = "".join(f'<li><a href="#{sid}">{E(name)}</a></li>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{i}. {E(name)}</h2>{content}</section>'
                   for i, (sid, name, content) in enumerate(sections, 1))
    n_params = int((~parameters["fixed"]).sum()) if len(parameters) else 0
    cards = [
        ("Model", str(prov.get("model", "–"))),
        ("Subjects", fmt_number(prov.get("n_subjects"))),
        ("Observations", fmt_number(prov.get("n_observations"))),
        ("Draws", f"{chains} × {draws}"),
        ("Estimated parameters", str(n_params)),
    ]
    cards_html = "".join(f'<div class="card"><div class="k">{E(k)}</div><div class="v">{E(v)}</div></div>'
                         for k, v in cards)
    subtitle = f"Data: {prov.get('data_file') or '–'} · Fit: {prov.get('fit_created') or '–'}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        '<meta name="generator" content="poppk">'
        f"<title>{E(title)}</title><style>{_CSS}</style></head>\n"
        "<body><main>"
        '<header class="top"><div class="kicker">Bayesian population pharmacokinetics · covariate report</div>'
        + (f'<div class="banner" role="note">{E(banner)}</div>' if banner else "")
        + f"<h1>{E(title)}</h1><p class=\"subtitle\">{E(subtitle)}</p>{badge}"
        f'<div class="cards">{cards_html}</div></header>'
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>'
        f"{body}"
        f"<footer>Generated by poppk {E(str(prov.get('report_poppk_version')))} on "
        f"{E(str(prov.get('report_created')))}."
        + (f" Alongside this file: {E(', '.join(companions))}." if companions else "")
        + "</footer></main></body></html>\n"
    )


def _forecasts_html(table: pd.DataFrame, links: Mapping[str, str]) -> str:
    """The patients' summary with a link to each page (pages are separate files beside the report)."""
    from poppk.report.html import _table, _td

    lead = ("<p class=\"lead\">Each patient's individual posterior from her covariates, doses and samples, "
            "and the dose that meets the target beside the label's; her page (a separate file) shows her curve, "
            "exposure and the reasoning.</p>")
    cols = [c for c in table.columns if c != "ID"]
    body = []
    for _, r in table.iterrows():
        pid = str(r["ID"])
        cell = f'<td><a href="{E(links[pid])}">{E(pid)}</a></td>' if pid in links else f"<td>{E(pid)}</td>"
        vals = "".join(_td(v, num=isinstance(v, (int, float)) and not isinstance(v, bool)) if not
                       (isinstance(v, float) and v != v) else "<td>–</td>" for v in r[cols])
        body.append(f"<tr>{cell}{vals}</tr>")
    return lead + _table([("patient", False)] + [(str(c), False) for c in cols], body)
