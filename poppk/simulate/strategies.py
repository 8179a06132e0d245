"""Dosing strategies (frozen, validated on construction).

A *strategy* turns a virtual population into one dose per patient (mg):

* :class:`PerKg` -- mg/kg on a body-size basis: total body weight (TBW),
  adjusted ideal body weight (AIBW = IBW + f (TBW - IBW), f configurable),
  ideal body weight (IBW) or lean body weight (LBW);
* :class:`PerM2` -- mg/m² of body-surface area;
* :class:`Flat` -- the same dose for everyone;
* :class:`Capped` -- a strategy with a maximum dosing weight / BSA and/or a
  maximum dose;
* :class:`Rounded` -- a strategy rounded to whole vials.

When the doses are given is a :class:`~poppk.simulate.schedule.Schedule`.
Change a strategy with :func:`dataclasses.replace`.

Examples
--------
>>> import pandas as pd
>>> from poppk.simulate.population import population_from_table
>>> pop = population_from_table(pd.DataFrame({"WT": [60.0, 120.0], "HT": [165.0, 165.0], "SEX": ["F", "F"]}),
...                             ibw_method="label")
>>> PerKg(6, "AIBW").dose(pop).round(1)
array([347.4, 491.4])
>>> Capped(PerKg(5), max_weight_kg=100).dose(pop)
array([300., 500.])
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from poppk.bodysize import IBW_METHODS, BSA_METHODS, aibw as _aibw, bsa as _bsa, ibw as _ibw
from poppk.errors import ConfigError
from poppk.simulate.schedule import _NUM, _fmt, _positive

__all__ = [
    "DosingStrategy",
    "PerKg",
    "PerM2",
    "Flat",
    "Capped",
    "Rounded",
    "BASES",
    "parse_strategy",
]

#: Body-size bases of :class:`PerKg`.
BASES: tuple[str, ...] = ("TBW", "AIBW", "IBW", "LBW")


def _column(population: Any, name: str) -> np.ndarray:
    """A covariate column of a VirtualPopulation, DataFrame or mapping."""
    try:
        values = population[name]
    except (KeyError, IndexError):
        cols = list(getattr(population, "columns", None) or getattr(population, "keys", lambda: [])())
        raise ConfigError(f"the population has no column {name!r} needed by the dosing strategy; columns: {cols}") from None
    return np.asarray(values, dtype=float)


def _sex(population: Any) -> Any:
    for name in ("SEX", "sex", "Sex"):
        try:
            return np.asarray(population[name], dtype=object)
        except (KeyError, IndexError):
            continue
    raise ConfigError("recomputing IBW needs a SEX column in the population")


def _female_code(population: Any) -> Any:
    opt = getattr(population, "option", None)
    return opt("female_code") if callable(opt) else None


# --------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------


class DosingStrategy(ABC):
    """A rule giving each patient's dose (mg) from their covariates."""

    @abstractmethod
    def dose(self, population: Any) -> np.ndarray:
        """Dose of every patient, mg (1-D array)."""

    @property
    @abstractmethod
    def label(self) -> str:
        """A short human-readable description, e.g. ``"6 mg/kg AIBW"``."""

    @property
    def is_linear(self) -> bool:
        """True when scaling the rate scales every dose by the same factor."""
        return True

    @abstractmethod
    def scaled(self, factor: float) -> "DosingStrategy":
        """The same rule with its rate (mg/kg, mg/m², mg) multiplied by ``factor``."""

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict form (JSON-ready)."""
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in self.__dataclass_fields__:  # type: ignore[attr-defined]
            v = getattr(self, f)
            d[f] = v.to_dict() if isinstance(v, DosingStrategy) else v
        return d

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class PerKg(DosingStrategy):
    """``mg_per_kg`` times a body-size basis (kg).

    Parameters
    ----------
    mg_per_kg
        Dose rate, > 0.
    basis
        ``"TBW"`` (total body weight), ``"AIBW"`` (adjusted ideal body weight,
        IBW + ``aibw_factor`` (TBW - IBW)), ``"IBW"`` or ``"LBW"``.
    aibw_factor
        f of AIBW, in [0, 1] (0.4 in the mirvetuximab soravtansine label).
        AIBW is computed here from the population's IBW and TBW, so the
        factor used for dosing can differ from the one of the PK covariate.
    ibw_method
        ``None``: use the population's IBW column; otherwise recompute IBW from
        height and sex with this method (``"label"``: the ELAHERE label's
        metric formula, 0.9 H - 92 (F) / 0.9 H - 88 (M)).
    """

    mg_per_kg: float
    basis: str = "TBW"
    aibw_factor: float = 0.4
    ibw_method: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mg_per_kg", _positive(self.mg_per_kg, "mg_per_kg"))
        basis = str(self.basis).strip().upper()
        if basis == "WT":
            basis = "TBW"
        if basis not in BASES:
            raise ConfigError(f"unknown dosing basis {self.basis!r}; valid: {', '.join(BASES)}")
        object.__setattr__(self, "basis", basis)
        f = self.aibw_factor
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= float(f) <= 1.0:
            raise ConfigError(f"aibw_factor must be a number in [0, 1], got {f!r}")
        object.__setattr__(self, "aibw_factor", float(f))
        if self.ibw_method is not None:
            key = str(self.ibw_method).strip().lower()
            if key not in IBW_METHODS:
                raise ConfigError(f"unknown ibw_method {self.ibw_method!r}; valid: {', '.join(IBW_METHODS)}")
            object.__setattr__(self, "ibw_method", key)

    def _ibw(self, population: Any) -> np.ndarray:
        if self.ibw_method is None:
            return _column(population, "IBW")
        return np.asarray(_ibw(_column(population, "HT"), _sex(population), method=self.ibw_method,
                               female_code=_female_code(population)), dtype=float)

    def size(self, population: Any) -> np.ndarray:
        """The dosing weight of every patient, kg."""
        if self.basis == "TBW":
            return _column(population, "TBW")
        if self.basis == "LBW":
            return _column(population, "LBW")
        ibw = self._ibw(population)
        if self.basis == "IBW":
            return ibw
        return _aibw(_column(population, "TBW"), ibw, factor=self.aibw_factor)

    def dose(self, population: Any) -> np.ndarray:
        return self.mg_per_kg * self.size(population)

    @property
    def label(self) -> str:
        extra = []
        if self.basis == "AIBW" and self.aibw_factor != 0.4:
            extra.append(f"f={_fmt(self.aibw_factor)}")
        if self.ibw_method is not None and self.basis in ("AIBW", "IBW"):
            extra.append(f"IBW {self.ibw_method}")
        return f"{_fmt(self.mg_per_kg)} mg/kg {self.basis}" + (f" ({', '.join(extra)})" if extra else "")

    def scaled(self, factor: float) -> "PerKg":
        return PerKg(self.mg_per_kg * float(factor), self.basis, self.aibw_factor, self.ibw_method)


@dataclass(frozen=True)
class PerM2(DosingStrategy):
    """``mg_per_m2`` times body-surface area (m²).

    Parameters
    ----------
    mg_per_m2
        Dose rate, > 0.
    bsa_method
        ``None``: the population's BSA column; otherwise recompute with this
        method (see :func:`poppk.bodysize.bsa`).
    """

    mg_per_m2: float
    bsa_method: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mg_per_m2", _positive(self.mg_per_m2, "mg_per_m2"))
        if self.bsa_method is not None:
            key = str(self.bsa_method).strip().lower().replace("-", "_")
            if key not in BSA_METHODS:
                raise ConfigError(f"unknown bsa_method {self.bsa_method!r}; valid: {', '.join(BSA_METHODS)}")
            object.__setattr__(self, "bsa_method", key)

    def size(self, population: Any) -> np.ndarray:
        """Body-surface area of every patient, m²."""
        if self.bsa_method is None:
            return _column(population, "BSA")
        return np.asarray(_bsa(_column(population, "TBW"), _column(population, "HT"), method=self.bsa_method), dtype=float)

    def dose(self, population: Any) -> np.ndarray:
        return self.mg_per_m2 * self.size(population)

    @property
    def label(self) -> str:
        return f"{_fmt(self.mg_per_m2)} mg/m2 BSA"

    def scaled(self, factor: float) -> "PerM2":
        return PerM2(self.mg_per_m2 * float(factor), self.bsa_method)


@dataclass(frozen=True)
class Flat(DosingStrategy):
    """The same dose (mg) for every patient."""

    mg: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mg", _positive(self.mg, "mg"))

    def dose(self, population: Any) -> np.ndarray:
        return np.full(len(_column(population, "TBW")), self.mg)

    @property
    def label(self) -> str:
        return f"flat {_fmt(self.mg)} mg"

    def scaled(self, factor: float) -> "Flat":
        return Flat(self.mg * float(factor))


@dataclass(frozen=True)
class Capped(DosingStrategy):
    """A strategy with a maximum dosing size and/or a maximum dose.

    Parameters
    ----------
    strategy
        The strategy capped.
    max_weight_kg
        Maximum dosing weight (the basis weight of a :class:`PerKg`, e.g.
        "5 mg/kg, dosed as 100 kg above 100 kg").
    max_bsa_m2
        Maximum BSA of a :class:`PerM2`.
    max_dose_mg
        Maximum dose, for any strategy.
    """

    strategy: DosingStrategy
    max_weight_kg: float | None = None
    max_dose_mg: float | None = None
    max_bsa_m2: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, DosingStrategy):
            raise ConfigError(f"Capped needs a DosingStrategy, got {self.strategy!r}")
        if self.max_weight_kg is None and self.max_dose_mg is None and self.max_bsa_m2 is None:
            raise ConfigError("Capped needs max_weight_kg, max_bsa_m2 or max_dose_mg")
        for name in ("max_weight_kg", "max_dose_mg", "max_bsa_m2"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _positive(v, name))
        if self.max_weight_kg is not None and not isinstance(self.strategy, PerKg):
            raise ConfigError(
                f"max_weight_kg caps the dosing weight of a mg/kg strategy; {self.strategy.label!r} is not one "
                "(use max_dose_mg)"
            )
        if self.max_bsa_m2 is not None and not isinstance(self.strategy, PerM2):
            raise ConfigError(f"max_bsa_m2 caps the BSA of a mg/m2 strategy; {self.strategy.label!r} is not one")

    def dose(self, population: Any) -> np.ndarray:
        s = self.strategy
        if self.max_weight_kg is not None:
            d = s.mg_per_kg * np.minimum(s.size(population), self.max_weight_kg)  # type: ignore[attr-defined]
        elif self.max_bsa_m2 is not None:
            d = s.mg_per_m2 * np.minimum(s.size(population), self.max_bsa_m2)  # type: ignore[attr-defined]
        else:
            d = s.dose(population)
        if self.max_dose_mg is not None:
            d = np.minimum(d, self.max_dose_mg)
        return d

    @property
    def label(self) -> str:
        caps = []
        if self.max_weight_kg is not None:
            caps.append(f"max {_fmt(self.max_weight_kg)} kg")
        if self.max_bsa_m2 is not None:
            caps.append(f"max {_fmt(self.max_bsa_m2)} m2")
        if self.max_dose_mg is not None:
            caps.append(f"max {_fmt(self.max_dose_mg)} mg")
        return f"{self.strategy.label}, {', '.join(caps)}"

    @property
    def is_linear(self) -> bool:
        return self.max_dose_mg is None and self.strategy.is_linear

    def scaled(self, factor: float) -> "Capped":
        return Capped(self.strategy.scaled(factor), self.max_weight_kg, self.max_dose_mg, self.max_bsa_m2)


_ROUNDING = ("nearest", "up", "down")


@dataclass(frozen=True)
class Rounded(DosingStrategy):
    """A strategy rounded to whole vials (at least one vial).

    Parameters
    ----------
    strategy
        The strategy rounded.
    vial_mg
        Vial size (or dose increment), mg.
    mode
        ``"nearest"`` (default), ``"up"`` or ``"down"``.
    """

    strategy: DosingStrategy
    vial_mg: float
    mode: str = "nearest"

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, DosingStrategy):
            raise ConfigError(f"Rounded needs a DosingStrategy, got {self.strategy!r}")
        object.__setattr__(self, "vial_mg", _positive(self.vial_mg, "vial_mg"))
        mode = str(self.mode).strip().lower()
        if mode not in _ROUNDING:
            raise ConfigError(f"rounding mode {self.mode!r} is not one of {_ROUNDING}")
        object.__setattr__(self, "mode", mode)

    def dose(self, population: Any) -> np.ndarray:
        n = self.strategy.dose(population) / self.vial_mg
        # a relative tolerance keeps exact multiples (e.g. 3.0000000001) from jumping a vial
        if self.mode == "nearest":
            k = np.floor(n + 0.5)
        elif self.mode == "up":
            k = np.ceil(n - 1e-9)
        else:
            k = np.floor(n + 1e-9)
        return np.maximum(k, 1.0) * self.vial_mg

    @property
    def label(self) -> str:
        how = {"nearest": "", "up": " up", "down": " down"}[self.mode]
        return f"{self.strategy.label}, rounded{how} to {_fmt(self.vial_mg)} mg vials"

    @property
    def is_linear(self) -> bool:
        return False

    def scaled(self, factor: float) -> "Rounded":
        return Rounded(self.strategy.scaled(factor), self.vial_mg, self.mode)


# --------------------------------------------------------------------------
# text forms (for the command line and configuration files)
# --------------------------------------------------------------------------


def parse_strategy(text: str) -> DosingStrategy:
    """A strategy from a short text.

    Grammar: a base, then optional modifiers separated by commas::

        5 mg/kg              (TBW)        6 mg/kg AIBW      6 mg/kg AIBW f=0.3
        4 mg/kg IBW label    (IBW method) 3 mg/kg LBW       170 mg/m2
        flat 400 mg  |  400 mg
        modifiers: max 100 kg | max 2 m2 | max 500 mg | vial 100 mg | vial up 100 mg

    Examples
    --------
    >>> parse_strategy("6 mg/kg AIBW, max 600 mg").label
    '6 mg/kg AIBW, max 600 mg'
    >>> parse_strategy("5 mg/kg, vial 100 mg").label
    '5 mg/kg TBW, rounded to 100 mg vials'
    """
    parts = [p.strip() for p in re.split(r"[,;]", str(text)) if p.strip()]
    if not parts:
        raise ConfigError("empty dosing strategy")
    base = parts[0].lower()
    strat: DosingStrategy
    m = re.fullmatch(_NUM + r"\s*mg\s*/\s*kg(?:\s+(\w+))?(?:\s+f\s*=\s*" + _NUM + r")?(?:\s+(\w+))?", base)
    if m:
        basis = (m.group(2) or "TBW").upper()
        ibw_method = m.group(4)
        if basis in ("TBW", "AIBW", "IBW", "LBW", "WT"):
            strat = PerKg(float(m.group(1)), basis, float(m.group(3)) if m.group(3) else 0.4, ibw_method)
        else:
            raise ConfigError(f"{text!r}: unknown basis {m.group(2)!r}; valid: {', '.join(BASES)}")
    elif (m := re.fullmatch(_NUM + r"\s*mg\s*/\s*m\^?2(?:\s+bsa)?(?:\s+(\w+))?", base)):
        strat = PerM2(float(m.group(1)), m.group(2))
    elif (m := re.fullmatch(r"(?:flat\s+)?" + _NUM + r"\s*mg(?:\s+flat)?", base)):
        strat = Flat(float(m.group(1)))
    else:
        raise ConfigError(
            f"cannot read dosing strategy {text!r}; examples: '5 mg/kg', '6 mg/kg AIBW', '170 mg/m2', "
            "'flat 400 mg', '6 mg/kg AIBW, max 100 kg, vial 100 mg'"
        )
    caps: dict[str, float] = {}
    vial: tuple[float, str] | None = None
    for mod in parts[1:]:
        low = mod.lower()
        if (m := re.fullmatch(r"(?:max|cap)\s+" + _NUM + r"\s*kg", low)):
            caps["max_weight_kg"] = float(m.group(1))
        elif (m := re.fullmatch(r"(?:max|cap)\s+" + _NUM + r"\s*m\^?2", low)):
            caps["max_bsa_m2"] = float(m.group(1))
        elif (m := re.fullmatch(r"(?:max|cap)\s+" + _NUM + r"\s*mg", low)):
            caps["max_dose_mg"] = float(m.group(1))
        elif (m := re.fullmatch(r"(?:vial|round)(?:\s+(nearest|up|down))?\s+" + _NUM + r"\s*mg(?:\s+vials?)?", low)):
            vial = (float(m.group(2)), m.group(1) or "nearest")
        else:
            raise ConfigError(f"{text!r}: cannot read modifier {mod!r} (max 100 kg, max 500 mg, vial 100 mg)")
    if caps:
        strat = Capped(strat, **caps)
    if vial is not None:
        strat = Rounded(strat, vial[0], vial[1])
    return strat
