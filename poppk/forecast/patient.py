"""One new patient: covariates, dosing history and measured concentrations, checked.

:func:`make_patient` turns what a clinician knows about a patient -- her
covariates (``WT=82 HT=165 SEX=F ALB=3.6``), the doses she has had and any
measured concentrations (some possibly below the LLOQ) -- into a
:class:`PatientRecord`: the covariate values the fitted model needs (body-size
descriptors derived as for the fit, by
:func:`poppk.simulate.population.population_from_table`), and the patient's
records as a :class:`~poppk.data.PKData` read by the same
:func:`~poppk.data.read_nonmem` as a trial dataset, so that any dosing
history the data layer accepts (infusions by ``RATE`` or ``DUR``, ``ADDL`` /
``II``, steady state ``SS``, oral doses) is accepted here and predicted by the
same kernel.

Times are in the model's time unit unless ``time_unit`` says otherwise;
amounts and concentrations in the model's units.  An observation at the time
of a dose is taken just before it (a trough sample).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from poppk.bodysize import DESCRIPTORS, HEIGHT_RANGE_CM, WEIGHT_RANGE_KG, parse_sex
from poppk.data.size_values import descriptor_options
from poppk.errors import BodySizeError, ConfigError, DatasetError
from poppk.model.parameters import covariate_columns
from poppk.model.spec import ModelSpec

__all__ = ["PatientRecord", "make_patient", "parse_patient", "descriptor_options", "read_table"]

#: Dose-record columns a dosing history may have (besides TIME and AMT).
DOSE_COLUMNS: tuple[str, ...] = ("TIME", "AMT", "RATE", "DUR", "ADDL", "II", "SS", "CMT")
#: Observation columns.
OBS_COLUMNS: tuple[str, ...] = ("TIME", "DV", "BLQ", "LLOQ")
_SIZE_INPUTS = ("WT", "HT", "SEX")


@dataclass(frozen=True, eq=False)
class PatientRecord:
    """A checked new patient (build it with :func:`make_patient`).

    Attributes
    ----------
    covariates
        The patient's covariates, including derived body-size descriptors
        (one row).
    model_covariates
        ``{effect name: (1,) array}``: what the spec's covariate model reads.
    doses
        The dosing history after ``ADDL`` expansion (``TIME, AMT, DUR, SS, II,
        CMT``), model units.
    observations
        Measured concentrations (``TIME, DV, BLQ, LLOQ``), model units.
    data
        The patient's records as a :class:`~poppk.data.PKData` (ID 1).
    time_unit
        The model's time unit (every time above is in it).
    """

    covariates: pd.DataFrame
    model_covariates: dict[str, np.ndarray] = field(repr=False)
    doses: pd.DataFrame = field(repr=False)
    observations: pd.DataFrame = field(repr=False)
    data: Any = field(repr=False)
    time_unit: str = "h"

    @property
    def n_obs(self) -> int:
        """Number of measured concentrations."""
        return int(len(self.observations))

    def covariate(self, name: str) -> Any:
        """One covariate value."""
        return self.covariates[name].iloc[0]


def parse_patient(text: str) -> dict[str, Any]:
    """Covariates from ``"WT=82 HT=165 SEX=F ALB=3.6"`` (spaces or commas between items).

    Examples
    --------
    >>> parse_patient("WT=82 HT=165, SEX=F ALB=3.6")
    {'WT': 82.0, 'HT': 165.0, 'SEX': 'F', 'ALB': 3.6}
    """
    out: dict[str, Any] = {}
    for item in [t for t in re.split(r"[\s,;]+", str(text).strip()) if t]:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"patient: cannot read {item!r}; write NAME=VALUE items, e.g. 'WT=82 HT=165 SEX=F'")
        try:
            out[name.strip().upper()] = float(value)
        except ValueError:
            out[name.strip().upper()] = value.strip()
    if not out:
        raise ConfigError("patient: no covariates given; write e.g. 'WT=82 HT=165 SEX=F ALB=3.6'")
    return out


def read_table(source: Any, what: str) -> pd.DataFrame:
    """A doses or observations table from a DataFrame, a list of mappings, a mapping of columns or a CSV path."""
    if source is None:
        return pd.DataFrame()
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    elif isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        try:
            df = pd.read_csv(source, sep=None, engine="python")
        except (OSError, pd.errors.ParserError) as err:
            raise ConfigError(f"{what}: cannot read {source!r}: {err}") from None
    elif isinstance(source, Mapping):
        df = pd.DataFrame({k: np.atleast_1d(v) for k, v in source.items()})
    else:
        df = pd.DataFrame(list(source))
    df.columns = [str(c).strip().upper() for c in df.columns]
    return df


def _needed_columns(spec: ModelSpec) -> list[str]:
    cols: list[str] = []
    for c in spec.covariates:
        cols.extend(c.columns)
    return list(dict.fromkeys(cols))


def _check_covariates(spec: ModelSpec, cov: Mapping[str, Any], data: Any) -> dict[str, Any]:
    cov = {str(k).strip().upper(): v for k, v in cov.items()}
    if "TBW" in cov and "WT" not in cov:
        cov["WT"] = cov["TBW"]
    needed = _needed_columns(spec)
    derived = [c for c in needed if c in DESCRIPTORS and c not in cov]
    direct = [c for c in needed if c not in DESCRIPTORS or c in cov]
    missing = [c for c in direct if c not in cov]
    if derived:
        missing += [c for c in _SIZE_INPUTS if c not in cov]
    if missing:
        why = f" (the model uses {', '.join(needed)}" + (
            f"; {', '.join(derived)} derived from WT in kg, HT in cm and SEX)" if derived else ")")
        raise ConfigError(f"patient: missing covariate {', '.join(dict.fromkeys(missing))}{why}; "
                          f"given: {', '.join(cov) or 'none'}")
    if "WT" in cov:
        w = _number(cov["WT"], "WT")
        lo, hi = WEIGHT_RANGE_KG
        if not lo <= w <= hi:
            raise ConfigError(f"patient: WT = {cov['WT']!r} kg is impossible; valid: a body weight of {lo:g}-{hi:g} kg")
    if "HT" in cov:
        h = _number(cov["HT"], "HT")
        lo, hi = HEIGHT_RANGE_CM
        if not lo <= h <= hi:
            hint = " (it looks like metres: give cm)" if 0.5 <= h <= 2.5 else ""
            raise ConfigError(f"patient: HT = {cov['HT']!r} cm is impossible{hint}; valid: a height of {lo:g}-{hi:g} cm")
    if "SEX" in cov:
        code = getattr(data, "sex_female_code", None)
        try:
            parse_sex(np.asarray([cov["SEX"]], dtype=object), female_code=code)
        except (BodySizeError, ValueError) as err:
            raise ConfigError(f"patient: SEX = {cov['SEX']!r} is not a sex code ({err}); valid: F or M"
                              + (f", or the fit's codes (female = {code!r})" if code is not None else "")) from None
    for c in spec.covariates:
        if c.form == "categorical" or c.covariate in DESCRIPTORS:
            continue
        v = _number(cov[c.covariate], c.covariate)
        if not math.isfinite(v) or (c.form in ("power", "adjusted") and v <= 0):
            raise ConfigError(f"patient: {c.covariate} = {cov[c.covariate]!r} is not valid for the model's "
                              f"{c.form} effect on {c.parameter}; valid: a finite number"
                              + (" > 0" if c.form in ("power", "adjusted") else ""))
    return cov


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"patient: {name} = {value!r} is not a number") from None


def _warn_extrapolation(spec: ModelSpec, row: pd.Series, data: Any) -> None:
    table = getattr(data, "covariates", None)
    if table is None:
        return
    for col in _needed_columns(spec):
        if col not in table.columns or col not in row.index:
            continue
        ref = pd.to_numeric(table[col], errors="coerce").dropna()
        try:
            v = float(row[col])
        except (TypeError, ValueError):
            continue
        if len(ref) and not ref.min() <= v <= ref.max():
            warnings.warn(f"patient: {col} = {v:g} is outside the fitted subjects' range "
                          f"{ref.min():.3g}-{ref.max():.3g}; the forecast extrapolates the covariate model",
                          UserWarning, stacklevel=4)


def _scale_times(df: pd.DataFrame, cols: Sequence[str], factor: float) -> pd.DataFrame:
    for c in cols:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce") * factor
    return df


def _check_doses(doses: pd.DataFrame) -> pd.DataFrame:
    bad = [c for c in doses.columns if c not in DOSE_COLUMNS]
    if bad:
        raise ConfigError(f"doses: unknown column {bad[0]!r}; valid columns: {', '.join(DOSE_COLUMNS)}")
    for col in ("TIME", "AMT"):
        if col not in doses:
            raise ConfigError(f"doses: no {col} column; a dose needs TIME and AMT (and RATE or DUR for an infusion)")
    for i, r in doses.reset_index(drop=True).iterrows():
        t, a = pd.to_numeric(r["TIME"], errors="coerce"), pd.to_numeric(r["AMT"], errors="coerce")
        if not np.isfinite(t):
            raise DatasetError("dose time is missing or not a number", row=int(i) + 1, column="TIME",
                               value=r["TIME"], valid="a time in the model's unit")
        if not (np.isfinite(a) and a > 0):
            raise DatasetError("dose amount must be > 0", row=int(i) + 1, column="AMT", value=r["AMT"],
                               valid="a positive amount in the model's unit")
    return doses


def _check_observations(obs: pd.DataFrame, first_dose: float, unit: str) -> pd.DataFrame:
    """Check the sample table; ``first_dose`` is the first dose time in ``unit``, the samples' own unit."""
    bad = [c for c in obs.columns if c not in OBS_COLUMNS]
    if bad:
        raise ConfigError(f"observations: unknown column {bad[0]!r}; valid columns: {', '.join(OBS_COLUMNS)}")
    for col in ("TIME", "DV"):
        if col not in obs and not (col == "DV" and "BLQ" in obs):
            raise ConfigError(f"observations: no {col} column; an observation needs TIME and DV "
                              "(or BLQ=1 with LLOQ for a sample below the limit of quantification)")
    obs = obs.copy()
    if "BLQ" not in obs:
        obs["BLQ"] = 0
    obs["BLQ"] = pd.to_numeric(obs["BLQ"], errors="coerce").fillna(0).astype(int)
    if "LLOQ" not in obs:
        obs["LLOQ"] = np.nan
    if "DV" not in obs:
        obs["DV"] = np.nan
    for i, r in obs.reset_index(drop=True).iterrows():
        row = int(i) + 1
        t = pd.to_numeric(r["TIME"], errors="coerce")
        if not np.isfinite(t):
            raise DatasetError("sample time is missing or not a number", row=row, column="TIME", value=r["TIME"],
                               valid=f"a time in {unit}")
        if t <= first_dose:
            raise DatasetError(f"observation before any dose (the first dose is at {first_dose:g} {unit})", row=row,
                               column="TIME", value=r["TIME"], valid=f"a time after {first_dose:g} {unit}")
        if r["BLQ"] not in (0, 1):
            raise DatasetError("BLQ flag must be 0 or 1", row=row, column="BLQ", value=r["BLQ"], valid="0 or 1")
        if r["BLQ"] == 1:
            lloq = pd.to_numeric(r["LLOQ"], errors="coerce")
            if not (np.isfinite(lloq) and lloq > 0):
                raise DatasetError("a BLQ sample needs its LLOQ", row=row, column="LLOQ", value=r["LLOQ"],
                                   valid="the assay's lower limit of quantification, > 0")
            obs.loc[obs.index[i], "DV"] = lloq
        else:
            dv = pd.to_numeric(r["DV"], errors="coerce")
            if not np.isfinite(dv):
                raise DatasetError("concentration is missing or not a number", row=row, column="DV", value=r["DV"],
                                   valid="a concentration >= 0, or BLQ=1 with LLOQ")
            if dv < 0:
                raise DatasetError("negative concentration", row=row, column="DV", value=r["DV"],
                                   valid="a concentration >= 0, or BLQ=1 with LLOQ for a sample below the LLOQ")
    return obs


def make_patient(
    spec: ModelSpec,
    patient: Mapping[str, Any] | str,
    doses: Any = None,
    observations: Any = None,
    *,
    data: Any = None,
    time_unit: str | None = None,
    ibw_method: str | None = None,
    aibw_factor: float | None = None,
    female_code: Any = None,
) -> PatientRecord:
    """Check a new patient against a fitted spec.

    Parameters
    ----------
    spec
        The fitted (resolved) model spec.
    patient
        Covariates: a mapping or text (``"WT=82 HT=165 SEX=F ALB=3.6"``).  Every
        covariate the model uses is needed; body-size descriptors (``AIBW``,
        ``IBW``, ``LBW``, ``BSA``, ``BMI``) are derived from ``WT`` (kg),
        ``HT`` (cm) and ``SEX``.
    doses
        The dosing history: a DataFrame, a list of mappings, a mapping of
        columns or a CSV path, with ``TIME`` and ``AMT`` and optionally
        ``RATE``/``DUR`` (infusion), ``ADDL``/``II`` (repeated doses), ``SS``
        and ``CMT``.  ``None``: no doses (no observations either then).
    observations
        Measured concentrations: ``TIME`` and ``DV``; a sample below the
        limit of quantification has ``BLQ=1`` and its ``LLOQ``.
    data
        The fitted :class:`~poppk.data.PKData` (for the body-size options,
        the sex codes and a warning when a covariate is outside the fitted
        range); optional.
    time_unit
        Unit of the times given (default: the model's).
    ibw_method, aibw_factor, female_code
        Body-size options; default: those the fit's descriptors were derived
        with (:func:`descriptor_options`).

    Returns
    -------
    PatientRecord

    Raises
    ------
    ConfigError
        A covariate missing or impossible, an unknown column.
    DatasetError
        A bad dose or observation (naming its row, column and value), an
        observation before any dose, a negative concentration.
    """
    if getattr(spec, "elimination", "linear") != "linear":
        raise ConfigError(
            f"forecasting a patient with elimination {spec.elimination!r} is not supported yet: the forecast's "
            "exposures and dose search assume linear pharmacokinetics; forecast from a model with "
            "elimination='linear'"
        )
    if getattr(spec, "time_varying", ()) or getattr(spec, "iov", ()):
        raise ConfigError(
            "forecasting a patient with time-varying covariates or inter-occasion variability is not supported "
            "yet (her parameters would change between doses); forecast from a model without time_varying/iov"
        )
    if getattr(spec, "analytes", ()):
        raise ConfigError(
            f"forecasting a patient with a multi-analyte model ({', '.join(a.name for a in spec.analytes)}) is not "
            "supported yet: her observations would be read as the parent's; forecast from a fit of the parent alone "
            "(read_nonmem(..., dvid=<the parent's DVID>))"
        )
    from poppk.data import read_nonmem
    from poppk.simulate.population import population_from_table
    from poppk.simulate.schedule import convert_time

    model_unit = spec.time_unit
    if model_unit is None:
        raise ConfigError("the fit's spec has no time unit; forecast from a fitted spec (Fit.spec)")
    cov = parse_patient(patient) if isinstance(patient, str) else dict(patient)
    cov = _check_covariates(spec, cov, data)
    opts = descriptor_options(data)
    opts.update({k: v for k, v in (("ibw_method", ibw_method), ("aibw_factor", aibw_factor),
                                   ("female_code", female_code)) if v is not None})
    table = pd.DataFrame({k: [v] for k, v in cov.items()}, index=pd.RangeIndex(1, name="patient"))
    if {"WT", "HT", "SEX"} <= set(cov):
        pop = population_from_table(table, recompute_descriptors=True, **opts)
        table = pop.covariates
    elif "WT" in table and "TBW" not in table:
        table["TBW"] = float(table["WT"].iloc[0])
    try:
        model_cov = covariate_columns(spec, table)
    except KeyError as err:  # pragma: no cover - _check_covariates names them first
        raise ConfigError(f"patient: missing covariate {err}") from None
    _warn_extrapolation(spec, table.iloc[0], data)

    factor = 1.0 if time_unit is None else float(convert_time(1.0, time_unit, model_unit))
    d = read_table(doses, "doses")
    o = read_table(observations, "observations")
    if len(d) == 0:
        if len(o):
            raise ConfigError("observations were given without any dose; give the doses she had (doses=...)")
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in ("TIME", "AMT", "DUR", "SS", "II", "CMT")})
        return PatientRecord(table, model_cov, empty, pd.DataFrame(columns=list(OBS_COLUMNS)), None, model_unit)
    d = _scale_times(_check_doses(d), ("TIME", "DUR", "II"), factor)
    if "RATE" in d and factor != 1.0:
        d["RATE"] = pd.to_numeric(d["RATE"], errors="coerce") / factor
    first = float(pd.to_numeric(d["TIME"]).min())  # in the model's unit; observations are checked in theirs
    o = _scale_times(_check_observations(o, first / factor, time_unit or model_unit), ("TIME",), factor) if len(o) else o
    data_p = read_nonmem(_nonmem_table(d, o), covariates=[], time_unit=model_unit)
    obs = data_p.observations
    return PatientRecord(
        covariates=table,
        model_covariates=model_cov,
        doses=data_p.doses,
        observations=obs[["TIME", "DV", "BLQ", "LLOQ"]].reset_index(drop=True) if len(obs) else
        pd.DataFrame(columns=list(OBS_COLUMNS)),
        data=data_p,
        time_unit=model_unit,
    )


def _nonmem_table(doses: pd.DataFrame, obs: pd.DataFrame) -> pd.DataFrame:
    """The patient's records as a NONMEM-style table (observations before doses at equal times)."""
    d = doses.copy()
    d["EVID"], d["MDV"], d["DV"] = 1, 1, np.nan
    d["_ORDER"] = 1
    parts = [d]
    if len(obs):
        o = obs[["TIME", "DV", "BLQ", "LLOQ"]].copy()
        o["AMT"], o["EVID"], o["MDV"], o["_ORDER"] = 0.0, 0, 0, 0
        parts.append(o)
    df = pd.concat(parts, ignore_index=True, sort=False)
    df["TIME"] = pd.to_numeric(df["TIME"], errors="coerce")
    df = df.sort_values(["TIME", "_ORDER"], kind="stable").drop(columns="_ORDER").reset_index(drop=True)
    df.insert(0, "ID", 1)
    for c in ("RATE", "DUR", "ADDL", "II", "SS"):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0.0)
    if "CMT" in df:
        df["CMT"] = pd.to_numeric(df["CMT"], errors="coerce").fillna(1).astype(int)
    if "BLQ" in df:
        df["BLQ"] = pd.to_numeric(df["BLQ"], errors="coerce").fillna(0).astype(int)
    return df
