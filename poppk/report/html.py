"""HTML building blocks of the report: style sheet, tables, figures (every user string escaped).

Figures are PNG/JPEG ``data:`` URIs (:func:`image_uri`); tables escape every
header and cell.  :func:`generic_html` shows any DataFrame without repeated
rows or columns, and defines the terms its columns use (:data:`TERMS`).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from poppk.io import jsonable
from poppk.report._common import fmt_number
from poppk.report.covariates import REFERENCE_BAND
from poppk.report.tables import SECTIONS

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
dl.terms { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; margin:4px 0 14px;
           color:var(--muted); font-size:12px; }
dl.terms dt { font-weight:600; } dl.terms dd { margin:0; }
p.terms { color:var(--muted); font-size:12px; margin:4px 0 14px; }
.banner { background:var(--warn-bg); color:var(--warn); border:1px solid #f0c98a; border-radius:6px;
          padding:10px 14px; margin:0 0 16px; font-weight:600; }
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


def generic_html(df: pd.DataFrame, caption: str | None = None, index_name: str = "index", *,
                 dedupe: bool = True, terms: bool = True) -> str:
    """Any user table as HTML: every header and cell escaped, ``X_median/X_lo/X_hi`` shown as ``median [lo, hi]``.

    Parameters
    ----------
    df
        The table (a non-default index becomes columns).
    caption
        Table caption.
    index_name
        Name of an unnamed index column.
    dedupe
        Leave out rows that repeat an earlier row and columns that repeat an
        earlier column (:func:`drop_repeats`).
    terms
        Define the terms the headers use (:data:`TERMS`) below the table.
    """
    flat = _flat(df, index_name)
    if dedupe:
        flat = drop_repeats(flat)
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
    out = _table(headers, body, caption, cls="data compact")
    return out + (terms_html([h for h, _ in headers]) if terms else "")


_generic_html = generic_html


def drop_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without rows equal to an earlier row and columns equal to an earlier column.

    Examples
    --------
    >>> drop_repeats(pd.DataFrame({"a": [1, 1, 2], "b": [1, 1, 2], "c": [3, 3, 4]})).to_dict("list")
    {'a': [1, 2], 'c': [3, 4]}
    """
    df = df.copy()
    df.attrs = {}  # metadata (e.g. compare()'s refit tables) is not shown, and pandas compares it cell-wise
    out = df.loc[~df.astype(str).duplicated()]
    keep = []
    seen: list[pd.Series] = []
    for c in out.columns:
        col = out[c].astype(str).reset_index(drop=True)
        if any(col.equals(s) for s in seen):
            continue
        seen.append(col)
        keep.append(c)
    return out.loc[:, keep].reset_index(drop=True)


#: Definitions of the terms report tables use, by a lower-case fragment of a header.
TERMS: dict[str, tuple[str, str]] = {
    "cri": ("CrI", "credible interval: the central (equal-tailed) interval holding that share of the posterior "
                   "draws, e.g. 95% CrI = from the 2.5th to the 97.5th percentile."),
    "var ratio": ("variance ratio", "between-patient variance of log exposure under the strategy divided by that "
                                    "under the reference strategy; below 1 means exposure varies less between "
                                    "patients than under the reference (0.8 = 20% less variance)."),
    "prob var ratio below 1": ("P(ratio < 1)", "posterior probability that the variance ratio is below 1."),
    "bpv cv": ("BPV CV", "between-patient variability of exposure as a coefficient of variation (%)."),
    "median exposure": ("median exposure", "median of the exposure metric over the virtual patients (posterior "
                                           "median across parameter draws)."),
    "weight": ("weight", "the model's share in the averaged answer (LOO stacking or pseudo-BMA weights, summing "
                         "to 1)."),
    "elpd": ("elpd", "expected log predictive density of left-out data, higher is better."),
    "d elpd": ("d elpd / dse", "difference in elpd to the best model and its standard error; a difference "
                               "within about 2 dse does not separate the models."),
    "rse": ("RSE %", "relative standard error: posterior SD / posterior median × 100."),
    "cv %": ("CV %", "coefficient of variation of the parameter between subjects: 100·sqrt(exp(ω²) − 1)."),
    "r-hat": ("R-hat", "rank-normalised split R-hat; ≤ 1.01 when the chains agree."),
    "ess": ("ESS", "effective sample size of the posterior draws (bulk: centre of the distribution, tail: "
                   "its 5% and 95% quantiles)."),
}


def terms_html(headers: Sequence[str]) -> str:
    """A definition list of the :data:`TERMS` that occur in ``headers`` (``""`` when none)."""
    text = " ".join(str(h).lower().replace("_", " ") for h in headers)
    found = [(t, d) for key, (t, d) in TERMS.items() if key in text]
    if not found:
        return ""
    items = "".join(f"<dt>{E(t)}</dt><dd>{E(d)}</dd>" for t, d in found)
    return f'<dl class="terms">{items}</dl>'




def _figure_html(uri: str, caption: str, alt: str | None = None) -> str:
    return (f'<figure><img src="{E(uri)}" alt="{E(alt or caption)}">'
            f"<figcaption>{E(caption)}</figcaption></figure>")


def _kv(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{E(k)}</dt><dd>{E(v if isinstance(v, str) else fmt_number(v) if v is not None else '–')}</dd>"
                   for k, v in items)
    return f'<dl class="kv">{rows}</dl>'
