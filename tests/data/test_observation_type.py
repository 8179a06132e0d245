"""Observation-type columns (DVID, observation CMT): modelled or refused, never misread (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from poppk.data import read_nonmem
from poppk.errors import DatasetError

# conjugate (DVID 1) and payload (DVID 2) of an ADC, as a user's file would hold them
TWO_ANALYTES = """ID,TIME,AMT,EVID,MDV,CMT,DVID,DV
1,0,100,1,1,1,.,.
1,1,0,0,0,1,1,50
1,1,0,0,0,3,2,0.4
1,24,0,0,0,1,1,20
1,24,0,0,0,3,2,0.1
2,0,100,1,1,1,.,.
2,1,0,0,0,1,1,45
2,1,0,0,0,3,2,.
"""


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _obs(cmt: str, extra_dose: str = "") -> str:
    return ("ID,TIME,AMT,EVID,MDV,CMT,DV\n1,0,100,1,1,1,.\n" + extra_dose
            + f"1,1,0,0,0,{cmt},5\n1,2,0,0,0,{cmt},4\n")


# --------------------------------------------------------------------------- DVID


def test_several_analytes_in_dvid_are_refused(tmp_path):
    with pytest.raises(DatasetError) as info:
        read_nonmem(_write(tmp_path, TWO_ANALYTES))
    err = info.value
    assert err.row == 3 and "row 3 (line 4)" in str(err)
    assert err.column == "DVID" and err.value == "2"
    assert "poppk fits one" in str(err) and "DVID 1: 3" in str(err) and "DVID 2: 3" in str(err)
    assert "dvid=1" in err.valid and "PKData.excluded" in err.valid


def test_dvid_option_keeps_one_analyte_and_lists_the_others(tmp_path):
    data = read_nonmem(_write(tmp_path, TWO_ANALYTES), dvid=1)
    assert data.observations["ROW"].tolist() == [2, 4, 7]
    assert data.observations["CMT"].tolist() == [1, 1, 1]
    excluded = data.excluded.set_index("ROW")
    assert excluded.index.tolist() == [3, 5, 8]
    assert excluded["REASON"].str.contains("DVID 2: observation of another analyte").all()
    # (the payload's records -- CMT 3, a missing DV -- are not judged when left out); selecting
    # the payload instead fits observations in CMT 3, not a central compartment: refused
    with pytest.raises(DatasetError, match="CMT 3") as info:
        read_nonmem(_write(tmp_path, TWO_ANALYTES.replace("3,2,.", "3,2,0.05"), "p.csv"), dvid="2")
    assert info.value.row == 3
    payload = TWO_ANALYTES.replace("3,2,.", "3,2,0.05").replace(",3,2,", ",1,2,")
    data = read_nonmem(_write(tmp_path, payload, "p1.csv"), dvid="2")
    assert data.observations["ROW"].tolist() == [3, 5, 8]
    assert data.excluded["ROW"].tolist() == [2, 4, 7]


def test_dvid_option_errors(tmp_path):
    with pytest.raises(DatasetError, match="matches no observation") as info:
        read_nonmem(_write(tmp_path, TWO_ANALYTES), dvid=5)
    assert "DVID 1: 3, DVID 2: 3" in info.value.valid
    with pytest.raises(DatasetError, match="no DVID column"):
        read_nonmem(_write(tmp_path, _obs("1"), "plain.csv"), dvid=1)


def test_one_dvid_value_reads_without_a_word(tmp_path):
    one = TWO_ANALYTES.replace("3,2,.", "3,2,0.05").replace(",3,2,", ",1,1,")
    data = read_nonmem(_write(tmp_path, one))
    assert len(data.observations) == 6 and len(data.excluded) == 0


def test_ytype_is_dvid_and_missing_counts_as_a_value(tmp_path):
    with pytest.raises(DatasetError, match="2 analytes") as info:
        read_nonmem(_write(tmp_path, TWO_ANALYTES.replace("DVID", "YTYPE")))
    assert info.value.column == "YTYPE"
    half = "ID,TIME,AMT,EVID,MDV,DVID,DV\n1,0,100,1,1,.,.\n1,1,0,0,0,1,5\n1,2,0,0,0,.,4\n"
    with pytest.raises(DatasetError, match=r"DVID \.: 1") as info:
        read_nonmem(_write(tmp_path, half, "half.csv"))
    assert info.value.row == 3


# --------------------------------------------------------------------------- CMT


@pytest.mark.parametrize("cmt", ["1", "0", ".", "2"])
def test_unambiguous_observation_compartments_read(tmp_path, cmt):
    data = read_nonmem(_write(tmp_path, _obs(cmt)))
    stored = {"1": 1, "0": 0, ".": 0, "2": 2}[cmt]
    assert data.observations["CMT"].tolist() == [stored, stored]


def test_no_cmt_column_means_cmt_1(tmp_path):
    data = read_nonmem(_write(tmp_path, "ID,TIME,AMT,EVID,MDV,DV\n1,0,100,1,1,.\n1,1,0,0,0,5\n"))
    assert data.records["CMT"].tolist() == [1, 1]


def test_observation_in_cmt_3_is_refused(tmp_path):
    with pytest.raises(DatasetError) as info:
        read_nonmem(_write(tmp_path, _obs("3")))
    err = info.value
    assert (err.row, err.column, err.value) == (2, "CMT", "3")
    assert "row 2 (line 3)" in str(err) and "central" in str(err)
    assert "CMT 1" in err.valid and "CMT 2" in err.valid


def test_two_observation_compartments_are_refused(tmp_path):
    text = "ID,TIME,AMT,EVID,MDV,CMT,DV\n1,0,100,1,1,1,.\n1,1,0,0,0,1,5\n1,2,0,0,0,2,4\n"
    with pytest.raises(DatasetError, match="cannot both be the central") as info:
        read_nonmem(_write(tmp_path, text))
    assert (info.value.row, info.value.value) == (3, "2")


def test_negative_or_fractional_observation_cmt_is_refused(tmp_path):
    for cmt in ("-2", "1.5"):
        with pytest.raises(DatasetError, match="whole number >= 0") as info:
            read_nonmem(_write(tmp_path, _obs(cmt), f"c{cmt}.csv"))
        assert info.value.column == "CMT" and info.value.value == cmt


def test_dose_cmt_rules_are_unchanged(tmp_path):
    with pytest.raises(DatasetError, match="CMT is missing on a dose record"):
        read_nonmem(_write(tmp_path, "ID,TIME,AMT,EVID,MDV,CMT,DV\n1,0,100,1,1,.,.\n1,1,0,0,0,1,5\n"))


def _design(data, absorption):
    from poppk.model import ModelSpec
    from poppk.model.design import build_design

    typical = {"CL": 1.0, "V1": 10.0, **({"KA": 1.0} if absorption else {})}
    spec = ModelSpec(structure="1cmt", typical=typical, absorption=absorption, iiv=("CL",),
                     units={"time": "h"}).resolved(data.covariates)
    return build_design(spec, data)


def test_iv_model_refuses_observations_in_cmt_2(tmp_path):
    data = read_nonmem(_write(tmp_path, _obs("2")))  # doses in CMT 1, observations in CMT 2
    with pytest.raises(DatasetError, match="peripheral") as info:
        _design(data, None)
    assert (info.value.row, info.value.column, info.value.value) == (2, "CMT", 2)
    assert "absorption='first-order'" in info.value.valid
    # the same file is NONMEM ADVAN2 oral data (depot CMT 1, central CMT 2): accepted
    assert _design(data, "first-order").n_obs == 2
    # oral data that record observations in CMT 1 keep working
    assert _design(read_nonmem(_write(tmp_path, _obs("1"), "o1.csv")), "first-order").n_obs == 2
    # IV data with the default observation compartment
    assert _design(read_nonmem(_write(tmp_path, _obs("."), "iv0.csv")), None).n_obs == 2
