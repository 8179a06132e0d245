"""The model specification: a frozen description of a population-PK model.

A :class:`ModelSpec` says *what* model to fit — structure, typical values and
their priors, covariate effects, inter-individual variability (IIV), residual
error and the handling of BLQ records — and nothing about *how* PyMC builds it.
:func:`poppk.model.build.build_model` is the only place that turns a spec and a
dataset into a ``pm.Model``.

Specs are immutable and validated on construction; change one with
:func:`dataclasses.replace` or the helper methods (``with_covariate``,
``with_size_covariate``), which return new specs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from poppk.errors import ModelSpecError
from poppk.model.analytes import Analyte, analyte_parameters, analyte_sigma_names, formation_of, normalise_analytes
from poppk.model.elimination import check_elimination, elimination_parameters, elimination_units
from poppk.model.effects import SIZE_FRACTION, CovariateEffect, _as_prior
from poppk.model.priors import Prior
from poppk.model.size_model import (adjusted_size_effects, check_size_fraction, power_size_effects, size_targets,
                                    without_size_effects)
from poppk.model.time_varying import normalise_time_variation
from poppk.pk.disposition import PARAMETERS as DISPOSITION_PARAMETERS

__all__ = [
    "ModelSpec",
    "CovariateEffect",
    "Analyte",
    "STRUCTURES",
    "ERROR_MODELS",
    "structural_parameters",
    "SIZE_FRACTION",
]

STRUCTURES = ("1cmt", "2cmt", "3cmt")
ABSORPTION = (None, "first-order")
ERROR_MODELS = ("additive", "proportional", "combined", "exponential")
BLQ_METHODS = ("m3", "m1")
PARAMETRIZATIONS = ("noncentered", "centered", "laplace")

#: Disposition parameters of each structure (those of the PK kernel).
_DISPOSITION = {f"{n}cmt": names for n, names in DISPOSITION_PARAMETERS.items()}

#: Which residual-error magnitudes each error model estimates.
_SIGMAS = {
    "additive": ("add",),
    "proportional": ("prop",),
    "combined": ("prop", "add"),
    "exponential": ("exp",),
}


def structural_parameters(structure: str, absorption: str | None = None, lag: bool = False) -> tuple[str, ...]:
    """Names of the structural PK parameters of a model.

    Parameters
    ----------
    structure
        ``"1cmt"``, ``"2cmt"`` or ``"3cmt"``.
    absorption
        ``None`` for intravenous dosing only, ``"first-order"`` to add ``KA``.
    lag
        Add an absorption lag time ``ALAG1`` (first-order absorption only).

    Examples
    --------
    >>> structural_parameters("2cmt")
    ('CL', 'V1', 'Q', 'V2')
    >>> structural_parameters("1cmt", "first-order", lag=True)
    ('CL', 'V1', 'KA', 'ALAG1')
    """
    if structure not in _DISPOSITION:
        raise ModelSpecError(f"structure {structure!r} is not one of {STRUCTURES}")
    names = _DISPOSITION[structure]
    if absorption == "first-order":
        names = names + ("KA",) + (("ALAG1",) if lag else ())
    return names


def _freeze_priors(mapping: Any, where: str) -> tuple[tuple[str, Prior], ...]:
    if mapping is None:
        return ()
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple((str(k), _as_prior(v, f"{where}[{k!r}]")) for k, v in items)


@dataclass(frozen=True)
class ModelSpec:
    """A population-PK model: structure, priors, covariates, IIV, residual error.

    Parameters
    ----------
    structure
        ``"1cmt"``, ``"2cmt"`` or ``"3cmt"`` (linear disposition).  The route of
        each dose (bolus, infusion, oral) is given by the dataset.
    typical
        Prior of each typical value (population median for a reference subject),
        by parameter name.  A bare number ``x`` means ``LogNormal(median=x,
        sigma=1)`` — a weakly informative prior spanning roughly x/5 to 5x
        (90%).  Every structural parameter needs one (it doubles as the
        initial estimate, as $THETA does in NONMEM).
    absorption, lag
        ``"first-order"`` adds ``KA`` (and ``ALAG1`` when ``lag``) for doses into
        the depot compartment.
    covariates
        :class:`CovariateEffect` terms.
    iiv
        Parameters with log-normal random effects ``exp(η)``.
    iiv_correlation
        ``"diagonal"`` (independent η) or ``"full"`` (LKJ prior on the
        correlation, Cholesky-parametrised).
    omega
        Prior of each IIV standard deviation ω (SD of η, log scale), by parameter;
        the default ``HalfNormal(0.5)`` puts 90% mass below ω≈0.82 (CV≈95%).
    lkj_eta
        Shape of the LKJ prior when ``iiv_correlation="full"`` (2 = mildly
        favours small correlations).
    error
        ``"additive"``, ``"proportional"``, ``"combined"`` (SD² = add² +
        (prop·IPRED)²) or ``"exponential"`` (log DV ~ Normal(log IPRED, σ)).
    sigma
        Priors of the residual-error magnitudes by name (``"prop"``, ``"add"``,
        ``"exp"``). Defaults: ``prop``/``exp`` HalfNormal(0.5); ``add`` HalfNormal
        with scale equal to the median observation (resolved when built).
    blq
        ``"m3"``: BLQ records enter the likelihood as P(DV < LLOQ) (Beal's M3);
        ``"m1"``: BLQ records are discarded (and reported).
    truncate_at_zero
        Normalise the additive/proportional/combined likelihood for truncation
        of DV at 0 (as in the Stan benchmark model).
    parametrization
        ``"laplace"`` (default: each subject's log parameters follow their
        Laplace conditional given the *current* typical values and Ω --
        centred where the subject's data are informative, non-centred where
        they are not), ``"centered"`` (log parameters drawn directly,
        preconditioned by each subject's fixed Laplace mean and covariance at
        the Laplace-EM estimates) or ``"noncentered"`` (η = ω·z).  All three
        have the same posterior.  ``"laplace"`` is the default because it
        converges where the others struggle (public benchmark, ``bench_fit.py
        --seed 1|2``: max R-hat ≤ 1.004 and min bulk ESS/s 58–66, against up to
        1.014 and 18–21 for ``"centered"``; 2-cmt oral with lag: R-hat 1.003
        against 1.012) and matches or beats ``"centered"`` in ESS per gradient
        on every model kind measured; its per-subject map makes each gradient
        dearer (sampling time at equal steps per draw: +22% on the bundled
        trial, +123% on a sparse 1-cmt study whose likelihood is cheap), so
        ``"centered"`` can be a few seconds faster on easy fits
        (``benchmarks/bench_parametrizations.py``).
    units
        Unit labels: ``time``, ``amount`` (default ``"mg"``), ``volume``
        (default ``"L"``); concentration is amount/volume.  ``time`` has no
        default: unset, the model is fitted in the data's unit
        (``read_nonmem(..., time_unit="day")``), and :func:`~poppk.model.fit`
        refuses to start when neither gives one (the fitted spec records it).
    size_fraction
        Prior of the fraction ``f`` of the adjusted size ``IBW + f·(TBW − IBW)``
        shared by every ``"adjusted"`` covariate effect (see
        :meth:`with_size_model`): ``Prior.beta(a, b)`` on (0, 1), default
        ``beta(1, 1)`` (uniform: no descriptor favoured), or
        ``Prior.fixed(value)`` with a value in [0, 1] (``0.4`` is the label's
        AIBW).  Unused without adjusted effects.
    analytes
        ``()`` (one analyte), or the parent then the analytes formed from it,
        each an :class:`~poppk.model.analytes.Analyte` (or its dict): adds
        the parameters ``CL_<name>``, ``V_<name>`` and residual magnitudes
        ``<kind>_<name>`` of each formed analyte; observations are mapped by
        ``DVID`` (see :mod:`poppk.model.analytes`).
    elimination
        ``"linear"`` (default, closed form), ``"michaelis-menten"`` (VMAX, KM
        instead of CL), ``"linear+michaelis-menten"`` or ``"time-dependent"``
        (CL, TDA > 0, KDES: clearance falling over time), integrated by the
        ODE solver (1-2 compartments, no lag, analytes or steady-state doses;
        :mod:`poppk.model.elimination`).
    time_varying
        Covariate effects evaluated on each record instead of at baseline, by
        effect name (``"beta_CL_WT"``) or covariate column (``"WT"``: all its
        effects); values hold from their record's time on.
    iov, occasion
        Parameters with inter-occasion variability (names, or ``{name:
        prior}`` of ω_IOV, default ``HalfNormal(0.3)``), and the column giving
        each record's occasion (default ``"OCC"``).  Time variation makes the
        parameters piecewise constant, integrated by the ODE solver
        (:mod:`poppk.model.time_varying`).
    """

    structure: str = "2cmt"
    typical: Any = ()
    absorption: str | None = None
    lag: bool = False
    covariates: tuple[CovariateEffect, ...] = ()
    iiv: tuple[str, ...] = ("CL", "V1")
    iiv_correlation: str = "diagonal"
    omega: Any = ()
    lkj_eta: float = 2.0
    error: str = "combined"
    sigma: Any = ()
    blq: str = "m3"
    truncate_at_zero: bool = False
    parametrization: str = "laplace"
    units: Any = (("amount", "mg"), ("volume", "L"))
    size_fraction: Any = None
    analytes: Any = ()
    elimination: str = "linear"
    time_varying: tuple[str, ...] = ()
    iov: Any = ()
    occasion: str = "OCC"

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ModelSpecError(f"structure {self.structure!r} is not one of {STRUCTURES}")
        if self.absorption not in ABSORPTION:
            raise ModelSpecError(f"absorption {self.absorption!r} is not one of {ABSORPTION}")
        if self.lag and self.absorption is None:
            raise ModelSpecError("lag=True needs absorption='first-order'")
        if self.error not in ERROR_MODELS:
            raise ModelSpecError(f"error model {self.error!r} is not one of {ERROR_MODELS}")
        object.__setattr__(self, "analytes", normalise_analytes(self.analytes, self.error, ERROR_MODELS))
        check_elimination(self)
        params = self.parameters

        typical = []
        raw_typ = self.typical.items() if isinstance(self.typical, Mapping) else self.typical
        for k, v in raw_typ:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if v <= 0:
                    raise ModelSpecError(f"typical value of {k} must be > 0, got {v}")
                v = Prior.lognormal(float(v), 1.0)
            typical.append((str(k), _as_prior(v, f"typical[{k!r}]")))
        object.__setattr__(self, "typical", tuple(typical))
        unknown = [k for k, _ in typical if k not in params]
        if unknown:
            raise ModelSpecError(
                f"typical values given for {unknown}, which are not parameters of a "
                f"{self.structure} model with absorption={self.absorption!r}; parameters: {params}"
            )
        missing = [p for p in params if p not in dict(typical)]
        if missing:
            raise ModelSpecError(
                f"no typical value (initial estimate / prior) for {missing}; give e.g. "
                f"typical={{{', '.join(f'{p!r}: <value>' for p in params)}}}"
            )
        for k, prior in typical:
            if prior.family not in ("lognormal", "fixed"):
                raise ModelSpecError(
                    f"typical[{k!r}]: use a 'lognormal' or 'fixed' prior for a positive PK parameter, got {prior.family!r}"
                )

        covs = tuple(c if isinstance(c, CovariateEffect) else CovariateEffect.from_dict(c) for c in self.covariates)
        object.__setattr__(self, "covariates", covs)
        seen = set()
        for c in covs:
            if c.parameter not in params:
                raise ModelSpecError(
                    f"covariate effect {c.covariate} on {c.parameter!r}: no such parameter; parameters: {params}"
                )
            if c.name in seen:
                raise ModelSpecError(f"covariate effect {c.covariate} on {c.parameter} is given twice")
            seen.add(c.name)
        tv, iov, occasion = normalise_time_variation(self)
        object.__setattr__(self, "time_varying", tv)
        object.__setattr__(self, "iov", iov)
        object.__setattr__(self, "occasion", occasion)

        iiv = tuple(str(p) for p in self.iiv)
        object.__setattr__(self, "iiv", iiv)
        bad = [p for p in iiv if p not in params]
        if bad:
            raise ModelSpecError(f"iiv on {bad}: not parameters of this model; parameters: {params}")
        if len(set(iiv)) != len(iiv):
            raise ModelSpecError(f"iiv lists a parameter twice: {iiv}")
        if self.iiv_correlation not in ("diagonal", "full"):
            raise ModelSpecError(f"iiv_correlation {self.iiv_correlation!r} is not 'diagonal' or 'full'")
        if self.iiv_correlation == "full" and len(iiv) < 2:
            raise ModelSpecError("iiv_correlation='full' needs IIV on at least two parameters")

        omega = dict(_freeze_priors(self.omega, "omega"))
        for p in omega:
            if p not in iiv:
                raise ModelSpecError(f"omega prior given for {p!r}, which has no IIV; iiv={iiv}")
        full_omega = tuple((p, omega.get(p, Prior.halfnormal(0.5))) for p in iiv)
        for p, pr in full_omega:
            if pr.family not in ("halfnormal", "halfcauchy", "exponential", "fixed"):
                raise ModelSpecError(f"omega[{p!r}]: use a positive prior (halfnormal, ...), got {pr.family!r}")
        object.__setattr__(self, "omega", full_omega)
        if float(self.lkj_eta) <= 0:
            raise ModelSpecError(f"lkj_eta must be > 0, got {self.lkj_eta}")
        object.__setattr__(self, "lkj_eta", float(self.lkj_eta))

        sig = dict(_freeze_priors(self.sigma, "sigma"))
        needed = self.sigma_names
        extra = [k for k in sig if k not in needed]
        if extra:
            raise ModelSpecError(
                f"sigma priors given for {extra}, not used by the {self.error!r} error model (it uses {needed})"
            )
        object.__setattr__(self, "sigma", tuple((k, sig[k]) for k in needed if k in sig))
        if self.blq not in BLQ_METHODS:
            raise ModelSpecError(f"blq {self.blq!r} is not one of {BLQ_METHODS}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ModelSpecError(f"parametrization {self.parametrization!r} is not one of {PARAMETRIZATIONS}")
        if self.truncate_at_zero and self.error == "exponential":
            raise ModelSpecError("truncate_at_zero applies to additive/proportional/combined errors only")
        object.__setattr__(self, "size_fraction", check_size_fraction(self.covariates, self.size_fraction))
        units = dict(self.units.items() if isinstance(self.units, Mapping) else self.units)
        for k in units:
            if k not in ("time", "amount", "volume"):
                raise ModelSpecError(f"units: unknown key {k!r}; valid: time, amount, volume")
        base: dict[str, str | None] = {"time": None, "amount": "mg", "volume": "L"}
        base.update({k: str(v) for k, v in units.items() if v is not None})
        object.__setattr__(self, "units", tuple((k, v) for k, v in base.items() if v is not None))

    # ------------------------------------------------------------ properties
    @property
    def coefficients(self) -> tuple[tuple[str, Prior], ...]:
        """Every population coefficient besides typical values, Ω and σ.

        ``(name, prior)`` of each covariate coefficient and, with an adjusted
        size model, of ``size_fraction``.  Fixed priors are included: the
        one list that every reader of draws walks.
        """
        out = tuple((c.name, c.prior) for c in self.covariates)
        if self.size_fraction is not None:
            out += ((SIZE_FRACTION, self.size_fraction),)
        return out  # type: ignore[return-value]

    @property
    def parameters(self) -> tuple[str, ...]:
        """Structural parameter names, e.g. ``('CL', 'V1', 'Q', 'V2')`` (then those of formed analytes)."""
        names = structural_parameters(self.structure, self.absorption, self.lag)
        return elimination_parameters(names, self.elimination) + analyte_parameters(self.analytes)

    @property
    def formation(self) -> tuple[Any, ...]:
        """The kernel's formation of each formed analyte (``()`` for one analyte)."""
        return formation_of(self.analytes)

    @property
    def n_cmt(self) -> int:
        """Number of disposition compartments."""
        return int(self.structure[0])

    @property
    def typical_priors(self) -> dict[str, Prior]:
        """Prior of each typical value."""
        return dict(self.typical)

    @property
    def omega_priors(self) -> dict[str, Prior]:
        """Prior of each IIV SD."""
        return dict(self.omega)

    @property
    def sigma_names(self) -> tuple[str, ...]:
        """Residual-error magnitudes estimated by the error model(s)."""
        return _SIGMAS[self.error] + analyte_sigma_names(self.analytes, self.error, _SIGMAS)

    @property
    def unit(self) -> dict[str, str]:
        """Unit labels, including derived ones for each parameter and concentration."""
        u = dict(self.units)
        t, a, v = u.get("time") or "time", u["amount"], u["volume"]  # "L/time" until the unit is known
        out = dict(u)
        out["concentration"] = f"{a}/{v}"
        elim = elimination_units(t, a, v)
        for p in self.parameters:
            if p in elim:
                out[p] = elim[p]
            elif p.startswith("CL") or p.startswith("Q"):
                out[p] = f"{v}/{t}"
            elif p.startswith("V"):
                out[p] = v
            elif p == "KA":
                out[p] = f"1/{t}"
            elif p == "ALAG1":
                out[p] = t
        return out

    @property
    def time_unit(self) -> str | None:
        """The time unit, or ``None`` until given (:func:`~poppk.model.fit` takes the data's)."""
        return dict(self.units).get("time")

    def covariates_on(self, parameter: str) -> tuple[CovariateEffect, ...]:
        """Covariate effects acting on ``parameter``."""
        return tuple(c for c in self.covariates if c.parameter == parameter)

    # --------------------------------------------------------------- changes
    def with_covariate(self, effect: CovariateEffect) -> "ModelSpec":
        """A new spec with ``effect`` added (replacing one on the same pair)."""
        kept = tuple(c for c in self.covariates if c.name != effect.name)
        return dataclasses.replace(self, covariates=kept + (effect,))

    def with_size_covariate(
        self,
        descriptor: str,
        *,
        reference: float | None = None,
        parameters: Iterable[str] | None = None,
        exponents: Mapping[str, float | Prior] | None = None,
    ) -> "ModelSpec":
        """Swap the body-size descriptor of every power effect for ``descriptor``.

        Power effects on the body-size columns (TBW, WT, IBW, AIBW, LBW, FFM,
        BSA, BMI) are removed, then a power effect of ``descriptor`` is added to
        each of ``parameters`` (default: all clearances and volumes).  Use it to
        fit the same model with TBW, AIBW, LBW, ... as the size covariate.

        Parameters
        ----------
        descriptor
            Column name of the size descriptor (e.g. ``"AIBW"``).
        reference
            Reference value (``None``: dataset median, resolved at build).
        parameters
            Parameters to scale.
        exponents
            Fixed exponent or prior per parameter (e.g. ``{"CL": 0.75}`` fixes
            it); others get the default power prior.
        """
        new = power_size_effects(descriptor, size_targets(self.parameters, parameters), reference=reference,
                                 exponents=exponents)
        return dataclasses.replace(self, covariates=without_size_effects(self.covariates) + new, size_fraction=None)

    def with_size_model(
        self,
        *,
        total: str = "TBW",
        base: str = "IBW",
        fraction: Prior | float | None = None,
        reference: float | None = None,
        base_reference: float | None = None,
        parameters: Iterable[str] | None = None,
        exponents: Mapping[str, float | Prior] | None = None,
    ) -> "ModelSpec":
        """Scale on the adjusted size ``IBW + f·(TBW − IBW)`` with ``f`` estimated.

        The model that nests the usual descriptors: ``f = 1`` is TBW, ``f = 0``
        IBW, ``f = 0.4`` the label's AIBW.  Its posterior of ``f``
        (``size_fraction``) says which descriptor the PK data support, and
        its exponents are estimated with ``f``.  Power effects on body-size
        columns are replaced, as in :meth:`with_size_covariate`.

        Parameters
        ----------
        total, base
            Columns of the upper and lower size (default ``"TBW"``, ``"IBW"``).
        fraction
            Prior of ``f`` (default ``Prior.beta(1, 1)``, uniform on (0, 1)), or a
            number to hold it fixed.
        reference, base_reference
            Reference TBW and IBW (``None``: dataset medians, resolved at build).
        parameters
            Parameters to scale (default: all clearances and volumes).
        exponents
            Fixed exponent or prior per parameter; others Normal(0, 1).

        Examples
        --------
        >>> spec = ModelSpec(typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0})
        >>> spec = spec.with_size_model(parameters=("CL", "V1"))
        >>> [c.name for c in spec.covariates], spec.size_fraction
        (['beta_CL_SIZE', 'beta_V1_SIZE'], Prior('beta', alpha=1.0, beta=1.0))
        """
        new = adjusted_size_effects(total, base, size_targets(self.parameters, parameters), reference=reference,
                                    base_reference=base_reference, exponents=exponents)
        return dataclasses.replace(self, covariates=without_size_effects(self.covariates) + new, size_fraction=fraction)

    def resolved(self, covariate_table: Any) -> "ModelSpec":
        """A copy with every ``reference=None`` replaced by the covariate's median.

        Parameters
        ----------
        covariate_table
            ``PKData.covariates`` (DataFrame indexed by subject).
        """
        new = []
        for c in self.covariates:
            for col in c.columns:
                if col not in covariate_table.columns:
                    raise ModelSpecError(
                        f"covariate effect on {c.parameter}: column {col!r} is not in the dataset's "
                        f"covariates {list(covariate_table.columns)}; derive body-size columns with "
                        "PKData.with_size_descriptors()"
                    )
            if c.form != "categorical" and c.reference is None:
                ref = float(covariate_table[c.covariate].astype(float).median())
                c = dataclasses.replace(c, reference=round(ref, 4))
            if c.form == "adjusted" and c.base_reference is None:
                bref = float(covariate_table[c.base].astype(float).median())
                c = dataclasses.replace(c, base_reference=round(bref, 4))
            new.append(c)
        return dataclasses.replace(self, covariates=tuple(new))

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A plain-dict form (TOML/JSON-ready)."""
        return {
            "structure": self.structure,
            "absorption": self.absorption if self.absorption is not None else "none",
            "lag": self.lag,
            "typical": {k: p.to_dict() for k, p in self.typical},
            "covariates": [c.to_dict() for c in self.covariates],
            "iiv": list(self.iiv),
            "iiv_correlation": self.iiv_correlation,
            "omega": {k: p.to_dict() for k, p in self.omega},
            "lkj_eta": self.lkj_eta,
            "error": self.error,
            "sigma": {k: p.to_dict() for k, p in self.sigma},
            "blq": self.blq,
            "truncate_at_zero": self.truncate_at_zero,
            "parametrization": self.parametrization,
            "units": dict(self.units),
            **({"size_fraction": self.size_fraction.to_dict()} if self.size_fraction is not None else {}),
            **({"analytes": [a.to_dict() for a in self.analytes]} if self.analytes else {}),
            **({"elimination": self.elimination} if self.elimination != "linear" else {}),
            **({"time_varying": list(self.time_varying)} if self.time_varying else {}),
            **({"iov": {p: pr.to_dict() for p, pr in self.iov}, "occasion": self.occasion} if self.iov else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ModelSpecError`."""
        fields_ = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - fields_
        if extra:
            raise ModelSpecError(f"model spec: unknown keys {sorted(extra)}; valid keys: {sorted(fields_)}")
        kw = dict(d)
        if kw.get("absorption") in ("none", "", "iv"):
            kw["absorption"] = None
        if "covariates" in kw:
            kw["covariates"] = tuple(CovariateEffect.from_dict(c) for c in kw["covariates"])
        if "iiv" in kw:
            kw["iiv"] = tuple(kw["iiv"])
        if "time_varying" in kw:
            kw["time_varying"] = tuple(kw["time_varying"])
        return cls(**kw)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        """TOML text of :meth:`to_dict`."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> "ModelSpec":
        """Inverse of :meth:`to_toml`."""
        import tomllib

        return cls.from_dict(tomllib.loads(text))

    # ------------------------------------------------------------- describe
    def describe(self) -> str:
        """A readable table of the model and every prior with its 90% interval."""
        from poppk.model.describe import describe_spec

        return describe_spec(self)

    def __str__(self) -> str:
        return self.describe()
