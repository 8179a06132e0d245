"""Body-size values are checked on every record, not only at baseline (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from poppk.cli import main
from poppk.data import read_nonmem
from poppk.errors import DatasetError

GOOD = """ID,TIME,AMT,EVID,MDV,DV,WT,HT,SEX
1,0,100,1,1,.,80,165,F
1,1,0,0,0,5,80,165,F
1,24,0,0,0,3,81,165,F
2,0,100,1,1,.,90,180,M
2,1,0,0,0,4,90,180,M
"""


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("old", "new", "column", "value", "valid"), [
    ("3,81,165,F", "3,0,165,F", "WT", "0", "0.3-400 kg"),
    ("3,81,165,F", "3,810,165,F", "WT", "810", "0.3-400 kg"),
    ("3,81,165,F", "3,81,1700,F", "HT", "1700", "30-250 cm"),
    ("3,81,165,F", "3,81,0,F", "HT", "0", "30-250 cm"),
])
def test_a_later_record_with_an_implausible_size_is_refused(tmp_path, old, new, column, value, valid):
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(DatasetError) as info:
        read_nonmem(path)
    err = info.value
    assert (err.row, err.column, err.value) == (3, column, value)
    assert "row 3 (line 4)" in str(err)
    assert valid in err.valid and "every record" in err.valid


def test_data_check_reports_a_later_bad_weight(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("3,81,165,F", "3,0,165,F"))
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "row 3 (line 4), column 'WT', value '0'" in err and "0.3-400 kg" in err
    assert main(["data", "check", str(_write(tmp_path, GOOD, "good.csv"))]) == 0


def test_heights_in_metres_or_inches_still_read(tmp_path):
    metres = GOOD.replace(",165,", ",1.65,").replace(",180,", ",1.80,")
    data = read_nonmem(_write(tmp_path, metres)).with_size_descriptors(height_unit="m")
    assert data.covariates["BMI"].round(1).tolist() == [29.4, 27.8]


def test_descriptors_check_every_record_in_the_height_unit(tmp_path):
    # 1.65 is a plausible height in metres, so reading accepts it; in a cm dataset it is wrong
    mixed = GOOD.replace("3,81,165,F", "3,81,1.65,F")
    data = read_nonmem(_write(tmp_path, mixed))
    with pytest.raises(DatasetError, match="outside the plausible range") as info:
        data.with_size_descriptors()
    err = info.value
    assert (err.row, err.column, err.value) == (3, "HT", 1.65)
    assert "30 and 250" in err.valid


def test_descriptors_check_every_records_sex_code(tmp_path):
    coded = GOOD.replace(",F\n", ",1\n").replace(",M\n", ",2\n")
    data = read_nonmem(_write(tmp_path, coded.replace("3,81,165,1", "3,81,165,3")), sex_female_code=1)
    with pytest.raises(DatasetError, match="sex code not readable") as info:
        data.with_size_descriptors()
    assert (info.value.row, info.value.column, info.value.value) == (3, "SEX", 3.0)
    ok = read_nonmem(_write(tmp_path, coded, "ok.csv"), sex_female_code=1).with_size_descriptors()
    assert ok.sex_female_code == 1
