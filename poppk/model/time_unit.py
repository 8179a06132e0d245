"""The model's time unit: given by the spec or the data, never assumed.

Rates (CL, Q, KA), times (ALAG1) and every exposure metric depend on the unit
of the dataset's TIME.  A NONMEM-style file does not record it, so poppk does
not guess: :func:`resolve_time_unit` takes the spec's unit
(``ModelSpec(units={"time": "day"})``) or the data's
(``read_nonmem(..., time_unit="day")``) and refuses to go on without one.
:func:`poppk.model.fit` stores the resolved unit in the fitted spec, so a saved
fit reloads with it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from poppk.data.time_unit import VALID_TIME_UNITS, canonical_time_unit
from poppk.errors import ModelSpecError
from poppk.model.spec import ModelSpec

__all__ = ["resolve_time_unit"]

logger = logging.getLogger(__name__)


def resolve_time_unit(spec: ModelSpec, data: Any) -> ModelSpec:
    """Return ``spec`` with its time unit set, from the spec or the data.

    Parameters
    ----------
    spec
        The model; its ``units["time"]`` may be unset.
    data
        A :class:`~poppk.data.PKData`; its :attr:`~poppk.data.PKData.time_unit`
        may be ``None``.

    Returns
    -------
    ModelSpec
        ``spec`` itself when it has a time unit; otherwise a copy with the
        data's unit (logged at INFO level).

    Raises
    ------
    ModelSpecError
        When neither gives a unit, when a unit is not a known time unit, or
        when the spec's and the data's units differ (poppk does not rescale
        dataset times).

    Examples
    --------
    >>> import pandas as pd
    >>> from poppk.data import read_nonmem
    >>> data = read_nonmem(pd.DataFrame({"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0],
    ...                                  "EVID": [1, 0], "DV": [None, 5.0]}), time_unit="day")
    >>> spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0})
    >>> dict(resolve_time_unit(spec, data).units)["time"]
    'day'
    """
    given = dict(spec.units).get("time")
    from_data = getattr(data, "time_unit", None)
    if given is not None:
        if canonical_time_unit(given) is None:
            raise ModelSpecError(
                f"units: time unit {given!r} is not one poppk knows; valid: {VALID_TIME_UNITS}"
            )
        if from_data is not None and canonical_time_unit(given) != canonical_time_unit(from_data):
            raise ModelSpecError(
                f"the model's time unit is {given!r} but the data were read with time_unit="
                f"{from_data!r}; poppk does not rescale dataset times: give the same unit to both, "
                f"or leave the model's out (units without 'time') to fit in the data's"
            )
        return spec
    if from_data is None:
        raise ModelSpecError(
            "the model's time unit is not given and the data do not say it: TIME could be in "
            f"hours or days, and every rate and exposure depends on which{_spacing_hint(data)}. "
            "Give it with the model, units={'time': 'h'} or units={'time': 'day'} "
            "([model] units = { time = \"day\" } in a TOML file), or with the data, "
            "read_nonmem(..., time_unit='day') ([data] time_unit = \"day\"; --time-unit day)"
        )
    logger.info("time unit %r taken from the data (read_nonmem(time_unit=...))", from_data)
    return dataclasses.replace(spec, units={**dict(spec.units), "time": from_data})


def _spacing_hint(data: Any) -> str:
    """' (doses here are a median N time units apart)' when the data show repeated dosing."""
    try:
        doses = data.doses
        time = doses["TIME"].to_numpy(dtype=float)
        same = (doses["ID"].to_numpy()[1:] == doses["ID"].to_numpy()[:-1])
        gaps = np.diff(time)[same]
        gaps = gaps[gaps > 0]
    except (AttributeError, KeyError, TypeError, ValueError):
        return ""
    if not len(gaps):
        return ""
    return f" (doses here are a median {float(np.median(gaps)):.3g} time units apart)"
