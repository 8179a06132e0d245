"""Checks on a NONMEM-style dataset, each raising :class:`DatasetError`.

Every check names the data row, the column (as written in the file), the
offending value (as written in the file) and what would be valid.  Row numbers
count data rows from 1, the header not counted; for a file the physical line
number is added to the message (``row 12 (line 13)``), for a DataFrame source
the row is the positional index + 1.

The functions here work on plain NumPy arrays of the canonical columns plus a
:class:`RowContext` that knows how to point at the source.  They either return
derived arrays (segments, rates, BLQ flags) or raise.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from poppk.errors import DatasetError, DataWarning

__all__ = [
    "RowContext",
    "located_error",
    "NUMBER_OR_MISSING",
    "missing_mask",
    "parse_numeric",
    "check_required_columns",
    "check_ids",
    "check_integer_codes",
    "check_evid_mdv",
    "check_times",
    "check_doses",
    "check_observation_amounts",
    "check_observations",
    "check_covariate_presence",
]

NUMBER_OR_MISSING = "a number, or '.' for missing"
MISSING_TOKENS = frozenset({"", "."})
_UNSET: Any = object()
#: Relative tolerance within which RATE, DUR and AMT/RATE must agree.
RATE_DUR_RTOL = 1e-3


def located_error(
    message: str,
    *,
    row: int | None,
    line: int | None = None,
    column: str | None = None,
    value: Any = None,
    valid: str | None = None,
) -> DatasetError:
    """A :class:`DatasetError` whose text reads ``row N (line L), column ...``."""
    err = DatasetError(message, row=row, column=column, value=value, valid=valid)
    if row is not None and line is not None:
        err.args = (str(err).replace(f"row {row}", f"row {row} (line {line})", 1),)
    return err


@dataclass(frozen=True)
class RowContext:
    """Where each record came from, so that errors can point at it.

    Parameters
    ----------
    raw
        The source values as written (strings for a file), with canonical
        column names.
    rows
        1-based data-row number of each record.
    lines
        1-based physical line number of each record in the file, or ``None``
        when the source is a DataFrame.
    file_names
        Canonical column name -> column name as written in the source.
    """

    raw: pd.DataFrame
    rows: np.ndarray
    lines: np.ndarray | None
    file_names: Mapping[str, str]

    def column_label(self, column: str | None) -> str | None:
        """Return the column name as written in the source."""
        if column is None:
            return None
        return self.file_names.get(column, column)

    def raw_value(self, i: int, column: str | None) -> Any:
        """Return the value of record ``i`` in ``column`` as written."""
        if column is None or column not in self.raw.columns:
            return None
        value = self.raw[column].iloc[i]
        if isinstance(value, float) and np.isnan(value):
            return None
        return value

    def where(self, i: int) -> str:
        """Describe record ``i`` as ``row N (line L)`` or ``row N``."""
        row = int(self.rows[i])
        if self.lines is None:
            return f"row {row}"
        return f"row {row} (line {int(self.lines[i])})"

    def error(
        self,
        i: int | None,
        column: str | None,
        message: str,
        *,
        valid: str | None = None,
        value: Any = _UNSET,
    ) -> DatasetError:
        """Build a :class:`DatasetError` located on record ``i``.

        The value defaults to the raw value of record ``i`` in ``column``.
        """
        if value is _UNSET:
            value = None if i is None else self.raw_value(i, column)
        row = None if i is None else int(self.rows[i])
        line = None if i is None or self.lines is None else int(self.lines[i])
        return located_error(message, row=row, line=line, column=self.column_label(column),
                             value=value, valid=valid)

    def rows_text(self, positions: Sequence[int], limit: int = 5) -> str:
        """List the data rows of ``positions`` (at most ``limit`` of them)."""
        shown = ", ".join(str(int(self.rows[p])) for p in positions[:limit])
        if len(positions) > limit:
            shown += f", ... ({len(positions)} in all)"
        return shown


# --------------------------------------------------------------------------- parsing


def missing_mask(values: pd.Series) -> np.ndarray:
    """True where a raw value means 'missing' ('.', empty, None, NaN)."""
    obj = values.astype(object)
    is_token = obj.map(lambda v: isinstance(v, str) and v.strip() in MISSING_TOKENS)
    return (obj.isna() | is_token.astype(bool)).to_numpy(dtype=bool)


def parse_numeric(ctx: RowContext, column: str) -> np.ndarray:
    """Convert a raw column to float64, NaN for missing.

    Raises
    ------
    DatasetError
        On the first value that is neither a finite number nor missing.
    """
    raw = ctx.raw[column]
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isinf(values)
    else:
        missing = missing_mask(raw)
        obj = raw.astype(object).where(~missing, None)
        obj = obj.map(lambda v: v.strip() if isinstance(v, str) else v)
        values = pd.to_numeric(obj, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = (~missing & np.isnan(values)) | np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = "is not finite" if np.isinf(values[i]) else "is not a number"
        raise ctx.error(i, column, f"{ctx.column_label(column)} {problem}",
                        valid=NUMBER_OR_MISSING)
    return values


# --------------------------------------------------------------------------- structure


def check_required_columns(present: Sequence[str], available: Sequence[str]) -> None:
    """Require ID, TIME and a way to tell doses from observations.

    Parameters
    ----------
    present
        Canonical names of the columns in the dataset.
    available
        Column names as written, for the message.
    """
    names = set(present)
    listing = ", ".join(available)
    for column in ("ID", "TIME"):
        if column not in names:
            raise DatasetError(
                f"required column {column} is missing (columns found: {listing})",
                column=column,
                valid=f"a header naming {column} (or map your column to it with columns=)",
            )
    if "EVID" not in names and not {"AMT", "MDV"} <= names:
        lacking = [c for c in ("AMT", "MDV") if c not in names]
        raise DatasetError(
            "cannot tell doses from observations: the dataset has no EVID column "
            f"and no {' or '.join(lacking)} column (columns found: {listing})",
            column="EVID",
            valid="an EVID column, or both AMT and MDV columns",
        )


def check_ids(ids: np.ndarray, missing: np.ndarray, ctx: RowContext) -> None:
    """Require an ID on every record and contiguous records per subject."""
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ctx.error(i, "ID", "the subject ID is missing",
                        valid="a subject identifier on every record")
    codes, _ = pd.factorize(pd.Series(ids), sort=False)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)] - 1
    run_codes = codes[starts]
    repeated = np.flatnonzero(pd.Series(run_codes).duplicated().to_numpy())
    if len(repeated) == 0:
        return
    code = run_codes[repeated[0]]
    blocks = np.flatnonzero(run_codes == code)
    spans = " and ".join(_span(ctx, int(starts[r]), int(ends[r])) for r in blocks)
    i = int(starts[repeated[0]])
    raise ctx.error(
        i, "ID",
        f"subject {ids[i]} is split: {spans}; sort by ID then TIME",
        valid="all records of a subject on consecutive rows",
    )


def _span(ctx: RowContext, start: int, end: int) -> str:
    first, last = int(ctx.rows[start]), int(ctx.rows[end])
    return f"row {first}" if first == last else f"rows {first}\u2013{last}"


def check_integer_codes(
    ctx: RowContext,
    column: str,
    values: np.ndarray,
    allowed: Sequence[int] | None,
    valid: str,
    *,
    applies: np.ndarray | None = None,
) -> None:
    """Require integer codes (optionally from ``allowed``) where ``applies``.

    Missing values are not checked here.
    """
    mask = ~np.isnan(values)
    if applies is not None:
        mask &= applies
    with np.errstate(invalid="ignore"):
        bad = mask & (values != np.round(values))
        if allowed is not None:
            bad |= mask & ~np.isin(values, np.asarray(allowed, dtype=float))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(i, column, f"{ctx.column_label(column)} has an invalid code",
                        valid=valid)


def check_evid_mdv(ctx: RowContext, evid: np.ndarray, mdv: np.ndarray) -> None:
    """EVID must be 0-4 on every record; MDV 0/1 and 1 on non-observations."""
    if np.isnan(evid).any():
        i = int(np.flatnonzero(np.isnan(evid))[0])
        raise ctx.error(i, "EVID", "EVID is missing",
                        valid="0 (observation), 1 (dose), 2 (other), 3 (reset) or 4 (reset and dose)")
    check_integer_codes(
        ctx, "EVID", evid, (0, 1, 2, 3, 4),
        "0 (observation), 1 (dose), 2 (other event), 3 (reset) or 4 (reset and dose)",
    )
    check_integer_codes(ctx, "MDV", mdv, (0, 1), "0 (observation used) or 1 (missing DV)")
    bad = (evid != 0) & (mdv == 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(
            i, "MDV", f"MDV is 0 on a record with EVID {int(evid[i])}",
            valid="MDV=1 on dose, reset and other-event records (only EVID 0 records are observations)",
        )


# --------------------------------------------------------------------------- time


def check_times(
    ctx: RowContext, codes: np.ndarray, time: np.ndarray, evid: np.ndarray
) -> np.ndarray:
    """Check times and return the reset SEGMENT of each record.

    Within a subject time must not decrease in file order, except on an
    EVID 3/4 (reset) record, which may restart the clock.  Every reset record
    starts a new segment (0, 1, 2, ... per subject).
    """
    if np.isnan(time).any():
        i = int(np.flatnonzero(np.isnan(time))[0])
        raise ctx.error(i, "TIME", "TIME is missing", valid="a time >= 0 on every record")
    if (time < 0).any():
        i = int(np.flatnonzero(time < 0)[0])
        raise ctx.error(i, "TIME", "TIME is negative", valid="a time >= 0")
    reset = np.isin(evid, (3, 4))
    same = np.r_[False, codes[1:] == codes[:-1]]
    back = same & np.r_[False, time[1:] < time[:-1]] & ~reset
    if back.any():
        i = int(np.flatnonzero(back)[0])
        raise ctx.error(
            i, "TIME",
            f"TIME goes back from {time[i - 1]:g} ({ctx.where(i - 1)}) within subject "
            f"{ctx.raw_value(i, 'ID')}; sort by ID then TIME",
            valid=f"a time >= {time[i - 1]:g}; time may restart only on an EVID 3 or 4 (reset) record",
        )
    counts = np.cumsum(reset & same)
    first = np.flatnonzero(~same)
    at_start = np.repeat(counts[first], np.diff(np.r_[first, len(time)]))
    segment = (counts - at_start).astype(np.int64)
    return segment


# --------------------------------------------------------------------------- doses


@dataclass(frozen=True)
class DoseColumns:
    """Rate and duration of every record after checking (0 off dose rows)."""

    rate: np.ndarray
    dur: np.ndarray


def check_doses(
    ctx: RowContext,
    evid: np.ndarray,
    amt: np.ndarray,
    rate: np.ndarray,
    dur: np.ndarray,
    ii: np.ndarray,
    addl: np.ndarray,
    ss: np.ndarray,
    cmt: np.ndarray,
) -> DoseColumns:
    """Check dose records (EVID 1 and 4) and resolve rate/duration.

    ``RATE > 0`` gives ``DUR = AMT / RATE``; ``DUR > 0`` gives
    ``RATE = AMT / DUR``; both zero is a bolus.  Missing RATE, DUR, II, ADDL
    and SS read as 0, as in NONMEM.
    """
    dose = np.isin(evid, (1, 4))
    _check_amounts(ctx, dose, amt)
    _check_cmt(ctx, dose, cmt)  # observations: poppk.data.observation_type
    check_integer_codes(ctx, "SS", ss, (0, 1, 2),
                        "0 (no steady state), 1 (steady state, resets prior doses) or "
                        "2 (steady state added to prior doses)", applies=dose)
    check_integer_codes(ctx, "ADDL", addl, None, "a whole number of additional doses >= 0",
                        applies=dose)
    _check_nonnegative(ctx, "ADDL", addl, dose, "a whole number of additional doses >= 0")
    _check_nonnegative(ctx, "II", ii, dose, "an interdose interval >= 0")
    _check_needs_ii(ctx, "SS", dose & (ss > 0), ii)
    _check_needs_ii(ctx, "ADDL", dose & (addl > 0), ii)
    return _resolve_rate(ctx, dose, amt, rate, dur)


def _check_amounts(ctx: RowContext, dose: np.ndarray, amt: np.ndarray) -> None:
    missing = dose & np.isnan(amt)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ctx.error(i, "AMT", f"dose record (EVID {_evid_text(ctx, i)}) has no AMT",
                        valid="an amount > 0 on every dose record")
    with np.errstate(invalid="ignore"):
        bad = dose & (amt <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(i, "AMT", f"dose record (EVID {_evid_text(ctx, i)}) has AMT <= 0",
                        valid="an amount > 0 on every dose record")


def _evid_text(ctx: RowContext, i: int) -> str:
    value = ctx.raw_value(i, "EVID")
    return "1" if value is None else str(value)


def _check_cmt(ctx: RowContext, applies: np.ndarray, cmt: np.ndarray) -> None:
    valid = "a compartment number: a whole number >= 1"
    missing = applies & np.isnan(cmt)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ctx.error(i, "CMT", "CMT is missing on a dose record", valid=valid)
    with np.errstate(invalid="ignore"):
        bad = applies & ((cmt < 1) | (cmt != np.round(cmt)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(i, "CMT", "CMT is not a valid compartment number", valid=valid)


def _check_nonnegative(
    ctx: RowContext, column: str, values: np.ndarray, applies: np.ndarray, valid: str
) -> None:
    with np.errstate(invalid="ignore"):
        bad = applies & (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(i, column, f"{ctx.column_label(column)} is negative", valid=valid)


def _check_needs_ii(ctx: RowContext, flag: str, rows: np.ndarray, ii: np.ndarray) -> None:
    bad = rows & ~(ii > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        label = ctx.column_label(flag)
        value = ctx.raw_value(i, flag)
        raise ctx.error(
            i, "II",
            f"{label}={value} needs an interdose interval, but II is not > 0",
            valid=f"II > 0 on a record with {label} > 0 (or {label}=0)",
        )


def _resolve_rate(
    ctx: RowContext, dose: np.ndarray, amt: np.ndarray, rate: np.ndarray, dur: np.ndarray
) -> DoseColumns:
    rate = np.where(np.isnan(rate), 0.0, rate)
    dur = np.where(np.isnan(dur), 0.0, dur)
    modelled = dose & np.isin(rate, (-1.0, -2.0))
    if modelled.any():
        i = int(np.flatnonzero(modelled)[0])
        kind = "rate" if rate[i] == -1 else "duration"
        raise ctx.error(
            i, "RATE",
            f"RATE={rate[i]:g} (modelled infusion {kind}) is not supported yet",
            valid="an explicit infusion: RATE > 0, or DUR > 0 with RATE=0; RATE=0 and DUR=0 for a bolus",
        )
    for column, values in (("RATE", rate), ("DUR", dur)):
        bad = dose & (values < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ctx.error(
                i, column, f"{ctx.column_label(column)} is negative",
                valid=f"{column} >= 0 (0 for a bolus; RATE > 0 or DUR > 0 for an infusion)",
            )
    both = dose & (rate > 0) & (dur > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = np.where(rate > 0, amt / rate, 0.0)
    off = both & ~np.isclose(implied, dur, rtol=RATE_DUR_RTOL, atol=0.0)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ctx.error(
            i, "DUR",
            f"RATE and DUR disagree: AMT/RATE = {amt[i]:g}/{rate[i]:g} = {implied[i]:g} "
            f"but DUR = {dur[i]:g}",
            valid=f"DUR = AMT/RATE = {implied[i]:g} (within 0.1%), or only one of RATE and DUR",
        )
    by_rate = dose & (rate > 0)
    by_dur = dose & ~by_rate & (dur > 0)
    safe_dur = np.where(by_dur, dur, 1.0)
    out_rate = np.where(by_rate, rate, np.where(by_dur, amt / safe_dur, 0.0))
    out_dur = np.where(by_rate, implied, np.where(by_dur, dur, 0.0))
    return DoseColumns(rate=out_rate, dur=out_dur)


# --------------------------------------------------------------------------- observations


def check_observation_amounts(ctx: RowContext, evid: np.ndarray, amt: np.ndarray) -> None:
    """An observation record (EVID 0) must not carry a dose amount."""
    with np.errstate(invalid="ignore"):
        bad = (evid == 0) & (amt > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(
            i, "AMT", "an observation record (EVID 0) has AMT > 0",
            valid="AMT = 0 or '.' on observation records; use EVID 1 for a dose",
        )


@dataclass(frozen=True)
class ObservationFlags:
    """Result of :func:`check_observations` for every record."""

    blq: np.ndarray  # int64 0/1 on every record
    dv: np.ndarray  # DV used for fitting (LLOQ on BLQ observations)
    lloq: np.ndarray  # LLOQ (NaN when missing)


def check_observations(
    ctx: RowContext,
    observed: np.ndarray,
    dv: np.ndarray,
    blq: np.ndarray | None,
    lloq: np.ndarray,
) -> ObservationFlags:
    """Check DV on observation records and settle the BLQ flags.

    Parameters
    ----------
    observed
        True on records that enter the likelihood (EVID 0 and MDV 0).
    blq
        The BLQ column (0/1, NaN for missing) or ``None`` if absent.

    Notes
    -----
    A BLQ observation may have a missing DV; its fitted DV is set to LLOQ.
    If DV is missing or not > 0, LLOQ must be > 0.  A non-BLQ observation
    with ``0 < LLOQ`` and ``DV < LLOQ`` is flagged BLQ with a
    :class:`DataWarning`.
    """
    n = len(dv)
    flag = np.zeros(n, dtype=np.int64)
    if blq is not None:
        check_integer_codes(ctx, "BLQ", blq, (0, 1),
                            "0 (quantified) or 1 (below the limit of quantification)")
        flag = np.where(np.isnan(blq), 0, blq).astype(np.int64)
    lloq = lloq.copy()
    with np.errstate(invalid="ignore"):
        bad_lloq = ~np.isnan(lloq) & (lloq < 0)
    if bad_lloq.any():
        i = int(np.flatnonzero(bad_lloq)[0])
        raise ctx.error(i, "LLOQ", "LLOQ is negative", valid="a limit of quantification >= 0")
    _check_quantified(ctx, observed & (flag == 0), dv, blq is not None)
    _check_censored(ctx, observed & (flag == 1), dv, lloq)
    flag = _flag_below_limit(ctx, observed, dv, lloq, flag)
    censored = observed & (flag == 1)
    lloq = np.where(censored & ~(lloq > 0), dv, lloq)
    fit_dv = np.where(censored, lloq, dv)
    return ObservationFlags(blq=flag, dv=fit_dv, lloq=lloq)


def _check_quantified(ctx: RowContext, rows: np.ndarray, dv: np.ndarray, has_blq: bool) -> None:
    missing = rows & np.isnan(dv)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        blq_hint = ", or BLQ=1 with LLOQ" if has_blq else ""
        raise ctx.error(
            i, "DV", "an observation record (EVID 0, MDV 0) has no DV",
            valid=f"a measured concentration, or MDV=1 to exclude the record{blq_hint}",
        )
    with np.errstate(invalid="ignore"):
        negative = rows & (dv < 0)
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise ctx.error(i, "DV", "an observed concentration is negative",
                        valid="a concentration >= 0, or BLQ=1 if below the limit of quantification")


def _check_censored(ctx: RowContext, rows: np.ndarray, dv: np.ndarray, lloq: np.ndarray) -> None:
    no_limit = rows & ~(lloq > 0) & ~(dv > 0)
    if no_limit.any():
        i = int(np.flatnonzero(no_limit)[0])
        raise ctx.error(
            i, "LLOQ", "a BLQ observation has no limit of quantification",
            valid="LLOQ > 0 on BLQ records (or DV holding the limit)",
        )


def _flag_below_limit(
    ctx: RowContext, observed: np.ndarray, dv: np.ndarray, lloq: np.ndarray, flag: np.ndarray
) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        below = observed & (flag == 0) & (lloq > 0) & (dv < lloq)
    if not below.any():
        return flag
    positions = np.flatnonzero(below).tolist()
    warnings.warn(
        f"{len(positions)} observation(s) have DV < LLOQ but are not flagged BLQ "
        f"(rows {ctx.rows_text(positions)}); they are treated as BLQ (censored at LLOQ). "
        "Set BLQ=1 on those rows to make this explicit.",
        DataWarning,
        stacklevel=4,
    )
    return np.where(below, 1, flag)


# --------------------------------------------------------------------------- covariates


def check_covariate_presence(
    ctx: RowContext, codes: np.ndarray, ids: np.ndarray, column: str, missing: np.ndarray
) -> None:
    """A covariate must have a value on at least one record of each subject."""
    n_subjects = int(codes.max()) + 1 if len(codes) else 0
    present = np.zeros(n_subjects, dtype=bool)
    np.logical_or.at(present, codes, ~missing)
    if present.all():
        return
    subject = int(np.flatnonzero(~present)[0])
    positions = np.flatnonzero(codes == subject)
    i = int(positions[0])
    raise ctx.error(
        i, column,
        f"covariate {ctx.column_label(column)} is missing on every record of subject "
        f"{ids[i]} ({_span(ctx, i, int(positions[-1]))})",
        valid="a value on at least one record of each subject; or leave the column out "
        "with drop=, or choose covariates with covariates=",
        value=None,
    )
