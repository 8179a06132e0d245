"""``poppk run``'s [forecast] section: the table of patients through ``forecast_patients`` (no MCMC: the
synthetic posterior stands in for the analysis' fits)."""

from __future__ import annotations

import pandas as pd
import pytest

from poppk.config import parse_config
from poppk.errors import ConfigError
from poppk.workflow import SimulationStep, forecast_step


def _config(tmp_path, **forecast):
    (tmp_path / "patients.csv").write_text("ID,WT,HT,SEX\nP1,82,165,F\nP2,60,158,F\nP3,-4,170,M\n")
    doc = {"data": {"path": "trial.csv", "time_unit": "h"},
           "model": {"structure": "1cmt", "typical": {"CL": 2.0, "V1": 20.0}, "units": {"time": "h"}},
           "fit": {"descriptors": ["AIBW", "TBW"]},
           "forecast": {"patients": "patients.csv",
                        "doses": [{"ID": p, "TIME": t, "AMT": 100, "DUR": 1} for p in ("P1", "P2", "P3")
                                  for t in (0, 24)],
                        "observations": [{"ID": "P1", "TIME": 20, "DV": 0.12}],
                        "target": "P(ctrough_ss < 1) <= 0.2 and P(cmax_ss > 12) <= 0.1",
                        "schedules": ["times:0,0.3333,0.6667/1"], "label": "100 mg", "draws": 40, **forecast}}
    return parse_config(doc, tmp_path)


def test_forecast_step_writes_pages_and_summary(synthetic_fit, tmp_path):
    config = _config(tmp_path)
    fits = {"AIBW": synthetic_fit, "TBW": None}  # the default model is the report's fit (step.fit_name)
    lines = []
    summary = forecast_step(config, fits, SimulationStep(fit_name="AIBW"), tmp_path / "out", echo=lines.append)
    where = tmp_path / "out" / "forecast"
    written = pd.read_csv(where / "patients.csv").set_index("ID")
    assert list(written.index) == ["P1", "P2", "P3"] and list(summary["ID"]) == ["P1", "P2", "P3"]
    assert written.loc["P1", "n_observations"] == 1 and written.loc["P2", "n_observations"] == 0
    # the once-daily schedule cannot meet the trough and the peak bounds: three times a day is proposed
    assert written.loc["P1", "schedule_changed"] and written.loc["P1", "schedule"].startswith("3 doses, cycle 1 day")
    assert "WT" in written.loc["P3", "error"] and not (where / "P3").exists()
    for p in ("P1", "P2"):
        assert (where / p / "forecast.html").is_file() and (where / p / "forecast.json").is_file()
    assert any("== 6. individual forecasts from the 'AIBW' fit" in x for x in lines)
    assert any("patient P3: error" in x for x in lines)


def test_forecast_step_model_key(synthetic_fit, tmp_path):
    config = _config(tmp_path, model="TBW")
    with pytest.raises(ConfigError, match="forecast.model = 'TBW'"):  # named in the config, absent from the fits
        forecast_step(config, {"AIBW": synthetic_fit}, SimulationStep(fit_name="AIBW"), tmp_path / "o",
                      echo=lambda s: None)
