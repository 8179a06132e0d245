"""The model's time unit has no silent default: spec's, else the data's, else an error (issue 15)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from poppk.data import read_nonmem
from poppk.data.io import pkdata_from_dict, pkdata_to_dict
from poppk.errors import DatasetError, ModelSpecError
from poppk.model import ModelSpec
from poppk.model.time_unit import resolve_time_unit

FRAME = pd.DataFrame({"ID": [1, 1, 1, 2, 2, 2], "TIME": [0, 1, 24, 0, 1, 24], "AMT": [100, 0, 0] * 2,
                      "EVID": [1, 0, 0] * 2, "DV": [None, 5.0, 1.0, None, 4.0, 0.8]})


def spec(**kw):
    return ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL",), error="proportional", **kw)


def test_the_spec_has_no_default_time_unit():
    s = spec()
    assert s.time_unit is None and "time" not in dict(s.units)
    assert dict(s.units) == {"amount": "mg", "volume": "L"}
    assert s.unit["CL"] == "L/time"  # a label until the unit is known, not hours
    assert "time" not in s.to_dict()["units"]
    assert ModelSpec.from_toml(s.to_toml()).time_unit is None
    assert spec(units={"time": "day"}).time_unit == "day"


def test_fit_without_any_time_unit_is_refused():
    """Before: the bundled day-based trial fitted without units ran in 'hours' and reported nonsense."""
    from poppk import fit
    from poppk.model import build_model
    from poppk.workflow import bundled_trial_path, trial_spec

    data = read_nonmem(bundled_trial_path()).with_size_descriptors(ibw_method="label")
    no_unit = trial_spec("AIBW")
    no_unit = ModelSpec.from_dict({**no_unit.to_dict(), "units": {"amount": "mg", "volume": "L"}})
    with pytest.raises(ModelSpecError) as err:
        fit(no_unit, data, draws=10, tune=10, chains=1, progress=False)  # refused before sampling
    text = str(err.value)
    assert "units={'time': 'h'}" in text and "time_unit='day'" in text
    assert "doses here are a median 21 time units apart" in text
    with pytest.raises(ModelSpecError, match="time unit is not given"):
        build_model(no_unit, data)


def test_the_data_unit_is_used_and_conflicts_are_refused():
    data = read_nonmem(FRAME, time_unit="hours")
    assert data.time_unit == "h"
    resolved = resolve_time_unit(spec(), data)
    assert resolved.time_unit == "h" and resolved.unit["CL"] == "L/h"
    assert resolve_time_unit(spec(units={"time": "hr"}), data).time_unit == "hr"  # same unit, as written
    with pytest.raises(ModelSpecError, match="does not rescale"):
        resolve_time_unit(spec(units={"time": "day"}), data)
    with pytest.raises(ModelSpecError, match="not one poppk knows"):
        resolve_time_unit(spec(units={"time": "fortnight"}), data)
    assert resolve_time_unit(spec(units={"time": "day"}), read_nonmem(FRAME)).time_unit == "day"
    with pytest.raises(DatasetError, match="is not a time unit"):
        read_nonmem(FRAME, time_unit="fortnight")


def test_the_data_unit_is_saved_with_the_data():
    data = read_nonmem(FRAME, time_unit="d")
    again = pkdata_from_dict(json.loads(json.dumps(pkdata_to_dict(data))))
    assert again.time_unit == "day"
    old = pkdata_to_dict(read_nonmem(FRAME))
    old.pop("_time_unit")  # a fit saved before the unit was recorded
    assert pkdata_from_dict(old).time_unit is None


def test_simulating_from_a_spec_without_a_time_unit_is_refused():
    from poppk.simulate import PosteriorDraws

    with pytest.raises(ModelSpecError, match="no time unit"):
        PosteriorDraws.from_values(spec(), typical={"CL": 1.0, "V1": 10.0}, omega={"CL": 0.3})


def test_cli_fit_without_a_time_unit_exits_2(tmp_path, capsys):
    from poppk.cli import main

    csv = tmp_path / "d.csv"
    FRAME.to_csv(csv, index=False, na_rep=".")
    model = tmp_path / "m.toml"
    model.write_text('structure = "1cmt"\ntypical = { CL = 1.0, V1 = 10.0 }\niiv = ["CL"]\n')
    assert main(["fit", str(csv), "--model", str(model), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "time unit is not given" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_fit_records_the_unit_it_took_from_the_data(tmp_path):
    from _studies import simulate_study

    from poppk import fit, load_fit

    df, _ = simulate_study(n_subjects=8, seed=4)
    data = read_nonmem(df, time_unit="h")
    f = fit(spec(), data, draws=50, tune=50, chains=1, progress=False, warn=False, log_likelihood=False)
    assert f.spec.time_unit == "h"
    f.save(tmp_path / "fit")
    again = load_fit(tmp_path / "fit")
    assert again.spec.time_unit == "h" and again.data.time_unit == "h"
