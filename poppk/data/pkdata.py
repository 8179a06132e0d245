"""The :class:`PKData` container: a checked NONMEM-style dataset.

A :class:`PKData` is made by :func:`poppk.data.read_nonmem` and never changes;
transforms (:meth:`PKData.with_size_descriptors`, :meth:`PKData.subset`)
return new objects.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import BodySizeError, DatasetError

__all__ = ["PKData", "DOSE_COLUMNS", "OBSERVATION_COLUMNS", "EXCLUDED_COLUMNS", "SIZE_DESCRIPTORS"]

#: Columns of :attr:`PKData.doses`, in order.
DOSE_COLUMNS: tuple[str, ...] = (
    "ID", "TIME", "AMT", "RATE", "DUR", "CMT", "SS", "II", "EVID", "SEGMENT", "ROW", "ADDL_INDEX",
)
#: Leading columns of :attr:`PKData.observations` (time-varying covariates follow).
OBSERVATION_COLUMNS: tuple[str, ...] = ("ID", "TIME", "DV", "CMT", "BLQ", "LLOQ", "SEGMENT", "ROW")
#: Columns of :attr:`PKData.excluded`.
EXCLUDED_COLUMNS: tuple[str, ...] = ("ROW", "ID", "TIME", "EVID", "REASON")
#: Per-subject columns added by :meth:`PKData.with_size_descriptors`.
SIZE_DESCRIPTORS: tuple[str, ...] = ("TBW", "IBW", "AIBW", "LBW", "BSA", "BMI")

_DESCRIPTOR_VALID = {
    "weight": "a body weight in kg, 0.3-400",
    "height": "a height in height_unit (cm by default), 30-250 cm",
    "sex": "'F'/'M' (or FEMALE/MALE, W/WOMAN/MAN), or numeric codes with female_code=",
}
_BODYSIZE_ARG = re.compile(r"^(weight|height|sex)\b")
_BODYSIZE_INDEX = re.compile(r" at index (\d+)")


@dataclass(frozen=True, eq=False, repr=False)
class PKData:
    """A checked population-PK dataset (build it with :func:`read_nonmem`).

    All tables are returned as copies, so changing them does not change the
    dataset.  Row numbers (``ROW``) are data-row numbers of the source:
    1 = first data row after the header (for a DataFrame, position + 1).

    Tables
    ------
    records
        Every record after canonicalisation, in file order: ``ROW, ID, TIME,
        DV, AMT, EVID, MDV, CMT, RATE, DUR, II, ADDL, SS, BLQ, LLOQ, SEGMENT``
        then the other columns of the source (covariates and the rest).  DV is
        as in the file; RATE and DUR are resolved on dose records (0 elsewhere).
    doses
        Dose events after ADDL expansion, see :data:`DOSE_COLUMNS`.
    observations
        Records that enter the likelihood (EVID 0, MDV 0), see
        :data:`OBSERVATION_COLUMNS`, followed by the covariates per record.
    excluded
        Records and events not used, with the reason (``ROW, ID, TIME, EVID,
        REASON``).
    covariates
        One row per subject (index ``ID``, file order): baseline covariates
        and any derived size descriptors.

    Notes
    -----
    *Baseline covariates.*  A covariate may vary over time; it is kept per
    record in :attr:`records` and :attr:`observations`.  The per-subject
    baseline in :attr:`covariates` is the **first non-missing value in the
    subject's records, in file order**.  In :attr:`observations` a missing
    covariate value is filled with the last value before it in the subject's
    records, or with the baseline if there is none.

    *Segments.*  Each EVID 3 (reset) or EVID 4 (reset and dose) record starts
    a new ``SEGMENT`` of the subject (0, 1, 2, ...).  Doses of one segment do
    not affect observations of another; time may restart at a reset.
    """

    _records: pd.DataFrame
    _doses: pd.DataFrame
    _observations: pd.DataFrame
    _excluded: pd.DataFrame
    _covariates: pd.DataFrame
    _source: str = "<DataFrame>"
    _sha256: str | None = None
    _column_map: Mapping[str, str] = field(default_factory=dict)
    _record_covariates: tuple[str, ...] = ()
    _derived: tuple[str, ...] = ()
    _sex_female_code: Any = None
    _time_unit: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_column_map", MappingProxyType(dict(self._column_map)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # pickled (dask workers, process pools) by its fields; the read-only column map as a plain dict
        values = [getattr(self, f.name) for f in fields(self)]
        return (type(self), tuple(dict(v) if isinstance(v, MappingProxyType) else v for v in values))

    # ------------------------------------------------------------------ identity

    @property
    def source(self) -> str:
        """Path of the source file (absolute), or ``"<DataFrame>"``."""
        return self._source

    @property
    def sha256(self) -> str | None:
        """SHA-256 hex digest of the file bytes, or ``None`` for a DataFrame."""
        return self._sha256

    @property
    def column_map(self) -> dict[str, str]:
        """Column name as written in the source -> name used (kept columns only)."""
        return dict(self._column_map)

    @property
    def sex_female_code(self) -> Any:
        """The female sex code: given to :func:`read_nonmem`, or used by
        :meth:`with_size_descriptors` (the default for later descriptors and
        for virtual populations drawn from these data)."""
        return self._sex_female_code

    @property
    def time_unit(self) -> str | None:
        """The unit of TIME given to :func:`read_nonmem` (``"h"``, ``"day"``, ...), or ``None``."""
        return self._time_unit

    # ------------------------------------------------------------------ tables

    @property
    def subjects(self) -> np.ndarray:
        """Subject IDs in file order (1-D array, original dtype)."""
        out = self._covariates.index.to_numpy().copy()
        out.setflags(write=False)
        return out

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self._covariates.index)

    @property
    def records(self) -> pd.DataFrame:
        """All records after canonicalisation, with their ``ROW`` (a copy)."""
        return self._records.copy()

    @property
    def doses(self) -> pd.DataFrame:
        """Dose events after ADDL expansion (a copy).

        Columns :data:`DOSE_COLUMNS`: ``ID`` (source dtype), ``TIME, AMT, RATE,
        DUR, II`` (float64), ``CMT, SS, EVID, SEGMENT, ROW, ADDL_INDEX``
        (int64).  ``ROW`` is the source record; doses generated by ADDL share
        it and have ``ADDL_INDEX`` k = 1..ADDL (0 for the record itself), EVID 1
        and SS 0 (only the source dose keeps its SS flag).  ``RATE`` is 0 for a
        bolus, ``DUR = AMT/RATE`` for an infusion.  Sorted by subject (file
        order), SEGMENT, TIME, ROW, ADDL_INDEX.
        """
        return self._doses.copy()

    @property
    def observations(self) -> pd.DataFrame:
        """Observations entering the likelihood (a copy).

        Columns :data:`OBSERVATION_COLUMNS` then one column per covariate:
        ``ID`` (source dtype), ``TIME, DV, LLOQ`` (float64), ``CMT, SEGMENT,
        ROW`` (int64), ``BLQ`` (bool).  On a BLQ row ``DV`` equals ``LLOQ``
        (the censoring limit); ``LLOQ`` is NaN where the file has none.
        In file order (subject, then time within segment).
        """
        return self._observations.copy()

    @property
    def excluded(self) -> pd.DataFrame:
        """Records and dose events not used, with a reason (a copy)."""
        return self._excluded.copy()

    @property
    def covariates(self) -> pd.DataFrame:
        """Baseline covariates, one row per subject, index ``ID`` (a copy)."""
        return self._covariates.copy()

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """Names of the columns of :attr:`covariates`."""
        return tuple(self._covariates.columns)

    @property
    def n_dose_records(self) -> int:
        """Number of dose records in the source (EVID 1 or 4), before ADDL expansion."""
        return int(self._records["EVID"].isin((1, 4)).sum())

    def __repr__(self) -> str:
        return (
            f"PKData(source={self._source!r}, subjects={self.n_subjects}, "
            f"dose_events={len(self._doses)}, observations={len(self._observations)}, "
            f"blq={int(self._observations['BLQ'].sum())}, excluded={len(self._excluded)}, "
            f"covariates={list(self._covariates.columns)}, time_unit={self._time_unit!r})"
        )

    # ------------------------------------------------------------------ transforms

    def subset(self, ids: Iterable[Any]) -> PKData:
        """Return a new PKData with only the subjects ``ids`` (file order kept).

        Raises
        ------
        DatasetError
            If an ID is not in the dataset.
        """
        wanted = list(ids)
        known = pd.Index(self._covariates.index)
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise DatasetError(
                f"unknown subject ID(s): {', '.join(map(str, unknown[:10]))}",
                column="ID",
                valid=f"IDs from .subjects (e.g. {', '.join(map(str, known[:5]))})",
            )

        def keep(frame: pd.DataFrame) -> pd.DataFrame:
            return frame.loc[frame["ID"].isin(wanted)].reset_index(drop=True)

        covariates = self._covariates.loc[known.isin(wanted)]
        return dataclasses.replace(
            self,
            _records=keep(self._records),
            _doses=keep(self._doses),
            _observations=keep(self._observations),
            _excluded=keep(self._excluded),
            _covariates=covariates.copy(),
        )

    def with_size_descriptors(
        self,
        *,
        weight: str = "WT",
        height: str = "HT",
        sex: str = "SEX",
        female_code: float | str | None = None,
        ibw_method: str = "devine",
        aibw_factor: float = 0.4,
        lbw_method: str = "janmahasatian",
        bsa_method: str = "dubois",
        height_unit: str = "cm",
    ) -> PKData:
        """Return a new PKData with body-size descriptors per subject.

        Adds ``TBW`` (copy of the baseline weight), ``IBW``, ``AIBW``, ``LBW``,
        ``BSA`` and ``BMI`` to :attr:`covariates`, computed from the baseline
        weight, height and sex with :func:`poppk.bodysize.size_descriptors`.
        Every record's weight, height (in ``height_unit``) and sex code is
        checked with the same rules, not only the baseline.  The female code
        used is kept as :attr:`sex_female_code`.

        Parameters
        ----------
        weight, height, sex
            Covariate names (case-insensitive; aliases such as ``WEIGHT`` and
            the names as written in the file are accepted).
        female_code
            Code of the sex column meaning female; needed for numeric codes.
            Defaults to the ``sex_female_code`` given to :func:`read_nonmem`.
        ibw_method, aibw_factor, lbw_method, bsa_method, height_unit
            Passed to :func:`poppk.bodysize.size_descriptors`.

        Returns
        -------
        PKData
            A new dataset; this one is unchanged.

        Raises
        ------
        DatasetError
            If a column is missing (the message lists the available ones), a
            subject's baseline value is invalid (the message names the
            subject), or a later record's value is (the message names the row).
        """
        from poppk.bodysize import size_descriptors

        names = {"weight": self._resolve(weight), "height": self._resolve(height),
                 "sex": self._resolve(sex)}
        base = self._covariates
        code = self._sex_female_code if female_code is None else female_code
        inputs = {
            "weight": base[names["weight"]].to_numpy(dtype=float, na_value=np.nan),
            "height": base[names["height"]].to_numpy(dtype=float, na_value=np.nan),
            "sex": base[names["sex"]].to_numpy(dtype=object),
        }
        if code is None and pd.api.types.is_numeric_dtype(base[names["sex"]].dtype):
            levels = ", ".join(f"{x:g}" for x in sorted(base[names["sex"]].dropna().unique()))
            raise DatasetError(
                f"covariate {names['sex']} holds numeric codes ({levels}), which are ambiguous",
                column=self._file_name(names["sex"]),
                valid="female_code=<the code meaning female> (or sex_female_code= in "
                "read_nonmem), or text codes 'F'/'M'",
            )
        options = dict(ibw_method=ibw_method, lbw_method=lbw_method, bsa_method=bsa_method,
                       aibw_factor=aibw_factor, height_unit=height_unit, female_code=code)
        try:
            values = size_descriptors(inputs["weight"], inputs["height"], inputs["sex"], **options)
        except BodySizeError as err:
            raise self._subject_error(err, names, inputs) from err
        from poppk.data.size_values import check_descriptor_inputs

        inverse = {v: k for k, v in self._column_map.items()}
        check_descriptor_inputs(self._records, names, inverse, height_unit=height_unit, female_code=code,
                                baseline_sex=inputs["sex"])
        table = base.drop(columns=[c for c in SIZE_DESCRIPTORS if c in self._derived])
        clash = [c for c in SIZE_DESCRIPTORS if c in table.columns]
        if clash:
            raise DatasetError(
                f"the dataset already has a covariate named {clash[0]}",
                column=self._file_name(clash[0]),
                valid="rename or drop that column (read_nonmem(columns=..., drop=...)) "
                "so the derived descriptor can be added",
            )
        table = table.copy()
        table["TBW"] = inputs["weight"]
        for key in SIZE_DESCRIPTORS[1:]:
            table[key] = np.asarray(values[key], dtype=float)
        derived = tuple(dict.fromkeys((*self._derived, *SIZE_DESCRIPTORS)))
        return dataclasses.replace(self, _covariates=table, _derived=derived, _sex_female_code=code)

    def _resolve(self, name: str) -> str:
        """Find a covariate by name, alias or name as written in the file."""
        from poppk.data.reader import ALIASES

        cols = list(self._covariates.columns)
        key = str(name).strip().upper()
        by_file = {k.strip().upper(): v for k, v in self._column_map.items()}
        for candidate in (key, ALIASES.get(key), by_file.get(key)):
            if candidate in cols:
                return candidate
        raise DatasetError(
            f"covariate {name!r} is not in the dataset",
            column=str(name),
            valid=f"one of the covariates: {', '.join(cols) or '(none)'}",
        )

    def _file_name(self, name: str) -> str:
        inverse = {v: k for k, v in self._column_map.items()}
        return inverse.get(name, name)

    def _subject_error(
        self, err: BodySizeError, names: Mapping[str, str], inputs: Mapping[str, np.ndarray]
    ) -> BodySizeError | DatasetError:
        """Turn a :class:`BodySizeError` into a DatasetError naming the subject."""
        text = str(err)
        arg = _BODYSIZE_ARG.match(text)
        index = _BODYSIZE_INDEX.search(text)
        if index is None:
            return err  # not about one subject (e.g. an unknown method name)
        position = int(index.group(1))
        subject = self._covariates.index[position]
        column = names[arg.group(1)] if arg else None
        value = inputs[arg.group(1)][position] if arg else None
        if isinstance(value, np.generic):
            value = value.item()
        rows = self._records.loc[self._records["ID"] == subject, "ROW"]
        detail = _BODYSIZE_INDEX.sub("", text, count=1)
        return DatasetError(
            f"subject {subject}: cannot derive size descriptors: {detail}",
            row=int(rows.iloc[0]) if len(rows) else None,
            column=self._file_name(column) if column else None,
            value=value,
            valid=_DESCRIPTOR_VALID.get(arg.group(1) if arg else "", "valid body-size values")
            + " (the baseline is the first non-missing value in the subject's records)",
        )

    # ------------------------------------------------------------------ export

    def to_xarray(self) -> xr.Dataset:
        """Return the dataset as an :class:`xarray.Dataset` with named dimensions.

        Dimensions ``id`` (coordinate: subject IDs; one variable per
        covariate), ``obs`` (``obs_id, obs_index, time, dv, blq, lloq, cmt,
        segment, row``) and ``dose`` (``dose_id, dose_index, dose_time, amt,
        rate, dur, dose_cmt, ss, ii, evid, dose_segment, dose_row,
        addl_index``).  ``obs_index`` and ``dose_index`` are the positions of
        the subject on ``id`` (0-based).  Attributes ``source`` and ``sha256``
        (an empty string for a DataFrame source).
        """
        ids = self._covariates.index.to_numpy()
        position = {v: k for k, v in enumerate(ids)}
        obs, dose = self._observations, self._doses
        data_vars: dict[str, tuple[str, np.ndarray]] = {}
        for name in self._covariates.columns:
            data_vars[name] = ("id", _plain(self._covariates[name]))
        data_vars.update({
            "obs_id": ("obs", obs["ID"].to_numpy()),
            "obs_index": ("obs", obs["ID"].map(position).to_numpy(dtype=np.int64)),
            "time": ("obs", obs["TIME"].to_numpy(dtype=float)),
            "dv": ("obs", obs["DV"].to_numpy(dtype=float)),
            "blq": ("obs", obs["BLQ"].to_numpy(dtype=bool)),
            "lloq": ("obs", obs["LLOQ"].to_numpy(dtype=float)),
            "cmt": ("obs", obs["CMT"].to_numpy(dtype=np.int64)),
            "segment": ("obs", obs["SEGMENT"].to_numpy(dtype=np.int64)),
            "row": ("obs", obs["ROW"].to_numpy(dtype=np.int64)),
            "dose_id": ("dose", dose["ID"].to_numpy()),
            "dose_index": ("dose", dose["ID"].map(position).to_numpy(dtype=np.int64)),
            "dose_time": ("dose", dose["TIME"].to_numpy(dtype=float)),
            "amt": ("dose", dose["AMT"].to_numpy(dtype=float)),
            "rate": ("dose", dose["RATE"].to_numpy(dtype=float)),
            "dur": ("dose", dose["DUR"].to_numpy(dtype=float)),
            "dose_cmt": ("dose", dose["CMT"].to_numpy(dtype=np.int64)),
            "ss": ("dose", dose["SS"].to_numpy(dtype=np.int64)),
            "ii": ("dose", dose["II"].to_numpy(dtype=float)),
            "evid": ("dose", dose["EVID"].to_numpy(dtype=np.int64)),
            "dose_segment": ("dose", dose["SEGMENT"].to_numpy(dtype=np.int64)),
            "dose_row": ("dose", dose["ROW"].to_numpy(dtype=np.int64)),
            "addl_index": ("dose", dose["ADDL_INDEX"].to_numpy(dtype=np.int64)),
        })
        return xr.Dataset(
            data_vars,
            coords={"id": ids, "obs": np.arange(len(obs)), "dose": np.arange(len(dose))},
            attrs={"source": self._source, "sha256": self._sha256 or ""},
        )

    # ------------------------------------------------------------------ summaries

    def covariate_summary(self) -> pd.DataFrame:
        """Describe each covariate (baseline values, one row per covariate).

        Returns
        -------
        pandas.DataFrame
            Columns ``covariate``; ``kind`` (``"numeric"``, ``"categorical"``
            or ``"derived"``); ``n`` (subjects with a baseline value);
            ``missing`` (records where the value is missing; 0 for derived);
            ``time_varying`` (value changes within a subject); ``min``,
            ``median``, ``max`` of the baselines (numeric); ``counts`` of the
            baseline levels (categorical, e.g. ``"F: 60, M: 60"``).
        """
        rows = [self._describe(name) for name in self._covariates.columns]
        columns = ["covariate", "kind", "n", "missing", "time_varying",
                   "min", "median", "max", "counts"]
        return pd.DataFrame(rows, columns=columns)

    def _describe(self, name: str) -> dict[str, Any]:
        base = self._covariates[name]
        derived = name in self._derived and name not in self._record_covariates
        numeric = pd.api.types.is_numeric_dtype(base.dtype)
        out: dict[str, Any] = {
            "covariate": name,
            "kind": "derived" if derived else ("numeric" if numeric else "categorical"),
            "n": int(base.notna().sum()),
            "missing": 0,
            "time_varying": False,
            "min": np.nan, "median": np.nan, "max": np.nan, "counts": "",
        }
        if name in self._records.columns and not derived:
            per_record = self._records[name]
            out["missing"] = int(per_record.isna().sum())
            levels = per_record.groupby(self._records["ID"], sort=False).nunique()
            out["time_varying"] = bool((levels > 1).any())
        if numeric:
            values = base.to_numpy(dtype=float, na_value=np.nan)
            out.update(min=float(np.nanmin(values)), median=float(np.nanmedian(values)),
                       max=float(np.nanmax(values)))
        else:
            counts = base.value_counts(sort=False).sort_index()
            out["counts"] = ", ".join(f"{k}: {v}" for k, v in counts.items())
        return out


def _plain(series: pd.Series) -> np.ndarray:
    """A NumPy array for xarray: float for numbers, str objects for text."""
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return series.astype(object).where(series.notna(), "").astype(str).to_numpy(dtype=object)
