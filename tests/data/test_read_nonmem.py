"""Reading NONMEM-style datasets: formats, aliases, derived items, events."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poppk.data import DOSE_COLUMNS, OBSERVATION_COLUMNS, PKData, read_nonmem
from poppk.errors import DataWarning

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = REPO_ROOT.parent / "shared" / "benchmarks" / "iv_2cmt_multiple_dose.csv"


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def benchmark() -> PKData:
    if not BENCHMARK.exists():
        pytest.skip(f"benchmark dataset not found at {BENCHMARK}")
    return read_nonmem(BENCHMARK)


# --------------------------------------------------------------------------- benchmark


def test_benchmark_counts(benchmark):
    assert benchmark.n_subjects == 120
    assert len(benchmark.subjects) == 120
    assert benchmark.n_dose_records == 120
    assert len(benchmark.doses) == 840
    assert len(benchmark.observations) == 4680
    assert int(benchmark.observations["BLQ"].sum()) == 0
    assert len(benchmark.excluded) == 0
    assert len(benchmark.records) == 4800


def test_benchmark_doses_are_one_hour_infusions_every_24_h(benchmark):
    doses = benchmark.doses
    assert list(doses.columns) == list(DOSE_COLUMNS)
    assert np.allclose(doses["RATE"], doses["AMT"])
    assert np.allclose(doses["DUR"], 1.0)
    first = doses.loc[doses["ID"] == 1]
    assert first["TIME"].tolist() == [0, 24, 48, 72, 96, 120, 144]
    assert first["ADDL_INDEX"].tolist() == list(range(7))
    assert first["ROW"].nunique() == 1
    assert set(doses["AMT"]) == {10, 30, 60, 120}
    assert (doses["SEGMENT"] == 0).all()


def test_benchmark_provenance_and_columns(benchmark):
    assert benchmark.sha256 == hashlib.sha256(BENCHMARK.read_bytes()).hexdigest()
    assert benchmark.source == str(BENCHMARK.resolve())
    assert benchmark.column_map["BLOQ"] == "BLQ"
    assert benchmark.covariate_names == ()  # DVLN is a transform of DV, not a covariate
    assert "DVLN" in benchmark.records.columns
    obs = benchmark.observations
    assert list(obs.columns) == list(OBSERVATION_COLUMNS)
    assert obs["TIME"].between(24, 216).all()
    assert obs["DV"].gt(0).all()


# --------------------------------------------------------------------------- formats


def test_aliases_and_case_insensitive_header(tmp_path):
    text = ("id,time,amt,evid,mdv,conc,Weight,HGT,gender,Albumin,bloq,LIMIT\n"
            "1,0,100,1,1,.,70,170,M,40,.,0.1\n1,1,0,0,0,5,70,170,M,40,0,0.1\n")
    data = read_nonmem(_write(tmp_path, text), columns={"conc": "DV"})
    assert data.covariate_names == ("WT", "HT", "SEX", "ALB")
    assert data.column_map["bloq"] == "BLQ"
    assert data.column_map["LIMIT"] == "LLOQ"
    assert data.column_map["conc"] == "DV"
    assert data.observations["LLOQ"].tolist() == [0.1]


def test_columns_mapping_overrides_aliases(tmp_path):
    text = "SUBJ,T,DOSE,EVID,MDV,Y,LIMIT\n1,0,100,1,1,.,3\n1,1,0,0,0,5,3\n"
    data = read_nonmem(_write(tmp_path, text),
                       columns={"subj": "ID", "T": "TIME", "dose": "AMT", "y": "DV",
                                "LIMIT": "LIMIT"})
    assert data.subjects.tolist() == [1]
    assert data.covariate_names == ("LIMIT",)
    assert data.observations["DV"].tolist() == [5.0]


def test_whitespace_separated_with_comments(tmp_path):
    text = ("# simulated study\n# second comment line\n"
            "ID  TIME AMT\tEVID MDV DV\n1 0 100 1 1 .\n1   1 0 0 0 5.5\n\n2 0 50 1 1 .\n2 2 0 0 0 2\n")
    data = read_nonmem(_write(tmp_path, text, "data.dat"))
    assert data.subjects.tolist() == [1, 2]
    assert data.observations["DV"].tolist() == [5.5, 2.0]
    assert data.observations["ROW"].tolist() == [2, 4]


def test_commas_in_a_comment_do_not_make_a_csv(tmp_path):
    text = "# study X, v2, simulated\nID TIME AMT EVID MDV DV\n1 0 100 1 1 .\n1 1 0 0 0 5\n"
    data = read_nonmem(_write(tmp_path, text, "data.dat"))
    assert data.observations["DV"].tolist() == [5.0]


def test_header_written_as_a_comment(tmp_path):
    text = "#ID TIME AMT EVID MDV DV\n1 0 100 1 1 .\n1 1 0 0 0 5\n"
    data = read_nonmem(_write(tmp_path, text, "data.txt"))
    assert data.observations["DV"].tolist() == [5.0]
    text = "# exported 2024\n#ID,TIME,AMT,EVID,MDV,DV\n1,0,100,1,1,.\n1,1,0,0,0,5\n"
    assert read_nonmem(_write(tmp_path, text, "c.csv")).observations["DV"].tolist() == [5.0]


def test_comment_lines_within_the_data_are_skipped_with_a_warning(tmp_path):
    text = "ID,TIME,AMT,EVID,MDV,DV\n1,0,100,1,1,.\n#1,1,0,0,0,5\n1,2,0,0,0,4\n"
    with pytest.warns(DataWarning, match="comment line"):
        data = read_nonmem(_write(tmp_path, text))
    assert data.observations["ROW"].tolist() == [2]


def test_dot_and_empty_are_missing(tmp_path):
    text = "ID,TIME,AMT,EVID,MDV,DV,WT\n1,0,100,1,1,,\n1,1,,0,0,5,72\n1,2,.,0,0,4,.\n"
    data = read_nonmem(_write(tmp_path, text))
    records = data.records
    assert np.isnan(records["DV"].iloc[0])
    assert records["AMT"].tolist() == [100, 0, 0]
    assert data.covariates.loc[1, "WT"] == 72


def test_dataframe_input():
    df = pd.DataFrame({"ID": ["A01", "A01", "B02", "B02"], "TIME": [0, 1, 0, 1],
                       "AMT": [100, 0, 100, 0], "EVID": [1, 0, 1, 0],
                       "DV": [np.nan, 5.0, np.nan, 3.0], "SEX": ["F", "F", "M", "M"]})
    data = read_nonmem(df)
    assert data.source == "<DataFrame>"
    assert data.sha256 is None
    assert data.subjects.tolist() == ["A01", "B02"]
    assert data.covariates["SEX"].tolist() == ["F", "M"]
    df.loc[1, "DV"] = -1.0  # the PKData does not share memory with the input
    assert data.observations["DV"].tolist() == [5.0, 3.0]


def test_ids_keep_their_type(tmp_path):
    text = "ID,TIME,AMT,EVID,MDV,DV\n001,0,100,1,1,.\n002,0,100,1,1,.\n"
    assert read_nonmem(_write(tmp_path, text)).subjects.tolist() == ["001", "002"]
    numeric = read_nonmem(_write(tmp_path, text.replace("00", ""), "n.csv"))
    assert numeric.subjects.dtype == np.int64
    df = pd.DataFrame({"ID": [1.0, 2.0], "TIME": [0, 0], "AMT": [1, 1], "EVID": [1, 1]})
    assert read_nonmem(df).subjects.dtype == np.float64


# --------------------------------------------------------------------------- derived items


def test_evid_mdv_cmt_derived_nonmem_style(tmp_path):
    text = "ID,TIME,AMT,MDV,DV\n1,0,100,1,.\n1,1,0,0,5\n1,2,0,1,.\n"
    data = read_nonmem(_write(tmp_path, text))
    records = data.records
    assert records["EVID"].tolist() == [1, 0, 2]
    assert records["CMT"].tolist() == [1, 1, 1]
    assert data.excluded["REASON"].str.contains("EVID 2").tolist() == [True]

    text = "ID,TIME,AMT,EVID,DV\n1,0,100,1,.\n1,1,0,0,5\n"
    assert read_nonmem(_write(tmp_path, text, "b.csv")).records["MDV"].tolist() == [1, 0]


def test_rate_and_duration(tmp_path):
    text = ("ID,TIME,AMT,RATE,DUR,EVID,MDV,DV\n1,0,100,50,.,1,1,.\n1,12,100,0,4,1,1,.\n"
            "1,24,100,0,0,1,1,.\n1,36,90,30,3,1,1,.\n")
    doses = read_nonmem(_write(tmp_path, text)).doses
    assert doses["RATE"].tolist() == [50, 25, 0, 30]
    assert doses["DUR"].tolist() == [2, 4, 0, 3]


def test_blq_rows_take_lloq_as_dv(tmp_path):
    text = ("ID,TIME,AMT,EVID,MDV,DV,CENS,LOQ\n1,0,100,1,1,.,.,.\n"
            "1,1,0,0,0,.,1,0.5\n1,2,0,0,0,0.2,1,.\n1,3,0,0,0,3,0,0.5\n")
    obs = read_nonmem(_write(tmp_path, text)).observations
    assert obs["BLQ"].dtype == bool
    assert obs["BLQ"].tolist() == [True, True, False]
    assert obs["DV"].tolist() == [0.5, 0.2, 3.0]  # DV holding the limit is the M3 convention
    assert obs["LLOQ"].tolist()[:2] == [0.5, 0.2]


# --------------------------------------------------------------------------- covariates


def test_time_varying_covariate_baseline_is_first_non_missing(tmp_path):
    text = ("ID,TIME,AMT,EVID,MDV,DV,WT,SEX\n1,0,100,1,1,.,.,F\n1,1,0,0,0,5,72,F\n"
            "1,2,0,0,0,4,.,F\n1,3,0,0,0,3,75,F\n2,0,100,1,1,.,60,M\n2,1,0,0,0,2,.,M\n")
    data = read_nonmem(_write(tmp_path, text))
    assert data.covariates["WT"].tolist() == [72, 60]
    assert data.covariates.index.name == "ID"
    assert data.observations["WT"].tolist() == [72, 72, 75, 60]  # carried forward
    assert data.records["WT"].isna().sum() == 3  # records stay as written
    summary = data.covariate_summary().set_index("covariate")
    assert bool(summary.loc["WT", "time_varying"]) is True
    assert summary.loc["SEX", "counts"] == "F: 1, M: 1"


def test_explicit_covariates_and_drop(tmp_path):
    text = "ID,TIME,AMT,EVID,MDV,DV,WT,AGE,SITE\n1,0,100,1,1,.,70,40,A\n"
    path = _write(tmp_path, text)
    assert read_nonmem(path, covariates=["wt"]).covariate_names == ("WT",)
    dropped = read_nonmem(path, drop=["SITE"])
    assert dropped.covariate_names == ("WT", "AGE")
    assert "SITE" not in dropped.records.columns
    assert "SITE" not in dropped.column_map


# --------------------------------------------------------------------------- events


SEGMENTS = """ID,TIME,AMT,II,ADDL,SS,EVID,MDV,DV
1,0,100,12,5,1,1,1,.
1,6,0,0,0,0,0,0,3.5
1,30,0,0,0,0,3,1,.
1,31,0,0,0,0,0,0,0.5
1,0,50,0,0,0,4,1,.
1,2,0,0,0,0,0,0,1.2
1,3,0,0,0,0,2,1,.
1,4,0,0,0,0,0,1,.
2,0,100,24,2,2,1,1,.
2,48,0,0,0,0,0,0,2
"""


@pytest.fixture
def segmented(tmp_path) -> PKData:
    with pytest.warns(DataWarning, match="3 additional dose"):
        return read_nonmem(_write(tmp_path, SEGMENTS))


def test_resets_start_segments(segmented):
    assert segmented.records["SEGMENT"].tolist() == [0, 0, 1, 1, 2, 2, 2, 2, 0, 0]
    obs = segmented.observations
    assert obs["SEGMENT"].tolist() == [0, 1, 2, 0]
    doses = segmented.doses
    assert doses.loc[doses["ID"] == 1, "SEGMENT"].tolist() == [0, 0, 0, 2]
    assert doses.loc[doses["ID"] == 1, "EVID"].tolist() == [1, 1, 1, 4]


def test_addl_doses_after_a_reset_are_cancelled_and_reported(segmented):
    doses = segmented.doses
    assert doses.loc[doses["ID"] == 1, "TIME"].tolist() == [0, 12, 24, 0]
    cancelled = segmented.excluded.loc[segmented.excluded["REASON"].str.contains("cancelled")]
    assert cancelled["TIME"].tolist() == [36, 48, 60]
    assert (cancelled["ROW"] == 1).all()
    assert cancelled["REASON"].iloc[0] == "additional dose 3 of 5 (ADDL) cancelled by the reset at row 3"


def test_ss_flag_kept_only_on_the_source_dose(segmented):
    doses = segmented.doses
    first = doses.loc[(doses["ID"] == 1) & (doses["ROW"] == 1)]
    assert first["SS"].tolist() == [1, 0, 0]
    assert first["ADDL_INDEX"].tolist() == [0, 1, 2]
    second = doses.loc[doses["ID"] == 2]
    assert second["SS"].tolist() == [2, 0, 0]
    assert second["TIME"].tolist() == [0, 24, 48]
    assert second["II"].tolist() == [24, 24, 24]


def test_excluded_records_are_reported(segmented):
    excluded = segmented.excluded
    assert list(excluded.columns) == ["ROW", "ID", "TIME", "EVID", "REASON"]
    by_row = excluded.set_index("ROW")["REASON"]
    assert "EVID 2" in by_row[7]
    assert "MDV 1" in by_row[8]
    assert len(excluded) == 5  # two records + three cancelled additional doses


def test_doses_sorted_by_subject_segment_time(tmp_path):
    text = ("ID,TIME,AMT,II,ADDL,EVID,MDV,DV\n5,0,10,24,2,1,1,.\n5,30,20,0,0,1,1,.\n"
            "5,50,0,0,0,0,0,1\n3,0,10,0,0,1,1,.\n")
    doses = read_nonmem(_write(tmp_path, text)).doses
    assert doses["ID"].tolist() == [5, 5, 5, 5, 3]
    assert doses["TIME"].tolist() == [0, 24, 30, 48, 0]
