"""Reuse a saved fit when nothing that determines it has changed (``fit(..., file=...)``).

A fit is determined by the model, the data the model sees and the sampler's
settings.  :func:`fingerprint` hashes exactly those: the spec (its dictionary,
priors and units included), the content of the dose, observation and
covariate tables (values, not the file they came from, so derived size
descriptors and subsets count), the time unit, and draws, warm-up, chains,
seed, sampler, low-rank adaptation and target acceptance, and the poppk
version.  Re-running a notebook or an analysis with the same inputs then loads
the saved fit instead of sampling again (the idea of brms's ``file``
argument); any change refits and replaces it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

__all__ = ["fingerprint", "load_matching"]


def _table_digest(df: pd.DataFrame) -> str:
    """Content hash of a table: its columns, index and every value."""
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    if len(df):
        h.update(pd.util.hash_pandas_object(df.reset_index(), index=False).to_numpy().tobytes())
    return h.hexdigest()


def fingerprint(spec: Any, data: Any, settings: Mapping[str, Any]) -> str:
    """The hash that identifies a fit: model, data content and sampler settings.

    Parameters
    ----------
    spec
        The :class:`~poppk.model.ModelSpec` as given to :func:`~poppk.model.fit`.
    data
        The :class:`~poppk.data.PKData`.
    settings
        The sampler settings that change the draws (draws, tune, chains, seed,
        sampler, low_rank, target_accept, log_likelihood).

    Returns
    -------
    str
        A hex SHA-256 digest.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        poppk_version = version("poppk")
    except PackageNotFoundError:  # pragma: no cover - poppk is installed in every supported set-up
        poppk_version = "unknown"
    payload = {
        "spec": json.loads(json.dumps(dataclasses.asdict(spec), default=repr, sort_keys=True)),
        "doses": _table_digest(data.doses),
        "observations": _table_digest(data.observations),
        "covariates": _table_digest(data.covariates),
        "time_unit": getattr(data, "time_unit", None),
        "settings": {k: settings[k] for k in sorted(settings)},
        "poppk": poppk_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def load_matching(path: str | Path, key: str) -> Any | None:
    """The fit saved at ``path`` if its fingerprint is ``key``, else ``None``.

    A directory that is not a readable fit (or one saved before fingerprints were
    recorded) is not an error: the caller refits and replaces it, with a warning
    saying why when something was there.
    """
    path = Path(path)
    if not path.exists():
        return None
    from poppk.model.persist import load_fit

    try:
        saved = load_fit(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable fit is refitted, and said so
        warnings.warn(f"{path} is not a readable fit ({exc}); fitting again and replacing it", stacklevel=3)
        return None
    if saved.settings.get("fingerprint") != key:
        warnings.warn(f"the fit saved at {path} was made with another model, data or sampler settings; "
                      "fitting again and replacing it", stacklevel=3)
        return None
    return saved
