"""Reuse a saved fit when nothing that determines it has changed (``fit(..., file=...)``).

A fit is determined by the model, the data the model sees, the sampler's
settings and the code that turns them into a posterior.  :func:`fingerprint`
hashes exactly those: the spec (its dictionary, priors and units included), the
content of the dose, observation and covariate tables (values, not the file
they came from, so derived size descriptors and subsets count), the time unit;
draws, warm-up, chains, seed, sampler, low-rank adaptation, target acceptance
and the compile path; the source of poppk's model, PK and data code (defaults
such as the residual-error priors, the likelihood and the kernel live there,
not in the spec, and an editable install keeps its version number while they
change) and the versions of the sampling stack (PyMC, PyTensor, nutpie, numba,
NumPy).  Re-running a notebook or an analysis with the same inputs then loads
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

__all__ = ["fingerprint", "load_matching", "code_revision", "saved_fingerprint"]


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
        sampler, low_rank, target_accept, cache).

    Returns
    -------
    str
        A hex SHA-256 digest.
    """
    payload = {
        "spec": json.loads(json.dumps(dataclasses.asdict(spec), default=repr, sort_keys=True)),
        "doses": _table_digest(data.doses),
        "observations": _table_digest(data.observations),
        "covariates": _table_digest(data.covariates),
        "time_unit": getattr(data, "time_unit", None),
        "settings": {k: settings[k] for k in sorted(settings)},
        "code": code_revision(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


_CODE_REVISION: str | None = None


def code_revision() -> str:
    """Hash of the code a posterior depends on and the versions of the sampling stack.

    The source of ``poppk/model``, ``poppk/pk`` and ``poppk/data`` (computed once per
    process) and the installed versions of poppk, PyMC, PyTensor, nutpie, numba and NumPy.
    """
    global _CODE_REVISION
    if _CODE_REVISION is None:
        from importlib.metadata import PackageNotFoundError, version

        h = hashlib.sha256()
        root = Path(__file__).resolve().parents[1]
        for sub in ("model", "pk", "data"):
            for path in sorted((root / sub).glob("*.py")):
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
        for pkg in ("poppk", "pymc", "pytensor", "nutpie", "numba", "numpy"):
            try:
                h.update(f"{pkg}={version(pkg)}".encode())
            except PackageNotFoundError:  # pragma: no cover - all are dependencies
                h.update(f"{pkg}=none".encode())
        _CODE_REVISION = h.hexdigest()
    return _CODE_REVISION


def saved_fingerprint(path: str | Path) -> str | None:
    """The fingerprint in a fit directory's ``fit.json`` (``None`` if absent or unreadable)."""
    try:
        meta = json.loads((Path(path) / "fit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    settings = meta.get("settings") if isinstance(meta, dict) else None
    return settings.get("fingerprint") if isinstance(settings, dict) else None


def load_matching(path: str | Path, key: str) -> Any | None:
    """The fit saved at ``path`` if its fingerprint is ``key``, else ``None``.

    A directory that is not a readable fit (or one saved before fingerprints were
    recorded) is not an error: the caller refits and replaces it, with a warning
    saying why when something was there.
    """
    path = Path(path)
    if not path.exists():
        return None
    saved_key = saved_fingerprint(path)  # decided from fit.json alone, before loading anything
    if saved_key is None:
        warnings.warn(f"{path} is not a readable fit with a fingerprint (no readable fit.json, or saved without "
                      "fit(..., file=)); fitting again and replacing it", stacklevel=3)
        return None
    if saved_key != key:
        warnings.warn(f"the fit saved at {path} was made with another model, data, sampler settings or poppk "
                      "code; fitting again and replacing it", stacklevel=3)
        return None
    from poppk.model.persist import load_fit

    try:
        return load_fit(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable fit is refitted, and said so
        warnings.warn(f"{path} is not a readable fit ({exc}); fitting again and replacing it", stacklevel=3)
        return None
