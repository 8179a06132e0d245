"""Saving and loading fits: a directory of NetCDF and JSON, written atomically.

Layout of a fit directory::

    FIT_DIR/
      fit.json        format and format version, sampler settings, seed, timings, versions
      spec.json       the resolved ModelSpec
      data.json       the PKData (lossless)
      idata.nc        InferenceData: posterior, sample_stats, observed_data, constant_data,
                      posterior_predictive, prior, prior_predictive; its attrs hold
                      the spec, data and settings again, so this one file rebuilds the fit

The directory is first written next to its destination under a temporary
name and then renamed into place, so an interrupted save never leaves a
half-written fit behind, and re-saving replaces the old fit whole.

**Format versions** (``fit.json["format_version"]`` and
``idata.attrs["poppk_fit_format_version"]``):

1. ``format = "poppk.Fit/1"``, no ``format_version`` key: posterior,
   sample_stats, observed and constant data only.
2. Adds ``format_version``, the predictive groups
   (:func:`poppk.diagnostics.predictive.add_predictive_groups`) and the
   spec/data/settings in the NetCDF attributes.

:func:`load_fit` reads both (and a directory whose ``fit.json`` names no
format at all, as version 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poppk.errors import FitError
from poppk.io import atomic_directory, jsonable

__all__ = ["save_fit", "load_fit", "fit_attrs", "fit_from_idata", "FORMAT", "FORMAT_VERSION"]

#: Current format version of a saved fit.
FORMAT_VERSION = 2
FORMAT = f"poppk.Fit/{FORMAT_VERSION}"
#: Versions :func:`load_fit` reads.
READABLE_VERSIONS = (1, 2)

_ATTR_SPEC = "poppk_spec"
_ATTR_DATA = "poppk_data"
_ATTR_SETTINGS = "poppk_settings"
_ATTR_VERSION = "poppk_fit_format_version"


def fit_attrs(fit: Any) -> dict[str, Any]:
    """The attributes that make ``fit.idata`` self-contained: spec, data and settings as JSON.

    Keys: ``poppk_fit_format`` (``"poppk.Fit/2"``), ``poppk_fit_format_version``
    (2), ``poppk_spec`` (:meth:`~poppk.model.ModelSpec.to_json`),
    ``poppk_data`` (the lossless :class:`~poppk.data.PKData` JSON) and
    ``poppk_settings``.
    """
    from poppk.data.io import pkdata_to_dict

    return {
        "poppk_fit_format": FORMAT,
        _ATTR_VERSION: FORMAT_VERSION,
        _ATTR_SPEC: fit.spec.to_json(),
        _ATTR_DATA: json.dumps(pkdata_to_dict(fit.data)),
        _ATTR_SETTINGS: json.dumps(jsonable(fit.settings)),
    }


def fit_from_idata(idata: Any, *, source: str = "InferenceData") -> Any:
    """Rebuild a :class:`~poppk.model.Fit` from an InferenceData carrying :func:`fit_attrs`."""
    from poppk.data.io import pkdata_from_dict
    from poppk.model.fit import Fit
    from poppk.model.spec import ModelSpec

    attrs = dict(getattr(idata, "attrs", {}) or {})
    missing = [k for k in (_ATTR_SPEC, _ATTR_DATA) if k not in attrs]
    if missing:
        raise FitError(f"{source}: no {', '.join(missing)} attribute; it was not saved by poppk >= fit format 2 "
                       "(load the fit directory instead)")
    _check_version(int(attrs.get(_ATTR_VERSION, 1)), source)
    spec = ModelSpec.from_json(str(attrs[_ATTR_SPEC]))
    data = pkdata_from_dict(json.loads(str(attrs[_ATTR_DATA])))
    settings = json.loads(str(attrs.get(_ATTR_SETTINGS, "{}")))
    return _finish(Fit(idata=idata, spec=spec, data=data, settings=settings))


def _check_version(version: int, source: str) -> None:
    if version not in READABLE_VERSIONS:
        raise FitError(f"{source}: fit format version {version} is not one this poppk reads "
                       f"{READABLE_VERSIONS}; upgrade poppk")


def _finish(fit: Any) -> Any:
    if "log_likelihood" not in fit.idata.groups():
        fit.add_log_likelihood()
    return fit


def save_fit(fit: Any, path: str | Path, *, include_log_likelihood: bool = False, predictive: bool = True) -> Path:
    """Write ``fit`` to the directory ``path`` (see module docstring).

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    path
        Directory to write (replaced whole if it exists).
    include_log_likelihood
        Keep the pointwise log likelihood (it is recomputed on load otherwise).
    predictive
        Add the ``posterior_predictive``, ``prior`` and ``prior_predictive``
        groups first when the fit lacks them (200 thinned replicates each,
        :func:`poppk.diagnostics.predictive.add_predictive_groups`; this
        changes ``fit.idata`` in place).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if predictive and not {"posterior_predictive", "prior", "prior_predictive"} <= set(fit.idata.groups()):
        from poppk.diagnostics.predictive import add_predictive_groups

        add_predictive_groups(fit)
    fit.idata.attrs.update(fit_attrs(fit))
    idata = fit.idata
    if not include_log_likelihood and "log_likelihood" in idata.groups():
        idata = idata.copy()
        del idata.log_likelihood
    with atomic_directory(path) as tmp:
        idata.to_netcdf(str(tmp / "idata.nc"), engine="h5netcdf")
        (tmp / "spec.json").write_text(fit.spec.to_json(), encoding="utf-8")
        (tmp / "data.json").write_text(idata.attrs[_ATTR_DATA], encoding="utf-8")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "settings": jsonable(fit.settings)}
        (tmp / "fit.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def _read_idata(path: Path) -> Any:
    import arviz as az

    idata = az.from_netcdf(str(path), engine="h5netcdf")
    return idata.load() if hasattr(idata, "load") else idata


def load_fit(path: str | Path) -> Any:
    """Load a fit written by :func:`save_fit`: its directory, or its ``idata.nc`` file alone.

    Fits of every format version in :data:`READABLE_VERSIONS` load; a
    directory whose ``fit.json`` has no version is read as version 1.
    """
    from poppk.data.io import pkdata_from_dict
    from poppk.model.fit import Fit
    from poppk.model.spec import ModelSpec

    path = Path(path)
    if path.is_file():
        return fit_from_idata(_read_idata(path), source=str(path))
    meta_file = path / "fit.json"
    if not meta_file.is_file():
        raise FitError(f"{path} is not a poppk fit directory (no fit.json); create one with Fit.save()")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    fmt = meta.get("format")
    if fmt is not None and not (isinstance(fmt, str) and fmt.startswith("poppk.Fit/")):
        raise FitError(f"{path}: unsupported fit format {fmt!r} (expected poppk.Fit/<version>)")
    version = meta.get("format_version")
    if version is None:
        tail = fmt.rsplit("/", 1)[-1] if isinstance(fmt, str) else "1"
        version = int(tail) if tail.isdigit() else -1
    _check_version(int(version), str(path))
    spec = ModelSpec.from_json((path / "spec.json").read_text(encoding="utf-8"))
    data = pkdata_from_dict(json.loads((path / "data.json").read_text(encoding="utf-8")))
    idata = _read_idata(path / "idata.nc")
    return _finish(Fit(idata=idata, spec=spec, data=data, settings=meta.get("settings", {})))
