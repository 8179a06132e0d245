"""Prior distributions as frozen, serialisable values.

A :class:`Prior` is a small description (family name and parameters) that
:func:`poppk.model.build.build_model` turns into a PyMC distribution.  Keeping
priors as plain values lets a :class:`~poppk.model.spec.ModelSpec` be frozen,
compared, printed and written to TOML/JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from poppk.errors import ModelSpecError

__all__ = ["Prior", "FAMILIES"]

#: Supported families and their parameters (all on the natural scale).
FAMILIES: dict[str, tuple[str, ...]] = {
    "lognormal": ("median", "sigma"),  # log X ~ Normal(log median, sigma)
    "normal": ("mu", "sigma"),
    "halfnormal": ("sigma",),
    "halfcauchy": ("beta",),
    "exponential": ("scale",),
    "lkj": ("eta",),
    "beta": ("alpha", "beta"),  # on (0, 1), e.g. a size fraction
    "fixed": ("value",),
}


@dataclass(frozen=True)
class Prior:
    """A prior distribution described by its family and parameters.

    Parameters
    ----------
    family
        One of :data:`FAMILIES`: ``"lognormal"`` (``median``, ``sigma`` of the
        log), ``"normal"`` (``mu``, ``sigma``), ``"halfnormal"`` (``sigma``),
        ``"halfcauchy"`` (``beta``), ``"exponential"`` (``scale`` = mean),
        ``"lkj"`` (``eta``, for correlation matrices), ``"beta"`` (``alpha``,
        ``beta``; a fraction in (0, 1)) or ``"fixed"``
        (``value``: the quantity is not estimated).
    params
        The family's parameters by name.

    Examples
    --------
    >>> Prior.lognormal(4.0, 1.0)
    Prior('lognormal', median=4.0, sigma=1.0)
    >>> Prior.lognormal(4.0, 1.0).interval(0.9)  # doctest: +ELLIPSIS
    (0.77..., 20.7...)
    """

    family: str
    params: tuple[tuple[str, float], ...] = field(default=())

    def __post_init__(self) -> None:
        family = str(self.family).lower()
        object.__setattr__(self, "family", family)
        if family not in FAMILIES:
            raise ModelSpecError(
                f"unknown prior family {self.family!r}; valid families: {', '.join(FAMILIES)}"
            )
        params = dict(self.params)
        expected = FAMILIES[family]
        missing = [p for p in expected if p not in params]
        extra = [p for p in params if p not in expected]
        if missing or extra:
            raise ModelSpecError(
                f"prior {family!r} takes parameters {expected}; got {tuple(params)}"
            )
        clean: list[tuple[str, float]] = []
        for name in expected:
            try:
                value = float(params[name])
            except (TypeError, ValueError):
                raise ModelSpecError(
                    f"prior {family!r} parameter {name!r} must be a number, got {params[name]!r}"
                ) from None
            if not math.isfinite(value):
                raise ModelSpecError(f"prior {family!r} parameter {name!r} must be finite, got {value}")
            positive = name in ("sigma", "beta", "scale", "eta", "median", "alpha")
            if positive and value <= 0:
                raise ModelSpecError(
                    f"prior {family!r} parameter {name!r} must be > 0, got {value}"
                )
            clean.append((name, value))
        object.__setattr__(self, "params", tuple(clean))

    # -- constructors -----------------------------------------------------
    @classmethod
    def lognormal(cls, median: float, sigma: float = 1.0) -> "Prior":
        """Log-normal prior given by its median and the SD of the log."""
        return cls("lognormal", (("median", median), ("sigma", sigma)))

    @classmethod
    def normal(cls, mu: float, sigma: float) -> "Prior":
        """Normal prior."""
        return cls("normal", (("mu", mu), ("sigma", sigma)))

    @classmethod
    def halfnormal(cls, sigma: float) -> "Prior":
        """Half-normal prior on a positive scale parameter."""
        return cls("halfnormal", (("sigma", sigma),))

    @classmethod
    def fixed(cls, value: float) -> "Prior":
        """A quantity held fixed at ``value`` (not estimated)."""
        return cls("fixed", (("value", value),))

    @classmethod
    def beta(cls, alpha: float = 1.0, beta: float = 1.0) -> "Prior":
        """Beta prior on a fraction in (0, 1); ``beta(1, 1)`` is uniform."""
        return cls("beta", (("alpha", alpha), ("beta", beta)))

    @classmethod
    def lkj(cls, eta: float = 2.0) -> "Prior":
        """LKJ prior on a correlation matrix."""
        return cls("lkj", (("eta", eta),))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Prior":
        """Build from ``{"family": ..., <param>: ...}`` (the TOML/JSON form)."""
        if "family" not in d:
            raise ModelSpecError(f"a prior needs a 'family' key; got keys {sorted(d)}")
        params = tuple((k, v) for k, v in d.items() if k != "family")
        return cls(str(d["family"]), params)

    # -- access -----------------------------------------------------------
    def __getitem__(self, name: str) -> float:
        return dict(self.params)[name]

    @property
    def is_fixed(self) -> bool:
        """True if the quantity is held fixed."""
        return self.family == "fixed"

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON form: ``{"family": ..., <param>: value, ...}``."""
        return {"family": self.family, **dict(self.params)}

    def point(self) -> float:
        """A central value: median, mean or fixed value (used for initial points)."""
        p = dict(self.params)
        if self.family == "lognormal":
            return p["median"]
        if self.family == "normal":
            return p["mu"]
        if self.family == "halfnormal":
            return p["sigma"] * math.sqrt(2.0 / math.pi) * 0.75
        if self.family == "halfcauchy":
            return p["beta"]
        if self.family == "exponential":
            return p["scale"] * math.log(2.0)
        if self.family == "beta":
            return p["alpha"] / (p["alpha"] + p["beta"])
        if self.family == "fixed":
            return p["value"]
        raise ModelSpecError(f"prior {self.family!r} has no scalar point value")

    def interval(self, mass: float = 0.9) -> tuple[float, float]:
        """Central interval holding ``mass`` of the prior (for ``describe``)."""
        from scipy import stats

        lo, hi = (1 - mass) / 2, 1 - (1 - mass) / 2
        p = dict(self.params)
        if self.family == "lognormal":
            dist = stats.lognorm(s=p["sigma"], scale=p["median"])
        elif self.family == "normal":
            dist = stats.norm(p["mu"], p["sigma"])
        elif self.family == "halfnormal":
            dist = stats.halfnorm(scale=p["sigma"])
        elif self.family == "halfcauchy":
            dist = stats.halfcauchy(scale=p["beta"])
        elif self.family == "exponential":
            dist = stats.expon(scale=p["scale"])
        elif self.family == "beta":
            dist = stats.beta(p["alpha"], p["beta"])
        elif self.family == "fixed":
            return (p["value"], p["value"])
        else:
            return (math.nan, math.nan)
        return (float(dist.ppf(lo)), float(dist.ppf(hi)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"Prior({self.family!r}, {inner})"

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.family}({inner})"
