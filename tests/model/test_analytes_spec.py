"""Multi-analyte specs and data: validation, serialisation, DVID mapping, and the bundled generator.

Fast (no sampling).  The joint fit itself is in ``test_analytes_fit.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poppk.data import read_nonmem
from poppk.errors import ModelSpecError
from poppk.model import ModelSpec, build_design
from poppk.model.analytes import formation_of
from poppk.pk import concentration

ROOT = Path(__file__).resolve().parents[2]
TYP = {"CL": 0.5, "V1": 3.0, "CL_DM4": 300.0, "V_DM4": 500.0, "CL_MeDM4": 100.0, "V_MeDM4": 400.0}


def _generator():
    spec = importlib.util.spec_from_file_location("generate_analytes", ROOT / "data" / "generate_analytes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _analytes(payload_error=None, metabolite=True):
    out = [{"name": "ADC", "dvid": 1},
           {"name": "DM4", "dvid": 2, "source": "ADC", "scale": 18.2, "error": payload_error, "unit": "ng/mL"}]
    if metabolite:
        out.append({"name": "MeDM4", "dvid": 3, "source": "DM4", "scale": 1.0, "error": "proportional"})
    return out


def _spec(**kw):
    kw.setdefault("analytes", _analytes())
    names = {a["name"] for a in kw["analytes"]}
    typical = {k: v for k, v in TYP.items() if "_" not in k or k.split("_", 1)[1] in names}
    return ModelSpec(structure="1cmt", typical=typical, iiv=("CL", "V1", "CL_DM4"), error="proportional",
                     units={"time": "day"}, **kw)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("analytes, fragment", [
    ([{"name": "ADC", "dvid": 1, "source": "DM4"}, {"name": "DM4", "dvid": 2, "source": "ADC"}],
     "is the parent: it has no source"),
    ([{"name": "ADC", "dvid": 1}, {"name": "DM4", "dvid": 2, "source": "Payload"}],
     "source 'Payload' must be an earlier analyte"),
    ([{"name": "ADC", "dvid": 1}, {"name": "DM4", "dvid": 2, "source": "MeDM4"},
      {"name": "MeDM4", "dvid": 3, "source": "ADC"}], "source 'MeDM4' must be an earlier analyte"),
    ([{"name": "ADC", "dvid": 1}, {"name": "DM4", "dvid": "1", "source": "ADC"}], "DVID '1' is already used by 'ADC'"),
])
def test_invalid_analytes_say_what_is_wrong(analytes, fragment):
    with pytest.raises(ModelSpecError, match=fragment):
        ModelSpec(structure="1cmt", typical={"CL": 0.5, "V1": 3.0, "CL_DM4": 30.0, "V_DM4": 50.0,
                                              "CL_MeDM4": 10.0, "V_MeDM4": 40.0}, analytes=analytes)


def test_exponential_error_cannot_be_mixed_with_proportional():
    with pytest.raises(ModelSpecError, match="exponential"):
        ModelSpec(structure="1cmt", typical=TYP, error="exponential", analytes=_analytes("proportional"))
    with pytest.raises(ModelSpecError, match="exponential"):
        _spec(analytes=_analytes("exponential"))
    # all exponential is fine
    spec = ModelSpec(structure="1cmt", typical={k: v for k, v in TYP.items() if "MeDM4" not in k},
                     error="exponential", analytes=_analytes("exponential", metabolite=False))
    assert spec.sigma_names == ("exp", "exp_DM4")


def test_parameters_and_sigma_names():
    spec = _spec(analytes=_analytes("combined"))
    assert spec.parameters == ("CL", "V1", "CL_DM4", "V_DM4", "CL_MeDM4", "V_MeDM4")
    assert spec.sigma_names == ("prop", "prop_DM4", "add_DM4", "prop_MeDM4")
    f = formation_of(spec.analytes)
    assert [(x.source, x.clearance, x.volume, x.source_clearance, x.scale) for x in f] == [
        (0, "CL_DM4", "V_DM4", "CL", 18.2), (1, "CL_MeDM4", "V_MeDM4", "CL_DM4", 1.0)]


# ------------------------------------------------------------------ serialisation


def test_analytes_round_trip_through_dict_json_and_toml():
    spec = _spec(analytes=_analytes("combined"))
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    text = spec.to_toml()
    assert "DM4" in text and "MeDM4" in text
    back = ModelSpec.from_toml(text)
    assert back == spec
    assert [a.to_dict() for a in back.analytes] == [a.to_dict() for a in spec.analytes]
    assert back.analytes[1].unit == "ng/mL" and back.analytes[1].scale == 18.2


# ------------------------------------------------------------------ data and DVID


def _write(tmp_path, dvids=(1, 2), extra_dvid=None):
    rows = []
    for i in (1, 2):
        rows.append(dict(ID=i, TIME=0.0, AMT=100.0, EVID=1, MDV=1, CMT=1, DV=".", DVID=1))
        for t in (0.5, 1.0, 2.0, 4.0):
            for d in dvids:
                rows.append(dict(ID=i, TIME=t, AMT=0, EVID=0, MDV=0, CMT=1, DV=round(10.0 / (d * t), 3), DVID=d))
        if extra_dvid is not None and i == 2:
            rows.append(dict(ID=i, TIME=6.0, AMT=0, EVID=0, MDV=0, CMT=1, DV=0.5, DVID=extra_dvid))
    path = tmp_path / "trial.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_read_nonmem_keeps_the_listed_dvids(tmp_path):
    data = read_nonmem(_write(tmp_path), time_unit="day", dvid=[1, 2])
    obs = data.observations
    assert "DVID" in obs.columns
    assert obs["DVID"].value_counts().to_dict() == {1: 8, 2: 8}
    spec = _spec(analytes=_analytes(metabolite=False))
    design = build_design(spec, data)
    assert design.n_obs == 16


def test_observation_of_no_analyte_is_refused_with_its_row(tmp_path):
    path = _write(tmp_path, extra_dvid=3)
    data = read_nonmem(path, time_unit="day", dvid=[1, 2, 3])
    spec = _spec(analytes=_analytes(metabolite=False))   # DVID 1 and 2 only
    row = int(data.observations.loc[data.observations["DVID"] == 3, "ROW"].iloc[0])
    with pytest.raises(ModelSpecError, match=rf"row {row}: observation with DVID 3(\.0)?, which is no analyte"):
        build_design(spec, data)


def test_spec_without_analytes_refuses_two_dvid_data(tmp_path):
    data = read_nonmem(_write(tmp_path), time_unit="day", dvid=[1, 2])
    spec = ModelSpec(structure="1cmt", typical={"CL": 0.5, "V1": 3.0}, units={"time": "day"})
    with pytest.raises(ModelSpecError, match="several DVIDs"):
        build_design(spec, data)


def test_analytes_spec_on_data_without_dvid_is_refused(tmp_path):
    path = _write(tmp_path, dvids=(1,))
    frame = pd.read_csv(path).drop(columns="DVID")
    frame.to_csv(path, index=False)
    data = read_nonmem(path, time_unit="day")
    with pytest.raises(ModelSpecError, match="no DVID"):
        build_design(_spec(analytes=_analytes(metabolite=False)), data)


# ------------------------------------------------------------------ the generator


def test_ode_generator_agrees_with_poppks_closed_form():
    """The bundled generator's scipy ODE and poppk's kernel give the same three analytes."""
    ga = _generator()
    par = {"CL": 0.41, "V1": 2.6, "Q": 0.55, "V2": 1.9, "CL_DM4": 260.0, "V_DM4": 520.0,
           "CL_MeDM4": 90.0, "V_MeDM4": 380.0}
    dose_t, dur = np.array([0.0, 21.0, 43.0]), np.array([2 / 24, 1 / 24, 1 / 24])
    amt = np.full(3, 400.0)
    t = np.array([0.05, 2 / 24, 0.2, 1.0, 3.0, 7.0, 14.0, 20.99, 21.06, 30.0, 43.1, 70.0, 110.0])
    c_adc, c_p, c_m = ga._solve_subject(par, dose_t, dur, amt, t, (0.0, 0.0))
    spec = ModelSpec(structure="2cmt", typical={**par}, analytes=[
        {"name": "ADC", "dvid": 1}, {"name": "DM4", "dvid": 2, "source": "ADC", "scale": 18.2},
        {"name": "MeDM4", "dvid": 3, "source": "DM4", "scale": 1.0}])
    dt = t[:, None] - dose_t[None, :]
    p = {k: np.full((len(t), 1), v) for k, v in par.items()}
    for a, ode in enumerate((c_adc, c_p, c_m)):
        kernel = concentration(np.where(dt >= 0, dt, -1.0), np.broadcast_to(amt, dt.shape), p, n_cmt=2,
                               dur=np.broadcast_to(dur, dt.shape), formation=formation_of(spec.analytes),
                               analyte=np.full((len(t), 1), a))
        np.testing.assert_allclose(kernel, ode, rtol=1e-6, atol=1e-9)


def test_bundled_multi_analyte_file_reads_and_has_the_documented_blq_share():
    ga = _generator()
    data = read_nonmem(ROOT / "data" / "imgn853_analytes.csv", time_unit="day", dvid=[1, 2, 3])
    obs = data.observations
    assert obs["ID"].nunique() == 80
    share = obs.groupby("DVID")["BLQ"].mean()
    assert share[1] < 0.05 and 0.10 <= share[2] <= 0.30 and 0.10 <= share[3] <= 0.30
    # the ADC observations are those of the bundled one-analyte trial (same seed and streams)
    one = read_nonmem(ROOT / "data" / "imgn853_phase1.csv", time_unit="day").observations
    adc = obs[obs["DVID"] == 1]
    np.testing.assert_array_equal(adc["TIME"].to_numpy(), one["TIME"].to_numpy())
    np.testing.assert_allclose(adc["DV"].to_numpy(), one["DV"].to_numpy(), atol=1.5e-3)
    truth = pd.read_csv(ROOT / "data" / "imgn853_analytes_truth.csv")
    pop = truth[truth["LEVEL"] == "population"].set_index("PARAMETER")["VALUE"]
    assert pop["CL_DM4"] == ga.FORMED_PARAMETERS["CL_DM4"] and pop["SCALE_DM4"] == 18.2
    assert set(truth.loc[truth["LEVEL"] == "subject", "ID"]) == set(range(1, 81))


def test_shipped_multi_analyte_files_equal_a_fresh_regeneration(tmp_path):
    ga = _generator()
    records, truth = ga.generate_analytes()
    data_path, truth_path = ga.write_files(records, truth, tmp_path)
    assert data_path.read_bytes() == (ROOT / "data" / "imgn853_analytes.csv").read_bytes()
    assert truth_path.read_bytes() == (ROOT / "data" / "imgn853_analytes_truth.csv").read_bytes()


def test_a_two_compartment_formed_analyte_adds_its_distribution_parameters_and_round_trips():
    typical = {**TYP, "Q_DM4": 20.0, "V2_DM4": 150.0}
    analytes = [{"name": "ADC", "dvid": 1},
                {"name": "DM4", "dvid": 2, "source": "ADC", "scale": 18.2, "structure": "2cmt"},
                {"name": "MeDM4", "dvid": 3, "source": "DM4"}]
    spec = ModelSpec(structure="1cmt", typical=typical, analytes=analytes)
    assert spec.parameters == ("CL", "V1", "CL_DM4", "V_DM4", "Q_DM4", "V2_DM4", "CL_MeDM4", "V_MeDM4")
    f = formation_of(spec.analytes)
    assert (f[0].intercompartmental, f[0].peripheral) == ("Q_DM4", "V2_DM4")
    assert (f[1].intercompartmental, f[1].peripheral) == (None, None)
    assert ModelSpec.from_toml(spec.to_toml()) == spec
    assert spec.unit["Q_DM4"].startswith("L/") and spec.unit["V2_DM4"] == "L"
    with pytest.raises(ModelSpecError, match="structure '3cmt'; valid: '1cmt', '2cmt'"):
        ModelSpec(structure="1cmt", typical=typical,
                  analytes=[analytes[0], {**analytes[1], "structure": "3cmt"}, analytes[2]])
    with pytest.raises(ModelSpecError, match="uses the spec's structure"):
        ModelSpec(structure="1cmt", typical=typical, analytes=[{**analytes[0], "structure": "2cmt"}, *analytes[1:]])
