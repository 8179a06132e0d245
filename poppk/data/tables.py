"""The derived tables of a :class:`~poppk.data.PKData`, built from its records.

* :func:`expand_doses`: dose events, each dose record plus its ADDL additional
  doses, with those that fall after a reset (EVID 3/4) cancelled;
* :func:`observation_table`: the observations that enter the likelihood, with
  the covariates carried forward per record;
* :func:`excluded_table`: every record or event not used, with the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from poppk.data.pkdata import DOSE_COLUMNS, EXCLUDED_COLUMNS
from poppk.errors import DataWarning

__all__ = ["expand_doses", "observation_table", "excluded_table"]


def observation_table(
    records: pd.DataFrame, observed: np.ndarray, fit_dv: np.ndarray, covariates: list[str],
    codes: np.ndarray,
) -> pd.DataFrame:
    """The records that enter the likelihood (``observed``), see :data:`OBSERVATION_COLUMNS`.

    A missing covariate value is filled with the subject's last value before
    it, or with the first one after it if there is none.
    """
    filled = records[covariates].groupby(codes, sort=False).ffill()
    filled = filled.groupby(codes, sort=False).bfill() if covariates else filled
    obs = pd.DataFrame({
        "ID": records["ID"],
        "TIME": records["TIME"],
        "DV": fit_dv,
        "CMT": records["CMT"],
        "BLQ": records["BLQ"].astype(bool),
        "LLOQ": records["LLOQ"],
        "SEGMENT": records["SEGMENT"],
        "ROW": records["ROW"],
    })
    for name in covariates:
        obs[name] = filled[name]
    return obs.loc[observed].reset_index(drop=True)


def _reset_limits(records: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    """For each segment ended by a reset: the time from which its ADDL doses are cancelled.

    If the reset does not restart the clock, doses at or after the reset time
    are cancelled; if it does, doses after the segment's last record are.
    """
    time = records["TIME"].to_numpy()
    segment = records["SEGMENT"].to_numpy()
    starts = np.flatnonzero(np.r_[False, (codes[1:] == codes[:-1]) & (segment[1:] != segment[:-1])])
    restart = time[starts] < time[starts - 1]
    return pd.DataFrame({
        "_code": codes[starts],
        "SEGMENT": segment[starts - 1],
        "_limit": np.where(restart, time[starts - 1], time[starts]),
        "_inclusive": restart,
        "_reset_row": records["ROW"].to_numpy()[starts],
    })


def expand_doses(records: pd.DataFrame, codes: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dose events: each dose record plus its ADDL additional doses.

    Returns the kept dose events (:data:`DOSE_COLUMNS`) and the additional
    doses cancelled by a reset (with ``ADDL``, ``ADDL_INDEX`` and the reset's
    row ``_reset_row``), after a :class:`DataWarning` if there are any.
    """
    is_dose = records["EVID"].isin((1, 4)).to_numpy()
    src = records.loc[is_dose].reset_index(drop=True)
    src_codes = codes[is_dose]
    count = src["ADDL"].to_numpy() + 1
    take = np.repeat(np.arange(len(src)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ev = src.iloc[take].reset_index(drop=True)
    ev["_code"] = src_codes[take]
    ev["ADDL_INDEX"] = k.astype(np.int64)
    ev["TIME"] = ev["TIME"].to_numpy() + k * ev["II"].to_numpy()
    ev["SS"] = np.where(k == 0, ev["SS"], 0).astype(np.int64)
    ev["EVID"] = np.where(k == 0, ev["EVID"], 1).astype(np.int64)
    ev = ev.merge(_reset_limits(records, codes), on=["_code", "SEGMENT"], how="left")
    limit = ev["_limit"].to_numpy(dtype=float)
    inclusive = ev["_inclusive"].fillna(False).to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        cancel = (k > 0) & np.where(inclusive, ev["TIME"] > limit, ev["TIME"] >= limit)
    cancelled = ev.loc[cancel]
    kept = ev.loc[~cancel].sort_values(["_code", "SEGMENT", "TIME", "ROW", "ADDL_INDEX"],
                                       kind="stable")
    doses = kept[list(DOSE_COLUMNS)].reset_index(drop=True)
    if len(cancelled):
        warnings.warn(
            f"{len(cancelled)} additional dose(s) (ADDL) fall after a reset (EVID 3/4) and "
            "were cancelled; they are listed in PKData.excluded",
            DataWarning,
            stacklevel=4,
        )
    return doses, cancelled


def excluded_table(
    records: pd.DataFrame,
    evid: np.ndarray,
    mdv: np.ndarray,
    cancelled: pd.DataFrame,
    other: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """Records and dose events not used, with the reason (:data:`EXCLUDED_COLUMNS`).

    Parameters
    ----------
    records
        Every record.
    evid, mdv
        EVID and MDV of every record.
    cancelled
        Additional doses cancelled by a reset (from :func:`expand_doses`).
    other
        Further excluded records: position in ``records`` -> reason (e.g.
        observations of another analyte than the one selected with ``dvid=``).
    """
    reasons = np.full(len(records), "", dtype=object)
    reasons[evid == 2] = "EVID 2 (other-type event): not used in the likelihood"
    reasons[(evid == 0) & (mdv == 1)] = (
        "EVID 0 with MDV 1: observation record excluded from the likelihood")
    for position, reason in (other or {}).items():
        reasons[position] = reason
    picked = records.loc[reasons != "", ["ROW", "ID", "TIME", "EVID"]].copy()
    picked["REASON"] = reasons[reasons != ""]
    extra = pd.DataFrame({
        "ROW": cancelled["ROW"].to_numpy(dtype=np.int64),
        "ID": cancelled["ID"].to_numpy(),
        "TIME": cancelled["TIME"].to_numpy(dtype=float),
        "EVID": np.ones(len(cancelled), dtype=np.int64),
        "REASON": [
            f"additional dose {k} of {a} (ADDL) cancelled by the reset at row {int(r)}"
            for k, a, r in zip(cancelled["ADDL_INDEX"], cancelled["ADDL"], cancelled["_reset_row"])
        ],
    })
    out = pd.concat([picked, extra], ignore_index=True) if len(extra) else picked
    out = out.sort_values(["ROW", "TIME"], kind="stable").reset_index(drop=True)
    out["EVID"] = out["EVID"].astype(np.int64)
    return out[list(EXCLUDED_COLUMNS)]

