"""The time unit of a dataset's TIME (and II, DUR) values.

A NONMEM-style file does not say whether TIME is in hours or days, and a
model fitted in the wrong unit reports rates and exposures off by a factor of
24 without any error.  poppk therefore never assumes one: the unit is given
with the data (``read_nonmem(..., time_unit="day")``) or with the model
(``ModelSpec(units={"time": "day"})``), and fitting refuses to start without
it (:func:`poppk.model.time_unit.resolve_time_unit`).

Examples
--------
>>> canonical_time_unit("Days")
'day'
>>> canonical_time_unit("hr")
'h'
>>> canonical_time_unit("fortnight") is None
True
"""

from __future__ import annotations

__all__ = ["TIME_UNITS", "TIME_UNIT_ALIASES", "canonical_time_unit", "VALID_TIME_UNITS"]

#: Canonical time units, shortest first.
TIME_UNITS: tuple[str, ...] = ("min", "h", "day", "week")

#: Accepted spellings (lower case) and the canonical unit each stands for.
TIME_UNIT_ALIASES: dict[str, str] = {
    "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "day", "day": "day", "days": "day",
    "w": "week", "wk": "week", "week": "week", "weeks": "week",
}

#: Text for error messages.
VALID_TIME_UNITS = "'h' (hours), 'day', 'min' or 'week' (or a spelling such as 'hours', 'd', 'days')"


def canonical_time_unit(unit: object) -> str | None:
    """The canonical name of a time unit (``"min"``, ``"h"``, ``"day"``, ``"week"``).

    Parameters
    ----------
    unit
        A spelling such as ``"h"``, ``"hours"``, ``"d"``, ``"Days"``.

    Returns
    -------
    str or None
        The canonical unit, or ``None`` if ``unit`` is not a known spelling
        (the caller raises its own error, naming where the unit came from).
    """
    if not isinstance(unit, str):
        return None
    return TIME_UNIT_ALIASES.get(unit.strip().lower())
