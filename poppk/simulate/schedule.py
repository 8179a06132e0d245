"""Treatment schedules (frozen, validated on construction) and time units.

A *schedule* says when doses are given (in its own time unit, converted to
the model's at simulation), how long each infusion lasts and how long a
treatment cycle is (the window of the per-cycle exposure metrics).  Every
administration of a patient gets that patient's dose (the first one times
``loading``).  Change one with :func:`dataclasses.replace`.

Examples
--------
>>> Schedule.q3w(6, infusion="90 min").times[:3]
(0.0, 21.0, 42.0)
>>> convert_time(1.5, "h", "day")
0.0625
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from poppk.errors import ConfigError

__all__ = ["Schedule", "TIME_UNITS", "parse_schedule", "convert_time"]

#: Time units understood by schedules, in hours.
TIME_UNITS: dict[str, float] = {
    "min": 1.0 / 60.0, "mins": 1.0 / 60.0, "minute": 1.0 / 60.0, "minutes": 1.0 / 60.0,
    "h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0,
    "d": 24.0, "day": 24.0, "days": 24.0,
    "w": 168.0, "wk": 168.0, "week": 168.0, "weeks": 168.0,
}


def _unit_hours(unit: str) -> float:
    key = str(unit).strip().lower()
    if key not in TIME_UNITS:
        raise ConfigError(f"unknown time unit {unit!r}; valid: min, h, day, week")
    return TIME_UNITS[key]


def convert_time(value: Any, from_unit: str, to_unit: str) -> Any:
    """Convert a time (number or array) between units (``"min"``, ``"h"``, ``"day"``, ``"week"``).

    >>> convert_time(1.5, "h", "day")
    0.0625
    """
    if str(from_unit).strip().lower() == str(to_unit).strip().lower():
        return value
    f = _unit_hours(from_unit) / _unit_hours(to_unit)
    return value * f if not isinstance(value, (tuple, list)) else type(value)(v * f for v in value)


def _positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else a ConfigError naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def _fmt(x: float) -> str:
    """A number as written in labels (``6``, ``1.5``)."""
    return f"{x:g}"


#: A number in the text forms of schedules and strategies.
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)"


def _duration(value: Any, unit: str, name: str) -> float:
    """A duration given as a number (in ``unit``) or a string such as ``"90 min"``."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*" + _NUM + r"\s*([a-zA-Z]+)\s*", value)
        if not m:
            raise ConfigError(f"{name} {value!r}: write a number and a unit, e.g. '90 min' or '1.5 h'")
        return float(convert_time(float(m.group(1)), m.group(2), unit))
    return _positive(value, name, allow_zero=True)


@dataclass(frozen=True)
class Schedule:
    """When doses are given, for how long, and the length of a cycle.

    Parameters
    ----------
    times
        Dose start times (>= 0, increasing), in ``unit``.
    infusion
        Infusion duration (0 = bolus), in ``unit`` or as a string such as
        ``"90 min"``.  The same for every administration.
    cycle
        Cycle length τ: the window of the cycle-1 metrics is [0, τ] and the
        steady-state cycle repeats the doses of the first cycle every τ.
        Default: the interval between the first two doses.
    unit
        Time unit of ``times``, ``infusion`` and ``cycle`` (``"min"``, ``"h"``,
        ``"day"``, ``"week"``); converted to the model's unit at simulation.
    name
        A label, e.g. ``"Q3W x6"``.
    loading
        The first administration is ``loading`` times the strategy's dose (a
        loading dose; 1 = none).  Later administrations, and the
        steady-state cycle, get the maintenance dose.  Caps and vial rounding
        apply to the maintenance dose.

    Examples
    --------
    >>> s = Schedule.weekly_x3_q4w(2)
    >>> s.times, s.cycle, s.n_cycles, s.pattern
    ((0.0, 7.0, 14.0, 28.0, 35.0, 42.0), 28.0, 2, (0.0, 7.0, 14.0))
    >>> Schedule.q3w(6).with_loading(1.5).label
    'Q3W x6, loading dose 1.5x, bolus'
    """

    times: tuple[float, ...]
    infusion: Any = 0.0
    cycle: float | None = None
    unit: str = "day"
    name: str = ""
    loading: float = 1.0

    def __post_init__(self) -> None:
        _unit_hours(self.unit)
        try:
            times = tuple(float(t) for t in np.atleast_1d(np.asarray(self.times, dtype=float)))
        except (TypeError, ValueError):
            raise ConfigError(f"schedule times must be numbers, got {self.times!r}") from None
        if not times:
            raise ConfigError("a schedule needs at least one dose time")
        if not all(math.isfinite(t) and t >= 0 for t in times):
            raise ConfigError(f"schedule times must be finite and >= 0, got {times}")
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ConfigError(f"schedule times must be strictly increasing, got {times}")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "infusion", _duration(self.infusion, self.unit, "infusion"))
        cycle = self.cycle
        if cycle is None:
            if len(times) < 2:
                raise ConfigError("a single-dose schedule needs cycle= (the window of the per-cycle metrics)")
            cycle = times[1] - times[0]
        cycle = _duration(cycle, self.unit, "cycle")
        if cycle <= 0:
            raise ConfigError(f"cycle must be > 0, got {cycle}")
        object.__setattr__(self, "cycle", float(cycle))
        if times[0] >= cycle:
            raise ConfigError(f"the first dose ({times[0]}) must be within the first cycle [0, {cycle})")
        if self.infusion > cycle:
            raise ConfigError(f"the infusion ({self.infusion} {self.unit}) is longer than the cycle ({cycle} {self.unit})")
        if not self.name:
            object.__setattr__(self, "name", f"{len(times)} doses, cycle {_fmt(cycle)} {self.unit}")
        try:
            loading = float(self.loading)
        except (TypeError, ValueError):
            raise ConfigError(f"loading must be a number (the first dose / the maintenance dose), got "
                              f"{self.loading!r}") from None
        if not (math.isfinite(loading) and loading > 0):
            raise ConfigError(f"loading must be > 0 (1 = no loading dose, 2 = a double first dose), got {loading}")
        object.__setattr__(self, "loading", loading)

    def with_loading(self, factor: float) -> "Schedule":
        """The same schedule with a first dose ``factor`` times the maintenance dose."""
        return replace(self, loading=factor)

    @property
    def amounts(self) -> tuple[float, ...]:
        """Relative amount of each administration (the first is ``loading``, the others 1)."""
        return (self.loading,) + (1.0,) * (len(self.times) - 1)

    # ---------------------------------------------------------- constructors
    @classmethod
    def every(cls, interval: float, n: int, *, infusion: Any = 0.0, unit: str = "day", name: str = "") -> "Schedule":
        """``n`` doses every ``interval`` (the cycle is the interval)."""
        interval = _duration(interval, unit, "interval")
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ConfigError(f"the number of doses must be a positive integer, got {n!r}")
        return cls(tuple(k * interval for k in range(int(n))), infusion, interval, unit,
                   name or f"every {_fmt(interval)} {unit} x{int(n)}")

    @classmethod
    def q3w(cls, cycles: int = 6, *, infusion: Any = 0.0, unit: str = "day") -> "Schedule":
        """Every 3 weeks (21-day cycles)."""
        return cls.every(convert_time(21.0, "day", unit), cycles, infusion=infusion, unit=unit, name=f"Q3W x{cycles}")

    @classmethod
    def weekly(cls, n: int = 12, *, infusion: Any = 0.0, unit: str = "day") -> "Schedule":
        """Every week (7-day cycles)."""
        return cls.every(convert_time(7.0, "day", unit), n, infusion=infusion, unit=unit, name=f"QW x{n}")

    @classmethod
    def weekly_x3_q4w(cls, cycles: int = 6, *, infusion: Any = 0.0, unit: str = "day") -> "Schedule":
        """Days 1, 8 and 15 of 28-day cycles."""
        if isinstance(cycles, bool) or int(cycles) != cycles or cycles < 1:
            raise ConfigError(f"cycles must be a positive integer, got {cycles!r}")
        day = convert_time(1.0, "day", unit)
        times = tuple((28.0 * c + d) * day for c in range(int(cycles)) for d in (0.0, 7.0, 14.0))
        return cls(times, infusion, 28.0 * day, unit, f"D1,8,15 Q4W x{cycles}")

    @classmethod
    def from_times(cls, times: Sequence[float], *, infusion: Any = 0.0, cycle: float | None = None,
                   unit: str = "day", name: str = "") -> "Schedule":
        """Arbitrary dose times."""
        return cls(tuple(times), infusion, cycle, unit, name)

    # ------------------------------------------------------------ properties
    @property
    def n_doses(self) -> int:
        """Number of administrations."""
        return len(self.times)

    @property
    def n_cycles(self) -> int:
        """Number of cycles spanned (the last dose falls in cycle ``n_cycles``)."""
        return int(math.floor(self.times[-1] / self.cycle + 1e-9)) + 1

    @property
    def end(self) -> float:
        """End of the last cycle (``n_cycles * cycle``)."""
        return self.n_cycles * self.cycle

    @property
    def pattern(self) -> tuple[float, ...]:
        """Dose times within the first cycle (offsets from its start)."""
        return tuple(t for t in self.times if t < self.cycle - 1e-9 * self.cycle)

    @property
    def is_periodic(self) -> bool:
        """True when every cycle repeats the first cycle's pattern (steady state is defined)."""
        expect = sorted(o + k * self.cycle for k in range(self.n_cycles) for o in self.pattern)
        return len(expect) == len(self.times) and np.allclose(expect, self.times, rtol=0, atol=1e-9 * self.cycle)

    def in_unit(self, unit: str) -> "Schedule":
        """The same schedule expressed in another time unit."""
        return Schedule(
            tuple(convert_time(t, self.unit, unit) for t in self.times),
            convert_time(self.infusion, self.unit, unit),
            convert_time(self.cycle, self.unit, unit),
            unit,
            self.name,
            self.loading,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict form (JSON-ready)."""
        return {"times": list(self.times), "infusion": self.infusion, "cycle": self.cycle,
                "unit": self.unit, "name": self.name, "loading": self.loading}

    @property
    def label(self) -> str:
        inf = f", {_fmt(convert_time(self.infusion, self.unit, 'min'))} min infusion" if self.infusion > 0 else ", bolus"
        load = f", loading dose {_fmt(self.loading)}x" if self.loading != 1.0 else ""
        return f"{self.name}{load}{inf}"



# --------------------------------------------------------------------------
# text form (for the command line and configuration files)
# --------------------------------------------------------------------------


def parse_schedule(text: str, *, infusion: Any = 0.0, unit: str = "day") -> Schedule:
    """A schedule from a short text.

    ``q3w:6`` (6 cycles of 21 days), ``qw:12`` or ``weekly:12``,
    ``d1-8-15q4w:6`` or ``weekly_x3_q4w:6``, ``every:14:8`` (8 doses every 14
    ``unit``), ``times:0,7,21`` (arbitrary; cycle = first interval) or
    ``times:0,7,21/28`` (cycle 28); the clinical shorthand ``q4w``, ``q2w``,
    ``q14d``, ``d1,8 q3w``, ``d1,8,15 q4w`` (doses on those days of every
    cycle; 6 cycles unless ``:n``).

    A loading dose is written after a semicolon: ``q3w:6;loading=2`` (the
    first dose twice the maintenance dose).

    >>> parse_schedule("q3w:4", infusion="90 min").label
    'Q3W x4, 90 min infusion'
    >>> parse_schedule("q3w:4; loading=1.5").loading
    1.5
    >>> s = parse_schedule("d1,8 q3w")
    >>> s.pattern, s.cycle, s.n_doses
    ((0.0, 7.0), 21.0, 12)
    """
    t, _, mods = str(text).strip().lower().replace(" ", "").partition(";")
    if mods:
        m = re.fullmatch(r"load(?:ing)?=" + _NUM, mods)
        if not m:
            raise ConfigError(f"schedule {text!r}: cannot read {mods!r}; a loading dose is written 'loading=2'")
        return _parse_schedule_base(t, text, infusion, unit).with_loading(float(m.group(1)))
    return _parse_schedule_base(t, text, infusion, unit)


def _parse_schedule_base(t: str, text: str, infusion: Any, unit: str) -> Schedule:
    head, _, rest = t.partition(":")
    args = rest.split(":") if rest else []

    def count(default: int) -> int:
        try:
            return int(args[0]) if args else default
        except ValueError:
            raise ConfigError(f"schedule {text!r}: {args[0]!r} is not a whole number") from None

    if head == "q3w":
        return Schedule.q3w(count(6), infusion=infusion, unit=unit)
    if head in ("qw", "weekly"):
        return Schedule.weekly(count(12), infusion=infusion, unit=unit)
    if head in ("d1-8-15q4w", "weekly_x3_q4w", "qwx3q4w", "d1,8,15q4w"):
        return Schedule.weekly_x3_q4w(count(6), infusion=infusion, unit=unit)
    if head == "every" and len(args) == 2:
        return Schedule.every(float(args[0]), int(args[1]), infusion=infusion, unit=unit)
    if head == "times" and args:
        body, _, cyc = args[0].partition("/")
        return Schedule.from_times([float(x) for x in body.split(",") if x], infusion=infusion,
                                   cycle=float(cyc) if cyc else None, unit=unit)
    clinical = _clinical(t, text, infusion, unit)
    if clinical is not None:
        return clinical
    raise ConfigError(
        f"cannot read schedule {text!r}; examples: 'q3w:6', 'q4w', 'q14d', 'd1,8 q3w', 'weekly:12', "
        "'weekly_x3_q4w:6', 'every:14:8', 'times:0,7,21/28'"
    )


#: ``[d<days>]q<n><w|d>[:<cycles>]``: doses on those days of every n-week (or n-day) cycle.
_CLINICAL = re.compile(r"(?:d(\d+(?:,\d+)*))?q(\d*)([wd])(?::(\d+))?")


def _clinical(t: str, text: str, infusion: Any, unit: str) -> Schedule | None:
    """The clinical shorthand (``q4w``, ``q2w``, ``q14d``, ``d1,8 q3w``, ``d1,8,15 q4w``; 6 cycles unless ``:n``)."""
    m = _CLINICAL.fullmatch(t)
    if not m:
        return None
    every = int(m.group(2) or 1)
    weeks = m.group(3) == "w"
    days = [int(d) for d in m.group(1).split(",")] if m.group(1) else [1]
    n = int(m.group(4)) if m.group(4) else 6
    cycle_days = every * (7 if weeks else 1)
    if every < 1 or n < 1 or days[0] < 1 or any(b <= a for a, b in zip(days, days[1:])) or days[-1] > cycle_days:
        raise ConfigError(f"schedule {text!r}: the interval and the number of cycles must be at least 1, and the "
                          f"days must increase from day 1 within the {cycle_days}-day cycle")
    cycle = float(convert_time(float(cycle_days), "day", unit))
    day = float(convert_time(1.0, "day", unit))
    name = (f"D{','.join(map(str, days))} " if m.group(1) else "") + \
        (f"Q{every if every > 1 else ''}W" if weeks else f"Q{every}D") + f" x{n}"
    times = [k * cycle + (d - 1) * day for k in range(n) for d in days]
    return Schedule(tuple(times), infusion, cycle, unit, name)
