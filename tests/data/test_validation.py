"""Deliberately broken datasets: each must raise a DatasetError that points at the problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from poppk.data import read_nonmem
from poppk.errors import DatasetError, DataWarning, PopPKError

H = "ID,TIME,AMT,RATE,EVID,MDV,DV,WT\n"
DOSE1 = "1,0,100,0,1,1,.,70\n"

# name, csv text, row, column, value, fragment of `valid`, fragment of the message
BROKEN = [
    ("missing TIME column", "ID,AMT,EVID,DV\n1,100,1,.\n",
     None, "TIME", None, "a header naming TIME", "required column TIME is missing"),
    ("non-numeric TIME", H + DOSE1 + "1,1h,0,0,0,0,5,70\n",
     2, "TIME", "1h", "a number, or '.' for missing", "row 2 (line 3)"),
    ("negative TIME", H + "1,-1,100,0,1,1,.,70\n",
     1, "TIME", "-1", "a time >= 0", "negative"),
    ("decreasing TIME", H + DOSE1 + "1,4,0,0,0,0,5,70\n1,2,0,0,0,0,5,70\n",
     3, "TIME", "2", "time may restart only on an EVID 3 or 4", "goes back from 4"),
    ("dose without AMT", H + "1,0,.,0,1,1,.,70\n",
     1, "AMT", ".", "an amount > 0", "has no AMT"),
    ("dose with AMT 0", H + "1,0,0,0,1,1,.,70\n",
     1, "AMT", "0", "an amount > 0", "AMT <= 0"),
    ("observation without DV", H + DOSE1 + "1,1,0,0,0,0,.,70\n",
     2, "DV", ".", "MDV=1 to exclude the record", "has no DV"),
    ("negative DV", H + DOSE1 + "1,1,0,0,0,0,-3,70\n",
     2, "DV", "-3", "a concentration >= 0", "negative"),
    ("RATE=-2", H + "1,0,100,-2,1,1,.,70\n",
     1, "RATE", "-2", "RATE > 0, or DUR > 0", "not supported yet"),
    ("RATE=-1", H + "1,0,100,-1,1,1,.,70\n",
     1, "RATE", "-1", "RATE > 0, or DUR > 0", "modelled infusion rate"),
    ("negative RATE", H + "1,0,100,-5,1,1,.,70\n",
     1, "RATE", "-5", "RATE >= 0", "RATE is negative"),
    ("RATE=0 with negative DUR", "ID,TIME,AMT,RATE,DUR,EVID,MDV,DV\n1,0,100,0,-1,1,1,.\n",
     1, "DUR", "-1", "DUR >= 0", "DUR is negative"),
    ("inconsistent RATE and DUR", "ID,TIME,AMT,RATE,DUR,EVID,MDV,DV\n1,0,100,50,3,1,1,.\n",
     1, "DUR", "3", "DUR = AMT/RATE = 2", "disagree"),
    ("split subject",
     H + DOSE1 + "1,1,0,0,0,0,5,70\n2,0,100,0,1,1,.,60\n1,2,0,0,0,0,4,70\n1,3,0,0,0,0,4,70\n",
     4, "ID", "1", "consecutive rows", "subject 1 is split: rows 1\u20132 and rows 4\u20135"),
    ("EVID=7", H + "1,0,100,0,7,1,.,70\n",
     1, "EVID", "7", "0 (observation), 1 (dose)", "invalid code"),
    ("SS=1 without II", "ID,TIME,AMT,SS,II,EVID,MDV,DV\n1,0,100,1,0,1,1,.\n",
     1, "II", "0", "II > 0 on a record with SS > 0", "SS=1 needs an interdose interval"),
    ("SS=3", "ID,TIME,AMT,SS,II,EVID,MDV,DV\n1,0,100,3,12,1,1,.\n",
     1, "SS", "3", "2 (steady state added", "invalid code"),
    ("ADDL without II", "ID,TIME,AMT,ADDL,II,EVID,MDV,DV\n1,0,100,3,.,1,1,.\n",
     1, "II", ".", "II > 0 on a record with ADDL > 0", "ADDL=3 needs"),
    ("covariate missing for a whole subject", H + DOSE1 + "2,0,100,0,1,1,.,.\n2,1,0,0,0,0,4,.\n",
     2, "WT", None, "a value on at least one record of each subject",
     "missing on every record of subject 2 (rows 2\u20133)"),
    ("BLQ flag 5", "ID,TIME,AMT,EVID,MDV,DV,BLOQ,LLOQ\n1,0,100,1,1,.,.,0.1\n1,1,0,0,0,0.5,5,0.1\n",
     2, "BLOQ", "5", "0 (quantified) or 1", "invalid code"),
    ("AMT on an observation", H + DOSE1 + "1,1,5,0,0,0,5,70\n",
     2, "AMT", "5", "AMT = 0 or '.' on observation records", "EVID 0"),
    ("MDV=0 on a dose", H + "1,0,100,0,1,0,.,70\n",
     1, "MDV", "0", "MDV=1 on dose", "EVID 1"),
    ("CMT 0", "ID,TIME,AMT,EVID,DV,CMT\n1,0,100,1,.,0\n",
     1, "CMT", "0", "a whole number >= 1", "compartment"),
    ("missing ID", H + ".,0,100,0,1,1,.,70\n",
     1, "ID", ".", "a subject identifier on every record", "ID is missing"),
    ("no EVID and no MDV", "ID,TIME,AMT,DV\n1,0,100,.\n",
     None, "EVID", None, "an EVID column, or both AMT and MDV", "cannot tell doses"),
    ("text in a numeric covariate", H + "1,0,100,0,1,1,.,70kg\n",
     1, "WT", "70kg", "a number, or '.' for missing", "must be numeric"),
    ("infinite DV", H + DOSE1 + "1,1,0,0,0,0,inf,70\n",
     2, "DV", "inf", "a number, or '.' for missing", "not finite"),
    ("BLQ without a limit", "ID,TIME,AMT,EVID,MDV,DV,BLQ\n1,0,100,1,1,.,.\n1,1,0,0,0,.,1\n",
     2, "LLOQ", None, "LLOQ > 0 on BLQ records", "no limit of quantification"),
    ("too few fields", H + "1,0,100,0,1,1,.\n",
     1, None, None, "8 fields on every record", "row 1 (line 2)"),
    ("two weight columns", "ID,TIME,AMT,EVID,DV,WT,WEIGHT\n1,0,100,1,.,70,70\n",
     None, "WEIGHT", None, "drop=['WEIGHT']", "both stand for WT"),
    ("dose records without AMT column", "ID,TIME,EVID,DV\n1,0,1,.\n",
     None, "AMT", None, "an AMT column", "no AMT column"),
]


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "row", "column", "value", "valid", "message"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_dataset_raises_located_error(tmp_path, text, row, column, value, valid, message):
    with pytest.raises(DatasetError) as info:
        read_nonmem(_write(tmp_path, text))
    err = info.value
    assert err.row == row
    assert err.column == column
    assert err.value == value
    assert valid in (err.valid or "")
    assert message in str(err)
    if row is not None:
        assert f"row {row} (line {row + 1})" in str(err)


def test_at_least_twelve_broken_datasets():
    assert len(BROKEN) >= 12


def test_dataset_error_is_a_poppk_error(tmp_path):
    with pytest.raises(PopPKError):
        read_nonmem(_write(tmp_path, H + "1,x,100,0,1,1,.,70\n"))


def test_error_names_column_as_written(tmp_path):
    text = "id,Time,amt,evid,mdv,dv\n1,0,100,1,1,.\n1,zero,0,0,0,5\n"
    with pytest.raises(DatasetError) as info:
        read_nonmem(_write(tmp_path, text))
    assert info.value.column == "Time"
    assert info.value.value == "zero"


def test_row_numbers_of_a_dataframe_are_positions_plus_one():
    df = pd.DataFrame({"ID": [1, 1, 1], "TIME": [0.0, 1.0, 2.0], "AMT": [100, 0, 0],
                       "EVID": [1, 0, 0], "DV": [None, 5.0, -1.0]})
    with pytest.raises(DatasetError) as info:
        read_nonmem(df)
    assert info.value.row == 3
    assert "line" not in str(info.value)


def test_rows_count_data_lines_not_comments(tmp_path):
    text = "# comment\nID TIME AMT EVID MDV DV\n1 0 100 1 1 .\n\n1 1 0 0 0 x\n"
    with pytest.raises(DatasetError) as info:
        read_nonmem(_write(tmp_path, text, "data.dat"))
    assert info.value.row == 2
    assert "row 2 (line 5)" in str(info.value)


def test_unknown_names_in_options(tmp_path):
    path = _write(tmp_path, H + DOSE1)
    with pytest.raises(DatasetError, match="columns= names column 'SUBJ'") as info:
        read_nonmem(path, columns={"SUBJ": "ID"})
    assert "ID, TIME, AMT" in info.value.valid
    with pytest.raises(DatasetError, match="drop= names"):
        read_nonmem(path, drop=["NOPE"])
    with pytest.raises(DatasetError, match="covariates= names"):
        read_nonmem(path, covariates=["CRCL"])


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot read"):
        read_nonmem(tmp_path / "absent.csv")


def test_empty_file(tmp_path):
    with pytest.raises(DatasetError, match="no header line"):
        read_nonmem(_write(tmp_path, "\n\n"))


def test_duplicate_header_names(tmp_path):
    with pytest.raises(DatasetError, match="same name") as info:
        read_nonmem(_write(tmp_path, "ID,TIME,time,AMT,EVID,DV\n1,0,0,100,1,.\n"))
    assert info.value.column == "time"


def test_dv_below_lloq_is_flagged_with_a_warning(tmp_path):
    text = ("ID,TIME,AMT,EVID,MDV,DV,LLOQ\n1,0,100,1,1,.,.\n"
            "1,1,0,0,0,0.05,0.1\n1,2,0,0,0,0.5,0.1\n1,3,0,0,0,0.01,0.1\n")
    with pytest.warns(DataWarning, match=r"2 observation\(s\) have DV < LLOQ .*rows 2, 4"):
        data = read_nonmem(_write(tmp_path, text))
    obs = data.observations
    assert obs["BLQ"].tolist() == [True, False, True]
    assert obs["DV"].tolist() == [0.1, 0.5, 0.1]


def test_mixed_text_covariate_warns_and_is_categorical(tmp_path):
    text = "ID,TIME,AMT,EVID,MDV,DV,CRCL\n1,0,100,1,1,.,85\n2,0,100,1,1,.,<10\n"
    with pytest.warns(DataWarning, match="mixes numbers and text"):
        data = read_nonmem(_write(tmp_path, text))
    assert data.covariates["CRCL"].tolist() == ["85", "<10"]


def test_valid_dataset_emits_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_nonmem(_write(tmp_path, H + DOSE1 + "1,1,0,0,0,0,5,70\n"))
