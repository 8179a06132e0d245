"""fit(..., file=DIR): a saved fit is reused only when model, data content and sampler settings match."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from _studies import simulate_study
from poppk.data import read_nonmem
from poppk.model import ModelSpec, fit
from poppk.model.reuse import fingerprint

pytestmark = pytest.mark.slow

SPEC = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional",
                 units={"time": "h"})
KW = dict(draws=100, tune=100, chains=2, seed=3, progress=False, warn=False)


@pytest.fixture(scope="module")
def data():
    df, _ = simulate_study(n_subjects=8, seed=21)
    return read_nonmem(df)


def _no_sampling(monkeypatch):
    import nutpie

    def refuse(*a, **k):
        raise AssertionError("sampled although a matching fit was saved")

    monkeypatch.setattr(nutpie, "sample", refuse)


def test_a_matching_saved_fit_is_loaded_not_refitted(tmp_path, data, monkeypatch):
    first = fit(SPEC, data, file=tmp_path / "f", **KW)
    assert (tmp_path / "f" / "fit.json").is_file() and first.settings["fingerprint"]
    with monkeypatch.context() as m:
        _no_sampling(m)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a match is silent
            again = fit(SPEC, data, file=tmp_path / "f", **KW)
    np.testing.assert_array_equal(again.idata.posterior["CL"].values, first.idata.posterior["CL"].values)
    assert "log_likelihood" in again.idata.groups()  # recomputed on load, ready for LOO


def test_any_change_refits_and_replaces(tmp_path, data):
    first = fit(SPEC, data, file=tmp_path / "f", **KW)
    with pytest.warns(UserWarning, match="another model, data, sampler settings or poppk code"):
        other_seed = fit(SPEC, data, file=tmp_path / "f", **{**KW, "seed": 4})
    assert other_seed.settings["fingerprint"] != first.settings["fingerprint"]
    assert not np.array_equal(other_seed.idata.posterior["CL"].values, first.idata.posterior["CL"].values)
    from poppk import load_fit

    assert load_fit(tmp_path / "f").settings["fingerprint"] == other_seed.settings["fingerprint"]


def test_the_fingerprint_sees_model_data_values_and_settings(data):
    settings = dict(draws=100, tune=100, chains=2, seed=3)
    base = fingerprint(SPEC, data, settings)
    assert fingerprint(SPEC, data, dict(settings)) == base
    assert fingerprint(dataclasses.replace(SPEC, error="combined"), data, settings) != base
    assert fingerprint(SPEC, data.subset(data.subjects[:-1]), settings) != base
    df, _ = simulate_study(n_subjects=8, seed=21)
    df.loc[df.index[df["EVID"] == 0][0], "DV"] *= 1.01  # one concentration changed, same file name
    assert fingerprint(SPEC, read_nonmem(df), settings) != base
    assert fingerprint(SPEC, data, {**settings, "draws": 101}) != base


def test_the_fingerprint_sees_the_code_a_posterior_depends_on(data, monkeypatch):
    """A changed default in poppk's model code (not in the spec) or another sampler version refits."""
    import poppk.model.reuse as reuse

    settings = dict(draws=100, tune=100, chains=2, seed=3)
    base = fingerprint(SPEC, data, settings)
    monkeypatch.setattr(reuse, "_CODE_REVISION", "another revision of poppk/model, poppk/pk or pymc")
    assert fingerprint(SPEC, data, settings) != base
    monkeypatch.setattr(reuse, "_CODE_REVISION", None)
    assert reuse.code_revision() and fingerprint(SPEC, data, settings) == base
    # the revision follows the source: a changed byte in poppk/model changes it
    real = reuse.Path.read_bytes
    monkeypatch.setattr(reuse, "_CODE_REVISION", None)
    monkeypatch.setattr(reuse.Path, "read_bytes",
                        lambda self: real(self) + (b"#" if self.name == "likelihood.py" else b""))
    assert fingerprint(SPEC, data, settings) != base


def test_an_unreadable_directory_is_refitted_with_a_warning(tmp_path, data):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "fit.json").write_text("{not json")
    with pytest.warns(UserWarning, match="not a readable fit"):
        f = fit(SPEC, data, file=tmp_path / "f", **KW)
    assert f.settings["fingerprint"]
