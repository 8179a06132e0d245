"""recommend_dose(): targets, linear scaling, chance constraints, the label's rule beside."""

from __future__ import annotations

import numpy as np
import pytest

from poppk.errors import ConfigError
from poppk.forecast import forecast, parse_target, recommend_dose

PATIENT = "WT=82 HT=165 SEX=F"
DOSE = [{"TIME": 0, "AMT": 100, "DUR": 1}, {"TIME": 24, "AMT": 100, "DUR": 1}]


@pytest.fixture(scope="module")
def fc_fast(synthetic_fit):
    """A patient whose 20-h concentration is low: she clears fast."""
    return forecast(synthetic_fit, PATIENT, DOSE, [{"TIME": 20, "DV": 0.12}], n_draws=80, seed=7)


def test_median_target_uses_linear_scaling(fc_fast):
    """auc_ss = dose / CL (1-cmt): the dose for a median AUC a is a x median-harmonic CL, to the step."""
    r = recommend_dose(fc_fast, target="auc_ss = 300", step=5.0)
    cl = fc_fast.parameters()["CL"]
    expect = 300.0 / np.median(1.0 / cl)
    assert abs(r.dose_mg - expect) <= 2.5 + 1e-9
    assert r.exposure.loc[("recommended", "auc_ss"), "median"] == pytest.approx(r.dose_mg / expect * 300, rel=1e-6)


def test_chance_constraint_gives_the_highest_safe_dose(fc_fast):
    r = recommend_dose(fc_fast, target="P(cmax_c1 > 8) <= 0.1", step=10.0, max_dose=1000)
    c = r.candidates.set_index("dose_mg")
    col = "P(cmax_c1 > 8) <= 0.1"
    assert c.loc[r.dose_mg, col] <= 0.1
    assert c.loc[r.dose_mg + 10.0, col] > 0.1
    assert r.probability >= 0.9


def test_range_target_maximises_probability_and_beats_the_label(fc_fast):
    r = recommend_dose(fc_fast, target="auc_ss in [40, 60] and P(cmax_c1 > 9) <= 0.2", label="100 mg", step=5.0)
    c = r.candidates
    assert r.probability == pytest.approx(c.loc[c["constraints_met"], "probability"].max())
    assert r.probability >= r.label_probability
    assert r.label_dose_mg == 100.0 and r.label == "flat 100 mg"
    assert any("label" in s for s in r.reasoning)


def test_her_concentrations_change_the_dose(synthetic_fit, fc_fast):
    """She clears faster than her covariates say: the individual dose for the same AUC is higher."""
    ind = recommend_dose(fc_fast, target="auc_ss = 300", step=5.0)
    pop = recommend_dose(fc_fast, target="auc_ss = 300", step=5.0, prediction="population")
    assert ind.dose_mg > pop.dose_mg * 1.1
    fresh = recommend_dose(synthetic_fit, PATIENT, target="auc_ss = 300", step=5.0, n_draws=80)
    assert fresh.dose_mg == pytest.approx(pop.dose_mg, rel=0.1)


def test_label_rule_uses_her_body_size(fc_fast):
    r = recommend_dose(fc_fast, target="auc_ss in [40, 60]", label="6 mg/kg AIBW")
    aibw = float(fc_fast.record.covariate("AIBW"))
    assert r.label_dose_mg == pytest.approx(6 * aibw)


@pytest.mark.parametrize("text, words", [
    ("aucc in [1, 2]", ["aucc", "valid"]),
    ("auc_ss between 1 and 2", ["cannot read target", "examples"]),
    ("P(cmax_c1 > 5) <= 1.5", ["probability"]),
    ("auc_ss in [5, 2]", ["low < high"]),
    ("auc_ss in [1, 2] and auc_c1 = 3", ["at most one"]),
    ("time_above = 3", ["time_above"]),
])
def test_bad_targets(text, words):
    with pytest.raises(ConfigError) as info:
        parse_target(text)
    for w in words:
        assert w in str(info.value)


def test_a_table_of_patients(synthetic_fit, tmp_path):
    """``poppk forecast --patients``: a page per patient and a summary; a bad patient is listed, not fatal."""
    import argparse

    import pandas as pd

    from poppk.forecast.cli import _batch

    (tmp_path / "p.csv").write_text("ID,WT,HT,SEX\n1,82,165,F\n2,60,158,F\n3,-4,170,M\n")
    (tmp_path / "d.csv").write_text("ID,TIME,AMT,DUR\n1,0,100,1\n2,0,100,1\n3,0,100,1\n")
    (tmp_path / "o.csv").write_text("ID,TIME,DV\n1,20,0.12\n")
    args = argparse.Namespace(patients=str(tmp_path / "p.csv"), doses=str(tmp_path / "d.csv"),
                              observations=str(tmp_path / "o.csv"), target="auc_ss in [40, 60]",
                              schedule=None, label="100 mg", step=10.0, max_dose=1000.0, draws=30, seed=0,
                              time_unit=None, out=str(tmp_path / "out"))
    assert _batch(synthetic_fit, args) == 2
    s = pd.read_csv(tmp_path / "out" / "patients.csv").set_index("ID")
    assert s.loc[1, "n_observations"] == 1 and s.loc[2, "n_observations"] == 0
    assert s.loc[1, "dose_mg"] > s.loc[2, "dose_mg"]  # she clears fast (low 20-h level)
    assert "WT" in s.loc[3, "error"]
    assert (tmp_path / "out" / "1" / "forecast.html").is_file() and not (tmp_path / "out" / "3").exists()


def test_event_probability_target(fc_fast):
    """P(event) <= p with a logistic exposure-toxicity model: the highest dose whose event risk is within p."""
    import arviz as az
    import pandas as pd
    import xarray as xr

    from poppk.simulate.toxicity import ExposureToxicity

    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"alpha": rng.normal(-2.0, 0.1, (1, 200)), "beta": rng.normal(2.0, 0.1, (1, 200))})
    tox = ExposureToxicity("cmax_c1", "mg/L", idata, float(np.log(5.0)), xr.DataArray(np.zeros((1, 1))),
                           pd.Series([0]), "plugin")
    with pytest.raises(ConfigError, match="toxicity="):
        recommend_dose(fc_fast, target="P(event) <= 0.2")
    r = recommend_dose(fc_fast, target="P(event) <= 0.2", toxicity=tox, step=10.0)
    c = r.candidates.set_index("dose_mg")["P(event) [cmax_c1]"]
    assert c.loc[r.dose_mg] <= 0.2 < c.loc[r.dose_mg + 10.0]
    assert np.all(np.diff(c.values) > 0)  # risk grows with the dose
    assert any("adverse event" in s for s in r.reasoning)


# ----------------------------------------------------------------------------- schedule search

def _q(hours, n=4):
    from poppk.simulate.schedule import Schedule

    return Schedule.every(hours, n, infusion=1, unit="h")


def test_schedule_search_keeps_the_current_schedule_when_it_meets_the_target(fc_fast):
    """Her q24h schedule meets an AUC range: kept, even though the others are searched and listed."""
    r = recommend_dose(fc_fast, target="auc_ss in [40, 60]", schedules=[_q(12), _q(8)], label="100 mg")
    s = r.schedules
    assert list(s["rule"]) == ["recommended"] * 3 + ["label: flat 100 mg"]
    assert s.loc[0, "current"] and s.loc[0, "chosen"] and s["chosen"].sum() == 1
    assert not r.schedule_changed and r.schedule == r.current_schedule == s.loc[0, "schedule"]
    assert r.dose_mg == s.loc[0, "dose_mg"] and r.probability == s.loc[0, "probability"]
    assert any("is kept" in x for x in r.reasoning)
    # auc_ss of a shorter cycle is compared per 24 h: the same dose intensity gives the same AUC per day
    assert list(s["auc_ss_scale"][:3]) == [1.0, 2.0, 3.0]
    assert s.loc[1, "mg_per_week"] == pytest.approx(s.loc[0, "mg_per_week"], rel=0.15)


def test_schedule_search_changes_the_schedule_when_none_meets_it(fc_fast):
    """A trough floor and a peak ceiling that a once-daily dose cannot both meet (half-life ~7 h)."""
    target = "P(ctrough_ss < 1) <= 0.2 and P(cmax_ss > 12) <= 0.1"
    alone = recommend_dose(fc_fast, target=target, label="100 mg")
    assert np.isnan(alone.dose_mg)
    r = recommend_dose(fc_fast, target=target, schedules=[_q(12), _q(8)], label="100 mg")
    assert r.schedule_changed and r.schedule == _q(8).label and r.current_schedule == alone.schedule
    assert r.dose_mg > 0 and r.probability >= 0.7
    c = r.candidates.set_index("dose_mg")
    assert c.loc[r.dose_mg, "P(ctrough_ss < 1) <= 0.2"] <= 0.2 and c.loc[r.dose_mg, "P(cmax_ss > 12) <= 0.1"] <= 0.1
    assert not r.schedules.loc[0, "meets_constraints"] and any("no dose on her current" in x for x in r.reasoning)
    d = r.to_dict()
    assert d["schedule_changed"] and len(d["schedules"]) == 4 and sum(x["chosen"] for x in d["schedules"]) == 1


def test_schedule_search_switches_for_a_clearly_higher_probability(fc_fast):
    """The current schedule meets the peak bound only at doses far below the AUC range: a schedule with
    P(target met) at least switch_margin higher is proposed; with a larger margin it is not."""
    target = "auc_ss in [40, 60] and P(cmax_ss > 6) <= 0.1"
    r = recommend_dose(fc_fast, target=target, schedules=[_q(12)], label="100 mg")
    s = r.schedules
    assert s.loc[0, "meets_constraints"] and s.loc[1, "probability"] >= s.loc[0, "probability"] + 0.1
    assert r.schedule_changed and r.schedule == _q(12).label and r.probability == s.loc[1, "probability"]
    gap = s.loc[1, "probability"] - s.loc[0, "probability"]
    kept = recommend_dose(fc_fast, target=target, schedules=[_q(12)], label="100 mg", switch_margin=min(gap + 0.01, 0.99))
    assert not kept.schedule_changed
    # the AUC of the 12-h schedule is compared per 24 h: P(AUC per 24 h in [40, 60]) is P(AUC per 12 h in [20, 30])
    plain = recommend_dose(fc_fast, target="auc_ss in [20, 30] and P(cmax_ss > 6) <= 0.1", schedule=_q(12))
    assert np.allclose(r.candidates["probability"], plain.candidates["probability"])


def test_auc_c1_across_cycle_lengths_is_refused(fc_fast):
    with pytest.raises(ConfigError) as info:
        recommend_dose(fc_fast, target="auc_c1 in [40, 60]", schedules=[_q(12)])
    msg = str(info.value)
    assert "auc_c1" in msg and "cannot be compared" in msg and "auc_ss" in msg and "cmax_" in msg
    # the same cycle length (two doses a day within a 24-h cycle) compares auc_c1 as it is
    from poppk.simulate.schedule import Schedule

    bid = Schedule.from_times([0, 12], infusion=1, cycle=24, unit="h")
    r = recommend_dose(fc_fast, target="auc_c1 in [40, 60]", schedules=[bid], label="100 mg")
    assert list(r.schedules["auc_ss_scale"]) == [1.0, 1.0, 1.0] and r.schedules.loc[1, "doses_per_cycle"] == 2


def test_schedule_texts():
    from poppk.forecast.cli import split_schedules
    from poppk.forecast.recommend import parse_regimen

    s = parse_regimen("d1,8 q3w:4", infusion="90 min")
    assert s.pattern == (0.0, 7.0) and s.cycle == 21.0 and s.n_doses == 8 and s.infusion == pytest.approx(1 / 16)
    assert parse_regimen("q4w").cycle == 28.0 and parse_regimen("q14d").cycle == 14.0
    assert parse_regimen("q3w;loading=2").loading == 2.0 and parse_regimen("every:14:8").cycle == 14.0
    for bad in ("q0w", "d1,30 q4w", "fortnightly"):
        with pytest.raises(ConfigError, match="schedule"):
            parse_regimen(bad)
    assert split_schedules(["q3w; q4w", "d1,8 q3w;loading=1.5"]) == ["q3w", "q4w", "d1,8 q3w;loading=1.5"]


def test_page_and_json_show_the_schedule_table(fc_fast, tmp_path):
    import json

    from poppk.forecast import write_forecast

    r = recommend_dose(fc_fast, target="P(ctrough_ss < 1) <= 0.2 and P(cmax_ss > 12) <= 0.1",
                       schedules=[_q(12), _q(8)], label="100 mg")
    write_forecast(fc_fast, tmp_path, r)
    page = (tmp_path / "forecast.html").read_text()
    assert "Schedule change: from" in page and "mg/week" in page and "none meets" in page
    doc = json.loads((tmp_path / "forecast.json").read_text())["recommendation"]
    assert doc["schedule_changed"] and doc["schedule"] == _q(8).label and len(doc["schedules"]) == 4


def test_cli_schedules_option(synthetic_fit, tmp_path, monkeypatch, capsys):
    """``poppk forecast ... --schedules 'A;B' --schedules C``: every schedule searched, the choice printed and
    written (the saved fit replaced by the synthetic posterior: no MCMC)."""
    import json

    import poppk.model
    from poppk.cli import main

    monkeypatch.setattr(poppk.model, "load_fit", lambda path: synthetic_fit)
    (tmp_path / "d.csv").write_text("TIME,AMT,DUR\n0,100,1\n24,100,1\n")
    (tmp_path / "o.csv").write_text("TIME,DV\n20,0.12\n")
    # schedule texts are in days: twice and three times a day (1-h infusions, hers)
    code = main(["forecast", "fit", "--patient", PATIENT, "--doses", str(tmp_path / "d.csv"),
                 "--observations", str(tmp_path / "o.csv"), "--label", "100 mg", "--draws", "80", "--seed", "7",
                 "--target", "P(ctrough_ss < 1) <= 0.2 and P(cmax_ss > 12) <= 0.1",
                 "--schedules", "times:0,0.5/1; q1d", "--schedules", "times:0,0.3333,0.6667/1",
                 "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    doc = json.loads((tmp_path / "out" / "forecast.json").read_text())["recommendation"]
    # q1d is her current schedule (listed once); the two others are searched
    assert len(doc["schedules"]) == 4 and doc["schedule_changed"]
    assert doc["schedule"] == doc["schedules"][2]["schedule"] and doc["schedules"][2]["chosen"]
    assert "3 doses, cycle 1 day" in printed and "Schedule change" in (tmp_path / "out" / "forecast.html").read_text()
