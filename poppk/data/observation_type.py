"""What an observation record measures: the ``DVID`` and ``CMT`` of observations.

A model fits one analyte observed in the central compartment, unless it
declares several (``ModelSpec(analytes=...)``, read with ``dvid=[...]``).  A
dataset that says otherwise -- observations of several analytes told apart by
``DVID`` that the model does not declare, or an observation ``CMT`` that names
a compartment other than the central one -- would be fitted as if every
observation were the same concentration, which is wrong output from valid input.  These checks either keep what is unambiguous
or refuse with a :class:`~poppk.errors.DatasetError` naming the row (and file
line), the column, the value and what would be valid.

The rules (also in :func:`poppk.data.read_nonmem`):

``DVID`` (or ``YTYPE``)
    All observation records (EVID 0, MDV 0) must share one ``DVID`` value
    (a missing value counts as a value of its own).  With several values the
    dataset is refused, unless ``dvid=`` selects one: observations with
    another value (or none) are then left out of the fit and listed in
    :attr:`PKData.excluded` with the reason.
``CMT`` on observation records
    A whole number >= 0, or missing.  Among the observations that are fitted,
    only CMT 1, CMT 2 and 0/missing (NONMEM's "default observation
    compartment") are accepted -- the central compartment is 1 in NONMEM's
    ADVAN1/3/11 layouts and 2 after a depot in ADVAN2/4/12, and oral data
    commonly write CMT 1 on observations too -- and all of them must use the
    same one of CMT 1 or CMT 2 (0/missing may be mixed with either).  CMT 3
    and above name a peripheral compartment or another analyte's and are
    refused.  Whether CMT 2 is the central compartment depends on the model:
    an intravenous model (no depot) accepts observations in CMT 1 or 0 only
    (checked by :func:`poppk.model.design.build_design`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from poppk.data import validate as v
from poppk.errors import DatasetError

__all__ = [
    "select_analyte",
    "observation_cmt",
    "check_central_compartment",
    "describe_excluded",
    "dvid_keys",
    "dvid_key",
    "OBSERVATION_CMT_VALID",
]

#: What an observation's CMT may be (for messages).
OBSERVATION_CMT_VALID = (
    "CMT 1 (the central compartment of IV data), CMT 2 (the central compartment after a depot, "
    "as in NONMEM ADVAN2/4; CMT 1 is accepted on oral data too) or 0/'.' (the default observation "
    "compartment), the same one on every observation; to fit one analyte of several, keep only "
    "its observations (filter the file, or read_nonmem(dvid=...) with a DVID column)"
)

_MISSING = object()


def dvid_keys(ctx: v.RowContext) -> list[Any]:
    """The DVID of each record as a comparable key: a float, a text, or a missing marker."""
    raw = ctx.raw["DVID"]
    missing = v.missing_mask(raw)
    keys: list[Any] = []
    for value, gone in zip(raw.tolist(), missing.tolist()):
        keys.append(_MISSING if gone else _key(value))
    return keys


def dvid_key(value: Any) -> Any:
    """A DVID value as the comparable key :func:`dvid_keys` gives (``1``, ``"1"`` and ``1.0`` are one key)."""
    return _key(value)


def _key(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _show(key: Any) -> str:
    if key is _MISSING:
        return "."
    if isinstance(key, float):
        return f"{key:g}"
    return str(key)


def select_analyte(ctx: v.RowContext, observed: np.ndarray, wanted: Any = None) -> np.ndarray:
    """Check DVID among observations; return the observations of other analytes.

    Parameters
    ----------
    ctx
        The records as written.
    observed
        True on observation records (EVID 0, MDV 0).
    wanted
        The DVID to keep (``read_nonmem(dvid=...)``), a list of DVIDs to keep
        (several analytes of one model, :mod:`poppk.model.analytes`), or ``None``.

    Returns
    -------
    numpy.ndarray of bool
        True on observation records whose DVID is not ``wanted`` (all False
        when ``wanted`` is ``None``): they are left out of the fit.

    Raises
    ------
    DatasetError
        When observations carry more than one DVID and ``wanted`` is ``None``;
        when ``wanted`` is given but there is no DVID column, or no
        observation has that DVID.
    """
    n = len(observed)
    if "DVID" not in ctx.raw.columns:
        if wanted is not None:
            raise DatasetError(
                f"dvid={wanted!r} was given but the dataset has no DVID column",
                column="DVID",
                valid="a DVID column (or YTYPE, or map yours with columns={...: 'DVID'}), or no dvid= option",
            )
        return np.zeros(n, dtype=bool)
    keys = dvid_keys(ctx)
    positions = np.flatnonzero(observed)
    counts: dict[Any, int] = {}
    for p in positions:
        counts[keys[p]] = counts.get(keys[p], 0) + 1
    listing = ", ".join(f"DVID {_show(k)}: {c}" for k, c in counts.items())
    if wanted is None:
        if len(counts) <= 1:
            return np.zeros(n, dtype=bool)
        first = keys[positions[0]]
        i = int(next(p for p in positions if keys[p] != first))
        raise ctx.error(
            i, "DVID",
            f"the observations belong to {len(counts)} analytes or observation types "
            f"({listing} observation records), but poppk fits one: every observation would be "
            "fitted as the same concentration",
            valid=f"one DVID value among the observation records: read_nonmem(..., dvid={_show(first)!s}) "
            f"(poppk data check --dvid {_show(first)}; [data] dvid = {_show(first)} in a TOML file) "
            "keeps only that analyte's observations and lists the others in PKData.excluded; "
            "or remove the other analytes' records from the file",
        )
    if isinstance(wanted, (list, tuple)):
        targets = [_key(w) for w in wanted]
        for w, t in zip(wanted, targets):
            if t not in counts:
                raise DatasetError(
                    f"dvid={list(wanted)!r}: DVID {w!r} matches no observation record",
                    column=ctx.column_label("DVID"), value=w,
                    valid=f"DVID values of the observation records ({listing})",
                )
        return np.array([bool(o) and keys[i] not in targets for i, o in enumerate(observed)], dtype=bool)
    target = _key(wanted)
    if target not in counts:
        raise DatasetError(
            f"dvid={wanted!r} matches no observation record",
            column=ctx.column_label("DVID"),
            value=wanted,
            valid=f"one of the DVID values of the observation records ({listing})",
        )
    return np.array([bool(o) and keys[i] != target for i, o in enumerate(observed)], dtype=bool)


def observation_cmt(
    ctx: v.RowContext, evid: np.ndarray, observed: np.ndarray, cmt: np.ndarray
) -> np.ndarray:
    """Check CMT on observation records; return every record's CMT as stored.

    A missing CMT reads as 0 (the default observation compartment) on an
    observation record (EVID 0) and as 1 elsewhere, as before.  See the
    module docstring for the rules.

    Parameters
    ----------
    ctx
        The records as written.
    evid
        EVID of every record.
    observed
        True on the observation records that are fitted (after any DVID
        selection).
    cmt
        CMT of every record (NaN for missing).

    Raises
    ------
    DatasetError
        Naming the first offending row.
    """
    obs_record = evid == 0
    with np.errstate(invalid="ignore"):
        bad = obs_record & ~np.isnan(cmt) & ((cmt < 0) | (cmt != np.round(cmt)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(
            i, "CMT",
            "CMT on an observation record must be a whole number >= 0 (a negative CMT, which "
            "turns a compartment off in NONMEM, is not supported)",
            valid=OBSERVATION_CMT_VALID,
        )
    filled = np.where(np.isnan(cmt), np.where(obs_record, 0.0, 1.0), cmt)
    with np.errstate(invalid="ignore"):
        beyond = observed & (filled >= 3)
    if beyond.any():
        i = int(np.flatnonzero(beyond)[0])
        raise ctx.error(
            i, "CMT",
            f"an observation in CMT {filled[i]:g}: poppk fits the concentration in the central "
            f"compartment, and CMT {filled[i]:g} names another one (a peripheral compartment or "
            "another analyte's)",
            valid=OBSERVATION_CMT_VALID,
        )
    _check_one_compartment(ctx, observed, filled)
    return filled


def _check_one_compartment(ctx: v.RowContext, observed: np.ndarray, cmt: np.ndarray) -> None:
    named = observed & (cmt > 0)
    values = np.unique(cmt[named])
    if len(values) <= 1:
        return
    positions = np.flatnonzero(named)
    first = cmt[positions[0]]
    other = [int(p) for p in positions if cmt[p] != first]
    same = [int(p) for p in positions if cmt[p] == first]
    raise ctx.error(
        other[0], "CMT",
        f"observations are recorded in CMT {first:g} (rows {ctx.rows_text(same)}) and in CMT "
        f"{cmt[other[0]]:g} (rows {ctx.rows_text(other)}), which cannot both be the central "
        "compartment",
        valid=OBSERVATION_CMT_VALID,
    )


def describe_excluded(keys: Sequence[Any], positions: np.ndarray, wanted: Any) -> list[str]:
    """The reason recorded in :attr:`PKData.excluded` for each left-out observation."""
    if isinstance(wanted, (list, tuple)):
        kept = ", ".join(_show(_key(w)) for w in wanted)
        return [f"DVID {_show(keys[p])}: observation of an analyte not fitted (read_nonmem(dvid={list(wanted)!r}) "
                f"keeps DVID {kept})" for p in positions]
    return [
        f"DVID {_show(keys[p])}: observation of another analyte than the one fitted "
        f"(read_nonmem(dvid={wanted!r}) keeps DVID {_show(_key(wanted))} only)"
        for p in positions
    ]


def check_central_compartment(data: Any, *, depot: bool, rows: np.ndarray | None = None) -> None:
    """Check that a model's central compartment is where the observations are.

    An intravenous model (no depot) has its central compartment in CMT 1, so
    an observation in CMT 2 would be its peripheral compartment (NONMEM
    ADVAN3); with a depot (first-order absorption) the central compartment is
    CMT 2 and observations in CMT 1 follow the common convention.

    Parameters
    ----------
    data
        A :class:`~poppk.data.PKData`.
    depot
        True for a model with first-order absorption.
    rows
        Boolean mask of the observations to check (the parent's, in a
        multi-analyte model); default all.

    Raises
    ------
    DatasetError
        Naming the first observation in CMT 2 of an intravenous model.
    """
    observations: pd.DataFrame = data.observations
    if depot or "CMT" not in observations.columns:
        return
    cmt = observations["CMT"].to_numpy()
    bad = (cmt >= 2) if rows is None else (cmt >= 2) & rows
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        written = {new: old for old, new in data.column_map.items()}.get("CMT", "CMT")
        raise DatasetError(
            f"an observation in CMT {int(cmt[i])}, but the model has no depot: its central "
            f"compartment is CMT 1 and CMT {int(cmt[i])} would be a peripheral one",
            row=int(observations["ROW"].iloc[i]), column=written, value=int(cmt[i]),
            valid="observations in CMT 1 (or 0/'.') for an intravenous model; if CMT 2 is the "
            "central compartment after a depot (NONMEM ADVAN2/4), fit with absorption='first-order'",
        )
