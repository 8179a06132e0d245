"""Simulation figures draw their tables; the report writer and NetCDF round trip."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from _sim_helpers import two_cmt_spec  # noqa: E402
from poppk.simulate import (  # noqa: E402
    Flat,
    PerKg,
    PosteriorDraws,
    Schedule,
    dose_table,
    exposure_by_covariate,
    exposure_distribution_table,
    load_simulation,
    plot_exposure_by_strategy,
    plot_exposure_vs_weight,
    plot_variance_ratio,
    sample_population,
    simulate_strategies,
    summarize_strategies,
    variance_ratio_table,
    write_simulation_report,
)


@pytest.fixture(scope="module")
def sim():
    spec = two_cmt_spec("TBW")
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                       betas={"beta_CL_TBW": 0.45, "beta_V1_TBW": 0.5, "beta_Q_TBW": 0.5,
                                              "beta_V2_TBW": 0.5}, omega={"CL": 0.3, "V1": 0.2}, n_draws=10)
    return simulate_strategies(draws, {"tbw": PerKg(5), "aibw": PerKg(6, "AIBW"), "flat": Flat(350)},
                               Schedule.q3w(3, infusion="1 h"), sample_population(800, seed=1),
                               metrics=["cmax_c1", "auc_c1"], exceed={"cmax_c1": 150.0})


def test_tables(sim):
    t = exposure_distribution_table(sim, "auc_c1")
    assert list(t.index) == ["tbw", "aibw", "flat"]
    assert (t["q05"] < t["q50"]).all() and (t["q50"] < t["q95"]).all()
    assert (t["q50_lo"] <= t["q50"]).all() and (t["q50"] <= t["q50_hi"]).all()
    b = exposure_by_covariate(sim, "TBW", "auc_c1", bins=4)
    assert set(b["strategy"]) == {"tbw", "aibw", "flat"} and b["n_patients"].groupby(b["strategy"]).sum().eq(800).all()
    flat = b[b["strategy"] == "flat"].sort_values("covariate_median")
    assert flat["p50"].is_monotonic_decreasing  # flat dose: exposure falls with weight
    s = summarize_strategies(sim)
    v = variance_ratio_table(s, ["auc_c1"])
    assert set(v["strategy"]) == {"aibw", "flat"} and (v["metric"] == "auc_c1").all()
    d = dose_table(sim)
    assert d.loc["flat", "median_mg"] == 350.0


def test_figures(sim):
    for ax in (plot_exposure_by_strategy(sim, "cmax_c1"), plot_exposure_vs_weight(sim, metric="auc_c1"),
               plot_variance_ratio(summarize_strategies(sim))):
        assert ax.has_data() or ax.patches
        plt.close(ax.figure)


def test_report_and_roundtrip(sim, tmp_path):
    paths = write_simulation_report(sim, tmp_path / "out")
    for key in ("summary", "per_draw", "doses", "fig_variance_ratio", "dataset", "fig_exposure_vs_weight_auc_c1"):
        assert paths[key].is_file(), key
    s = pd.read_csv(paths["summary"], index_col=[0, 1])
    assert ("aibw", "auc_c1") in s.index
    back = load_simulation(paths["dataset"])
    xr.testing.assert_allclose(back["exposure"], sim["exposure"])
    assert back.attrs["n_patients"] == 800
    np.testing.assert_array_equal(back["SEX"].values, sim["SEX"].values.astype(str))
    pd.testing.assert_frame_equal(summarize_strategies(back), summarize_strategies(sim))


def test_parse_population(trial_data, tmp_path):
    from poppk.errors import ConfigError
    from poppk.simulate import parse_population

    assert len(parse_population("resample:30", trial_data, seed=1)) == 30
    p = parse_population("sample:40:1.0", seed=1)
    assert len(p) == 40 and (p["SEX"] == "F").all()
    csv = tmp_path / "cov.csv"
    pd.DataFrame({"WT": [60.0, 90.0], "HT": [160.0, 170.0], "SEX": ["F", "M"]}).to_csv(csv, index=False)
    assert len(parse_population(str(csv))) == 2 and len(parse_population(f"table:{csv}", ibw_method="label")) == 2
    with pytest.raises(ConfigError):
        parse_population("resample:10")
    with pytest.raises(ConfigError):
        parse_population("sample:ten")
    with pytest.raises(ConfigError, match="no such file"):
        parse_population(str(tmp_path / "missing.csv"))


def _fake_fit(trial_data):
    """A Fit-like object with 20 known posterior draws of a 2-cmt WT model."""
    from _sim_helpers import FakeFit
    from poppk.model import CovariateEffect, ModelSpec

    covs = tuple(CovariateEffect(p, "WT", reference=70.0) for p in ("CL", "V1", "Q", "V2"))
    spec = ModelSpec("2cmt", {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, covariates=covs, iiv=("CL", "V1"),
                     units={"time": "d"})
    rng = np.random.default_rng(0)
    post = xr.Dataset({**{p: (("chain", "draw"), v * np.exp(0.03 * rng.standard_normal((1, 20))))
                          for p, v in {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}.items()},
                       **{f"beta_{p}_WT": (("chain", "draw"), np.full((1, 20), 0.5)) for p in ("CL", "V1", "Q", "V2")},
                       "omega_CL": (("chain", "draw"), np.full((1, 20), 0.3)),
                       "omega_V1": (("chain", "draw"), np.full((1, 20), 0.2))},
                      coords={"chain": [0], "draw": np.arange(20)})
    return FakeFit(spec, trial_data, None, posterior=post)


def test_run_simulation_end_to_end(trial_data, tmp_path):
    """What `poppk simulate` would do, on a Fit-like object built from known draws."""
    import json

    from poppk.simulate import run_simulation

    fake = _fake_fit(trial_data)
    out = tmp_path / "sim"
    written = run_simulation(fake, ["5 mg/kg", "6 mg/kg AIBW"],
                             "q3w:4", "resample:300", out, infusion="1 h", n_draws=10, metrics=["cmax_c1", "auc_c1"])
    assert written["summary"].is_file() and written["fig_variance_ratio"].is_file()
    cmd = json.loads(written["command"].read_text())
    assert cmd["n_patients"] == 300 and cmd["strategies"]["6 mg/kg AIBW"] == "6 mg/kg AIBW"
    s = pd.read_csv(written["summary"], index_col=[0, 1])
    assert s.loc[("5 mg/kg TBW", "cmax_c1"), "var_ratio_median"] == 1.0


@pytest.mark.slow
def test_run_simulation_in_parallel_writes_the_same_summary(trial_data, tmp_path):
    """`poppk simulate --workers 2` (threads) and `--workers 2 --processes` (a dask LocalCluster of two
    processes) give the serial numbers."""
    from poppk.errors import ConfigError
    from poppk.simulate import run_simulation

    fake = _fake_fit(trial_data)
    kw = dict(infusion="1 h", n_draws=10, metrics=["cmax_c1", "auc_c1"], figures=False)
    args = (fake, ["5 mg/kg", "6 mg/kg AIBW"], "q3w:4", "resample:300")
    here = pd.read_csv(run_simulation(*args, tmp_path / "a", **kw)["summary"])
    for name, opts in {"threads": dict(workers=2), "processes": dict(workers=2, parallel="processes")}.items():
        there = run_simulation(*args, tmp_path / name, **opts, **kw)
        pd.testing.assert_frame_equal(here, pd.read_csv(there["summary"]))
    with pytest.raises(ConfigError, match="workers"):
        run_simulation(fake, ["5 mg/kg"], "q3w:4", "resample:30", tmp_path / "c", workers=-1, **kw)
    with pytest.raises(ConfigError, match="parallel kind 'gpu'"):
        run_simulation(fake, ["5 mg/kg"], "q3w:4", "resample:30", tmp_path / "c", workers=2, parallel="gpu", **kw)
