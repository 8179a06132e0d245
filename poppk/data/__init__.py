"""Reading, checking and holding NONMEM-style population-PK datasets.

>>> from poppk.data import read_nonmem            # doctest: +SKIP
>>> data = read_nonmem("study.csv").with_size_descriptors(female_code=1)  # doctest: +SKIP
"""

from __future__ import annotations

from poppk.data.pkdata import (
    DOSE_COLUMNS,
    EXCLUDED_COLUMNS,
    OBSERVATION_COLUMNS,
    SIZE_DESCRIPTORS,
    PKData,
)
from poppk.data.reader import (
    ALIASES,
    CANONICAL,
    NON_COVARIATES,
    map_columns,
    read_nonmem,
)
from poppk.data.summary import DataSummary, format_summary, summarize

__all__ = [
    "read_nonmem",
    "map_columns",
    "PKData",
    "ALIASES",
    "CANONICAL",
    "NON_COVARIATES",
    "DOSE_COLUMNS",
    "OBSERVATION_COLUMNS",
    "EXCLUDED_COLUMNS",
    "SIZE_DESCRIPTORS",
    "DataSummary",
    "summarize",
    "format_summary",
]
