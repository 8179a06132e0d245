"""Body-size values on every record, not only at baseline.

The model uses each subject's baseline (first non-missing) weight and height,
but a later record with ``WT = 0`` or ``HT = 1700`` is still a wrong value in
the dataset (and enters :attr:`PKData.observations` as a per-record
covariate), so every record is checked with the plausibility ranges of
:mod:`poppk.bodysize`:

* :func:`check_record_sizes` (by :func:`~poppk.data.read_nonmem`): weight
  (``WT`` and its aliases) in 0.3-400 kg; height (``HT`` and its aliases)
  plausible in at least one unit poppk reads (30-250 cm, 0.3-2.5 m or
  11.8-98.4 in), since the unit is chosen later.
* :func:`check_descriptor_inputs` (by :meth:`PKData.with_size_descriptors`,
  once the height unit and the female sex code are known): every record's
  weight and height in range in that unit, and every sex code readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from poppk.bodysize import HEIGHT_RANGE_CM, HEIGHT_UNITS, IBW_METHODS, WEIGHT_RANGE_KG, parse_sex, size_descriptors
from poppk.data import validate as v
from poppk.errors import BodySizeError, DatasetError

__all__ = ["check_record_sizes", "check_descriptor_inputs", "descriptor_options", "WEIGHT_VALID", "HEIGHT_VALID"]

_W_LO, _W_HI = WEIGHT_RANGE_KG
_H_LO, _H_HI = HEIGHT_RANGE_CM
#: Plausible height range in each unit read by :func:`poppk.bodysize.size_descriptors`.
_HEIGHT_RANGES = {u: (_H_LO / HEIGHT_UNITS[u], _H_HI / HEIGHT_UNITS[u]) for u in ("cm", "m", "in")}

WEIGHT_VALID = f"a body weight in kg, {_W_LO:g}-{_W_HI:g} kg, on every record (or '.' for missing)"
HEIGHT_VALID = (
    "a height of " + ", ".join(f"{lo:.3g}-{hi:.3g} {u}" for u, (lo, hi) in _HEIGHT_RANGES.items())
    + " (the unit is given by height_unit= of with_size_descriptors, cm by default), "
    "on every record (or '.' for missing)"
)


def _first_bad_weight(w: np.ndarray) -> tuple[int, str] | None:
    """Position and description of the first implausible weight (NaN = missing is skipped)."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(w) & ~((w >= _W_LO) & (w <= _W_HI))
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    value = float(w[i])
    if not value > 0:
        return i, f"body weight {value:g} kg is not positive"
    hint = " (grams or pounds? weights must be in kg)" if value > _W_HI else ""
    return i, f"body weight {value:g} kg is outside the plausible range {_W_LO:g}-{_W_HI:g} kg{hint}"


def check_record_sizes(ctx: v.RowContext, covariates: Mapping[str, pd.Series]) -> None:
    """Check the weight (WT) and height (HT) covariates on every record.

    Parameters
    ----------
    ctx
        The records as written (for row, line and column names).
    covariates
        The parsed covariate columns (numeric ones are float64, NaN for missing).

    Raises
    ------
    DatasetError
        On the first record whose value is implausible, naming row (and
        line), column, value and the valid range.
    """
    if "WT" in covariates and covariates["WT"].dtype.kind == "f":
        found = _first_bad_weight(covariates["WT"].to_numpy(dtype=float))
        if found:
            raise ctx.error(found[0], "WT", found[1], valid=WEIGHT_VALID)
    if "HT" in covariates and covariates["HT"].dtype.kind == "f":
        h = covariates["HT"].to_numpy(dtype=float)
        present = ~np.isnan(h)
        fits = np.zeros(len(h), dtype=bool)
        for lo, hi in _HEIGHT_RANGES.values():
            fits |= (h >= lo * (1 - 1e-9)) & (h <= hi * (1 + 1e-9))
        bad = present & ~fits
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ctx.error(i, "HT", f"height {h[i]:g} is not a plausible height in any unit",
                            valid=HEIGHT_VALID)


def check_descriptor_inputs(
    records: pd.DataFrame,
    names: Mapping[str, str],
    file_names: Mapping[str, str],
    *,
    height_unit: str,
    female_code: Any,
    baseline_sex: np.ndarray | None = None,
) -> None:
    """Check every record's weight, height and sex for :meth:`PKData.with_size_descriptors`.

    Parameters
    ----------
    records
        :attr:`PKData.records` (with ``ROW``).
    names
        ``{"weight": column, "height": column, "sex": column}`` in ``records``.
    file_names
        Column name used -> name as written in the file (for messages).
    height_unit
        The unit of the height column (a key of :data:`poppk.bodysize.HEIGHT_UNITS`).
    female_code
        The sex code meaning female (``None`` for text codes).
    baseline_sex
        The subjects' baseline sex codes (already checked): a numeric code
        on a record that no baseline has is the one named when the codes
        are refused (e.g. a third code).

    Raises
    ------
    DatasetError
        Naming the first record (data row) with an implausible weight or
        height in ``height_unit``, or an unreadable sex code.
    """
    rows = records["ROW"].to_numpy()
    column = names["weight"]
    if column in records.columns:  # not for a descriptor derived earlier (e.g. TBW)
        w = pd.to_numeric(records[column], errors="coerce").to_numpy(dtype=float)
        found = _first_bad_weight(w)
        if found:
            i, problem = found
            raise DatasetError(problem, row=int(rows[i]), column=file_names.get(column, column),
                               value=float(w[i]), valid=WEIGHT_VALID)
    factor = HEIGHT_UNITS.get(str(height_unit).strip().lower())
    if factor is not None and names["height"] in records.columns:  # an unknown unit was refused already
        column = names["height"]
        h = pd.to_numeric(records[column], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(h) & ~((h * factor >= _H_LO) & (h * factor <= _H_HI))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            lo, hi = _H_LO / factor, _H_HI / factor
            raise DatasetError(
                f"height {h[i]:g} {height_unit} is outside the plausible range "
                f"{lo:.3g}-{hi:.3g} {height_unit} ({_H_LO:g}-{_H_HI:g} cm)",
                row=int(rows[i]), column=file_names.get(column, column), value=float(h[i]),
                valid=f"a height in {height_unit} between {lo:.3g} and {hi:.3g} on every record "
                "(or '.' for missing); pass height_unit= if the heights are in another unit",
            )
    if names["sex"] in records.columns:
        _check_sex_codes(records, names["sex"], file_names, rows, female_code, baseline_sex)


def _check_sex_codes(
    records: pd.DataFrame, column: str, file_names: Mapping[str, str], rows: np.ndarray, female_code: Any,
    baseline_sex: np.ndarray | None,
) -> None:
    sex = records[column]
    present = np.flatnonzero(sex.notna().to_numpy())
    values = sex.to_numpy(dtype=object)[present]
    try:
        parse_sex(values, female_code=female_code)
    except BodySizeError as err:
        text = str(err)
        bad = _first_unreadable(values, female_code, baseline_sex)
        row = int(rows[present[bad]]) if bad is not None else None
        value = values[bad] if bad is not None else None
        if isinstance(value, np.generic):
            value = value.item()
        raise DatasetError(
            f"sex code not readable: {text}", row=row, column=file_names.get(column, column), value=value,
            valid="'F'/'M' (or FEMALE/MALE, W/WOMAN/MAN), or two numeric codes of which one is "
            "female_code, on every record (or '.' for missing)",
        ) from err


def _first_unreadable(values: np.ndarray, female_code: Any, baseline_sex: np.ndarray | None) -> int | None:
    """Position of the value to blame when parse_sex refuses ``values``.

    First a value refused on its own, or a numeric code that no subject has
    at baseline; otherwise the end of the shortest refused prefix (a prefix
    that fails stays failing when it grows, so bisection finds it).
    """
    known = set()
    for code in (baseline_sex if baseline_sex is not None else ()):
        known.add(_numeric(code))
    verdict: dict[Any, bool] = {}
    for k, value in enumerate(values):
        key = _numeric(value)
        if key not in verdict:
            try:
                parse_sex([value], female_code=female_code)
                verdict[key] = isinstance(key, float) and bool(known) and key not in known
            except BodySizeError:
                verdict[key] = True
        if verdict[key]:
            return k

    def fails(k: int) -> bool:
        try:
            parse_sex(values[:k], female_code=female_code)
        except BodySizeError:
            return True
        return False

    if not fails(len(values)):
        return None
    lo, hi = 0, len(values)  # fails(hi) is True, fails(lo) is False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(mid):
            hi = mid
        else:
            lo = mid
    return hi - 1


def _numeric(value: Any) -> Any:
    """A numeric code as a float (1, 1.0 and "1" alike); any other value as it is."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def descriptor_options(data: Any) -> dict[str, Any]:
    """The body-size options the fit's descriptors were derived with (IBW method, AIBW factor, female code).

    A :class:`~poppk.data.PKData` does not record the IBW method; it is
    found by recomputing the stored IBW of the fitted subjects with each
    method and keeping the one that reproduces it (the AIBW factor likewise
    from AIBW = IBW + f·(TBW − IBW)).  Without descriptors, the defaults.
    """
    opts: dict[str, Any] = {"ibw_method": "devine", "aibw_factor": 0.4,
                            "female_code": getattr(data, "sex_female_code", None)}
    cov = getattr(data, "covariates", None)
    if cov is None or not {"IBW", "TBW", "HT", "SEX"} <= set(cov.columns):
        return opts
    wt = cov["TBW"].to_numpy(dtype=float)
    ht = cov["HT"].to_numpy(dtype=float)
    best, best_err = None, math.inf
    for method in IBW_METHODS:
        try:
            d = size_descriptors(wt, ht, cov["SEX"].to_numpy(dtype=object), ibw_method=method,
                                 female_code=opts["female_code"])
        except (BodySizeError, ValueError):
            continue
        err = float(np.nanmax(np.abs(d["IBW"] - cov["IBW"].to_numpy(dtype=float))))
        if err < best_err:
            best, best_err = method, err
    if best is not None:
        opts["ibw_method"] = best
    if "AIBW" in cov.columns:
        ibw = cov["IBW"].to_numpy(dtype=float)
        gap = wt - ibw
        use = np.abs(gap) > 1.0
        if use.any():
            f = float(np.median((cov["AIBW"].to_numpy(dtype=float)[use] - ibw[use]) / gap[use]))
            if 0.0 <= f <= 1.0:
                opts["aibw_factor"] = round(f, 4)
    return opts
