"""Exception and warning hierarchy of poppk.

Every error poppk raises on bad input is a :class:`PopPKError`.  Errors about a
dataset name the file row, the column and the offending value, and say what
would be valid, so that a user can fix the file without reading a traceback.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PopPKError",
    "DatasetError",
    "ModelSpecError",
    "ConfigError",
    "FitError",
    "DiagnosticsError",
    "ConvergenceWarning",
    "DataWarning",
    "BodySizeError",
]


class PopPKError(Exception):
    """Base class of every error raised by poppk on bad input or state."""


class DatasetError(PopPKError, ValueError):
    """A dataset is malformed.

    Parameters
    ----------
    message
        What is wrong, in words.
    row
        Row number in the file (1 = first data row after the header), if the
        problem is located on one row.
    column
        Column name as written in the file.
    value
        The offending value.
    valid
        What would be valid instead.
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        valid: str | None = None,
    ) -> None:
        self.message = message
        self.row = row
        self.column = column
        self.value = value
        self.valid = valid
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        text = self.message
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.valid:
            text = f"{text} (valid: {self.valid})"
        return text


class ModelSpecError(PopPKError, ValueError):
    """A model specification is invalid or does not fit the dataset."""


class ConfigError(PopPKError, ValueError):
    """An analysis configuration (TOML) is invalid; the message names the key."""


class FitError(PopPKError, RuntimeError):
    """Sampling failed or a saved fit cannot be read."""


class DiagnosticsError(PopPKError, ValueError):
    """A diagnostic was asked for something the fit or the arguments cannot give."""


class ConvergenceWarning(UserWarning):
    """MCMC diagnostics (R-hat, ESS, divergences, tree depth) indicate a problem."""


class DataWarning(UserWarning):
    """Records were excluded or reinterpreted while reading a dataset."""


class BodySizeError(PopPKError, ValueError):
    """A body-size input (weight, height, sex code) is missing, non-positive or implausible."""
