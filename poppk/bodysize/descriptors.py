"""Every body-size descriptor of a set of patients at once (see :mod:`poppk.bodysize`)."""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from poppk.bodysize.formulas import _bmi_core, _bsa_core, _ibw_core, _lbw_core
from poppk.bodysize.inputs import (
    BSA_METHODS,
    IBW_METHODS,
    LBW_METHODS,
    _broadcast,
    _fmt,
    _height_cm,
    _method,
    _out,
    _weight,
    parse_sex,
)
from poppk.errors import BodySizeError

__all__ = ["size_descriptors"]


def size_descriptors(
    weight: ArrayLike,
    height: ArrayLike,
    sex: ArrayLike,
    *,
    ibw_method: str = "devine",
    lbw_method: str = "janmahasatian",
    bsa_method: str = "dubois",
    aibw_factor: float = 0.4,
    height_unit: str = "cm",
    female_code: float | str | None = None,
) -> dict[str, NDArray[np.float64]]:
    """All derived body-size descriptors at once.

    Inputs are validated and sex is parsed once; each descriptor is computed
    as by :func:`ibw`, :func:`aibw`, :func:`lbw`, :func:`bsa` and :func:`bmi`.

    Parameters
    ----------
    weight
        Total body weight, kg.
    height
        Height, in `height_unit`.
    sex
        Sex codes, see :func:`parse_sex`.
    ibw_method, lbw_method, bsa_method
        Methods passed to :func:`ibw`, :func:`lbw` and :func:`bsa`.
    aibw_factor
        `factor` of :func:`aibw`, in [0, 1].
    height_unit
        ``"cm"`` (default), ``"in"``/``"inch"``/``"inches"`` or ``"m"``.
    female_code
        Numeric code meaning female, required for numeric sex codes.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``"IBW"``, ``"AIBW"``, ``"LBW"``, ``"BSA"``, ``"BMI"`` (units in
        :data:`UNITS`); every array has the broadcast shape of `weight`,
        `height` and `sex`.  TBW is the input `weight` and is not repeated.

    Raises
    ------
    poppk.errors.BodySizeError
        As the individual functions.

    Warns
    -----
    UserWarning
        As :func:`lbw` with ``lbw_method="james"``.

    References
    ----------
    See the individual functions.

    Examples
    --------
    >>> from poppk.bodysize import size_descriptors
    >>> d = size_descriptors([80, 90], [165, 180], ["F", "M"], ibw_method="label")
    >>> sorted(d)
    ['AIBW', 'BMI', 'BSA', 'IBW', 'LBW']
    >>> d["AIBW"].round(2)
    array([65.9, 80.4])
    """
    ibw_key = _method(ibw_method, IBW_METHODS, "IBW")
    lbw_key = _method(lbw_method, LBW_METHODS, "LBW")
    bsa_key = _method(bsa_method, BSA_METHODS, "BSA")
    if isinstance(aibw_factor, (bool, np.bool_)) or not isinstance(aibw_factor, numbers.Real):
        raise BodySizeError(f"aibw_factor {aibw_factor!r} must be a real number in [0, 1]")
    if not (0.0 <= float(aibw_factor) <= 1.0):
        raise BodySizeError(f"aibw_factor {_fmt(aibw_factor)} is outside [0, 1]")
    w = _weight(weight)
    h_cm = _height_cm(height, height_unit)
    female = parse_sex(sex, female_code=female_code)
    w, h_cm, female = _broadcast(weight=w, height=h_cm, sex=female)
    ibw_v = _ibw_core(h_cm, female, ibw_key)
    return {
        "IBW": ibw_v,
        "AIBW": _out(ibw_v + float(aibw_factor) * (w - ibw_v)),
        "LBW": _lbw_core(w, h_cm, female, lbw_key, stacklevel=3),
        "BSA": _bsa_core(w, h_cm, bsa_key),
        "BMI": _bmi_core(w, h_cm),
    }
