"""Virtual populations: sampling, resampling, tables, derived descriptors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from poppk.bodysize import size_descriptors
from poppk.errors import ConfigError
from poppk.simulate import VirtualPopulation, population_from_table, resample_population, sample_population


def test_sample_population_distribution():
    pop = sample_population(40_000, seed=3, female_fraction=0.5, weight_median={"F": 70, "M": 85},
                            weight_cv={"F": 0.2, "M": 0.2}, height_mean={"F": 162, "M": 176},
                            height_sd={"F": 7, "M": 7}, wt_ht_correlation=0.5,
                            weight_range=(20, 300), height_range=(100, 240))
    t = pop.covariates
    female = t["SEX"] == "F"
    assert abs(female.mean() - 0.5) < 0.01
    for sex, med, hm in (("F", 70, 162), ("M", 85, 176)):
        g = t[t["SEX"] == sex]
        assert abs(np.median(g["WT"]) / med - 1) < 0.01
        assert abs(g["HT"].mean() - hm) < 0.2
        assert abs(np.std(np.log(g["WT"])) - np.sqrt(np.log1p(0.2**2))) < 0.005
        r = np.corrcoef(np.log(g["WT"]), g["HT"])[0, 1]
        assert abs(r - 0.5) < 0.02


def test_sample_population_truncation_sex_and_seed():
    pop = sample_population(5000, seed=1, female_fraction=1.0, weight_range=(50, 100), height_range=(150, 175),
                            sex_codes=(1, 0))
    t = pop.covariates
    assert (t["SEX"] == 1).all()
    assert t["WT"].between(50, 100).all() and t["HT"].between(150, 175).all()
    assert {"AGE", "ALB"} <= set(t.columns)
    again = sample_population(5000, seed=1, female_fraction=1.0, weight_range=(50, 100), height_range=(150, 175),
                              sex_codes=(1, 0))
    pd.testing.assert_frame_equal(t, again.covariates)
    other = sample_population(5000, seed=2, female_fraction=1.0)
    assert not np.allclose(other["WT"], t["WT"])
    assert pop.seed == 1 and pop.source == "sampled"


def test_descriptors_are_bodysize_formulas():
    pop = sample_population(300, seed=4, ibw_method="label", aibw_factor=0.3)
    d = size_descriptors(pop["WT"], pop["HT"], pop["SEX"], ibw_method="label", aibw_factor=0.3)
    for k, v in d.items():
        np.testing.assert_allclose(pop[k], v, rtol=1e-14)
    np.testing.assert_array_equal(pop["TBW"], pop["WT"])
    assert pop.option("ibw_method") == "label"


def test_population_from_table_label_example():
    # ELAHERE label: 165 cm woman of 80 kg: IBW 0.9*165-92 = 56.5, AIBW = 56.5 + 0.4*23.5 = 65.9
    pop = population_from_table(pd.DataFrame({"WT": [80.0], "HT": [165.0], "SEX": ["F"]}), ibw_method="label")
    assert float(pop["IBW"][0]) == pytest.approx(56.5)
    assert float(pop["AIBW"][0]) == pytest.approx(65.9)
    assert len(pop) == 1 and pop.n == 1


def test_population_from_table_numeric_sex_and_errors():
    df = pd.DataFrame({"weight": [60.0, 90.0], "height": [160.0, 180.0], "gender": [1, 0]})
    with pytest.raises(ConfigError, match="female_code|numeric"):
        population_from_table(df, weight="weight", height="height", sex="gender")
    pop = population_from_table(df, weight="weight", height="height", sex="gender", female_code=1)
    assert pop["IBW"][0] < pop["IBW"][1]
    with pytest.raises(ConfigError, match="height"):
        population_from_table(pd.DataFrame({"WT": [70.0], "SEX": ["F"]}))
    with pytest.raises(ConfigError, match="ibw_method"):
        population_from_table(pd.DataFrame({"WT": [70.0], "HT": [160], "SEX": ["F"]}), ibw_method="nope")
    with pytest.raises(ConfigError, match="outside the plausible range|plausible"):
        population_from_table(pd.DataFrame({"WT": [700.0], "HT": [160], "SEX": ["F"]}))


def test_resample_keeps_whole_rows():
    src = pd.DataFrame({"WT": [50.0, 70.0, 120.0], "HT": [150.0, 165.0, 180.0], "SEX": ["F", "F", "M"],
                        "ALB": [3.1, 4.0, 4.6]}, index=pd.Index([11, 12, 13], name="ID"))
    pop = resample_population(src, 3000, seed=5)
    t = pop.covariates
    assert len(t) == 3000
    joined = t[["SOURCE_ID", "WT", "HT", "ALB"]].merge(src.reset_index(), left_on="SOURCE_ID", right_on="ID",
                                                       suffixes=("", "_src"))
    np.testing.assert_array_equal(joined["WT"], joined["WT_src"])
    np.testing.assert_array_equal(joined["ALB"], joined["ALB_src"])
    counts = t["SOURCE_ID"].value_counts(normalize=True)
    assert np.allclose(counts.values, 1 / 3, atol=0.04)
    pd.testing.assert_frame_equal(t, resample_population(src, 3000, seed=5).covariates)


def test_resample_from_pkdata_keeps_fitted_descriptors(trial_data):
    pop = resample_population(trial_data, 500, seed=1)
    cov = trial_data.covariates
    t = pop.covariates
    # descriptors are those of the data (label IBW), not recomputed with the default (Devine)
    by_id = cov.loc[t["SOURCE_ID"].to_numpy()]
    np.testing.assert_allclose(t["AIBW"].to_numpy(), by_id["AIBW"].to_numpy())
    recomputed = resample_population(trial_data, 500, seed=1, recompute_descriptors=True)
    assert not np.allclose(recomputed["IBW"], t["IBW"])


def test_virtual_population_is_frozen_and_copies():
    pop = sample_population(10, seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pop.seed = 3  # type: ignore[misc]
    t = pop.covariates
    t["WT"] = 0.0
    assert (pop["WT"] > 0).all()
    a = pop["WT"]
    a[:] = 0
    assert (pop["WT"] > 0).all()
    with pytest.raises(KeyError, match="no column"):
        pop["CRCL"]
    sub = pop.subset([0, 2])
    assert len(sub) == 2 and list(sub.covariates.index) == [0, 1]
    assert "median" in pop.summary().columns
    with pytest.raises(ConfigError):
        VirtualPopulation(pd.DataFrame({"WT": [1.0]}))


@pytest.mark.parametrize("kw", [dict(n=0), dict(n=2.5), dict(female_fraction=1.5), dict(wt_ht_correlation=1.0),
                                dict(weight_range=(100, 50)), dict(age=(60, 10, 80, 90))])
def test_sample_population_validation(kw):
    args = {"n": 10, **kw}
    with pytest.raises(ConfigError):
        sample_population(**args)
