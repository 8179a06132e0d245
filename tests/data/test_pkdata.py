"""PKData: immutability, size descriptors, subsets, xarray export, summaries."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from poppk.bodysize import size_descriptors
from poppk.data import SIZE_DESCRIPTORS, PKData, read_nonmem, summarize
from poppk.errors import DatasetError

TEXT = """ID,TIME,AMT,RATE,II,ADDL,EVID,MDV,DV,WEIGHT,HT,SEX,AGE
1,0,100,50,12,1,1,1,.,80,165,F,40
1,1,0,0,0,0,0,0,5,.,165,F,40
1,13,0,0,0,0,0,0,6,82,165,F,40
2,0,100,0,0,0,1,1,.,90,180,M,50
2,1,0,0,0,0,0,0,4,90,180,M,50
2,2,0,0,0,0,2,1,.,90,180,M,50
3,0,100,0,0,0,1,1,.,60,160,F,30
3,1,0,0,0,0,0,0,3,60,160,F,30
"""


@pytest.fixture
def data(tmp_path: Path) -> PKData:
    path = tmp_path / "data.csv"
    path.write_text(TEXT)
    return read_nonmem(path)


def test_tables_are_copies(data):
    for name, column, new in [("records", "TIME", 99.0), ("doses", "AMT", -1.0),
                              ("observations", "DV", -1.0), ("excluded", "REASON", "changed")]:
        table = getattr(data, name)
        table.loc[0, column] = new
        assert getattr(data, name).loc[0, column] != new, name
    covariates = data.covariates
    covariates.loc[1, "WT"] = -1.0
    assert data.covariates.loc[1, "WT"] == 80.0
    mapping = data.column_map
    mapping["ID"] = "X"
    assert data.column_map["ID"] == "ID"


def test_pkdata_is_frozen(data):
    with pytest.raises(dataclasses.FrozenInstanceError):
        data._source = "elsewhere"  # type: ignore[misc]
    subjects = data.subjects
    with pytest.raises(ValueError):
        subjects[0] = 42
    assert data.subjects.tolist() == [1, 2, 3]
    assert data.n_subjects == 3


def test_with_size_descriptors_returns_a_new_object(data):
    sized = data.with_size_descriptors(weight="weight")
    assert sized is not data
    assert "IBW" not in data.covariates.columns
    cov = sized.covariates
    assert list(cov.columns) == ["WT", "HT", "SEX", "AGE", *SIZE_DESCRIPTORS]
    assert cov["TBW"].tolist() == cov["WT"].tolist() == [80, 90, 60]
    expected = size_descriptors([80, 90, 60], [165, 180, 160], ["F", "M", "F"])
    for key, values in expected.items():
        np.testing.assert_allclose(cov[key].to_numpy(), values)
    again = sized.with_size_descriptors(ibw_method="robinson")  # derived columns are replaced
    assert list(again.covariates.columns) == list(cov.columns)
    assert not np.allclose(again.covariates["IBW"], cov["IBW"])


def test_size_descriptors_with_numeric_sex(tmp_path):
    path = tmp_path / "num.csv"
    path.write_text(TEXT.replace(",F,", ",1,").replace(",M,", ",0,"))
    with pytest.raises(DatasetError, match="numeric codes") as info:
        read_nonmem(path).with_size_descriptors()
    assert info.value.column == "SEX"
    assert "female_code" in info.value.valid
    by_default = read_nonmem(path, sex_female_code=1).with_size_descriptors()
    explicit = read_nonmem(path).with_size_descriptors(female_code="1")
    np.testing.assert_allclose(by_default.covariates["LBW"], explicit.covariates["LBW"])


def test_size_descriptors_missing_column_lists_available(tmp_path):
    path = tmp_path / "noht.csv"
    path.write_text(TEXT.replace(",HT,", ",HX,"))
    with pytest.raises(DatasetError, match="'HT' is not in the dataset") as info:
        read_nonmem(path).with_size_descriptors()
    assert info.value.column == "HT"
    assert "WT, HX, SEX, AGE" in info.value.valid


def test_implausible_weight_refused_when_read(tmp_path):
    path = tmp_path / "heavy.csv"
    path.write_text(TEXT.replace(",90,180,", ",900,180,"))
    with pytest.raises(DatasetError, match=r"row 4 \(line 5\)") as info:
        read_nonmem(path)
    assert info.value.column == "WEIGHT"
    assert info.value.value == "900"
    assert info.value.row == 4
    assert "0.3-400" in info.value.valid


def test_size_descriptors_bad_value_names_subject(data):
    with pytest.raises(DatasetError, match="subject 1") as info:
        data.with_size_descriptors(height_unit="m")  # the heights are in cm
    assert info.value.column == "HT"
    assert info.value.value == 165.0
    assert info.value.row == 1
    assert "30-250 cm" in info.value.valid


def test_subset(data):
    small = data.subset([3, 1])
    assert small.subjects.tolist() == [1, 3]
    assert set(small.doses["ID"]) == {1, 3}
    assert set(small.observations["ID"]) == {1, 3}
    assert len(small.excluded) == 0
    assert data.n_subjects == 3
    with pytest.raises(DatasetError, match="unknown subject"):
        data.subset([7])


def test_to_xarray(data):
    ds = data.with_size_descriptors().to_xarray()
    assert dict(ds.sizes) == {"id": 3, "obs": 4, "dose": 4}
    assert ds["WT"].dims == ("id",)
    assert ds["AIBW"].dims == ("id",)
    assert ds["time"].dims == ("obs",)
    assert ds["dose_time"].dims == ("dose",)
    assert ds["obs_index"].values.tolist() == [0, 0, 1, 2]
    assert ds["dose_time"].values.tolist() == [0, 12, 0, 0]
    assert ds["dur"].values.tolist() == [2, 2, 0, 0]
    assert ds["SEX"].values.tolist() == ["F", "M", "F"]
    assert ds.attrs["source"] == data.source
    assert ds.attrs["sha256"] == data.sha256


def test_covariate_summary(data):
    table = data.with_size_descriptors().covariate_summary().set_index("covariate")
    assert table.loc["WT", "kind"] == "numeric"
    assert table.loc["WT", "missing"] == 1
    assert bool(table.loc["WT", "time_varying"])
    assert table.loc["WT", "median"] == 80
    assert table.loc["SEX", "counts"] == "F: 2, M: 1"
    assert table.loc["BMI", "kind"] == "derived"


def test_summary_counts(data):
    summary = summarize(data)
    assert summary.n_subjects == 3
    assert summary.n_dose_records == 3
    assert summary.n_dose_events == 4
    assert summary.n_observations == 4
    assert summary.n_excluded == 1
    assert summary.n_blq == 0


def test_pickles_for_worker_processes(repo_root):
    """A PKData travels to dask workers and process pools (its column map is read-only, not unpicklable)."""
    import pickle
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = read_nonmem(repo_root / "data" / "imgn853_phase1.csv", time_unit="day").with_size_descriptors(
            ibw_method="label")
    back = pickle.loads(pickle.dumps(d))
    assert back.covariates.equals(d.covariates) and back.doses.equals(d.doses)
    assert back.observations.equals(d.observations) and back.excluded.equals(d.excluded)
    assert (back.sha256, back.source, back.time_unit) == (d.sha256, d.source, d.time_unit)
    assert dict(back._column_map) == dict(d._column_map)
    with pytest.raises(TypeError):
        back._column_map["X"] = "Y"
