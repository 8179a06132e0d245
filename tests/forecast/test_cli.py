"""``poppk forecast``: the page and the JSON from a saved fit (slow: needs the session's small fit)."""

from __future__ import annotations

import json

import pytest

from poppk.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved_fit(small_fit, tmp_path_factory):
    return small_fit.save(tmp_path_factory.mktemp("fc") / "fit")


def test_forecast_command_writes_page_and_json(saved_fit, tmp_path, capsys):
    doses = tmp_path / "doses.csv"
    doses.write_text("TIME,AMT\n0,100\n24,100\n")
    obs = tmp_path / "obs.csv"
    obs.write_text("TIME,DV,BLQ,LLOQ\n2,3.1,0,\n47,,1,0.5\n")
    out = tmp_path / "out"
    code = main([
        "forecast", str(saved_fit), "--patient", "WT=70 HT=170 SEX=F", "--doses", str(doses),
        "--observations", str(obs), "--target", "auc_ss in [40, 60] and P(cmax_c1 > 12) <= 0.1",
        "--label", "100 mg", "--step", "10", "--out", str(out), "--draws", "60",
        "--schedules", "times:0,0.5/1",  # twice a day (schedule texts are in days) beside her once-daily doses
    ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "recommended dose" in printed
    page = (out / "forecast.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "Recommendation" in page and "flat 100 mg" in page
    doc = json.loads((out / "forecast.json").read_text())
    assert doc["recommendation"]["dose_mg"] % 10 == 0
    sched = doc["recommendation"]["schedules"]
    assert [s["rule"] for s in sched] == ["recommended", "recommended", "label: flat 100 mg"]
    # the same 24-h cycle with two doses: every metric compared as it is
    assert sched[1]["doses_per_cycle"] == 2 and sched[1]["auc_ss_scale"] == 1.0
    assert sum(s["chosen"] for s in sched) == 1
    assert len(doc["observations"]) == 2 and doc["observations"][1]["BLQ"] is True
    assert set(doc["exposure"]) == {"individual", "population"}


def test_forecast_command_bad_patient_exits_2(saved_fit, tmp_path, capsys):
    doses = tmp_path / "doses.csv"
    doses.write_text("TIME,AMT\n0,100\n")
    obs = tmp_path / "obs.csv"
    obs.write_text("TIME,DV\n-2,3.1\n")
    code = main(["forecast", str(saved_fit), "--patient", "WT=70", "--doses", str(doses),
                 "--observations", str(obs), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "before any dose" in err and not (tmp_path / "o").exists()
