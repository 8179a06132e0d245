"""The body-size formulas: IBW, AIBW, LBW, BSA and BMI (see :mod:`poppk.bodysize` for the
conventions; the ``_core`` functions work on validated arrays, height in cm, sex as bool)."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

from poppk.bodysize.inputs import (
    BSA_METHODS,
    IBW_METHODS,
    LBW_METHODS,
    _CM_PER_INCH,
    _as_float_array,
    _at,
    _broadcast,
    _check_positive_finite,
    _first_bad,
    _fmt,
    _height_cm,
    _method,
    _others,
    _out,
    _weight,
    parse_sex,
)
from poppk.errors import BodySizeError

__all__ = ["ibw", "aibw", "lbw", "bsa", "bmi"]

_FIVE_FEET_IN = 60.0

# (base kg at 5 ft, kg per inch over 5 ft) for (male, female)
_IBW_INCH_COEF: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "devine": ((50.0, 2.3), (45.5, 2.3)),
    "robinson": ((52.0, 1.9), (49.0, 1.7)),
    "miller": ((56.2, 1.41), (53.1, 1.36)),
    "hamwi": ((48.0, 2.7), (45.5, 2.2)),
}
# metric form of the ELAHERE label: IBW = 0.9 * height_cm - offset
_IBW_LABEL_OFFSET = {"male": 88.0, "female": 92.0}

# BSA = a * WT^b * HT_cm^c
_BSA_COEF: dict[str, tuple[float, float, float]] = {
    "dubois": (0.007184, 0.425, 0.725),
    "mosteller": (1.0 / 60.0, 0.5, 0.5),  # sqrt(WT * HT / 3600)
    "haycock": (0.024265, 0.5378, 0.3964),
    "gehan_george": (0.0235, 0.51456, 0.42246),
}


# descriptors: cores work on validated arrays (height in cm, female bool)
# --------------------------------------------------------------------------


def _ibw_core(h_cm: NDArray[np.float64], female: NDArray[np.bool_], method: str) -> NDArray[np.float64]:
    h_cm, female = _broadcast(height=h_cm, sex=female)
    if method == "label":
        val = 0.9 * h_cm - np.where(female, _IBW_LABEL_OFFSET["female"], _IBW_LABEL_OFFSET["male"])
    else:
        (bm, sm), (bf, sf) = _IBW_INCH_COEF[method]
        over = h_cm / _CM_PER_INCH - _FIVE_FEET_IN
        val = np.where(female, bf + sf * over, bm + sm * over)
    val = _out(val)
    bad = val <= 0
    if bad.any():
        idx, n = _first_bad(bad)
        h = h_cm[idx]
        raise BodySizeError(
            f"height {_fmt(round(float(h), 2))} cm{_at(idx, val.ndim)} gives IBW "
            f"{_fmt(round(float(val[idx]), 2))} kg <= 0 with method {method!r}; the IBW formulas "
            "are for adults (defined from 5 ft = 152.4 cm, linearly extrapolated below)"
            + (" -- if heights are in inches pass height_unit='in'" if h < 100 else "")
            + _others(n)
        )
    return val


def _lbw_core(
    w: NDArray[np.float64],
    h_cm: NDArray[np.float64],
    female: NDArray[np.bool_],
    method: str,
    stacklevel: int,
) -> NDArray[np.float64]:
    w, h_cm, female = _broadcast(weight=w, height=h_cm, sex=female)
    if method == "janmahasatian":
        b = w / (h_cm / 100.0) ** 2
        val = np.where(female, 9270.0 * w / (8780.0 + 244.0 * b), 9270.0 * w / (6680.0 + 216.0 * b))
        return _out(val)
    # James 1976: LBW = a*WT - c*(WT/HT)^2, maximal at WT = a*HT^2/(2c)
    a = np.where(female, 1.07, 1.10)
    c = np.where(female, 148.0, 128.0)
    val = _out(a * w - c * (w / h_cm) ** 2)
    w_max = a * h_cm**2 / (2.0 * c)
    bad = val <= 0
    if bad.any():
        idx, n = _first_bad(bad)
        raise BodySizeError(
            f"weight {_fmt(w[idx])} kg with height {_fmt(round(float(h_cm[idx]), 2))} cm"
            f"{_at(idx, val.ndim)} gives a James LBW of {_fmt(round(float(val[idx]), 2))} kg "
            "<= 0; the James formula is not valid at this BMI, use method='janmahasatian'"
            + _others(n)
        )
    past = w > w_max
    if past.any():
        idx, n = _first_bad(past)
        warnings.warn(
            f"James LBW formula is past its maximum for {n} of {past.size} subject(s) "
            f"(first{_at(idx, past.ndim)}: {'female' if female[idx] else 'male'}, weight "
            f"{_fmt(w[idx])} kg, height {_fmt(round(float(h_cm[idx]), 2))} cm, maximum at "
            f"{_fmt(round(float(w_max[idx]), 1))} kg); there LBW decreases as weight increases. "
            "Consider method='janmahasatian'.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return val


def _bsa_core(w: NDArray[np.float64], h_cm: NDArray[np.float64], method: str) -> NDArray[np.float64]:
    w, h_cm = _broadcast(weight=w, height=h_cm)
    a, b, c = _BSA_COEF[method]
    if method == "mosteller":
        return _out(np.sqrt(h_cm * w / 3600.0))
    return _out(a * w**b * h_cm**c)


def _bmi_core(w: NDArray[np.float64], h_cm: NDArray[np.float64]) -> NDArray[np.float64]:
    w, h_cm = _broadcast(weight=w, height=h_cm)
    return _out(w / (h_cm / 100.0) ** 2)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def ibw(
    height: ArrayLike,
    sex: ArrayLike,
    *,
    method: str = "devine",
    height_unit: str = "cm",
    female_code: float | str | None = None,
) -> NDArray[np.float64]:
    r"""Ideal body weight (kg).

    With :math:`H_{in}` the height in inches (:math:`H_{cm}/2.54`), the
    inch-based methods are :math:`\mathrm{IBW} = a + b\,(H_{in} - 60)`:

    ============  ==================  ==================
    method        male                female
    ============  ==================  ==================
    ``devine``    50 + 2.3 kg/in      45.5 + 2.3 kg/in
    ``robinson``  52 + 1.9 kg/in      49 + 1.7 kg/in
    ``miller``    56.2 + 1.41 kg/in   53.1 + 1.36 kg/in
    ``hamwi``     48 + 2.7 kg/in      45.5 + 2.2 kg/in
    ============  ==================  ==================

    ``label`` is the metric form of the mirvetuximab soravtansine (ELAHERE)
    prescribing information: female :math:`0.9\,H_{cm} - 92`, male
    :math:`0.9\,H_{cm} - 88`.

    Parameters
    ----------
    height
        Height, in `height_unit`.
    sex
        Sex codes, see :func:`parse_sex`.
    method
        One of :data:`IBW_METHODS` (case-insensitive).
    height_unit
        ``"cm"`` (default), ``"in"``/``"inch"``/``"inches"`` or ``"m"``.
    female_code
        Numeric code meaning female, required for numeric sex codes.

    Returns
    -------
    numpy.ndarray
        IBW in kg, float64, broadcast shape of `height` and `sex`
        (0-d for scalar inputs).

    Raises
    ------
    poppk.errors.BodySizeError
        Invalid height or sex, unknown method, shapes that do not broadcast,
        or an IBW that is zero or negative.

    Notes
    -----
    The formulas were derived for adults of 5 ft (152.4 cm) or taller.  Below
    5 ft they are extrapolated linearly, not clipped, so IBW falls below the
    5-ft base value (e.g. Devine female 150 cm: 43.3 kg).  An extrapolated IBW
    of zero or less (Devine: below about 102 cm for women, 97 cm for men)
    raises, since the formulas do not apply to small children.

    References
    ----------
    .. [1] Devine BJ. Gentamicin therapy. Drug Intell Clin Pharm.
       1974;8:650-655.
    .. [2] Robinson JD, Lupkiewicz SM, Palenik L, Lopez LM, Ariet M.
       Determination of ideal body weight for drug dosage calculations.
       Am J Hosp Pharm. 1983;40:1016-1019.
    .. [3] Miller DR, Carlson JD, Lloyd BJ, Moore BJ. Determining ideal body
       weight (and mass). Am J Hosp Pharm. 1983;40:1622-1625.
    .. [4] Hamwi GJ. Therapy: changing dietary concepts. In: Danowski TS, ed.
       Diabetes Mellitus: Diagnosis and Treatment, vol. 1. New York: American
       Diabetes Association; 1964:73-78.
    .. [5] ELAHERE (mirvetuximab soravtansine-gynx) injection, prescribing
       information, section 2 (Dosage and Administration). ImmunoGen, 2022.

    Examples
    --------
    >>> from poppk.bodysize import ibw
    >>> round(float(ibw(165, "F", method="label")), 2)
    56.5
    >>> ibw([180, 165], ["M", "F"]).round(2)
    array([74.99, 56.91])
    >>> round(float(ibw(70.866, "M", height_unit="in")), 2)
    74.99
    """
    key = _method(method, IBW_METHODS, "IBW")
    h_cm = _height_cm(height, height_unit)
    female = parse_sex(sex, female_code=female_code)
    return _ibw_core(h_cm, female, key)


def aibw(weight: ArrayLike, ibw: ArrayLike, *, factor: float = 0.4) -> NDArray[np.float64]:
    r"""Adjusted ideal body weight (kg).

    .. math:: \mathrm{AIBW} = \mathrm{IBW} + f\,(\mathrm{TBW} - \mathrm{IBW})

    with :math:`f` = `factor` (0.4 by default, as in the aminoglycoside
    literature and the mirvetuximab soravtansine label).

    Parameters
    ----------
    weight
        Total (actual) body weight, kg.
    ibw
        Ideal body weight, kg (e.g. from :func:`ibw`).
    factor
        Fraction of the excess weight added to IBW; a real number in [0, 1].

    Returns
    -------
    numpy.ndarray
        AIBW in kg, float64, broadcast shape of `weight` and `ibw`.

    Raises
    ------
    poppk.errors.BodySizeError
        Invalid weight, non-positive or missing `ibw`, `factor` outside [0, 1],
        or shapes that do not broadcast.

    Notes
    -----
    No capping is applied: when TBW < IBW the formula gives a value between
    TBW and IBW (i.e. above TBW).  Some dosing rules use TBW in that case
    (the ELAHERE label does not); apply such a rule explicitly, e.g.
    ``np.minimum(weight, aibw(weight, ibw))``.

    References
    ----------
    .. [1] Traynor AM, Nafziger AN, Bertino JS Jr. Aminoglycoside dosing weight
       correction factors for patients of various body sizes. Antimicrob
       Agents Chemother. 1995;39:545-548.
    .. [2] ELAHERE (mirvetuximab soravtansine-gynx) injection, prescribing
       information, section 2 (Dosage and Administration). ImmunoGen, 2022.

    Examples
    --------
    >>> from poppk.bodysize import aibw
    >>> round(float(aibw(80, 56.5)), 2)
    65.9
    >>> aibw([80, 100], 56.5, factor=0.0).round(2)
    array([56.5, 56.5])
    """
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, numbers.Real):
        raise BodySizeError(f"factor {factor!r} must be a real number in [0, 1]")
    if not (0.0 <= float(factor) <= 1.0):
        raise BodySizeError(f"factor {_fmt(factor)} is outside [0, 1]")
    w = _weight(weight)
    i = _as_float_array(ibw, "ibw")
    _check_positive_finite(i, "ibw", "kg")
    w, i = _broadcast(weight=w, ibw=i)
    return _out(i + float(factor) * (w - i))


def lbw(
    weight: ArrayLike,
    height: ArrayLike,
    sex: ArrayLike,
    *,
    method: str = "janmahasatian",
    height_unit: str = "cm",
    female_code: float | str | None = None,
) -> NDArray[np.float64]:
    r"""Lean body weight / fat-free mass (kg).

    ``janmahasatian`` (default), with BMI in kg/m\ :sup:`2`:

    .. math::

        \mathrm{LBW}_{male} = \frac{9270\,\mathrm{WT}}{6680 + 216\,\mathrm{BMI}},
        \qquad
        \mathrm{LBW}_{female} = \frac{9270\,\mathrm{WT}}{8780 + 244\,\mathrm{BMI}}

    ``james``, with height in cm:

    .. math::

        \mathrm{LBW}_{male} = 1.1\,\mathrm{WT} - 128\,(\mathrm{WT}/H_{cm})^2,
        \qquad
        \mathrm{LBW}_{female} = 1.07\,\mathrm{WT} - 148\,(\mathrm{WT}/H_{cm})^2

    Parameters
    ----------
    weight
        Total body weight, kg.
    height
        Height, in `height_unit`.
    sex
        Sex codes, see :func:`parse_sex`.
    method
        One of :data:`LBW_METHODS` (case-insensitive).
    height_unit
        ``"cm"`` (default), ``"in"``/``"inch"``/``"inches"`` or ``"m"``.
    female_code
        Numeric code meaning female, required for numeric sex codes.

    Returns
    -------
    numpy.ndarray
        LBW in kg, float64, broadcast shape of the inputs.

    Raises
    ------
    poppk.errors.BodySizeError
        Invalid inputs, unknown method, shapes that do not broadcast, or a
        James LBW that is zero or negative.

    Warns
    -----
    UserWarning
        With ``method="james"``, when a weight is past the formula's maximum
        (d LBW / d WT < 0, i.e. WT > 1.1 H\ :sup:`2`/256 for men and
        WT > 1.07 H\ :sup:`2`/296 for women, H in cm; about BMI 43 and 36).

    Notes
    -----
    The James formula is a quadratic in weight: beyond its maximum it
    predicts that LBW *decreases* as weight increases, and it reaches zero at
    twice that weight.  It is therefore unsuitable for obese patients; the
    Janmahasatian formula is monotonic and was developed to replace it.

    References
    ----------
    .. [1] Janmahasatian S, Duffull SB, Ash S, Ward LC, Byrne NM, Green B.
       Quantification of lean bodyweight. Clin Pharmacokinet.
       2005;44(10):1051-1065.
    .. [2] James WPT. Research on Obesity. London: Her Majesty's Stationery
       Office; 1976.
    .. [3] Green B, Duffull SB. What is the best size descriptor to use for
       pharmacokinetic studies in the obese? Br J Clin Pharmacol.
       2004;58(2):119-133.

    Examples
    --------
    >>> from poppk.bodysize import lbw
    >>> lbw(100, 170, ["M", "F"]).round(2)
    array([65.49, 53.82])
    >>> round(float(lbw(70, 170, "M", method="james")), 2)
    55.3
    """
    key = _method(method, LBW_METHODS, "LBW")
    w = _weight(weight)
    h_cm = _height_cm(height, height_unit)
    female = parse_sex(sex, female_code=female_code)
    return _lbw_core(w, h_cm, female, key, stacklevel=3)


def bsa(
    weight: ArrayLike,
    height: ArrayLike,
    *,
    method: str = "dubois",
    height_unit: str = "cm",
) -> NDArray[np.float64]:
    r"""Body-surface area (m\ :sup:`2`).

    With WT in kg and H in cm:

    ================  ===============================================
    method            formula
    ================  ===============================================
    ``dubois``        :math:`0.007184\,WT^{0.425}\,H^{0.725}`
    ``mosteller``     :math:`\sqrt{H\,WT/3600}`
    ``haycock``       :math:`0.024265\,WT^{0.5378}\,H^{0.3964}`
    ``gehan_george``  :math:`0.0235\,WT^{0.51456}\,H^{0.42246}`
    ================  ===============================================

    Parameters
    ----------
    weight
        Total body weight, kg.
    height
        Height, in `height_unit`.
    method
        One of :data:`BSA_METHODS` (case-insensitive; ``"gehan-george"`` is
        accepted too).
    height_unit
        ``"cm"`` (default), ``"in"``/``"inch"``/``"inches"`` or ``"m"``.

    Returns
    -------
    numpy.ndarray
        BSA in m\ :sup:`2`, float64, broadcast shape of the inputs.

    Raises
    ------
    poppk.errors.BodySizeError
        Invalid inputs, unknown method or shapes that do not broadcast.

    References
    ----------
    .. [1] Du Bois D, Du Bois EF. A formula to estimate the approximate surface
       area if height and weight be known. Arch Intern Med. 1916;17:863-871.
    .. [2] Mosteller RD. Simplified calculation of body-surface area. N Engl J
       Med. 1987;317(17):1098.
    .. [3] Haycock GB, Schwartz GJ, Wisotsky DH. Geometric method for measuring
       body surface area: a height-weight formula validated in infants,
       children, and adults. J Pediatr. 1978;93(1):62-66.
    .. [4] Gehan EA, George SL. Estimation of human body surface area from
       height and weight. Cancer Chemother Rep. 1970;54(4):225-235.

    Examples
    --------
    >>> from poppk.bodysize import bsa
    >>> round(float(bsa(70, 170)), 4)
    1.8097
    >>> bsa(70, [170, 180], method="mosteller").round(4)
    array([1.8181, 1.8708])
    """
    key = _method(method, BSA_METHODS, "BSA")
    w = _weight(weight)
    h_cm = _height_cm(height, height_unit)
    return _bsa_core(w, h_cm, key)


def bmi(weight: ArrayLike, height: ArrayLike, *, height_unit: str = "cm") -> NDArray[np.float64]:
    r"""Body-mass index (kg/m\ :sup:`2`).

    .. math:: \mathrm{BMI} = \frac{WT}{(H_{cm}/100)^2}

    Parameters
    ----------
    weight
        Total body weight, kg.
    height
        Height, in `height_unit`.
    height_unit
        ``"cm"`` (default), ``"in"``/``"inch"``/``"inches"`` or ``"m"``.

    Returns
    -------
    numpy.ndarray
        BMI in kg/m\ :sup:`2`, float64, broadcast shape of the inputs.

    Raises
    ------
    poppk.errors.BodySizeError
        Invalid inputs or shapes that do not broadcast.

    References
    ----------
    .. [1] Keys A, Fidanza F, Karvonen MJ, Kimura N, Taylor HL. Indices of
       relative weight and obesity. J Chronic Dis. 1972;25(6):329-343.

    Examples
    --------
    >>> from poppk.bodysize import bmi
    >>> bmi([70, 100], 170).round(2)
    array([24.22, 34.6 ])
    """
    w = _weight(weight)
    h_cm = _height_cm(height, height_unit)
    return _bmi_core(w, h_cm)
