"""Dosing strategies and schedules: doses for known patients, validation, text forms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from poppk.errors import ConfigError
from poppk.simulate import (
    Capped,
    Flat,
    PerKg,
    PerM2,
    Rounded,
    Schedule,
    parse_schedule,
    parse_strategy,
    population_from_table,
)


@pytest.fixture(scope="module")
def pop():
    # 1: the label example (165 cm, 80 kg woman: IBW 56.5, AIBW 65.9); 2: 120 kg; 3: lighter than IBW
    df = pd.DataFrame({"WT": [80.0, 120.0, 50.0], "HT": [165.0, 165.0, 170.0], "SEX": ["F", "F", "M"]})
    return population_from_table(df, ibw_method="label")


def test_per_kg_bases(pop):
    np.testing.assert_allclose(PerKg(5).dose(pop), [400.0, 600.0, 250.0])
    ibw = np.array([56.5, 56.5, 0.9 * 170 - 88])
    aibw = ibw + 0.4 * (np.array([80.0, 120.0, 50.0]) - ibw)
    np.testing.assert_allclose(PerKg(6, "AIBW").dose(pop), 6 * aibw)
    assert PerKg(6, "AIBW").dose(pop)[0] == pytest.approx(6 * 65.9)
    np.testing.assert_allclose(PerKg(4, "IBW").dose(pop), 4 * ibw)
    np.testing.assert_allclose(PerKg(3, "LBW").dose(pop), 3 * pop["LBW"])
    # AIBW above TBW when TBW < IBW (no capping, as in the label)
    assert PerKg(1, "AIBW").dose(pop)[2] > 50.0
    np.testing.assert_allclose(PerKg(6, "AIBW", aibw_factor=0.0).dose(pop), 6 * ibw)
    np.testing.assert_allclose(PerKg(6, "AIBW", aibw_factor=1.0).dose(pop), 6 * pop["TBW"])
    assert PerKg(5, "wt").basis == "TBW" and PerKg(5, "aibw").basis == "AIBW"


def test_ibw_method_override():
    df = pd.DataFrame({"WT": [80.0], "HT": [165.0], "SEX": ["F"]})
    devine = population_from_table(df)  # population IBW by Devine
    assert PerKg(6, "AIBW").dose(devine)[0] != pytest.approx(6 * 65.9, abs=0.01)
    assert PerKg(6, "AIBW", ibw_method="label").dose(devine)[0] == pytest.approx(6 * 65.9)
    assert "IBW label" in PerKg(6, "AIBW", ibw_method="label").label


def test_per_m2_flat(pop):
    np.testing.assert_allclose(PerM2(170).dose(pop), 170 * pop["BSA"])
    np.testing.assert_allclose(PerM2(170, "mosteller").dose(pop), 170 * np.sqrt(pop["TBW"] * pop["HT"] / 3600))
    np.testing.assert_allclose(Flat(400).dose(pop), [400.0] * 3)


def test_capped(pop):
    np.testing.assert_allclose(Capped(PerKg(5), max_weight_kg=100).dose(pop), [400.0, 500.0, 250.0])
    np.testing.assert_allclose(Capped(PerKg(5), max_dose_mg=450).dose(pop), [400.0, 450.0, 250.0])
    np.testing.assert_allclose(Capped(PerKg(5), max_weight_kg=100, max_dose_mg=300).dose(pop), [300.0, 300.0, 250.0])
    np.testing.assert_allclose(Capped(PerM2(100), max_bsa_m2=2.0).dose(pop), 100 * np.minimum(pop["BSA"], 2.0))
    assert Capped(PerKg(5), max_weight_kg=100).is_linear and not Capped(PerKg(5), max_dose_mg=1).is_linear
    with pytest.raises(ConfigError, match="mg/kg"):
        Capped(Flat(100), max_weight_kg=100)
    with pytest.raises(ConfigError, match="max_"):
        Capped(PerKg(5))
    with pytest.raises(ConfigError):
        Capped(PerKg(5), max_dose_mg=-1)


def test_rounded(pop):
    np.testing.assert_allclose(Rounded(PerKg(5), 100).dose(pop), [400.0, 600.0, 300.0])  # 250 -> nearest 300
    np.testing.assert_allclose(Rounded(PerKg(5.1), 100, "down").dose(pop), [400.0, 600.0, 200.0])
    np.testing.assert_allclose(Rounded(PerKg(5.1), 100, "up").dose(pop), [500.0, 700.0, 300.0])
    np.testing.assert_allclose(Rounded(Flat(20), 100).dose(pop), [100.0] * 3)  # at least one vial
    np.testing.assert_allclose(Rounded(PerKg(5), 100, "up").dose(pop)[:2], [400.0, 600.0])  # exact stays
    assert not Rounded(PerKg(5), 100).is_linear
    with pytest.raises(ConfigError, match="rounding mode"):
        Rounded(PerKg(5), 100, "sideways")


@pytest.mark.parametrize("make", [
    lambda: PerKg(-5), lambda: PerKg(0), lambda: PerKg(float("nan")), lambda: PerKg(True),
    lambda: PerKg(5, "BMI"), lambda: PerKg(5, "AIBW", aibw_factor=1.5), lambda: PerKg(5, "AIBW", ibw_method="x"),
    lambda: PerM2(-1), lambda: PerM2(100, "nope"), lambda: Flat(0), lambda: Flat("a lot"),
    lambda: Rounded(PerKg(5), 0), lambda: Capped("5 mg/kg", max_dose_mg=100),
])
def test_validation(make):
    with pytest.raises(ConfigError):
        make()


def test_frozen_replace_and_scaled():
    s = PerKg(5, "AIBW")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mg_per_kg = 6  # type: ignore[misc]
    assert dataclasses.replace(s, mg_per_kg=6).mg_per_kg == 6.0
    with pytest.raises(ConfigError):
        dataclasses.replace(s, basis="XYZ")
    assert s.scaled(1.2).mg_per_kg == pytest.approx(6.0)
    assert Rounded(Capped(PerKg(5), max_weight_kg=100), 100).scaled(2).strategy.strategy.mg_per_kg == 10.0
    assert PerKg(6, "AIBW").label == "6 mg/kg AIBW"
    assert Capped(PerKg(5), max_weight_kg=100).label == "5 mg/kg TBW, max 100 kg"
    assert PerKg(6, "AIBW").to_dict()["basis"] == "AIBW"


@pytest.mark.parametrize("text, expected", [
    ("5 mg/kg", PerKg(5)),
    ("6 mg/kg AIBW", PerKg(6, "AIBW")),
    ("6mg/kg aibw f=0.3", PerKg(6, "AIBW", aibw_factor=0.3)),
    ("4 mg/kg IBW label", PerKg(4, "IBW", ibw_method="label")),
    ("170 mg/m2", PerM2(170)),
    ("flat 400 mg", Flat(400)),
    ("400 mg", Flat(400)),
    ("5 mg/kg, max 100 kg", Capped(PerKg(5), max_weight_kg=100)),
    ("6 mg/kg AIBW, max 600 mg, vial 100 mg", Rounded(Capped(PerKg(6, "AIBW"), max_dose_mg=600), 100)),
    ("5 mg/kg, vial up 50 mg", Rounded(PerKg(5), 50, "up")),
])
def test_parse_strategy(text, expected):
    assert parse_strategy(text) == expected


@pytest.mark.parametrize("text", ["", "5 mg/kg BMI", "five mg/kg", "5 mg/kg, maybe 100 kg"])
def test_parse_strategy_errors(text):
    with pytest.raises(ConfigError):
        parse_strategy(text)


def test_schedules():
    s = Schedule.q3w(6, infusion="90 min")
    assert s.times == tuple(21.0 * k for k in range(6)) and s.cycle == 21 and s.unit == "day"
    assert s.infusion == pytest.approx(1.5 / 24) and s.n_cycles == 6 and s.is_periodic and s.end == 126
    h = s.in_unit("h")
    assert h.times[1] == 504 and h.infusion == pytest.approx(1.5) and h.cycle == 504
    w = Schedule.weekly(4, infusion=0.5, unit="h")
    assert w.times == (0.0, 168.0, 336.0, 504.0) and w.cycle == 168
    x = Schedule.weekly_x3_q4w(2)
    assert x.pattern == (0.0, 7.0, 14.0) and x.cycle == 28 and x.n_cycles == 2 and x.is_periodic
    f = Schedule.from_times([0, 7, 21], cycle=21)
    assert f.pattern == (0.0, 7.0) and not f.is_periodic and f.n_cycles == 2
    assert Schedule.from_times([0, 10]).cycle == 10
    assert Schedule.every(14, 3, unit="day").times == (0.0, 14.0, 28.0)


@pytest.mark.parametrize("make", [
    lambda: Schedule(()), lambda: Schedule((0, 0)), lambda: Schedule((5, 1)), lambda: Schedule((-1, 2)),
    lambda: Schedule((0,)), lambda: Schedule((0, 21), infusion=22), lambda: Schedule((0, 21), unit="fortnight"),
    lambda: Schedule((0, 21), infusion="ninety minutes"), lambda: Schedule.q3w(0), lambda: Schedule((30, 40), cycle=21),
])
def test_schedule_validation(make):
    with pytest.raises(ConfigError):
        make()


def test_parse_schedule():
    assert parse_schedule("q3w:4", infusion="1 h") == Schedule.q3w(4, infusion="1 h")
    assert parse_schedule("weekly:3").times == (0.0, 7.0, 14.0)
    assert parse_schedule("weekly_x3_q4w:2") == Schedule.weekly_x3_q4w(2)
    assert parse_schedule("every:14:3").times == (0.0, 14.0, 28.0)
    t = parse_schedule("times:0,7,21/28")
    assert t.times == (0.0, 7.0, 21.0) and t.cycle == 28
    with pytest.raises(ConfigError):
        parse_schedule("biweekly")
    with pytest.raises(ConfigError):
        parse_schedule("q3w:x")
