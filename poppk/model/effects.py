"""Covariate effects: one covariate acting on one structural parameter.

A :class:`CovariateEffect` is the frozen description of a term of
``log P_i = log TV + Σ log f(cov_i) + η_i`` (power, exponential, linear,
categorical, or the adjusted size ``IBW + f·(TBW − IBW)`` whose fraction is
shared by every adjusted effect of a :class:`~poppk.model.spec.ModelSpec`).
:mod:`poppk.model.parameters` evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from poppk.errors import ModelSpecError
from poppk.model.priors import Prior

__all__ = ["CovariateEffect", "COVARIATE_FORMS", "SIZE_FRACTION", "SIZE_COLUMNS"]

COVARIATE_FORMS = ("power", "exponential", "linear", "categorical", "adjusted")

#: Posterior variable of the fraction ``f`` of the adjusted size model.
SIZE_FRACTION = "size_fraction"

#: Body-size columns whose power effects a size model replaces.
SIZE_COLUMNS = frozenset({"TBW", "WT", "IBW", "AIBW", "LBW", "FFM", "BSA", "BMI"})

#: Default prior of a covariate coefficient, by form.
_DEFAULT_COV_PRIOR = {
    "power": Prior.normal(0.0, 1.0),
    "exponential": Prior.normal(0.0, 0.1),
    "linear": Prior.normal(0.0, 0.1),
    "categorical": Prior.normal(0.0, 0.5),
    "adjusted": Prior.normal(0.0, 1.0),
}

def _as_prior(value: Any, where: str) -> Prior:
    if isinstance(value, Prior):
        return value
    if isinstance(value, Mapping):
        return Prior.from_dict(value)
    raise ModelSpecError(f"{where}: expected a Prior or a {{family=...}} table, got {value!r}")


@dataclass(frozen=True)
class CovariateEffect:
    """One covariate effect on one structural parameter.

    The individual parameter is ``TV · f(covariate) · exp(η)`` with ``f``:

    * ``"power"``: ``(cov / reference) ** beta`` — allometric scaling on a body-size
      descriptor, e.g. ``(AIBW / 60) ** beta``; fix ``beta`` with
      ``prior=Prior.fixed(0.75)``.
    * ``"exponential"``: ``exp(beta · (cov − reference))``.
    * ``"linear"``: ``1 + beta · (cov − reference)`` (kept positive by the data range;
      prefer exponential when in doubt).
    * ``"categorical"``: ``exp(beta)`` for subjects whose covariate equals ``level``,
      1 otherwise (e.g. sex: ``level="F"``).
    * ``"adjusted"``: ``(S_f / S_f,ref) ** beta`` with the adjusted size
      ``S_f = base + f · (cov − base)`` — by default ``IBW + f · (TBW − IBW)`` —
      and the fraction ``f`` (posterior variable ``size_fraction``, prior
      ``ModelSpec.size_fraction``) estimated and shared by every adjusted
      effect: ``f = 1`` is total body weight, ``f = 0`` ideal body weight,
      ``f = 0.4`` the label's AIBW.  The reference size ``S_f,ref = base_reference
      + f · (reference − base_reference)`` moves with ``f``, so the typical
      value always belongs to a subject of reference weight and height.

    Parameters
    ----------
    parameter
        Structural parameter the effect acts on (``"CL"``, ``"V1"``, ...).
    covariate
        Column of ``PKData.covariates`` (baseline per subject): ``"TBW"``,
        ``"AIBW"``, ``"ALB"``, ``"SEX"``, ...
    form
        ``"power"``, ``"exponential"``, ``"linear"`` or ``"categorical"``.
    reference
        Reference value of a continuous covariate; ``None`` is resolved to the
        dataset median when the model is built (and recorded in the fit).
    level
        For ``"categorical"``: the level that receives the effect.
    prior
        Prior of ``beta``; defaults by form (power and adjusted: Normal(0, 1)).
        Use ``Prior.fixed(value)`` to hold it fixed.
    base, base_reference
        For ``"adjusted"``: the column of the lower size (``"IBW"``) and its
        reference value (``None``: dataset median, resolved when built).
    """

    parameter: str
    covariate: str
    form: str = "power"
    reference: float | None = None
    level: Any = None
    prior: Prior | None = None
    base: str | None = None
    base_reference: float | None = None

    def __post_init__(self) -> None:
        if not str(self.covariate).strip() or "/" in str(self.covariate):
            raise ModelSpecError(
                f"covariate name {self.covariate!r}: must be non-empty and contain no '/' (it names the "
                "posterior variable beta_<PARAM>_<COV> in the saved NetCDF); rename the column when reading, "
                "e.g. read_nonmem(..., columns={...})"
            )
        if self.form not in COVARIATE_FORMS:
            raise ModelSpecError(
                f"covariate effect {self.covariate} on {self.parameter}: form {self.form!r} "
                f"is not one of {COVARIATE_FORMS}"
            )
        if self.form == "categorical":
            if self.level is None:
                raise ModelSpecError(
                    f"categorical effect of {self.covariate} on {self.parameter} needs level= "
                    "(the category that receives the effect, e.g. level='F')"
                )
        elif self.reference is not None:
            ref = float(self.reference)
            if self.form in ("power", "adjusted") and ref <= 0:
                raise ModelSpecError(
                    f"{self.form} effect of {self.covariate} on {self.parameter}: reference must be > 0, got {ref}"
                )
            object.__setattr__(self, "reference", ref)
        if self.form == "adjusted":
            if self.base is None:
                object.__setattr__(self, "base", "IBW")
            if not str(self.base).strip() or "/" in str(self.base):
                raise ModelSpecError(f"adjusted effect on {self.parameter}: base column {self.base!r} is not a valid name")
            if self.base_reference is not None:
                bref = float(self.base_reference)
                if bref <= 0:
                    raise ModelSpecError(
                        f"adjusted effect on {self.parameter}: base_reference must be > 0, got {bref}"
                    )
                object.__setattr__(self, "base_reference", bref)
        elif self.base is not None or self.base_reference is not None:
            raise ModelSpecError(
                f"covariate effect {self.covariate} on {self.parameter}: base/base_reference are for "
                f"form='adjusted' only (form is {self.form!r})"
            )
        prior = self.prior if self.prior is not None else _DEFAULT_COV_PRIOR[self.form]
        object.__setattr__(self, "prior", _as_prior(prior, f"covariate {self.name}"))

    @property
    def name(self) -> str:
        """Variable name of the coefficient in the posterior, e.g. ``beta_CL_AIBW``.

        An adjusted size effect is ``beta_<PARAM>_SIZE``.
        """
        if self.form == "adjusted":
            return f"beta_{self.parameter}_SIZE"
        return f"beta_{self.parameter}_{self.covariate}"

    @property
    def columns(self) -> tuple[str, ...]:
        """Dataset columns the effect reads (two for an adjusted size effect)."""
        return (self.covariate, self.base) if self.form == "adjusted" else (self.covariate,)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"parameter": self.parameter, "covariate": self.covariate, "form": self.form}
        if self.reference is not None:
            d["reference"] = self.reference
        if self.level is not None:
            d["level"] = self.level
        if self.base is not None:
            d["base"] = self.base
        if self.base_reference is not None:
            d["base_reference"] = self.base_reference
        d["prior"] = self.prior.to_dict()  # type: ignore[union-attr]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CovariateEffect":
        allowed = {"parameter", "covariate", "form", "reference", "level", "prior", "base", "base_reference"}
        extra = set(d) - allowed
        if extra:
            raise ModelSpecError(f"covariate effect: unknown keys {sorted(extra)}; valid: {sorted(allowed)}")
        kw = dict(d)
        if "prior" in kw and kw["prior"] is not None:
            kw["prior"] = _as_prior(kw["prior"], "covariate prior")
        return cls(**kw)
