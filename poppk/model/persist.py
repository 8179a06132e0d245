"""Saving and loading fits: a directory of NetCDF and JSON, written atomically.

Layout of a fit directory::

    FIT_DIR/
      fit.json        format version, sampler settings, seed, timings, versions
      spec.json       the resolved ModelSpec
      data.json       the PKData (lossless)
      idata.nc        InferenceData (posterior, sample_stats, observed/constant data)

The directory is first written next to its destination under a temporary
name and then renamed into place, so an interrupted save never leaves a
half-written fit behind, and re-saving replaces the old fit whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poppk.errors import FitError
from poppk.io import atomic_directory, jsonable

__all__ = ["save_fit", "load_fit"]

FORMAT = "poppk.Fit/1"


def save_fit(fit: Any, path: str | Path, *, include_log_likelihood: bool = False) -> Path:
    """Write ``fit`` to the directory ``path`` (see module docstring)."""
    from poppk.data.io import pkdata_to_dict

    path = Path(path)
    idata = fit.idata
    if not include_log_likelihood and "log_likelihood" in idata.groups():
        idata = idata.copy()
        del idata.log_likelihood
    with atomic_directory(path) as tmp:
        idata.to_netcdf(str(tmp / "idata.nc"), engine="h5netcdf")
        (tmp / "spec.json").write_text(fit.spec.to_json(), encoding="utf-8")
        (tmp / "data.json").write_text(json.dumps(pkdata_to_dict(fit.data)), encoding="utf-8")
        meta = {"format": FORMAT, "settings": jsonable(fit.settings)}
        (tmp / "fit.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def load_fit(path: str | Path) -> Any:
    """Load a fit directory written by :func:`save_fit`."""
    import arviz as az

    from poppk.data.io import pkdata_from_dict
    from poppk.model.fit import Fit
    from poppk.model.spec import ModelSpec

    path = Path(path)
    meta_file = path / "fit.json"
    if not meta_file.is_file():
        raise FitError(f"{path} is not a poppk fit directory (no fit.json); create one with Fit.save()")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise FitError(f"{path}: unsupported fit format {meta.get('format')!r} (expected {FORMAT})")
    spec = ModelSpec.from_json((path / "spec.json").read_text(encoding="utf-8"))
    data = pkdata_from_dict(json.loads((path / "data.json").read_text(encoding="utf-8")))
    idata = az.from_netcdf(str(path / "idata.nc"), engine="h5netcdf")
    idata = idata.load() if hasattr(idata, "load") else idata
    fit = Fit(idata=idata, spec=spec, data=data, settings=meta["settings"])
    if "log_likelihood" not in idata.groups():
        fit.add_log_likelihood()
    return fit
