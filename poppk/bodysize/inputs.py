"""Body-size inputs: the descriptors' names and units, accepted methods and units, plausible
ranges, validation of weights and heights, and parsing of sex codes (see :mod:`poppk.bodysize`)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from poppk.errors import BodySizeError

#: Names of the body-size descriptors (TBW = total body weight, as measured).
DESCRIPTORS: tuple[str, ...] = ("TBW", "IBW", "AIBW", "LBW", "BSA", "BMI")

#: Unit of each descriptor.
UNITS: dict[str, str] = {
    "TBW": "kg",
    "IBW": "kg",
    "AIBW": "kg",
    "LBW": "kg",
    "BSA": "m2",
    "BMI": "kg/m2",
}

#: Methods accepted by :func:`ibw`.
IBW_METHODS: tuple[str, ...] = ("devine", "robinson", "miller", "hamwi", "label")
#: Methods accepted by :func:`lbw`.
LBW_METHODS: tuple[str, ...] = ("janmahasatian", "james")
#: Methods accepted by :func:`bsa`.
BSA_METHODS: tuple[str, ...] = ("dubois", "mosteller", "haycock", "gehan_george")

#: Accepted spellings of ``height_unit`` and their size in centimetres.
HEIGHT_UNITS: dict[str, float] = {
    "cm": 1.0,
    "in": 2.54,
    "inch": 2.54,
    "inches": 2.54,
    "m": 100.0,
    "metre": 100.0,
    "meter": 100.0,
    "metres": 100.0,
    "meters": 100.0,
}

#: Plausible range of body weight, kg (inclusive).
WEIGHT_RANGE_KG: tuple[float, float] = (0.3, 400.0)
#: Plausible range of height, cm (inclusive), checked after unit conversion.
HEIGHT_RANGE_CM: tuple[float, float] = (30.0, 250.0)

_CM_PER_INCH = 2.54
_FEMALE_WORDS = frozenset({"F", "FEMALE", "W", "WOMAN"})
_MALE_WORDS = frozenset({"M", "MALE", "MAN"})
_MISSING_WORDS = frozenset({"", ".", "NA", "N/A", "NAN", "NONE", "NULL"})
_SEX_VALID = (
    "'F', 'FEMALE', 'W', 'WOMAN' (female) or 'M', 'MALE', 'MAN' (male), "
    "case-insensitive; numeric codes (e.g. 0/1 or 1/2) only together with "
    "female_code=<the code that means female>"
)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """Format a number for an error message without a spurious ``.0``."""
    try:
        return np.format_float_positional(float(value), trim="-")
    except (TypeError, ValueError):
        return repr(value)


def _at(idx: tuple[int, ...], ndim: int) -> str:
    """`` at index i`` for arrays, nothing for scalars."""
    if ndim == 0:
        return ""
    if ndim == 1:
        return f" at index {int(idx[0])}"
    return f" at index {tuple(int(i) for i in idx)}"


def _as_float_array(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """Convert to a float array, naming a non-numeric entry if that fails."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        obj = np.asarray(x, dtype=object)
        for idx in np.ndindex(obj.shape):
            try:
                float(obj[idx])
            except (TypeError, ValueError):
                raise BodySizeError(
                    f"{name} {obj[idx]!r}{_at(idx, obj.ndim)} is not a number"
                ) from None
        raise BodySizeError(f"{name} could not be converted to an array of numbers") from None
    return arr


def _method(method: Any, valid: tuple[str, ...], what: str) -> str:
    """Normalise a method name (case, '-', ' ') and check it is known."""
    key = method.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(method, str) else None
    if key not in valid:
        raise BodySizeError(
            f"unknown {what} method {method!r}; valid methods: {', '.join(valid)}"
        )
    return key


def _unit_factor(height_unit: Any) -> tuple[str, float]:
    key = height_unit.strip().lower() if isinstance(height_unit, str) else None
    if key not in HEIGHT_UNITS:
        raise BodySizeError(
            f"unknown height_unit {height_unit!r}; valid: 'cm' (default), "
            "'in'/'inch'/'inches', 'm'/'metre'/'meter'/'metres'/'meters'"
        )
    return key, HEIGHT_UNITS[key]


def _first_bad(bad: NDArray[np.bool_]) -> tuple[tuple[int, ...], int]:
    """Index of the first True element and how many there are."""
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return idx, int(np.count_nonzero(bad))


def _others(n: int) -> str:
    return f" ({n - 1} more invalid value{'s' if n > 2 else ''})" if n > 1 else ""


def _check_positive_finite(arr: NDArray[np.float64], name: str, unit: str) -> None:
    bad = ~np.isfinite(arr) | (arr <= 0)
    if not bad.any():
        return
    idx, n = _first_bad(bad)
    v = arr[idx]
    where = _at(idx, arr.ndim)
    if np.isnan(v):
        msg = f"{name}{where} is missing (NaN)"
    elif not np.isfinite(v):
        msg = f"{name} {_fmt(v)} {unit}{where} is not finite"
    else:
        msg = f"{name} {_fmt(v)} {unit}{where} is not positive"
    raise BodySizeError(msg + _others(n))


def _weight(weight: ArrayLike, name: str = "weight") -> NDArray[np.float64]:
    """Validated weight array in kg."""
    w = _as_float_array(weight, name)
    _check_positive_finite(w, name, "kg")
    lo, hi = WEIGHT_RANGE_KG
    bad = (w < lo) | (w > hi)
    if bad.any():
        idx, n = _first_bad(bad)
        v = w[idx]
        hint = " -- is it in grams or pounds? weights must be in kg" if v > hi else ""
        raise BodySizeError(
            f"{name} {_fmt(v)} kg{_at(idx, w.ndim)} is outside the plausible range "
            f"{_fmt(lo)}-{_fmt(hi)} kg{hint}{_others(n)}"
        )
    return w


def _height_cm(height: ArrayLike, height_unit: str) -> NDArray[np.float64]:
    """Validated height array converted to cm."""
    unit, factor = _unit_factor(height_unit)
    h = _as_float_array(height, "height")
    _check_positive_finite(h, "height", unit)
    cm = h * factor
    lo, hi = HEIGHT_RANGE_CM
    bad = (cm < lo) | (cm > hi)
    if bad.any():
        idx, n = _first_bad(bad)
        v, vcm = h[idx], cm[idx]
        shown = f"{_fmt(v)} {unit}" + ("" if factor == 1.0 else f" ({_fmt(round(vcm, 2))} cm)")
        if factor == 1.0 and v < 3:
            hint = " -- a height below 3 looks like metres: pass height_unit='m' or convert to cm"
        elif factor == 1.0 and v > 1000:
            hint = " -- this looks like millimetres: convert to cm"
        elif factor == _CM_PER_INCH and vcm > hi and v <= hi:
            hint = " -- this looks like centimetres: pass height_unit='cm'"
        elif factor == 100.0 and vcm > hi and v <= hi:
            hint = " -- this looks like centimetres: pass height_unit='cm'"
        else:
            hint = f" -- check height_unit (currently {height_unit!r})"
        raise BodySizeError(
            f"height {shown}{_at(idx, h.ndim)} is outside the plausible range "
            f"{_fmt(lo)}-{_fmt(hi)} cm{hint}{_others(n)}"
        )
    return cm


def _broadcast(**arrays: NDArray[Any]) -> tuple[NDArray[Any], ...]:
    try:
        return tuple(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
        raise BodySizeError(f"input shapes do not broadcast: {shapes}") from None


def _out(x: Any) -> NDArray[np.float64]:
    # ufuncs on 0-d arrays return numpy scalars; always hand back an ndarray
    return np.array(x, dtype=float)


# --------------------------------------------------------------------------
# sex
# --------------------------------------------------------------------------


def _classify_sex(x: Any) -> tuple[str, Any]:
    """Return (kind, payload): kind is 'female', 'male', 'num', 'missing' or 'unknown'."""
    if x is None:
        return "missing", None
    if isinstance(x, (bytes, np.bytes_)):
        try:
            x = bytes(x).decode("ascii")
        except UnicodeDecodeError:
            return "unknown", None
    if isinstance(x, str):
        s = x.strip().upper()
        if s in _FEMALE_WORDS:
            return "female", None
        if s in _MALE_WORDS:
            return "male", None
        if s in _MISSING_WORDS:
            return "missing", None
        try:
            v = float(s)
        except ValueError:
            return "unknown", None
        if np.isnan(v):
            return "missing", None
        if not np.isfinite(v):
            return "unknown", None
        return "num", v
    if isinstance(x, (bool, np.bool_, numbers.Real)):
        v = float(x)
        if np.isnan(v):
            return "missing", None
        if not np.isfinite(v):
            return "unknown", None
        return "num", v
    if type(x).__name__ in ("NAType", "NaTType"):  # pandas missing markers
        return "missing", None
    return "unknown", None


def _check_numeric_codes(codes: dict[float, tuple[int, ...]], ndim: int, code_f: float | None,
                         female_code: Any) -> None:
    """At most two distinct numeric codes (``{code: first index}``), one of them ``female_code`` if two."""
    if len(codes) > 2:
        listed = ", ".join(f"{_fmt(c)}{_at(i, ndim)}" for c, i in sorted(codes.items()))
        raise BodySizeError(
            f"more than two distinct numeric sex codes: {listed}; expected two codes, "
            f"one of which is female_code={female_code!r}"
        )
    if len(codes) == 2 and code_f not in codes:
        listed = " and ".join(_fmt(c) for c in sorted(codes))
        raise BodySizeError(
            f"numeric sex codes {listed} are present but female_code={female_code!r} is "
            f"neither of them; pass female_code={_fmt(min(codes))} or {_fmt(max(codes))}"
        )


def parse_sex(sex: ArrayLike, *, female_code: float | str | None = None) -> NDArray[np.bool_]:
    """Parse sex codes into a boolean array (``True`` = female).

    Parameters
    ----------
    sex
        Scalar or array-like of sex codes.  Strings are matched
        case-insensitively after stripping whitespace: ``"F"``, ``"FEMALE"``,
        ``"W"``, ``"WOMAN"`` are female; ``"M"``, ``"MALE"``, ``"MAN"`` are
        male.  Numbers (or numeric strings such as ``"1"``) are accepted only
        together with `female_code`, because NONMEM datasets use 0/1 and 1/2
        in either direction.  Booleans count as the numbers 0/1; pass
        ``female_code=True`` to re-parse the output of this function.
    female_code
        The numeric code that means female.  Every other numeric code means
        male; at most two distinct numeric codes may occur, and if two occur
        one of them must be `female_code`.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as `sex` (0-d for a scalar); ``True`` = female.

    Raises
    ------
    poppk.errors.BodySizeError
        On a missing value (``None``, NaN, ``""``, ``"."``, ``"NA"``), an
        unrecognised code, a numeric code without `female_code`, more than two
        distinct numeric codes, or two numeric codes of which neither is
        `female_code`.  The message names the value and its index.

    Examples
    --------
    >>> from poppk.bodysize import parse_sex
    >>> parse_sex(["F", "male", " Woman ", "m"])
    array([ True, False,  True, False])
    >>> parse_sex([1, 2, 2, 1], female_code=2)
    array([False,  True,  True, False])
    >>> bool(parse_sex("f"))
    True
    """
    code_f: float | None = None
    if female_code is not None:
        kind, payload = _classify_sex(female_code)
        if kind != "num":
            raise BodySizeError(
                f"female_code {female_code!r} is not a finite number; it must be the "
                "numeric sex code that means female (e.g. 1 or 2)"
            )
        code_f = payload

    # a numeric array (not a list, which NumPy would turn mixed codes into strings of)
    arr = np.asarray(sex) if hasattr(sex, "dtype") else np.asarray(sex, dtype=object)
    if arr.dtype.kind in "biuf" and arr.size and code_f is not None and np.all(np.isfinite(arr)):
        # numbers: each distinct code is checked once, where it first occurs (as the loop below would)
        flat = arr.astype(float).ravel()
        values, first = np.unique(flat, return_index=True)
        _check_numeric_codes({float(v): tuple(int(i) for i in np.unravel_index(int(f), arr.shape))
                              for v, f in zip(values, first)}, arr.ndim, code_f, female_code)
        return (flat == code_f).reshape(arr.shape)
    arr = np.asarray(arr, dtype=object)
    out = np.zeros(arr.shape, dtype=bool)
    codes: dict[float, tuple[int, ...]] = {}  # distinct numeric code -> first index
    seen: dict[Any, tuple[str, Any]] = {}  # each distinct code is classified once
    for idx in np.ndindex(arr.shape):
        x = arr[idx]
        try:
            kind, payload = seen[x]
        except (KeyError, TypeError):
            kind, payload = _classify_sex(x)
            try:
                seen[x] = (kind, payload)
            except TypeError:  # unhashable
                pass
        if kind in ("female", "male") or (kind == "num" and code_f is not None and payload in codes):
            out[idx] = kind == "female" or (kind == "num" and payload == code_f)
            continue
        where = _at(idx, arr.ndim)
        if kind == "missing":
            raise BodySizeError(f"sex{where} is missing (value {x!r}); valid: {_SEX_VALID}")
        elif kind == "unknown":
            raise BodySizeError(f"sex code {x!r}{where} is not recognised; valid: {_SEX_VALID}")
        else:  # numeric
            if code_f is None:
                raise BodySizeError(
                    f"sex code {x!r}{where} is numeric, and numeric codes are ambiguous "
                    "(NONMEM datasets use 0/1 or 1/2 either way); pass "
                    "female_code=<the code that means female>, or use "
                    "'F'/'FEMALE'/'W'/'WOMAN' and 'M'/'MALE'/'MAN'"
                )
            codes.setdefault(payload, idx)
            out[idx] = payload == code_f
    _check_numeric_codes(codes, arr.ndim, code_f, female_code)
    return out


# --------------------------------------------------------------------------
