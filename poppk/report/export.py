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

import base64
import html
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from poppk.io import atomic_write_bytes, jsonable
from poppk.report._common import fmt_number
from poppk.report.covariates import REFERENCE_BAND, covariate_effects, plot_forest
from poppk.report.tables import SECTIONS, parameter_table

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


def _flat(df: pd.DataFrame, index_name: str = "index") -> pd.DataFrame:
    """A copy with a non-default index moved into columns and string column names."""
    out = df.copy()
    if not isinstance(out.index, pd.RangeIndex) or any(n is not None for n in out.index.names):
        names = [n if n is not None else (index_name if out.index.nlevels == 1 else f"level_{i}")
                 for i, n in enumerate(out.index.names)]
        out.index = out.index.set_names(names)
        out = out.reset_index()
    out.columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in out.columns]
    return out


def _records(df: pd.DataFrame, index_name: str = "index") -> list[dict[str, Any]]:
    flat = _flat(df, index_name)
    return [{k: jsonable(v) for k, v in zip(flat.columns, row)} for row in flat.itertuples(index=False, name=None)]


def _csv_bytes(df: pd.DataFrame, index_name: str = "index") -> bytes:
    return _flat(df, index_name).to_csv(index=False, lineterminator="\n").encode("utf-8")


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


# ---------------------------------------------------------------- figures
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def _image_uri(obj: Any, dpi: int = 130) -> str:
    """A base64 ``data:`` URI of a matplotlib Figure, PNG/JPEG bytes or an image file path."""
    if hasattr(obj, "savefig"):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        data, mime = buf.getvalue(), "image/png"
    else:
        data = Path(obj).read_bytes() if isinstance(obj, (str, os.PathLike)) else bytes(obj)
        mime = next((m for sig, m in _SIGNATURES if data.startswith(sig)), None)
        if mime is None:
            from poppk.errors import ConfigError

            raise ConfigError(f"figure {str(obj)[:80]!r}: expected a matplotlib Figure or PNG/JPEG bytes or file")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _caption(key: Any) -> str:
    text = str(key)
    if text.startswith("fig_"):
        text = text[4:]
    text = text.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else "Figure"


# ---------------------------------------------------------------- HTML
E = html.escape

_CSS = """
:root { --ink:#1d2733; --muted:#5b6b7c; --line:#d9e0e7; --accent:#1f4e79; --accent-soft:#e8eef5;
        --ok:#1e7b34; --ok-bg:#e3f3e6; --warn:#9a4d00; --warn-bg:#fdf0dc; --code:#f6f8fa; }
* { box-sizing: border-box; }
html { background:#eef1f4; }
body { margin:0; color:var(--ink); font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       "Noto Sans", "Liberation Sans", sans-serif; }
main { max-width:1140px; margin:28px auto; background:#fff; padding:36px 52px 28px;
       box-shadow:0 1px 4px rgba(20,40,60,.10); border-top:5px solid var(--accent); }
header.top .kicker { text-transform:uppercase; letter-spacing:.08em; font-size:11.5px; color:var(--muted); }
header.top h1 { font-size:26px; margin:4px 0 6px; color:var(--accent); font-weight:650; overflow-wrap:anywhere; }
header.top .subtitle { color:var(--muted); margin:0 0 16px; overflow-wrap:anywhere; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:10px 0 8px; }
.card { flex:1 1 150px; border:1px solid var(--line); border-radius:6px; padding:8px 12px; background:#fbfcfd; }
.card .k { font-size:11px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); }
.card .v { font-size:17px; font-weight:600; font-variant-numeric:tabular-nums; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:12px; font-weight:600; }
.badge.ok { background:var(--ok-bg); color:var(--ok); }
.badge.warn { background:var(--warn-bg); color:var(--warn); }
.badge.na { background:#eceff2; color:var(--muted); }
nav.toc { border:1px solid var(--line); background:#fbfcfd; border-radius:6px; padding:10px 18px; margin:18px 0 6px; }
nav.toc ol { margin:4px 0; padding-left:20px; columns:2; column-gap:40px; }
nav.toc a { color:var(--accent); text-decoration:none; }
nav.toc a:hover { text-decoration:underline; }
section { margin-top:30px; }
h2 { font-size:19px; color:var(--accent); border-bottom:2px solid var(--accent-soft); padding-bottom:4px;
     margin:0 0 12px; }
h3 { font-size:15px; margin:18px 0 8px; }
p.lead { color:var(--muted); margin:0 0 10px; }
dl.kv { display:grid; grid-template-columns: max-content 1fr; gap:4px 20px; margin:0; }
dl.kv dt { color:var(--muted); }
dl.kv dd { margin:0; overflow-wrap:anywhere; }
code, pre, .mono { font-family: "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size:12.5px; }
pre { background:var(--code); border:1px solid var(--line); border-radius:6px; padding:12px 14px;
      overflow-x:auto; line-height:1.4; }
.table-wrap { overflow-x:auto; margin:6px 0 4px; }
table.data { border-collapse:collapse; width:100%; font-size:13px; font-variant-numeric:tabular-nums; }
table.data caption { caption-side:top; text-align:left; color:var(--muted); font-size:12.5px; padding:0 0 6px; }
table.data th { background:#f2f5f8; text-align:left; font-weight:600; border-bottom:2px solid var(--accent);
                padding:6px 9px; white-space:nowrap; vertical-align:bottom; }
table.data td { padding:5px 9px; border-bottom:1px solid #edf0f3; vertical-align:top; }
table.data td.num, table.data th.num { text-align:right; white-space:nowrap; }
table.data tbody tr:hover td { background:#f7fafc; }
table.data tr.group td { background:var(--accent-soft); color:var(--accent); font-weight:650;
                         border-bottom:1px solid #c9d6e3; padding-top:6px; }
table.data tr.group td .gnote { font-weight:400; color:var(--muted); margin-left:8px; font-size:12px; }
td .sub { display:block; color:var(--muted); font-size:11.5px; }
td.flag-ok { color:var(--ok); } td.flag-warn { color:var(--warn); font-weight:600; }
table.compact { font-size:12.5px; }
table.compact th { white-space:normal; padding:6px 7px; }
table.compact td { padding:4px 7px; white-space:nowrap; }
table.compact td .sub { font-size:11px; }
.fig-grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:6px 18px; margin-top:14px; }
.fig-grid figure { margin:6px 0; }
figure { margin:12px 0 18px; text-align:center; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:6px; text-align:left; }
ul.notes { color:var(--muted); font-size:12.5px; padding-left:18px; margin:8px 0 0; }
ul.problems li { color:var(--warn); }
footer { margin-top:36px; padding-top:10px; border-top:1px solid var(--line); color:var(--muted); font-size:12px; }
@media print { html { background:#fff; } main { box-shadow:none; margin:0; max-width:none; padding:0; border:0; }
               nav.toc { display:none; } section, figure, table { break-inside:avoid; } }
"""


def _table(headers: Sequence[tuple[str, bool]], body: Iterable[str], caption: str | None = None,
           cls: str = "data") -> str:
    head = "".join(f'<th class="num">{E(h)}</th>' if num else f"<th>{E(h)}</th>" for h, num in headers)
    cap = f"<caption>{E(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _td(value: Any, *, num: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in (("num" if num else ""), cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{E(value if isinstance(value, str) else fmt_number(value))}</td>"


def _interval(lo: Any, hi: Any, sig: int = 3) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "–"
    return f"[{fmt_number(lo, sig)}, {fmt_number(hi, sig)}]"


def _fixed1(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:.1f}".replace("-", "−")


def _parameters_html(tab: pd.DataFrame) -> str:
    pct = f"{100 * tab.attrs.get('ci', 0.95):g}%"
    headers = [("Parameter", False), ("Estimate", True), (f"{pct} CrI", True), ("RSE %", True),
               (f"CV % [{pct} CrI]", True), ("Shrinkage %", True), ("R-hat", True), ("ESS bulk", True),
               ("ESS tail", True)]
    body = []
    for section in SECTIONS:
        sub = tab[tab["section"] == section]
        if not len(sub):
            continue
        body.append(f'<tr class="group"><td colspan="{len(headers)}">{E(section)}</td></tr>')
        for _, r in sub.iterrows():
            label = f"{E(str(r['label']))}"
            if r["note"]:
                label += f'<span class="sub">{E(str(r["note"]))}</span>'
            fixed = bool(r["fixed"])
            cv = "–" if pd.isna(r["cv_pct"]) else (
                f"{_fixed1(r['cv_pct'])}" + ("" if fixed else f" [{_fixed1(r['cv_lower'])}, {_fixed1(r['cv_upper'])}]"))
            rhat_cls = "flag-warn" if pd.notna(r["r_hat"]) and r["r_hat"] > 1.01 else ""
            body.append(
                "<tr>"
                f"<td>{label}</td>"
                + _td(r["median"], num=True)
                + _td("fixed" if fixed else _interval(r["lower"], r["upper"]), num=True)
                + _td(_fixed1(r["rse_pct"]), num=True)
                + _td(cv, num=True)
                + _td(_fixed1(r["shrinkage_pct"]), num=True)
                + _td("–" if pd.isna(r["r_hat"]) else f"{r['r_hat']:.3f}", num=True, cls=rhat_cls)
                + _td("–" if pd.isna(r["ess_bulk"]) else f"{r['ess_bulk']:.0f}", num=True)
                + _td("–" if pd.isna(r["ess_tail"]) else f"{r['ess_tail']:.0f}", num=True)
                + "</tr>"
            )
    return _table(headers, body)


def _covariates_html(tab: pd.DataFrame) -> str:
    if not len(tab):
        return '<p class="lead">The model has no covariate effects.</p>'
    pct = f"{100 * tab.attrs.get('ci', 0.9):g}%"
    band = tab.attrs.get("band", REFERENCE_BAND)
    headers = [("Compared subject", False), ("Reference", False), ("Ratio (median)", True), (f"{pct} CrI", True),
               (f"Inside {band[0]:g}–{band[1]:g}", True)]
    body = []
    for g in dict.fromkeys(tab["paramname"].astype(str)):
        sub = tab[tab["paramname"].astype(str) == g]
        note = str(sub["note"].iloc[0]) if sub["kind"].iloc[0] == "exposure" else ""
        gnote = f'<span class="gnote">{E(note)}</span>' if note else ""
        body.append(f'<tr class="group"><td colspan="{len(headers)}">{E(g)}{gnote}</td></tr>')
        for _, r in sub.iterrows():
            ref = r["reference"]
            unit = str(r["covariate_unit"] or "")
            ref_text = (f"{r['covname']} = {float(ref):.6g}{(' ' + unit) if unit else ''}"
                        if isinstance(ref, (int, float, np.floating)) else f"{r['covname']}: {ref}")
            body.append(
                "<tr>" + _td(str(r["label"])) + _td(ref_text) + _td(f"{r['mid']:.3f}", num=True)
                + _td(f"[{r['lower']:.3f}, {r['upper']:.3f}]", num=True)
                + _td("yes" if r["in_band"] else "no", num=True, cls="flag-ok" if r["in_band"] else "flag-warn")
                + "</tr>"
            )
    return _table(headers, body)


def _generic_html(df: pd.DataFrame, caption: str | None = None, index_name: str = "index") -> str:
    """Any user table, every header and cell escaped; ``X_median/X_lo/X_hi`` shown as ``median [lo, hi]``."""
    flat = _flat(df, index_name)
    flat = flat.loc[:, [c for c in flat.columns if not flat[c].isna().all()]]
    cols = list(flat.columns)
    merged: list[tuple[str, list[str]]] = []
    used: set[str] = set()
    for c in cols:
        if c in used:
            continue
        if c.endswith("_median") and f"{c[:-7]}_lo" in cols and f"{c[:-7]}_hi" in cols:
            base = c[:-7]
            merged.append((f"{base.replace('_', ' ')} [CrI]", [c, f"{base}_lo", f"{base}_hi"]))
            used.update({c, f"{base}_lo", f"{base}_hi"})
        else:
            merged.append((c.replace("_", " ") if c not in ("n_k_gt_0.7",) else "n (Pareto k > 0.7)", [c]))
            used.add(c)
    headers = []
    for name, parts in merged:
        numeric = all(pd.api.types.is_numeric_dtype(flat[p]) and not pd.api.types.is_bool_dtype(flat[p])
                      for p in parts)
        headers.append((name, numeric))
    body = []
    for _, r in flat.iterrows():
        cells = []
        for (name, parts), (_, numeric) in zip(merged, headers):
            if len(parts) == 3:
                cells.append(f'<td class="num">{E(fmt_number(r[parts[0]]))}'
                             f'<span class="sub">{E(_interval(r[parts[1]], r[parts[2]]))}</span></td>')
                continue
            else:
                v = r[parts[0]]
                text = fmt_number(v) if numeric or isinstance(v, (bool, np.bool_)) else (
                    "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            cells.append(_td(text, num=numeric))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _table(headers, body, caption, cls="data compact")


def _figure_html(uri: str, caption: str, alt: str | None = None) -> str:
    return (f'<figure><img src="{E(uri)}" alt="{E(alt or caption)}">'
            f"<figcaption>{E(caption)}</figcaption></figure>")


def _kv(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{E(k)}</dt><dd>{E(v if isinstance(v, str) else fmt_number(v) if v is not None else '–')}</dd>"
                   for k, v in items)
    return f'<dl class="kv">{rows}</dl>'


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
) -> str:
    """The report as one self-contained HTML document (see :func:`export_covariate_report`).

    ``figures`` are ``(caption, data URI)`` pairs; ``companions`` names the
    files written next to it (listed in the footer).
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
        ("Sampler", str(prov.get("sampler") or "–")),
        ("Chains × draws (warm-up)", f"{chains} × {draws} ({prov.get('tune', '–')} warm-up per chain)"),
        ("Seed", str(prov.get("seed", "–"))),
        ("Target acceptance", "sampler default" if prov.get("target_accept") is None else str(prov["target_accept"])),
        ("Timings", ", ".join(f"{k.removesuffix('_s')} {float(v):.1f} s" for k, v in timings.items()) or "–"),
        ("Fit created", str(prov.get("fit_created") or "–")),
        ("Package versions at fit",
         ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("poppk", "pymc", "nutpie", "pytensor", "arviz",
                                                                      "numpy", "python")) or "–"),
        ("Report generated", f"{prov.get('report_created')} with poppk {prov.get('report_poppk_version')}"),
    ]
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
                     _parameters_html(parameters) + (f'<ul class="notes">{par_notes}</ul>' if par_notes else "")))

    cov_notes = "".join(f"<li>{E(n)}</li>" for n in covariates.attrs.get("notes", []))
    ci = covariates.attrs.get("ci", 0.9)
    cov_html = ""
    if len(covariates):
        cov_html += _figure_html(forest_uri, f"Covariate effects on the parameters and on exposure: ratio to the "
                                 f"reference subject, posterior median and {100 * ci:g}% credible interval.",
                                 alt="Forest plot of covariate effects")
    cov_html += _covariates_html(covariates) + (f'<ul class="notes">{cov_notes}</ul>' if cov_notes else "")
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

    method_notes = [
        "All summaries are computed from the posterior draws of the fit (all chains pooled); CrI = equal-tailed "
        "credible interval.",
        "Typical values refer to a subject with every covariate at its reference value.",
        "This file is self-contained: figures are embedded, no network access or JavaScript is needed.",
    ]
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
        f"<h1>{E(title)}</h1><p class=\"subtitle\">{E(subtitle)}</p>{badge}"
        f'<div class="cards">{cards_html}</div></header>'
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>'
        f"{body}"
        f"<footer>Generated by poppk {E(str(prov.get('report_poppk_version')))} on "
        f"{E(str(prov.get('report_created')))}."
        + (f" Alongside this file: {E(', '.join(companions))}." if companions else "")
        + "</footer></main></body></html>\n"
    )


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
