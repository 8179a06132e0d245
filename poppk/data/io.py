"""Lossless JSON form of a :class:`~poppk.data.PKData` (saved with every fit).

Tables are written in pandas' ``orient="table"`` layout, which records the
schema (dtypes, index), with every float written by Python's ``repr`` (pandas'
own writer keeps 10-15 digits), so that a reloaded dataset is bit-identical to
the one fitted, without re-reading or re-validating the original file.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from poppk.data.pkdata import PKData

__all__ = ["pkdata_to_dict", "pkdata_from_dict"]

_TABLES = ("_records", "_doses", "_observations", "_excluded", "_covariates")


def pkdata_to_dict(data: PKData) -> dict[str, Any]:
    """A JSON-serialisable dict holding every table and attribute of ``data``."""
    out: dict[str, Any] = {"format": "poppk.PKData/1"}
    for name in _TABLES:
        frame: pd.DataFrame = getattr(data, name)
        out[name] = _table(frame)
    out["_source"] = data._source
    out["_sha256"] = data._sha256
    out["_column_map"] = dict(data._column_map)
    out["_record_covariates"] = list(data._record_covariates)
    out["_derived"] = list(data._derived)
    code = data._sex_female_code
    out["_sex_female_code"] = code.item() if hasattr(code, "item") else code
    out["_time_unit"] = data._time_unit
    return out


def _table(frame: pd.DataFrame) -> dict[str, Any]:
    """pandas' table-orient JSON, but with floats written by Python's ``repr`` (exact round trip)."""
    from pandas.io.json import build_table_schema

    schema = build_table_schema(frame, index=True, version=False)
    flat = frame.reset_index()
    names = [str(c) for c in flat.columns]
    rows = [dict(zip(names, (_plain(v) for v in row))) for row in flat.itertuples(index=False, name=None)]
    return {"schema": schema, "data": rows}


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and v != v:
        return None
    if hasattr(v, "item"):
        v = v.item()
        if isinstance(v, float) and v != v:
            return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def pkdata_from_dict(d: dict[str, Any]) -> PKData:
    """Inverse of :func:`pkdata_to_dict`."""
    if d.get("format") != "poppk.PKData/1":
        raise ValueError(f"not a saved poppk dataset (format {d.get('format')!r})")
    tables = {}
    for name in _TABLES:
        frame = pd.read_json(io.StringIO(json.dumps(d[name])), orient="table", precise_float=True)
        tables[name] = frame
    return PKData(
        **tables,
        _source=d["_source"],
        _sha256=d["_sha256"],
        _column_map=d["_column_map"],
        _record_covariates=tuple(d["_record_covariates"]),
        _derived=tuple(d["_derived"]),
        _sex_female_code=d["_sex_female_code"],
        _time_unit=d.get("_time_unit"),  # absent in fits saved before the unit was recorded
    )
