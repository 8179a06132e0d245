"""``poppk data check`` and ``poppk --version``."""

from __future__ import annotations

from pathlib import Path

import pytest

import poppk
from poppk.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = REPO_ROOT.parent / "shared" / "benchmarks" / "iv_2cmt_multiple_dose.csv"

GOOD = """ID,TIME,AMT,EVID,MDV,DV,WT,HT,SEX
1,0,100,1,1,.,80,165,F
1,1,0,0,0,5,80,165,F
1,2,0,2,1,.,80,165,F
2,0,100,1,1,.,90,180,M
2,1,0,0,0,4,90,180,M
"""


def test_check_benchmark(capsys):
    if not BENCHMARK.exists():
        pytest.skip(f"benchmark dataset not found at {BENCHMARK}")
    assert main(["data", "check", str(BENCHMARK)]) == 0
    out = capsys.readouterr().out
    assert "subjects: 120" in out
    assert "dose records: 120" in out
    assert "dose events (after ADDL expansion): 840" in out
    assert "observation records: 4680" in out
    assert "BLQ observations: 0" in out
    assert "excluded: 0" in out


def test_check_invalid_file_exits_2_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("ID,TIME,AMT,EVID,MDV,DV\n1,0,100,1,1,.\n1,-2,0,0,0,5\n")
    assert main(["data", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: row 2 (line 3), column 'TIME', value '-2'")
    assert "Traceback" not in captured.err + captured.out


def test_check_prints_descriptors_and_exclusions(tmp_path, capsys):
    path = tmp_path / "good.csv"
    path.write_text(GOOD)
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sha256: " in out and "file: " in out
    assert "excluded: 1" in out
    assert "row 3  ID 1  TIME 2  EVID 2: EVID 2" in out
    assert "SEX      levels F: 1, M: 1" in out
    assert "size descriptors" in out
    assert "AIBW" in out and "BMI" in out
    assert main(["data", "check", str(path), "--no-descriptors"]) == 0
    assert "AIBW" not in capsys.readouterr().out


def test_check_numeric_sex_needs_female_code(tmp_path, capsys):
    path = tmp_path / "num.csv"
    path.write_text(GOOD.replace(",F", ",2").replace(",M", ",1"))
    assert main(["data", "check", str(path)]) == 2
    assert "--female-code" in capsys.readouterr().err
    assert main(["data", "check", str(path), "--female-code", "2"]) == 0


def test_check_with_column_map_and_warnings(tmp_path, capsys):
    path = tmp_path / "mapped.csv"
    path.write_text("SUBJ,TIME,AMT,EVID,MDV,CONC,LLOQ\n1,0,100,1,1,.,.\n1,1,0,0,0,0.01,0.1\n")
    assert main(["data", "check", str(path)]) == 2
    assert "required column ID" in capsys.readouterr().err
    assert main(["data", "check", str(path), "--map", "SUBJ=ID", "--map", "conc=DV"]) == 0
    captured = capsys.readouterr()
    assert "BLQ observations: 1" in captured.out
    assert "warning: 1 observation(s) have DV < LLOQ" in captured.err


def test_bad_map_option_is_a_usage_error(tmp_path, capsys):
    assert main(["data", "check", "x.csv", "--map", "SUBJ"]) == 2
    assert "OLD=NEW" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "absent.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"poppk {poppk.__version__}"
