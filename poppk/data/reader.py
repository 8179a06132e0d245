"""Reading NONMEM-style datasets into :class:`~poppk.data.PKData`.

The reader does three things, in order:

1. *Parse* a file (comma-separated, or whitespace-separated) or take a
   DataFrame, keeping each value as written and each record's row and line.
2. *Map* the column names (case-insensitive) to canonical NONMEM data items
   and covariate names: :data:`ALIASES`, overridden by ``columns=``.
3. *Check and build*: the checks of :mod:`poppk.data.validate`,
   :mod:`poppk.data.observation_type` (DVID, observation CMT) and
   :mod:`poppk.data.size_values` (weight and height on every record), then the
   records and the tables of :mod:`poppk.data.tables` (dose events with ADDL
   expanded, observations, exclusions) and the baseline covariates.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from poppk.data import validate as v
from poppk.data.observation_type import describe_excluded, dvid_key, dvid_keys, observation_cmt, select_analyte
from poppk.data.pkdata import PKData
from poppk.data.size_values import check_record_sizes
from poppk.data.tables import excluded_table, expand_doses, observation_table
from poppk.data.time_unit import VALID_TIME_UNITS, canonical_time_unit
from poppk.errors import DatasetError, DataWarning

__all__ = [
    "read_nonmem",
    "map_columns",
    "CANONICAL",
    "ALIASES",
    "NON_COVARIATES",
    "NUMERIC_COVARIATES",
]

#: Canonical NONMEM data items, in the order of :attr:`PKData.records`.
CANONICAL: tuple[str, ...] = (
    "ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "DUR", "II", "ADDL", "SS", "BLQ", "LLOQ",
)

#: Column names (upper case) and the canonical name they stand for.
#: ``LIMIT`` is read as the lower limit (LLOQ), as in NONMEM M3 usage.
ALIASES: dict[str, str] = {
    "WT": "WT", "WGT": "WT", "WEIGHT": "WT", "TBW": "WT",
    "HT": "HT", "HGT": "HT", "HEIGHT": "HT",
    "SEX": "SEX", "GENDER": "SEX",
    "AGE": "AGE",
    "ALB": "ALB", "ALBUMIN": "ALB",
    "BLQ": "BLQ", "BLOQ": "BLQ", "CENS": "BLQ",
    "LLOQ": "LLOQ", "LOQ": "LLOQ", "LIMIT": "LLOQ",
    "DVID": "DVID", "YTYPE": "DVID",
}

#: Columns kept in the records but not treated as covariates unless listed in
#: ``covariates=``: transforms of DV, derived times and observation-type flags.
NON_COVARIATES: frozenset[str] = frozenset({
    "DVLN", "LNDV", "LOGDV", "LDV", "DVID", "TAD", "TSLD", "TSFD", "NTIME", "NTAD",
    "NOMTIME", "C",
})

#: Covariates that must be numeric (a text value is an error, not a category).
NUMERIC_COVARIATES: frozenset[str] = frozenset({"WT", "HT", "AGE", "ALB"})

_NUMERIC_ITEMS = tuple(c for c in CANONICAL if c != "ID")
_INTEGER = re.compile(r"^[+-]?\d+$")


# =========================================================================== public


def read_nonmem(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    covariates: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    sex_female_code: float | str | None = None,
    dvid: float | str | Sequence[float | str] | None = None,
    time_unit: str | None = None,
) -> PKData:
    """Read and check a NONMEM-style population-PK dataset.

    Parameters
    ----------
    source
        Path of a comma-separated file (a comma in the header line), or of a
        whitespace-separated file (``.txt``, ``.dat``, ``.tab``, ...), or a
        DataFrame.  ``.`` and empty fields are missing.  Leading lines
        starting with ``#`` are comments, unless the last of them is the
        header (``#ID TIME ...`` followed by data); later lines starting with
        ``#`` are skipped with a :class:`DataWarning`.
    columns
        Mapping of source column names to the names to use, e.g.
        ``{"SUBJ": "ID", "CONC": "DV"}``; case-insensitive, taken literally
        and applied before (instead of) :data:`ALIASES`.
    covariates
        The covariate columns.  By default every column that is not a NONMEM
        data item (:data:`CANONICAL`) nor in :data:`NON_COVARIATES` is one.
    drop
        Source columns to leave out entirely.
    sex_female_code
        Code of the SEX column that means female, kept as the default for
        :meth:`PKData.with_size_descriptors` (needed for numeric codes).
    dvid
        With a DVID column whose observations hold several analytes (or
        observation types): the DVID to fit.  Observations with another DVID
        are left out and listed in :attr:`PKData.excluded` with the reason.
        A list (``[1, 2]``) keeps several analytes for a multi-analyte model
        (``ModelSpec(analytes=...)``): the observations then carry a ``DVID``
        column, and the CMT rules apply to the first DVID's (the parent's).
    time_unit
        The unit of TIME (and II, DUR): ``"h"``, ``"day"``, ``"min"`` or
        ``"week"`` (or a spelling such as ``"hours"``, ``"d"``).  Recorded in
        :attr:`PKData.time_unit`; a model without a time unit of its own is
        fitted in it.  The file cannot say, so there is no default: a fit
        needs the unit here or in ``ModelSpec(units={"time": ...})``.

    Returns
    -------
    PKData
        The checked dataset.

    Raises
    ------
    DatasetError
        On anything malformed; the error names the data row (1 = first data
        row after the header; "row 12 (line 13)" adds the line of the file),
        the column as written, the value as written and what would be valid.

    Warns
    -----
    DataWarning
        When observations with DV < LLOQ are flagged BLQ, a text value turns
        a covariate into a category, comment lines are skipped, or additional
        doses are cancelled by a reset.

    Notes
    -----
    Missing items are derived as in NONMEM: EVID from AMT and MDV (AMT > 0:
    1, else MDV = 1: 2, else 0); MDV from EVID; CMT = 1; RATE, DUR, II, ADDL,
    SS = 0.  Missing values of RATE, DUR, II, ADDL, SS and BLQ read as 0.

    *One analyte, observed in the central compartment.*  poppk fits one
    concentration per observation, so observation-type columns are either
    unambiguous or refused (:mod:`poppk.data.observation_type`):

    - ``DVID`` (or ``YTYPE``): every observation record (EVID 0, MDV 0) must
      have the same DVID (missing counts as a value of its own), unless
      ``dvid=`` selects one.
    - ``CMT`` on observation records: a whole number >= 0 or missing
      (stored as 0, NONMEM's default observation compartment).  The fitted
      observations may use CMT 1 (the central compartment of IV data, and
      the common convention on oral data), CMT 2 (the central compartment
      after a depot, as in NONMEM ADVAN2/4) or 0, and must not use both CMT 1
      and CMT 2; CMT 3 and above (a peripheral compartment, another
      analyte's) are refused.  An intravenous model further requires CMT 1
      or 0 (CMT 2 would be its peripheral compartment).  On dose records CMT
      must be a whole number >= 1.

    *Body size on every record.*  Weight (``WT`` and its aliases) must lie in
    0.3-400 kg and height (``HT``) be plausible in cm, m or inches on every
    record where it is given, not only at baseline
    (:mod:`poppk.data.size_values`).
    """
    table = _load(source)
    column_map = map_columns(list(table.frame.columns), columns=columns, drop=drop)
    ctx = v.RowContext(
        raw=table.frame[list(column_map)].rename(columns=column_map).reset_index(drop=True),
        rows=table.rows,
        lines=table.lines,
        file_names={new: old for old, new in column_map.items()},
    )
    v.check_required_columns(list(ctx.raw.columns), list(table.frame.columns))
    unit = _time_unit(time_unit)
    built = _build(ctx, _covariate_columns(ctx, covariates), dvid)
    return PKData(
        _records=built.records,
        _doses=built.doses,
        _observations=built.observations,
        _excluded=built.excluded,
        _covariates=built.baseline,
        _source=table.source,
        _sha256=table.sha256,
        _column_map=column_map,
        _record_covariates=tuple(built.baseline.columns),
        _sex_female_code=sex_female_code,
        _time_unit=unit,
    )


def _time_unit(time_unit: str | None) -> str | None:
    if time_unit is None:
        return None
    unit = canonical_time_unit(time_unit)
    if unit is None:
        raise DatasetError(f"time_unit={time_unit!r} is not a time unit", value=time_unit,
                           valid=VALID_TIME_UNITS)
    return unit


def map_columns(
    names: Sequence[str],
    *,
    columns: Mapping[str, str] | None = None,
    drop: Sequence[str] = (),
) -> dict[str, str]:
    """Map source column names to the names used (canonical or upper case).

    Parameters
    ----------
    names
        Column names as written in the source.
    columns
        User mapping (case-insensitive keys), applied instead of the aliases.
    drop
        Source columns to leave out.

    Returns
    -------
    dict
        Source name -> name used, for the kept columns, in source order.

    Raises
    ------
    DatasetError
        For duplicate names, unknown names in `columns` or `drop`, or two
        columns mapped to the same name.
    """
    upper = {name: str(name).strip().upper() for name in names}
    _check_unique_header(upper)
    by_upper = {u: name for name, u in upper.items()}
    listing = ", ".join(map(str, names))
    dropped = {_lookup(by_upper, d, "drop", listing) for d in drop}
    user = {_lookup(by_upper, k, "columns", listing): str(t).strip().upper()
            for k, t in (columns or {}).items()}
    mapping: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name in names:
        if name in dropped:
            continue
        target = user.get(name) or ALIASES.get(upper[name], upper[name])
        if target in origin:
            raise DatasetError(
                f"columns {origin[target]!r} and {name!r} both stand for {target}",
                column=str(name),
                valid=f"one column per name: leave one out with drop=[{name!r}] or "
                f"rename it with columns={{{name!r}: 'OTHER'}}",
            )
        origin[target] = name
        mapping[name] = target
    return mapping


# =========================================================================== loading


@dataclass(frozen=True)
class _Table:
    """A source as written: values (text for a file), rows, lines, provenance."""

    frame: pd.DataFrame
    rows: np.ndarray
    lines: np.ndarray | None
    source: str
    sha256: str | None


def _load(source: str | os.PathLike[str] | pd.DataFrame) -> _Table:
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame = frame.reset_index(drop=True)
        return _Table(frame, np.arange(1, len(frame) + 1), None, "<DataFrame>", None)
    if not isinstance(source, (str, os.PathLike)):
        raise DatasetError(
            f"cannot read a dataset from a {type(source).__name__}",
            valid="a path to a CSV or whitespace-separated file, or a pandas DataFrame",
        )
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(
            f"cannot read {str(path)!r}: {err.strerror or err}",
            valid="a path to an existing, readable dataset file",
        ) from None
    frame, rows, lines = _parse_text(_decode(data), path.name)
    return _Table(frame, rows, lines, str(path.resolve()), hashlib.sha256(data).hexdigest())


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _tokens(line: str, comma: bool) -> list[str]:
    if comma:
        return [t.strip() for t in next(csv.reader([line]))] if line.strip() else []
    return line.split()


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _looks_like_data(tokens: Sequence[str]) -> bool:
    """True if most fields are numbers or '.' (a record, not a header)."""
    def numeric(t: str) -> bool:
        try:
            float(t)
        except ValueError:
            return t in v.MISSING_TOKENS
        return True
    return sum(map(numeric, tokens)) * 2 > len(tokens)


def _parse_text(text: str, name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Split a file into a frame of strings plus data-row and line numbers."""
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    lead = 0
    while lead < len(numbered) and _is_comment(numbered[lead][1]):
        lead += 1
    if lead == len(numbered):
        raise DatasetError(f"{name} has no header line and no records",
                           valid="a header line naming the columns, then one record per line")
    header_line, start = numbered[lead][1], lead + 1
    if lead:  # "#ID TIME ..." followed by data: the last comment line is the header
        commented = numbered[lead - 1][1].lstrip().lstrip("#")
        first_is_data = _looks_like_data(_tokens(header_line, "," in header_line))
        if first_is_data and not _looks_like_data(_tokens(commented, "," in commented)):
            header_line, start = commented, lead
    comma = "," in header_line
    header = _header(_tokens(header_line, comma), name)
    return _records(numbered[start:], header, comma, name)


def _header(tokens: list[str], name: str) -> list[str]:
    while tokens and tokens[-1] == "":
        tokens = tokens[:-1]
    if not tokens:
        raise DatasetError(f"{name} has an empty header line",
                           valid="a header line naming the columns (ID, TIME, ...)")
    if "" in tokens:
        position = tokens.index("") + 1
        raise DatasetError(f"column {position} of the header of {name} has no name",
                           valid="a name for every column")
    return tokens


def _records(
    numbered: Sequence[tuple[int, str]], header: list[str], comma: bool, name: str
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    width = len(header)
    values: list[list[str]] = []
    lines: list[int] = []
    skipped: list[int] = []
    for number, line in numbered:
        if _is_comment(line):
            skipped.append(number)
            continue
        fields = _tokens(line, comma)
        if len(fields) > width and not any(fields[width:]):
            fields = fields[:width]
        if len(fields) != width:
            row = len(values) + 1
            raise v.located_error(
                f"the record has {len(fields)} fields but the header of {name} names "
                f"{width} columns",
                row=row,
                line=number,
                valid=f"{width} fields on every record ('.' for a missing value)",
            )
        values.append(fields)
        lines.append(number)
    if skipped:
        warnings.warn(
            f"{len(skipped)} comment line(s) starting with '#' were skipped "
            f"(lines {', '.join(map(str, skipped[:5]))}{', ...' if len(skipped) > 5 else ''})",
            DataWarning,
            stacklevel=5,
        )
    frame = pd.DataFrame(values, columns=header, dtype=object)
    return frame, np.arange(1, len(values) + 1), np.asarray(lines, dtype=np.int64)


def _check_unique_header(upper: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    for name, u in upper.items():
        if u in seen:
            raise DatasetError(
                f"columns {seen[u]!r} and {name!r} have the same name (names are case-insensitive)",
                column=str(name),
                valid="distinct column names",
            )
        seen[u] = name


def _lookup(by_upper: Mapping[str, str], key: str, option: str, listing: str) -> str:
    found = by_upper.get(str(key).strip().upper())
    if found is None:
        raise DatasetError(
            f"{option}= names column {key!r}, which is not in the dataset",
            column=str(key),
            valid=f"one of the columns: {listing}",
        )
    return found


def _covariate_columns(ctx: v.RowContext, requested: Sequence[str] | None) -> list[str]:
    others = [c for c in ctx.raw.columns if c not in CANONICAL]
    if requested is None:
        return [c for c in others if c not in NON_COVARIATES]
    by_name = {c: c for c in others}
    by_name.update({ctx.column_label(c).strip().upper(): c for c in others})
    chosen = []
    for name in requested:
        key = str(name).strip().upper()
        found = by_name.get(key) or by_name.get(ALIASES.get(key, key))
        if found is None:
            raise DatasetError(
                f"covariates= names {name!r}, which is not a covariate column of the dataset",
                column=str(name),
                valid=f"one of: {', '.join(others) or '(no covariate columns)'}",
            )
        chosen.append(found)
    return list(dict.fromkeys(chosen))


# =========================================================================== building


@dataclass(frozen=True)
class _Built:
    records: pd.DataFrame
    doses: pd.DataFrame
    observations: pd.DataFrame
    excluded: pd.DataFrame
    baseline: pd.DataFrame


def _parse_ids(ctx: v.RowContext) -> tuple[np.ndarray, np.ndarray]:
    """Subject IDs in their original type: int for integer text, else str."""
    raw = ctx.raw["ID"]
    missing = v.missing_mask(raw)
    if ctx.lines is None:  # a DataFrame: keep the values and dtype as they are
        return raw.to_numpy(), missing
    text = raw.astype(object).where(~missing, "").map(lambda s: str(s).strip())
    present = text[~missing]
    if len(present) and all(_INTEGER.match(t) and str(int(t)) == t for t in present):
        return text.where(~missing, "0").astype(np.int64).to_numpy(), missing
    return text.to_numpy(dtype=object), missing


def _derive_evid(amt: np.ndarray | None, mdv: np.ndarray | None, evid: np.ndarray | None) -> np.ndarray:
    if evid is not None:
        return evid
    dose = np.nan_to_num(amt, nan=0.0) > 0
    return np.where(dose, 1.0, np.where(np.nan_to_num(mdv, nan=0.0) == 1, 2.0, 0.0))


def _zero(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n) if values is None else np.nan_to_num(values, nan=0.0)


def _build(ctx: v.RowContext, covariate_columns: list[str], dvid: Any) -> _Built:
    n = len(ctx.raw)
    num = {c: v.parse_numeric(ctx, c) for c in _NUMERIC_ITEMS if c in ctx.raw.columns}
    ids, id_missing = _parse_ids(ctx)
    v.check_ids(ids, id_missing, ctx)
    codes = pd.factorize(pd.Series(ids), sort=False)[0]

    evid = _derive_evid(num.get("AMT"), num.get("MDV"), num.get("EVID"))
    mdv = num.get("MDV", np.full(n, np.nan))
    mdv = np.where(np.isnan(mdv), (evid != 0).astype(float), mdv)
    v.check_evid_mdv(ctx, evid, mdv)
    segment = v.check_times(ctx, codes, num["TIME"], evid)

    dose = np.isin(evid, (1, 4))
    if dose.any() and "AMT" not in num:
        raise DatasetError("the dataset has dose records (EVID 1 or 4) but no AMT column",
                           column="AMT", valid="an AMT column with the amount of each dose")
    amt = num.get("AMT", np.zeros(n))
    v.check_observation_amounts(ctx, evid, amt)
    cmt = num.get("CMT", np.ones(n))
    ii, addl, ss = (_zero(num.get(c), n) for c in ("II", "ADDL", "SS"))
    resolved = v.check_doses(ctx, evid, amt, num.get("RATE", np.zeros(n)),
                             num.get("DUR", np.zeros(n)), ii, addl, ss, cmt)

    observed = (evid == 0) & (mdv == 0)
    other_analyte = select_analyte(ctx, observed, dvid)
    observed &= ~other_analyte
    several = isinstance(dvid, (list, tuple))
    # several analytes: the CMT rules are those of the parent's (the first DVID's) records
    parent = observed & np.array([k == dvid_key(dvid[0]) for k in dvid_keys(ctx)]) if several else observed
    cmt = observation_cmt(ctx, evid, parent, cmt)
    if observed.any() and "DV" not in num:
        raise DatasetError("the dataset has observation records (EVID 0, MDV 0) but no DV column",
                           column="DV", valid="a DV column with the observed concentrations")
    dv = num.get("DV", np.full(n, np.nan))
    flags = v.check_observations(ctx, observed, dv, num.get("BLQ"),
                                 num.get("LLOQ", np.full(n, np.nan)))

    covs, extras = _other_columns(ctx, codes, ids, covariate_columns)
    check_record_sizes(ctx, covs)

    records = pd.DataFrame({
        "ROW": ctx.rows.astype(np.int64),
        "ID": ids,
        "TIME": num["TIME"],
        "DV": dv,
        "AMT": np.nan_to_num(amt, nan=0.0),
        "EVID": evid.astype(np.int64),
        "MDV": mdv.astype(np.int64),
        "CMT": cmt.astype(np.int64),
        "RATE": resolved.rate,
        "DUR": resolved.dur,
        "II": ii,
        "ADDL": addl.astype(np.int64),
        "SS": ss.astype(np.int64),
        "BLQ": flags.blq,
        "LLOQ": flags.lloq,
        "SEGMENT": segment,
    })
    for name, series in {**covs, **extras}.items():
        records[name] = series.to_numpy() if series.dtype.kind == "f" else series.array
    records = records[["ROW", "ID", "TIME", *CANONICAL[2:], "SEGMENT",
                       *[c for c in ctx.raw.columns if c not in CANONICAL]]]

    doses, cancelled = expand_doses(records, codes)
    observations = observation_table(records, observed, flags.dv, list(covs), codes)
    if several:
        observations["DVID"] = [k for k, o in zip(dvid_keys(ctx), observed) if o]
    left_out = np.flatnonzero(other_analyte)
    reasons = describe_excluded(dvid_keys(ctx), left_out, dvid) if len(left_out) else []
    excluded = excluded_table(records, evid, mdv, cancelled, dict(zip(left_out.tolist(), reasons)))
    baseline = _baseline(records, list(covs))
    return _Built(records, doses, observations, excluded, baseline)


# =========================================================================== covariates


def _other_columns(
    ctx: v.RowContext, codes: np.ndarray, ids: np.ndarray, covariate_columns: list[str]
) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """Parse the covariates (checked) and the remaining non-canonical columns."""
    covs = {c: _parse_covariate(ctx, c, strict=True) for c in covariate_columns}
    for name, series in covs.items():
        v.check_covariate_presence(ctx, codes, ids, name, series.isna().to_numpy())
    extras = {c: _parse_covariate(ctx, c, strict=False) for c in ctx.raw.columns
              if c not in CANONICAL and c not in covs}
    return covs, extras


def _parse_covariate(ctx: v.RowContext, column: str, *, strict: bool) -> pd.Series:
    """Numbers stay numbers (float64); text becomes a string column.

    With ``strict``, a known numeric covariate (:data:`NUMERIC_COVARIATES`)
    must be numeric, and a column mixing numbers and text warns.
    """
    raw = ctx.raw[column]
    if pd.api.types.is_numeric_dtype(raw.dtype) and raw.dtype != bool:
        return pd.Series(raw.to_numpy(dtype=float, na_value=np.nan), name=column)
    missing = v.missing_mask(raw)
    text = raw.astype(object).where(~missing, None).map(
        lambda s: s.strip() if isinstance(s, str) else s)
    numbers = pd.to_numeric(text, errors="coerce")
    is_text = ~missing & numbers.isna().to_numpy()
    if not is_text.any():
        return pd.Series(numbers.to_numpy(dtype=float, na_value=np.nan), name=column)
    i = int(np.flatnonzero(is_text)[0])
    if strict and column in NUMERIC_COVARIATES:
        raise ctx.error(i, column, f"covariate {ctx.column_label(column)} must be numeric",
                        valid=v.NUMBER_OR_MISSING)
    if strict and (~missing & ~is_text).any():
        warnings.warn(
            f"column {ctx.column_label(column)!r} mixes numbers and text (first text value "
            f"{ctx.raw_value(i, column)!r} at {ctx.where(i)}); it is kept as text (a category)",
            DataWarning,
            stacklevel=5,
        )
    return pd.Series(text.astype(object).where(~missing, None).map(
        lambda s: None if s is None else str(s)), name=column, dtype="str")


def _baseline(records: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """First non-missing value of each covariate per subject (file order)."""
    subjects = pd.unique(records["ID"])
    if not covariates:
        return pd.DataFrame(index=pd.Index(subjects, name="ID"))
    base = records.groupby("ID", sort=False)[covariates].first()
    base = base.reindex(pd.Index(subjects, name="ID"))
    return base
