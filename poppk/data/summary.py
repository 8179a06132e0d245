"""A summary of a :class:`~poppk.data.PKData`, as numbers and as text.

:func:`summarize` computes; :func:`format_summary` only formats what
:func:`summarize` computed (used by ``poppk data check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from poppk.data.pkdata import PKData

__all__ = ["DataSummary", "summarize", "format_summary"]


@dataclass(frozen=True)
class DataSummary:
    """Counts and tables describing a dataset.

    Attributes
    ----------
    source, sha256
        Where the data came from (``sha256`` is ``None`` for a DataFrame).
    n_records, n_subjects
        Records in the source and distinct subjects.
    n_dose_records
        Dose records (EVID 1 or 4) as in the source.
    n_dose_events
        Dose events after ADDL expansion (and reset cancellation).
    n_observations, n_blq
        Observations entering the likelihood, and how many of them are BLQ.
    n_resets
        Reset records (EVID 3 or 4).
    excluded
        :attr:`PKData.excluded`.
    covariates
        :meth:`PKData.covariate_summary` for the covariates of the source.
    descriptors
        The same for derived size descriptors (empty if none were added).
    time_unit
        :attr:`PKData.time_unit` (``None`` when not given).
    """

    source: str
    sha256: str | None
    n_records: int
    n_subjects: int
    n_dose_records: int
    n_dose_events: int
    n_observations: int
    n_blq: int
    n_resets: int
    excluded: pd.DataFrame
    covariates: pd.DataFrame
    descriptors: pd.DataFrame
    time_unit: str | None = None

    @property
    def n_excluded(self) -> int:
        """Number of excluded records and cancelled dose events."""
        return len(self.excluded)


def summarize(data: PKData) -> DataSummary:
    """Compute the :class:`DataSummary` of a dataset.

    Examples
    --------
    >>> import pandas as pd
    >>> from poppk.data import read_nonmem, summarize
    >>> df = pd.DataFrame({"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0],
    ...                    "EVID": [1, 0], "DV": [None, 5.0]})
    >>> summarize(read_nonmem(df)).n_observations
    1
    """
    records = data.records
    observations = data.observations
    table = data.covariate_summary()
    derived = table["kind"] == "derived"
    return DataSummary(
        source=data.source,
        sha256=data.sha256,
        n_records=len(records),
        n_subjects=data.n_subjects,
        n_dose_records=data.n_dose_records,
        n_dose_events=len(data.doses),
        n_observations=len(observations),
        n_blq=int(observations["BLQ"].sum()),
        n_resets=int(records["EVID"].isin((3, 4)).sum()),
        excluded=data.excluded,
        covariates=table.loc[~derived].reset_index(drop=True),
        descriptors=table.loc[derived].reset_index(drop=True),
        time_unit=data.time_unit,
    )


def _number(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4g}"


def _covariate_lines(table: pd.DataFrame) -> list[str]:
    lines = []
    for row in table.itertuples(index=False):
        if row.kind == "categorical":
            spread = f"levels {row.counts}"
        else:
            spread = (f"min {_number(row.min)}, median {_number(row.median)}, "
                      f"max {_number(row.max)}")
        notes = []
        if row.missing:
            notes.append(f"{row.missing} missing records")
        if row.time_varying:
            notes.append("time-varying; baseline = first value")
        extra = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"  {row.covariate:<8} {spread}{extra}")
    return lines


def format_summary(summary: DataSummary, *, max_excluded: int = 10) -> str:
    """Format a :class:`DataSummary` as the text printed by ``poppk data check``.

    Parameters
    ----------
    summary
        From :func:`summarize`.
    max_excluded
        How many excluded records to list (all are counted).
    """
    out = [
        f"file: {summary.source}",
        f"sha256: {summary.sha256 or '-'}",
        f"time unit: {summary.time_unit}" if summary.time_unit else
        "time unit: not given (the model's units={'time': ...} must say it; or read with time_unit=)",
        f"records: {summary.n_records}",
        f"subjects: {summary.n_subjects}",
        f"dose records: {summary.n_dose_records}",
        f"dose events (after ADDL expansion): {summary.n_dose_events}",
        f"observation records: {summary.n_observations}",
        f"BLQ observations: {summary.n_blq}",
    ]
    if summary.n_resets:
        out.append(f"reset records (EVID 3/4): {summary.n_resets}")
    out.append(f"excluded: {summary.n_excluded}")
    for row in summary.excluded.head(max_excluded).itertuples(index=False):
        out.append(f"  row {row.ROW}  ID {row.ID}  TIME {row.TIME:g}  EVID {row.EVID}: {row.REASON}")
    if summary.n_excluded > max_excluded:
        out.append(f"  ... and {summary.n_excluded - max_excluded} more")
    out.append(f"covariates: {len(summary.covariates)}")
    out.extend(_covariate_lines(summary.covariates))
    if len(summary.descriptors):
        out.append("size descriptors (per subject, from baseline WT/HT/SEX):")
        out.extend(_covariate_lines(summary.descriptors))
    return "\n".join(out)
