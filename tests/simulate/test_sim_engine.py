"""The simulation engine: closed-form variance expectations, chunking, summaries, dose matching."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from _sim_helpers import FakeFit, one_cmt_spec, two_cmt_spec
from poppk.errors import ConfigError, ModelSpecError
from poppk.simulate import (
    Flat,
    PerKg,
    PosteriorDraws,
    Rounded,
    Schedule,
    match_dose,
    per_draw_statistics,
    population_from_table,
    sample_population,
    simulate_strategies,
    summarize_strategies,
)

Q3W = Schedule.q3w(4, infusion="1 h")


@pytest.fixture(scope="module")
def big_pop():
    return sample_population(20_000, seed=7, female_fraction=0.6)


# --------------------------------------------------------------------------
# the closed-form expectations of the issue
# --------------------------------------------------------------------------


@pytest.mark.parametrize("b", [0.0, 0.45, 0.75, 1.0])
def test_variance_of_log_auc_closed_form(b, big_pop):
    """1-cmt, CL ∝ WT^b, no residual error: Var(log AUC) = ω² + (1-b)² Var(log WT) under mg/kg TBW
    dosing and ω² + b² Var(log WT) under a flat dose (AUC at steady state = dose/CL)."""
    spec = one_cmt_spec("TBW")
    omega = 0.3
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas={"beta_CL_TBW": b},
                                       omega={"CL": omega}, n_draws=12)
    sim = simulate_strategies(draws, {"tbw": PerKg(5), "flat": Flat(350)}, Q3W, big_pop, metrics=["auc_ss"],
                              keep_exposure=False)
    var_lw = np.var(np.log(big_pop["TBW"]), ddof=1)
    got = sim["log_var"].sel(metric="auc_ss").mean("draw")
    n, d = big_pop.n, sim.sizes["draw"]
    tol = 4 * omega**2 * np.sqrt(2 / (n * d)) + 4 * 2 * np.sqrt(var_lw * omega**2 / (n * d))  # 4 SE
    assert float(got.sel(strategy="tbw")) == pytest.approx(omega**2 + (1 - b) ** 2 * var_lw, abs=tol)
    assert float(got.sel(strategy="flat")) == pytest.approx(omega**2 + b**2 * var_lw, abs=tol)


def test_variance_of_log_cmax_exact_without_iiv(big_pop):
    """Bolus, V ∝ WT^bv, no IIV on V: Var(log Cmax) = (1-bv)² Var(log WT) exactly (TBW dosing)."""
    spec = one_cmt_spec("TBW", on_v=True, iiv=("CL",))
    bv = 0.6
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0},
                                       betas={"beta_CL_TBW": 0.7, "beta_V1_TBW": bv}, omega={"CL": 0.3}, n_draws=2)
    sim = simulate_strategies(draws, [PerKg(5), Flat(300)], Schedule.q3w(2), big_pop, metrics=["ceoi_c1", "cmax_c1"],
                              keep_exposure=False)
    var_lw = np.var(np.log(big_pop["TBW"]), ddof=1)
    lv = sim["log_var"]
    np.testing.assert_allclose(lv.sel(strategy="5 mg/kg TBW"), (1 - bv) ** 2 * var_lw, rtol=1e-9)
    np.testing.assert_allclose(lv.sel(strategy="flat 300 mg"), bv**2 * var_lw, rtol=1e-9)


def test_direction_aibw_vs_tbw_follows_the_truth(big_pop):
    """With sub-linear size effects AIBW dosing shrinks the exposure variance; near-linear: it does not."""
    spec = two_cmt_spec("TBW", corr=True)
    strategies = {"TBW": PerKg(5), "AIBW": PerKg(6, "AIBW")}
    pop = big_pop.subset(np.arange(5000))
    out = {}
    for label, (bcl, bv) in {"sublinear": (0.45, 0.5), "linear": (1.0, 1.0)}.items():
        betas = {"beta_CL_TBW": bcl, "beta_V1_TBW": bv, "beta_Q_TBW": bv, "beta_V2_TBW": bv}
        draws = PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, betas=betas,
                                           omega={"CL": 0.3, "V1": 0.2}, correlation=[[1, 0.3], [0.3, 1]], n_draws=6)
        sim = simulate_strategies(draws, strategies, Schedule.q3w(4, infusion="1 h"), pop,
                                  metrics=["cmax_c1", "auc_c1", "auc_ss"], keep_exposure=False)
        out[label] = summarize_strategies(sim, reference="TBW")
    for m in ("cmax_c1", "auc_c1", "auc_ss"):
        assert out["sublinear"].loc[("AIBW", m), "var_ratio_hi"] < 1.0
        assert out["sublinear"].loc[("AIBW", m), "prob_var_ratio_below_1"] == 1.0
        assert out["linear"].loc[("AIBW", m), "var_ratio_lo"] > 1.0


# --------------------------------------------------------------------------
# draws, random effects, reproducibility
# --------------------------------------------------------------------------


def test_fresh_random_effects_per_draw_and_seed():
    spec = one_cmt_spec()
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas={"beta_CL_TBW": 0.75},
                                       omega={"CL": 0.3}, n_draws=3)
    pop = sample_population(200, seed=1)
    a = simulate_strategies(draws, [PerKg(5)], Q3W, pop, metrics=["auc_ss"], seed=1)
    e = a["exposure"].sel(metric="auc_ss").isel(strategy=0).values
    assert not np.allclose(e[0], e[1])  # identical population parameters, fresh η per draw
    b = simulate_strategies(draws, [PerKg(5)], Q3W, pop, metrics=["auc_ss"], seed=1)
    xr.testing.assert_identical(a["exposure"], b["exposure"])
    c = simulate_strategies(draws, [PerKg(5)], Q3W, pop, metrics=["auc_ss"], seed=2)
    assert not np.allclose(c["exposure"].values, a["exposure"].values)
    # without random effects, identical draws give identical exposures: no spread across draws
    d = simulate_strategies(draws, [PerKg(5)], Q3W, pop, metrics=["auc_ss"], random_effects=False)
    s = summarize_strategies(d)
    assert s["bpv_cv_lo"].iloc[0] == pytest.approx(s["bpv_cv_hi"].iloc[0], rel=1e-12)
    assert s["var_log_param"].iloc[0] == pytest.approx(0.0, abs=1e-20)


def test_posterior_dataset_full_omega_and_subsampling():
    spec = two_cmt_spec("TBW", corr=True)
    rng = np.random.default_rng(0)
    nc, nd = 2, 50
    corr = np.zeros((nc, nd, 2, 2))
    r = rng.uniform(-0.5, 0.5, (nc, nd))
    corr[..., 0, 0] = corr[..., 1, 1] = 1.0
    corr[..., 0, 1] = corr[..., 1, 0] = r
    post = xr.Dataset(
        {**{p: (("chain", "draw"), v * np.exp(0.05 * rng.standard_normal((nc, nd))))
            for p, v in {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}.items()},
         **{f"beta_{p}_TBW": (("chain", "draw"), rng.normal(0.5, 0.05, (nc, nd))) for p in ("CL", "V1", "Q", "V2")},
         "omega_CL": (("chain", "draw"), rng.uniform(0.2, 0.4, (nc, nd))),
         "omega_V1": (("chain", "draw"), rng.uniform(0.1, 0.3, (nc, nd))),
         "omega_corr": (("chain", "draw", "iiv", "iiv_bis"), corr)},
        coords={"chain": [0, 1], "draw": np.arange(nd), "iiv": ["CL", "V1"], "iiv_bis": ["CL", "V1"]},
    )
    d = PosteriorDraws.from_posterior(spec, post, n_draws=30, seed=4)
    assert d.n == 30 and len(set(zip(d.source_chain, d.source_draw))) == 30
    k = 7
    ch, dr = d.source_chain[k], d.source_draw[k]
    cov = d.omega_chol[k] @ d.omega_chol[k].T
    sd = [float(post["omega_CL"][ch, dr]), float(post["omega_V1"][ch, dr])]
    assert cov[0, 1] == pytest.approx(sd[0] * sd[1] * r[ch, dr])
    assert np.exp(d.log_typical["CL"][k]) == pytest.approx(float(post["CL"][ch, dr]))
    # the Fit path and the (spec, posterior) path give the same simulation
    pop = sample_population(300, seed=2)
    fake = FakeFit(spec, None, None, posterior=post)
    s1 = simulate_strategies(fake, [PerKg(5)], Q3W, pop, n_draws=10, seed=3, metrics=["auc_c1"])
    s2 = simulate_strategies((spec, post), [PerKg(5)], Q3W, pop, n_draws=10, seed=3, metrics=["auc_c1"])
    xr.testing.assert_equal(s1["exposure"], s2["exposure"])
    assert s1.sizes["draw"] == 10 and len(set(zip(s1["source_chain"].values, s1["source_draw"].values))) == 10


def _draws(n=6):
    spec = two_cmt_spec("TBW")
    return PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                      betas={"beta_CL_TBW": 0.5, "beta_V1_TBW": 0.5, "beta_Q_TBW": 0.5,
                                             "beta_V2_TBW": 0.5}, omega={"CL": 0.3, "V1": 0.2}, n_draws=n)


def test_chunking_and_executors_do_not_change_results():
    pop = sample_population(500, seed=3)
    kw = dict(metrics=["cmax_c1", "auc_c1", "ctrough_ss", "time_above"], threshold=20.0,
              exceed={"cmax_c1": 100.0}, seed=5)
    strategies = {"tbw": PerKg(5), "aibw": PerKg(6, "AIBW")}
    whole = simulate_strategies(_draws(), strategies, Q3W, pop, **kw)
    chunked = simulate_strategies(_draws(), strategies, Q3W, pop, chunk_patients=37, chunk_draws=2, **kw)
    with ThreadPoolExecutor(2) as ex:
        threaded = simulate_strategies(_draws(), strategies, Q3W, pop, chunk_draws=1, executor=ex, **kw)
    for other in (chunked, threaded):
        for v in ("exposure", "log_var", "quantiles", "p_exceed"):
            np.testing.assert_allclose(other[v].values, whole[v].values, rtol=1e-12, equal_nan=True)


def test_progress_callback_and_timing():
    calls = []
    sim = simulate_strategies(_draws(4), [PerKg(5)], Q3W, sample_population(50, seed=1), metrics=["auc_c1"],
                              chunk_draws=1, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sim.attrs["elapsed_s"] > 0 and sim.attrs["patient_draws_per_s"] > 0


def test_large_run_bounded_memory(big_pop):
    """20,000 patients x 20 draws with per-patient exposures dropped: only per-draw statistics are kept."""
    t0 = time.perf_counter()
    sim = simulate_strategies(_draws(20), {"tbw": PerKg(5), "aibw": PerKg(6, "AIBW"), "flat": Flat(350)}, Q3W,
                              big_pop, keep_exposure=False, chunk_patients=20_000)
    assert time.perf_counter() - t0 < 60
    assert "exposure" not in sim and sim.sizes["patient"] == 0
    assert sim.attrs["n_patients"] == 20_000 and sim.sizes["draw"] == 20
    assert np.isfinite(sim["log_var"].values).all()
    assert sim.nbytes < 1e6


def test_keep_exposure_auto_warns_and_keeps_a_subset():
    pop = sample_population(2000, seed=1)
    with pytest.warns(UserWarning, match="keeping the first"):
        sim = simulate_strategies(_draws(4), [PerKg(5)], Q3W, pop, metrics=["auc_c1"], max_exposure_mb=0.02)
    kept = sim.attrs["n_patients_kept"]
    assert 0 < kept < 2000 and sim.sizes["patient"] == kept
    full = simulate_strategies(_draws(4), [PerKg(5)], Q3W, pop, metrics=["auc_c1"])
    np.testing.assert_allclose(sim["log_var"], full["log_var"])  # statistics use all patients
    with pytest.raises(ConfigError, match="every patient"):
        summarize_strategies(sim, exceed={"auc_c1": 1.0})


# --------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------


def test_summary_matches_direct_computation():
    pop = sample_population(3000, seed=9)
    sim = simulate_strategies(_draws(8), {"tbw": PerKg(5), "aibw": PerKg(6, "AIBW")}, Q3W, pop,
                              metrics=["cmax_c1", "auc_c1"], exceed={"cmax_c1": 120.0})
    s = summarize_strategies(sim, ci=0.8)
    assert s.attrs["reference"] == "tbw"
    assert (s.loc["tbw", "var_ratio_median"] == 1.0).all()
    E = sim["exposure"]
    lv = np.log(E).var("patient", ddof=1)
    ratio = lv.sel(strategy="aibw") / lv.sel(strategy="tbw")
    for m in ("cmax_c1", "auc_c1"):
        r = ratio.sel(metric=m).values
        row = s.loc[("aibw", m)]
        assert row["var_ratio_median"] == pytest.approx(np.median(r))
        assert row["var_ratio_lo"] == pytest.approx(np.quantile(r, 0.1))
        assert row["bpv_var_log_median"] == pytest.approx(np.median(lv.sel(strategy="aibw", metric=m)))
        cv = (E.std("patient", ddof=1) / E.mean("patient")).sel(strategy="aibw", metric=m).values
        assert row["bpv_cv_hi"] == pytest.approx(np.quantile(cv, 0.9))
        med = E.median("patient").sel(strategy="aibw", metric=m).values
        assert row["median_exposure_median"] == pytest.approx(np.median(med))
    frac = (E.sel(metric="cmax_c1") > 120.0).mean("patient").sel(strategy="aibw").values
    assert s.loc[("aibw", "cmax_c1"), "p_exceed_median"] == pytest.approx(np.median(frac))
    assert np.isnan(s.loc[("aibw", "auc_c1"), "p_exceed_median"])
    # new thresholds computed from the kept exposures agree with thresholds given at simulation
    s2 = summarize_strategies(sim, exceed={"cmax_c1": 120.0, "auc_c1": 1500.0})
    assert s2.loc[("aibw", "cmax_c1"), "p_exceed_median"] == pytest.approx(s.loc[("aibw", "cmax_c1"), "p_exceed_median"])
    assert np.isfinite(s2.loc[("aibw", "auc_c1"), "p_exceed_median"])
    # BPV and parameter uncertainty are reported apart
    assert {"var_log_bpv", "var_log_param", "bpv_cv_median", "bpv_cv_lo", "bpv_cv_hi"} <= set(s.columns)
    with pytest.raises(ConfigError, match="reference"):
        summarize_strategies(sim, reference="nope")
    assert summarize_strategies(sim, reference="6 mg/kg AIBW").attrs["reference"] == "aibw"


# --------------------------------------------------------------------------
# dose matching
# --------------------------------------------------------------------------


def test_match_dose_linear():
    spec = one_cmt_spec("AIBW", reference=60.0)
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas={"beta_CL_AIBW": 0.7},
                                       omega={"CL": 0.3}, n_draws=5)
    pop = sample_population(4000, seed=1, female_fraction=1.0)
    m = match_dose(draws, PerKg(5), "AIBW", Q3W, pop, metric="auc_ss")
    assert m.method == "ratio" and abs(m.relative_error) < 1e-9
    # by hand without random effects: median(5 TBW / CL_i) = r * median(AIBW / CL_i)
    cl = 0.5 * (pop["AIBW"] / 60.0) ** 0.7
    m0 = match_dose(draws, PerKg(5), "AIBW", Q3W, pop, metric="auc_ss", random_effects=False)
    assert m0.rate == pytest.approx(np.median(5 * pop["TBW"] / cl) / np.median(pop["AIBW"] / cl), rel=1e-9)
    assert m.rate == pytest.approx(m0.rate, rel=0.02)
    assert m.rate_lo <= m.rate <= m.rate_hi
    assert m.strategy == PerKg(m.rate, "AIBW")
    assert m.to_series()["method"] == "ratio"


def test_match_dose_rounded_uses_bisection():
    spec = one_cmt_spec("TBW")
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas={"beta_CL_TBW": 0.75},
                                       omega={"CL": 0.3}, n_draws=3)
    pop = sample_population(1000, seed=2)
    m = match_dose(draws, PerKg(5), Rounded(PerKg(1, "AIBW"), 10), Q3W, pop, metric="auc_ss", rtol=1e-4)
    assert m.method == "bisection"
    assert abs(m.relative_error) < 0.02  # within one 10 mg step of the median dose


# --------------------------------------------------------------------------
# errors and units
# --------------------------------------------------------------------------


def test_input_errors():
    pop = sample_population(20, seed=1, albumin=None)
    d = _draws(2)
    with pytest.raises(ConfigError, match="time_above"):
        simulate_strategies(d, [PerKg(5)], Q3W, pop, metrics=["time_above"])
    with pytest.raises(ConfigError, match="exceed"):
        simulate_strategies(d, [PerKg(5)], Q3W, pop, metrics=["auc_c1"], exceed={"cmax_c1": 1.0})
    with pytest.raises(ConfigError, match="twice"):
        simulate_strategies(d, [PerKg(5), PerKg(5)], Q3W, pop)
    from poppk.model import CovariateEffect

    spec_alb = two_cmt_spec("TBW").with_covariate(CovariateEffect("CL", "ALB", reference=4.0))
    d_alb = PosteriorDraws.from_values(spec_alb, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                       betas={"beta_CL_TBW": 0.5, "beta_V1_TBW": 0.5, "beta_Q_TBW": 0.5,
                                              "beta_V2_TBW": 0.5, "beta_CL_ALB": -0.5},
                                       omega={"CL": 0.3, "V1": 0.2})
    with pytest.raises(ConfigError, match="ALB"):
        simulate_strategies(d_alb, [PerKg(5)], Q3W, pop)
    from poppk.model import ModelSpec

    unresolved = ModelSpec("1cmt", {"CL": 1, "V1": 1}, covariates=(CovariateEffect("CL", "TBW"),), iiv=("CL",))
    with pytest.raises(ModelSpecError, match="unresolved"):
        PosteriorDraws.from_values(unresolved, typical={"CL": 1, "V1": 1}, betas={"beta_CL_TBW": 1}, omega={"CL": 0.1})
    with pytest.warns(UserWarning, match="reference"):
        pop_lb = population_from_table(pd.DataFrame({"WT": [150.0, 160.0], "HT": [170.0, 171.0], "SEX": ["F", "F"]}))
        simulate_strategies(d, [PerKg(5)], Q3W, pop_lb, metrics=["auc_c1"])


def test_time_and_amount_units():
    pop = sample_population(100, seed=1)
    d_day = _draws(2)
    spec_h = two_cmt_spec("TBW")
    import dataclasses

    spec_h = dataclasses.replace(spec_h, units={"time": "h", "amount": "ug"})
    d_h = PosteriorDraws.from_values(spec_h, typical={"CL": 0.45 / 24, "V1": 2.8, "Q": 0.6 / 24, "V2": 2.0},
                                     betas={"beta_CL_TBW": 0.5, "beta_V1_TBW": 0.5, "beta_Q_TBW": 0.5,
                                            "beta_V2_TBW": 0.5}, omega={"CL": 0.3, "V1": 0.2}, n_draws=2)
    a = simulate_strategies(d_day, [PerKg(5)], Q3W, pop, metrics=["cmax_c1", "auc_c1"])
    b = simulate_strategies(d_h, [PerKg(5)], Q3W, pop, metrics=["cmax_c1", "auc_c1"])
    np.testing.assert_allclose(b["exposure"].sel(metric="cmax_c1"), 1000 * a["exposure"].sel(metric="cmax_c1"),
                               rtol=1e-9)
    np.testing.assert_allclose(b["exposure"].sel(metric="auc_c1"), 24_000 * a["exposure"].sel(metric="auc_c1"),
                               rtol=1e-9)
    assert str(b["metric_unit"].sel(metric="auc_c1").values) == "ug/L*h"


# --------------------------------------------------------------------------
# loading doses
# --------------------------------------------------------------------------


@pytest.mark.parametrize("loading", [1.0, 2.0, 0.5])
def test_loading_dose_closed_form(loading):
    """1-cmt bolus, dose D every τ, first dose L·D: cycle-1 metrics scale by L (only the first dose
    falls in cycle 1), steady state is the maintenance one, and time above C* follows from
    C(t) = Σ amounts · D/V · exp(-k (t - t_j))."""
    cl, v, d, tau = 0.5, 4.0, 100.0, 21.0
    spec = one_cmt_spec("TBW", iiv=("CL",))
    draws = PosteriorDraws.from_values(spec, typical={"CL": cl, "V1": v}, betas={"beta_CL_TBW": 0.0},
                                       omega={"CL": 0.3}, n_draws=1)
    sched = Schedule.q3w(3).with_loading(loading)
    pop = sample_population(3, seed=1)
    thr = 2.0
    sim = simulate_strategies(draws, {"flat": Flat(d)}, sched, pop, random_effects=False, threshold=thr,
                              metrics=["cmax_c1", "ctrough_c1", "auc_c1", "cmax_ss", "auc_ss"])
    e = sim["exposure"].isel(draw=0, patient=0, strategy=0)
    k = cl / v
    c0 = d / v
    assert float(e.sel(metric="cmax_c1")) == pytest.approx(loading * c0, rel=1e-9)
    assert float(e.sel(metric="ctrough_c1")) == pytest.approx(loading * c0 * np.exp(-k * tau), rel=1e-9)
    assert float(e.sel(metric="auc_c1")) == pytest.approx(loading * d / cl * (1 - np.exp(-k * tau)), rel=1e-6)
    assert float(e.sel(metric="cmax_ss")) == pytest.approx(c0 / (1 - np.exp(-k * tau)), rel=1e-9)
    assert float(e.sel(metric="auc_ss")) == pytest.approx(d / cl, rel=1e-6)
    # time above thr over 3 cycles, from the exact profile on a fine grid
    t = np.linspace(0, 3 * tau, 300_001)
    amounts = np.array([loading, 1.0, 1.0])
    conc = sum(a * c0 * np.exp(-k * (t - tj)) * (t >= tj) for a, tj in zip(amounts, (0.0, tau, 2 * tau)))
    assert float(e.sel(metric="time_above")) == pytest.approx(np.mean(conc > thr) * 3 * tau, abs=0.05)


def test_loading_dose_in_text_and_dict_forms():
    from poppk.errors import ConfigError
    from poppk.simulate.schedule import parse_schedule

    s = parse_schedule("q3w:6; loading=2", infusion="90 min")
    assert s.loading == 2.0 and s.amounts == (2.0, 1, 1, 1, 1, 1)
    assert s.label == "Q3W x6, loading dose 2x, 90 min infusion"
    assert Schedule(**s.to_dict()) == s
    assert s.in_unit("h").loading == 2.0
    with pytest.raises(ConfigError, match="loading=2"):
        parse_schedule("q3w:6; load 2")
    with pytest.raises(ConfigError, match="loading must be > 0"):
        Schedule.q3w(2).with_loading(0)


def test_loading_dose_with_several_doses_in_cycle_one():
    """Days 1, 8, 15 of 28-day cycles, first dose L·D: only the day-1 dose of cycle 1 is scaled.
    AUC over [0, 28] = Σ a_j D/CL (1 - exp(-k (28 - t_j))); the dose table shows the first dose."""
    from poppk.simulate.tables import dose_table

    cl, v, d, loading = 0.5, 4.0, 100.0, 3.0
    spec = one_cmt_spec("TBW", iiv=("CL",))
    draws = PosteriorDraws.from_values(spec, typical={"CL": cl, "V1": v}, betas={"beta_CL_TBW": 0.0},
                                       omega={"CL": 0.3}, n_draws=1)
    sched = Schedule.weekly_x3_q4w(2).with_loading(loading)
    sim = simulate_strategies(draws, {"flat": Flat(d)}, sched, sample_population(2, seed=1), random_effects=False,
                              metrics=["auc_c1", "auc_ss", "cmax_c1"])
    e = sim["exposure"].isel(draw=0, patient=0, strategy=0)
    k = cl / v
    want = sum(a * d / cl * (1 - np.exp(-k * (28 - t))) for a, t in zip((loading, 1, 1), (0, 7, 14)))
    assert float(e.sel(metric="auc_c1")) == pytest.approx(want, rel=1e-6)
    assert float(e.sel(metric="auc_ss")) == pytest.approx(3 * d / cl, rel=1e-6)  # maintenance steady state
    assert float(e.sel(metric="cmax_c1")) == pytest.approx(loading * d / v, rel=1e-9)  # the loading dose peak
    assert dose_table(sim).loc["flat", "loading_median_mg"] == pytest.approx(loading * d)
