"""Saved fits: format version, a single NetCDF file that rebuilds the fit, older formats still load."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from poppk.errors import FitError
from poppk.model import load_fit
from poppk.model.persist import FORMAT_VERSION


@pytest.fixture(scope="module")
def saved(small_fit, tmp_path_factory):
    fit = dataclasses.replace(small_fit, idata=small_fit.idata.copy())  # leave the session fit untouched
    path = tmp_path_factory.mktemp("persist") / "fit"
    fit.save(path)
    return fit, path


def test_saved_fit_has_format_version_and_predictive_groups(saved):
    fit, path = saved
    meta = json.loads((path / "fit.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["format"] == "poppk.Fit/2"
    again = load_fit(path)
    for g in ("posterior_predictive", "prior", "prior_predictive", "observed_data", "log_likelihood"):
        assert g in again.idata.groups(), g
    assert again.idata.attrs["poppk_fit_format_version"] == 2
    np.testing.assert_array_equal(again.idata.posterior_predictive["y"].values,
                                  fit.idata.posterior_predictive["y"].values)


def test_single_netcdf_file_rebuilds_the_fit(saved, tmp_path):
    fit, path = saved
    alone = tmp_path / "only.nc"
    shutil.copy(path / "idata.nc", alone)  # no fit.json, spec.json or data.json next to it
    again = load_fit(alone)
    assert again.spec == fit.spec
    assert again.data.n_subjects == fit.data.n_subjects
    assert again.settings["seed"] == fit.settings["seed"]
    np.testing.assert_allclose(again.summary()["median"], fit.summary()["median"])
    np.testing.assert_allclose(again.idata.log_likelihood["y"].values, fit.idata.log_likelihood["y"].values)


def test_fits_saved_before_the_version_number_still_load(saved, tmp_path):
    fit, path = saved
    import arviz as az

    for fmt in ("poppk.Fit/1", None):  # version 1 as written before; and no format key at all
        old = tmp_path / f"old_{fmt is None}"
        shutil.copytree(path, old)
        idata = az.from_netcdf(str(old / "idata.nc"), engine="h5netcdf").load()
        for g in ("posterior_predictive", "prior", "prior_predictive"):
            delattr(idata, g)
        idata.attrs = {}
        (old / "idata.nc").unlink()
        idata.to_netcdf(str(old / "idata.nc"), engine="h5netcdf")
        meta = json.loads((old / "fit.json").read_text())
        del meta["format_version"]
        if fmt is None:
            del meta["format"]
        else:
            meta["format"] = fmt
        (old / "fit.json").write_text(json.dumps(meta))
        again = load_fit(old)
        assert again.spec == fit.spec
        assert "posterior_predictive" not in again.idata.groups()
        np.testing.assert_allclose(again.summary()["median"], fit.summary()["median"])
        with pytest.raises(FitError, match="not saved by poppk"):
            load_fit(old / "idata.nc")


def test_unknown_version_is_refused(saved, tmp_path):
    _, path = saved
    new = tmp_path / "future"
    shutil.copytree(path, new)
    meta = json.loads((new / "fit.json").read_text())
    meta["format_version"] = 99
    (new / "fit.json").write_text(json.dumps(meta))
    with pytest.raises(FitError, match="version 99"):
        load_fit(new)


def test_a_fresh_fit_idata_alone_rebuilds_the_fit(small_study, small_fit, tmp_path):
    """The spec, data and settings are in ``fit.idata.attrs`` from the fit on, before any save
    (a fit made here: the session's ``small_fit`` may have been saved by other tests)."""
    import arviz as az

    from poppk.model import fit
    from poppk.model.persist import fit_from_idata

    data, _ = small_study
    fresh = fit(small_fit.spec, data, draws=50, tune=50, chains=1, seed=4, progress=False, warn=False)
    assert "poppk_spec" in fresh.idata.attrs and "poppk_data" in fresh.idata.attrs
    path = tmp_path / "fit.nc"
    fresh.idata.to_netcdf(str(path), engine="h5netcdf")
    rebuilt = fit_from_idata(az.from_netcdf(str(path), engine="h5netcdf"), source=str(path))
    assert rebuilt.spec == fresh.spec
    pd.testing.assert_frame_equal(rebuilt.data.observations, fresh.data.observations)
    assert rebuilt.settings["seed"] == 4
