"""Body-size descriptors used as pharmacokinetic covariates.

Ideal body weight (IBW), adjusted ideal body weight (AIBW), lean body weight
(LBW, fat-free mass), body-surface area (BSA) and body-mass index (BMI), as
used to describe and dose antibody-drug conjugates -- for example
mirvetuximab soravtansine (ELAHERE), which is dosed at 6 mg/kg of AIBW.

Conventions
-----------
Units
    Weight is always in kilograms.  Height is in centimetres by default;
    ``height_unit="in"`` (also ``"inch"``/``"inches"``) or ``height_unit="m"``
    (also ``"metre"``/``"meter"``/``"metres"``/``"meters"``) select inches or
    metres.  Results are in kg (IBW, AIBW, LBW), m\\ :sup:`2` (BSA) and
    kg/m\\ :sup:`2` (BMI); see :data:`UNITS`.
Vectorisation
    Every function accepts scalars or array-likes (lists, numpy arrays, pandas
    Series) that broadcast against each other, and **always returns a numpy
    array** of ``float64`` (``bool`` for :func:`parse_sex`) with the broadcast
    shape.  A scalar input therefore gives a 0-d array; use ``float(x)`` to get
    a Python float.
Validation
    Missing (NaN), non-positive or implausible weights (outside 0.3-400 kg)
    and heights (outside 30-250 cm after unit conversion), unknown sex codes,
    unknown method names and shapes that do not broadcast raise
    :class:`poppk.errors.BodySizeError` naming the offending value and its
    index (the position in the argument as passed, before broadcasting).
Short stature
    The inch-based IBW formulas (Devine, Robinson, Miller, Hamwi) are defined
    for adults of 5 ft (152.4 cm) or taller.  Below 5 ft they are
    *extrapolated linearly* (IBW falls below the 5-ft base value); nothing is
    clipped.  If the extrapolated IBW is zero or negative (roughly below
    100 cm for Devine) a :class:`~poppk.errors.BodySizeError` is raised.

This package depends on numpy only: :mod:`~poppk.bodysize.inputs` (names, units,
validation, sex codes), :mod:`~poppk.bodysize.formulas` (one function per descriptor)
and :mod:`~poppk.bodysize.descriptors` (all of them at once).
"""

from poppk.bodysize.descriptors import size_descriptors
from poppk.bodysize.formulas import aibw, bmi, bsa, ibw, lbw
from poppk.bodysize.inputs import (
    BSA_METHODS,
    DESCRIPTORS,
    HEIGHT_RANGE_CM,
    HEIGHT_UNITS,
    IBW_METHODS,
    LBW_METHODS,
    UNITS,
    WEIGHT_RANGE_KG,
    parse_sex,
)

__all__ = [
    "DESCRIPTORS",
    "UNITS",
    "IBW_METHODS",
    "LBW_METHODS",
    "BSA_METHODS",
    "HEIGHT_UNITS",
    "WEIGHT_RANGE_KG",
    "HEIGHT_RANGE_CM",
    "parse_sex",
    "ibw",
    "aibw",
    "lbw",
    "bsa",
    "bmi",
    "size_descriptors",
]
