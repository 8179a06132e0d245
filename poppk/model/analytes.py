"""Several analytes in one model: the parent and what it forms (payload, metabolite).

A :class:`ModelSpec` with ``analytes`` fits the concentrations of a parent
(e.g. an antibody-drug conjugate) and of analytes formed from it (its payload,
the payload's metabolite) jointly, with one set of random effects per
subject.  The first :class:`Analyte` is the parent: it uses the spec's
structure, parameters and error model.  Every later one is an analyte formed
from an earlier one (see :mod:`poppk.pk.analytes` for the equations), with one
compartment and apparent parameters ``CL_<name>`` and ``V_<name>``, or two
(``structure="2cmt"``: also ``Q_<name>`` and ``V2_<name>``) -- typical
values, IIV and covariates on them are declared like any other parameter --
and its own residual error (magnitudes ``prop_<name>``, ``add_<name>`` or
``exp_<name>``).  Observations are mapped to analytes by their ``DVID``
(``read_nonmem(..., dvid=[1, 2, 3])`` keeps them).

Example (a conjugate in µg/mL and its payload in ng/mL, 3.5 payloads of
molar mass 0.78 kDa per 150 kDa conjugate: scale = 3.5 × 0.78/150 × 1000)::

    spec = ModelSpec(
        structure="2cmt",
        typical={"CL": 0.5, "V1": 3, "Q": 0.5, "V2": 2, "CL_DM4": 300, "V_DM4": 600},
        analytes=[{"name": "ADC", "dvid": 1},
                  {"name": "DM4", "dvid": 2, "source": "ADC", "scale": 18.2, "error": "combined"}],
        iiv=("CL", "V1", "CL_DM4"),
    )
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from poppk.errors import ModelSpecError
from poppk.pk.analytes import Formation

__all__ = ["Analyte", "normalise_analytes", "analyte_parameters", "analyte_sigma_names",
           "formation_of", "target_analyte", "error_terms", "sigma_base", "sigma_analyte", "observation_analytes", "analyte_unit",
           "MAX_ANALYTES"]

MAX_ANALYTES = 6
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class Analyte:
    """One analyte of a multi-analyte model.

    Parameters
    ----------
    name
        Letters and digits, starting with a letter (``"ADC"``, ``"DM4"``); it
        names the analyte's parameters (``CL_DM4``, ``V_DM4``) and residual
        magnitudes (``prop_DM4``).
    dvid
        The ``DVID`` of its observation records.
    source
        ``None`` for the parent (the first analyte, and only it); otherwise the
        name of an earlier analyte it is formed from.
    scale
        Mass conversion from the source's amount unit to this analyte's (e.g.
        molar ratio × molar-mass ratio × unit factor); 1 when the units match.
    error
        Its residual-error model (``None``: the spec's ``error``).  Additive,
        proportional and combined may be mixed across analytes; the exponential
        model must then be used by all of them.
    unit
        Label of its concentration unit (e.g. ``"ng/mL"``; ``None``: the
        spec's concentration unit), for tables and figures.  The numbers are
        converted by ``scale``, not by the label.
    structure
        A formed analyte's disposition: ``"1cmt"`` (``CL_<name>``,
        ``V_<name>``) or ``"2cmt"`` (also ``Q_<name>`` and ``V2_<name>``, a
        peripheral compartment).  The parent's is the spec's ``structure``.
    """

    name: str
    dvid: Any
    source: str | None = None
    scale: float = 1.0
    error: str | None = None
    unit: str | None = None
    structure: str = "1cmt"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (TOML/JSON-ready)."""
        out: dict[str, Any] = {"name": self.name, "dvid": self.dvid}
        if self.source is not None:
            out["source"] = self.source
            out["scale"] = self.scale
        if self.error is not None:
            out["error"] = self.error
        if self.unit is not None:
            out["unit"] = self.unit
        if self.structure != "1cmt":
            out["structure"] = self.structure
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Analyte":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ModelSpecError`."""
        extra = set(d) - {"name", "dvid", "source", "scale", "error", "unit", "structure"}
        if extra:
            raise ModelSpecError(
                f"analyte: unknown keys {sorted(extra)}; valid: name, dvid, source, scale, error, unit, structure")
        if "name" not in d or "dvid" not in d:
            raise ModelSpecError(f"analyte {dict(d)!r}: needs 'name' and 'dvid'")
        return cls(**dict(d))


def _dvid_key(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).strip()


def normalise_analytes(raw: Any, error: str, error_models: Sequence[str]) -> tuple[Analyte, ...]:
    """Validate and freeze a spec's ``analytes`` (``()`` for a one-analyte model)."""
    if not raw:
        return ()
    items = tuple(a if isinstance(a, Analyte) else Analyte.from_dict(a) for a in raw)
    if len(items) < 2:
        raise ModelSpecError(
            "analytes: declare the parent and at least one formed analyte (a single analyte needs no "
            "'analytes'; select its observations with read_nonmem(dvid=...))"
        )
    if len(items) > MAX_ANALYTES:
        raise ModelSpecError(f"analytes: at most {MAX_ANALYTES}, got {len(items)}")
    names: list[str] = []
    dvids: list[Any] = []
    out = []
    for i, a in enumerate(items):
        if not isinstance(a.name, str) or not _NAME.match(a.name):
            raise ModelSpecError(f"analyte {i + 1}: name {a.name!r} must be letters and digits, starting with a letter")
        if a.name in names:
            raise ModelSpecError(f"analyte name {a.name!r} is given twice")
        key = _dvid_key(a.dvid)
        if key in dvids:
            raise ModelSpecError(f"analyte {a.name!r}: DVID {a.dvid!r} is already used by {names[dvids.index(key)]!r}")
        if i == 0:
            if a.source is not None:
                raise ModelSpecError(f"the first analyte ({a.name!r}) is the parent: it has no source")
        elif a.source not in names:
            raise ModelSpecError(
                f"analyte {a.name!r}: source {a.source!r} must be an earlier analyte, one of {names}"
            )
        scale = float(a.scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ModelSpecError(f"analyte {a.name!r}: scale must be a positive number, got {a.scale!r}")
        if a.error is not None and a.error not in error_models:
            raise ModelSpecError(f"analyte {a.name!r}: error {a.error!r} is not one of {tuple(error_models)}")
        if a.structure not in ("1cmt", "2cmt"):
            raise ModelSpecError(f"analyte {a.name!r}: structure {a.structure!r}; valid: '1cmt', '2cmt'")
        if i == 0 and a.structure != "1cmt":
            raise ModelSpecError(
                f"the parent analyte {a.name!r} uses the spec's structure; set 'structure' on the spec")
        if i == 0 and a.error is not None and a.error != error:
            raise ModelSpecError(
                f"the parent analyte {a.name!r} uses the spec's error model ({error!r}); set 'error' on the spec"
            )
        names.append(a.name)
        dvids.append(key)
        out.append(Analyte(a.name, a.dvid, a.source, scale, a.error if i else None,
                           None if a.unit is None else str(a.unit), a.structure))
    forms = [error] + [a.error or error for a in out[1:]]
    if "exponential" in forms and len(set(forms)) > 1:
        raise ModelSpecError(
            f"analytes' error models {forms}: the exponential model (on log DV) cannot be mixed with "
            "additive/proportional/combined ones; use it for every analyte or for none"
        )
    return tuple(out)


def analyte_parameters(analytes: Sequence[Analyte]) -> tuple[str, ...]:
    """Structural parameters the formed analytes add: ``CL_<name>``, ``V_<name>`` each (and ``Q_<name>``,
    ``V2_<name>`` for a two-compartment one)."""
    out: tuple[str, ...] = ()
    for a in analytes[1:]:
        out += (f"CL_{a.name}", f"V_{a.name}")
        if a.structure == "2cmt":
            out += (f"Q_{a.name}", f"V2_{a.name}")
    return out


def analyte_sigma_names(analytes: Sequence[Analyte], error: str, sigmas: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Residual magnitudes of the formed analytes: ``<kind>_<name>``."""
    out: tuple[str, ...] = ()
    for a in analytes[1:]:
        out += tuple(f"{s}_{a.name}" for s in sigmas[a.error or error])
    return out


def sigma_base(name: str) -> str:
    """The kind of a residual magnitude: ``"prop_DM4"`` -> ``"prop"``."""
    return name.split("_", 1)[0]


def sigma_analyte(spec: Any, name: str) -> int:
    """Index of the analyte a residual magnitude belongs to: ``"prop"`` -> 0, ``"prop_DM4"`` -> DM4's."""
    suffix = name.partition("_")[2]
    return [a.name for a in spec.analytes].index(suffix) if suffix else 0


def formation_of(analytes: Sequence[Analyte]) -> tuple[Formation, ...]:
    """The kernel's :class:`~poppk.pk.analytes.Formation` of each formed analyte."""
    names = [a.name for a in analytes]
    out = []
    for a in analytes[1:]:
        src = names.index(a.source)  # type: ignore[arg-type]
        src_cl = "CL" if src == 0 else f"CL_{a.source}"
        two = a.structure == "2cmt"
        out.append(Formation(src, f"CL_{a.name}", f"V_{a.name}", src_cl, float(a.scale),
                             f"Q_{a.name}" if two else None, f"V2_{a.name}" if two else None))
    return tuple(out)


def target_analyte(spec: Any, name: str | None) -> tuple[int, tuple[Formation, ...]]:
    """Index and formation chain of the analyte called ``name`` (``None``: the parent).

    For simulations and exposure metrics of one analyte of a fitted model:
    index 0 is the parent, ``k`` the k-th formed analyte.

    Raises
    ------
    ModelSpecError
        When ``name`` is none of the spec's analytes (naming the valid ones).
    """
    analytes = getattr(spec, "analytes", ())
    names = [a.name for a in analytes]
    if name is None or (names and name == names[0]):
        return 0, formation_of(analytes) if analytes else ()
    if name not in names:
        valid = ", ".join(names) if names else "none: the model has one analyte (leave it unset)"
        raise ModelSpecError(f"analyte {name!r} is not an analyte of the model; valid: {valid}")
    return names.index(name), formation_of(analytes)


def error_terms(spec: Any, sigma: Mapping[str, Any], obs_analyte: Any) -> tuple[dict[str, Any], str]:
    """Residual magnitudes per observation and the error model that applies them.

    Parameters
    ----------
    spec
        The model spec.
    sigma
        ``{name: value}`` of every :attr:`ModelSpec.sigma_names` (scalars,
        tensors, or NumPy arrays broadcastable against the observation axis,
        e.g. ``(n_draws, 1)``).
    obs_analyte
        Analyte index of each observation (``None`` or unused for a
        one-analyte spec).

    Returns
    -------
    sigma_obs, error
        For a one-analyte spec, ``sigma`` and ``spec.error`` unchanged.  With
        formed analytes, ``{"add", "prop"}`` (or ``{"exp"}``) per observation
        and the model that reproduces every analyte's own one (``"combined"``
        with a zero magnitude where an analyte has none, or ``"exponential"``).
    """
    analytes = getattr(spec, "analytes", ())
    if not analytes:
        return dict(sigma), spec.error
    forms = [spec.error] + [a.error or spec.error for a in analytes[1:]]
    if len(set(forms)) == 1 and forms[0] in ("additive", "proportional", "exponential"):
        error = forms[0]
    else:
        error = "exponential" if forms[0] == "exponential" else "combined"
    kinds = {"additive": ("add",), "proportional": ("prop",), "combined": ("add", "prop"),
             "exponential": ("exp",)}[error]
    suffix = [""] + [f"_{a.name}" for a in analytes[1:]]
    out: dict[str, Any] = {}
    for kind in kinds:
        acc: Any = None
        for i in range(len(analytes)):
            name = f"{kind}{suffix[i]}"
            if name not in sigma:
                continue
            term = sigma[name] * _indicator(obs_analyte, i)
            acc = term if acc is None else acc + term
        out[kind] = acc if acc is not None else 0.0 * _indicator(obs_analyte, 0)
    return out, error


def _indicator(obs_analyte: Any, i: int) -> Any:
    from poppk.pk.ops import is_tensor

    if is_tensor(obs_analyte):
        import pytensor.tensor as pt

        return pt.cast(pt.eq(obs_analyte, i), "float64")
    return (np.asarray(obs_analyte) == i).astype(float)


def observation_analytes(spec: Any, observations: Any) -> np.ndarray | None:
    """Analyte index of every observation, from its ``DVID`` (``None`` for a one-analyte spec).

    Raises
    ------
    ModelSpecError
        When the spec declares analytes but the observations carry no DVID, or an
        observation's DVID is none of theirs (naming the row and value); when the
        spec declares none but the observations hold several DVIDs.
    """
    from poppk.data.observation_type import dvid_key

    analytes = getattr(spec, "analytes", ())
    has = "DVID" in observations.columns
    if not analytes:
        if has and observations["DVID"].nunique(dropna=False) > 1:
            values = sorted(map(str, observations["DVID"].unique()))
            raise ModelSpecError(
                f"the observations hold several DVIDs ({', '.join(values)}) but the model has one analyte; "
                "declare them with ModelSpec(analytes=[...]) or read one with read_nonmem(dvid=<value>)"
            )
        return None
    if not has:
        raise ModelSpecError(
            f"the model has analytes {[a.name for a in analytes]} told apart by DVID, but the observations carry "
            "no DVID: read the data with read_nonmem(..., dvid=[" + ", ".join(repr(a.dvid) for a in analytes) + "])"
        )
    keys = {dvid_key(a.dvid): i for i, a in enumerate(analytes)}
    values = observations["DVID"].tolist()
    out = np.empty(len(values), dtype=np.int64)
    for j, value in enumerate(values):
        k = dvid_key(value)
        if k not in keys:
            row = int(observations["ROW"].iloc[j])
            raise ModelSpecError(
                f"row {row}: observation with DVID {value!r}, which is no analyte of the model; valid: "
                + ", ".join(f"{a.dvid!r} ({a.name})" for a in analytes)
            )
        out[j] = keys[k]
    return out


def analyte_unit(spec: Any, name: str | None) -> str:
    """Concentration unit label of an analyte (the spec's for the parent or an analyte without one)."""
    default = spec.unit.get("concentration", "")
    return next((a.unit for a in spec.analytes if a.name == name and a.unit), default)
