"""f*, the dosing basis of least exposure variance, and model-averaged answers (no MCMC: known truths)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poppk.errors import ConfigError


def _adjusted_spec(fraction: float, exponent_cl: float = 1.0, exponent_v: float = 1.0):
    from poppk.model import ModelSpec, Prior

    spec = ModelSpec("1cmt", {"CL": 0.5, "V1": 4.0}, iiv=("CL", "V1"), error="proportional", units={"time": "day"})
    spec = spec.with_size_model(fraction=fraction, reference=70.0, base_reference=58.0,
                                exponents={"CL": Prior.normal(0, 1), "V1": Prior.normal(0, 1)})
    betas = {"beta_CL_SIZE": exponent_cl, "beta_V1_SIZE": exponent_v}
    return spec, betas


def _simulate(spec, betas, *, n=3000, draws=6, omega=0.2, strategies=None, seed=1):
    from poppk.simulate import PerKg, PosteriorDraws, Schedule, sample_population, simulate_strategies

    d = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas=betas,
                                   omega={"CL": omega, "V1": omega}, n_draws=draws)
    pop = sample_population(n, seed=seed, female_fraction=1.0)
    strategies = strategies or {"tbw": PerKg(5.0), "aibw": PerKg(5.0, "AIBW")}
    return simulate_strategies(d, strategies, Schedule.q3w(2, infusion="90 min"), pop, seed=seed,
                               metrics=["auc_c1", "auc_ss", "cmax_c1"], keep_exposure=True)


@pytest.mark.parametrize("f_true", [0.0, 0.3, 0.7, 1.0])
def test_f_opt_recovers_the_size_that_clearance_follows(f_true):
    """CL and V ∝ S(f) ⇒ AUC ∝ dose / S(f): the variance of log AUC is least when the dose follows S(f)."""
    from poppk.simulate.optimal import optimal_size_fraction, summarize_optimal_fraction

    spec, betas = _adjusted_spec(f_true)
    sim = _simulate(spec, betas)
    opt = optimal_size_fraction(sim, metrics=["auc_c1", "auc_ss"])
    f = opt["f_opt"].values
    assert np.all(np.abs(f - f_true) < 0.08), f
    # the variance at f* is never above the variance at 0.4 or 1 (it is their minimum over f)
    assert np.all(opt["ratio_opt_vs_aibw"].values <= 1 + 1e-9)
    assert np.all(opt["ratio_opt_vs_tbw"].values <= 1 + 1e-9)
    table = summarize_optimal_fraction(opt)
    assert set(table.index) == {"auc_c1", "auc_ss"}
    assert table.loc["auc_ss", "f_opt_lo"] <= table.loc["auc_ss", "f_opt_median"] <= table.loc["auc_ss", "f_opt_hi"]


def test_f_opt_ratio_at_aibw_agrees_with_the_simulated_strategies():
    """The variance at f = 0.4 and f = 1 computed from unit exposures equals the simulated AIBW and TBW doses'."""
    from poppk.simulate import per_draw_statistics
    from poppk.simulate.optimal import optimal_size_fraction

    spec, betas = _adjusted_spec(0.5, 0.8, 0.9)
    sim = _simulate(spec, betas)
    opt = optimal_size_fraction(sim, strategy="tbw")
    st = per_draw_statistics(sim)
    sim_ratio = (st["bpv_var_log"].sel(strategy="aibw") / st["bpv_var_log"].sel(strategy="tbw")).transpose("draw", "metric")
    np.testing.assert_allclose(opt["ratio_aibw_vs_tbw"].transpose("draw", "metric").values, sim_ratio.values, rtol=1e-6)


def test_dose_per_kg_matches_the_target_median():
    from poppk.simulate.optimal import optimal_size_fraction

    spec, betas = _adjusted_spec(0.4)
    sim = _simulate(spec, betas)
    opt = optimal_size_fraction(sim, metrics=["auc_c1"], target="aibw")
    # f* ≈ 0.4 here, so the mg/kg of S(f*) that matches 5 mg/kg AIBW's median exposure is ≈ 5
    np.testing.assert_allclose(opt["dose_per_kg"].values, 5.0, rtol=0.03)
    with pytest.raises(ConfigError, match="not one of"):
        optimal_size_fraction(sim, target="nope")


def test_f_opt_needs_every_exposure():
    from poppk.simulate.optimal import optimal_size_fraction

    spec, betas = _adjusted_spec(0.4)
    sim = _simulate(spec, betas, n=200, draws=2).drop_vars("exposure")
    with pytest.raises(ConfigError, match="keep_exposure=True"):
        optimal_size_fraction(sim)


def test_mixture_with_weight_one_is_that_model_and_weights_split_the_draws():
    from poppk.simulate import per_draw_statistics
    from poppk.simulate.averaging import draw_counts, mix_draws

    s1, b1 = _adjusted_spec(1.0)
    s2, b2 = _adjusted_spec(0.0)
    a, b = per_draw_statistics(_simulate(s1, b1, n=500, draws=10)), per_draw_statistics(_simulate(s2, b2, n=500, draws=10))
    only_a = mix_draws({"A": a, "B": b}, {"A": 1.0, "B": 0.0})
    assert list(only_a["model"].values) == ["A"] * 10
    np.testing.assert_array_equal(np.sort(only_a["bpv_var_log"].values, axis=0), np.sort(a["bpv_var_log"].values, axis=0))
    half = mix_draws({"A": a, "B": b}, {"A": 3.0, "B": 1.0}, n_draws=8)
    assert half.attrs["draws_per_model"] == {"A": 6, "B": 2} and half.attrs["weights"] == {"A": 0.75, "B": 0.25}
    assert sum(draw_counts({"x": 1 / 3, "y": 1 / 3, "z": 1 / 3}, 100).values()) == 100
    with pytest.raises(ConfigError, match="no weight"):
        mix_draws({"A": a, "B": b}, {"A": 1.0})


def test_averaged_answer_spans_models_that_disagree_and_says_so():
    """Truth on TBW (f = 1) vs on IBW (f = 0): AIBW dosing widens variance under one, shrinks it under the other."""
    from poppk.simulate.averaging import averaged_strategy_summary, model_dependence

    s1, b1 = _adjusted_spec(1.0)
    s2, b2 = _adjusted_spec(0.0)
    sims = {"TBW": _simulate(s1, b1, n=1500, draws=20), "IBW": _simulate(s2, b2, n=1500, draws=20, seed=2)}
    table = averaged_strategy_summary(sims, {"TBW": 0.5, "IBW": 0.5}, reference="tbw")
    assert list(table.index.get_level_values("model").unique()) == ["averaged", "TBW", "IBW"]
    r = table["var_ratio_median"]
    assert r.loc[("TBW", "aibw", "auc_ss")] > 1 > r.loc[("IBW", "aibw", "auc_ss")]
    avg = table.loc[("averaged", "aibw", "auc_ss")]
    assert avg["var_ratio_lo"] < 1 < avg["var_ratio_hi"]
    from poppk.simulate import model_answers_table, plot_model_answers

    answers = model_answers_table(table, "aibw", "auc_ss")
    assert list(answers.index) == ["averaged", "TBW", "IBW"] and answers.loc["TBW", "weight"] == 0.5
    assert answers.loc["IBW", "hi"] < 1 < answers.loc["TBW", "lo"]
    ax = plot_model_answers(table, "aibw", "auc_ss")
    assert len(ax.get_yticklabels()) == 3
    verdict = model_dependence(table, "aibw", "auc_ss")
    assert verdict["depends"] and "depends on the size model" in verdict["text"]
    agree = averaged_strategy_summary({"a": sims["TBW"], "b": sims["TBW"]}, {"a": 0.5, "b": 0.5}, reference="tbw")
    v2 = model_dependence(agree, "aibw", "auc_ss")
    assert not v2["depends"] and "agree" in v2["text"]
    assert isinstance(table, pd.DataFrame) and table.attrs["weights"] == {"TBW": 0.5, "IBW": 0.5}


def test_simulate_candidates_writes_the_averaged_answer(tmp_path):
    """Two candidate 'fits' (known draws) that disagree: the answer, f* and the words say so; files are written."""
    import json

    from poppk.simulate import PerKg, PosteriorDraws, Schedule, sample_population
    from poppk.simulate.answer import simulate_candidates, write_answer

    cands = {}
    for name, f in (("TBW", 1.0), ("IBW", 0.0)):
        spec, betas = _adjusted_spec(f)
        cands[name] = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas=betas,
                                                 omega={"CL": 0.2, "V1": 0.2}, n_draws=12)
    ans = simulate_candidates(cands, {"TBW": 0.7, "IBW": 0.3}, {"tbw": PerKg(5.0), "aibw": PerKg(5.0, "AIBW")},
                              Schedule.q3w(2, infusion="90 min"), sample_population(1500, seed=3, female_fraction=1.0),
                              n_draws=12, metrics=["auc_ss"])
    assert ans.weights == {"TBW": 0.7, "IBW": 0.3}
    assert ans.verdicts[("aibw", "auc_ss")]["depends"]
    assert ans.optimal is not None and list(ans.optimal.index.get_level_values("model").unique()) == ["averaged", "TBW", "IBW"]
    f_tbw = ans.optimal.loc[("TBW", "auc_ss"), "f_opt_median"]
    f_ibw = ans.optimal.loc[("IBW", "auc_ss"), "f_opt_median"]
    assert f_tbw > 0.9 and f_ibw < 0.1
    assert any("depends on the size model" in h for h in ans.headline)
    assert any(h.startswith("Optimal dosing size") for h in ans.headline)
    written = write_answer(ans, tmp_path)
    doc = json.loads(written["answer_json"].read_text())
    assert doc["weights"] == {"TBW": 0.7, "IBW": 0.3} and doc["verdicts"][0]["depends_on_model"] is True
    assert pd.read_csv(written["averaged_strategies"])["model"].iloc[0] == "averaged"


def test_f_opt_uses_the_population_bootstrap_weights():
    """With a resampled population, f* and its variances are taken under each draw's bootstrap weights: the
    ratio at 0.4 vs 1 equals the simulated (weighted) AIBW/TBW ratio, and differs from the unweighted one."""
    from poppk.simulate import (PerKg, PosteriorDraws, Schedule, per_draw_statistics, resample_population,
                                sample_population, simulate_strategies)
    from poppk.simulate.optimal import optimal_size_fraction
    from poppk.simulate.summaries import patient_weights

    spec, betas = _adjusted_spec(0.5, 0.8, 0.9)
    d = PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0}, betas=betas,
                                   omega={"CL": 0.2, "V1": 0.2}, n_draws=8)
    trial = sample_population(40, seed=5, female_fraction=1.0).covariates
    pop = resample_population(trial, 1500, seed=1)
    kw = dict(seed=1, metrics=["auc_c1"], keep_exposure=True)
    strategies = {"tbw": PerKg(5.0), "aibw": PerKg(5.0, "AIBW")}
    sim = simulate_strategies(d, strategies, Schedule.q3w(2, infusion="90 min"), pop, **kw)
    assert patient_weights(sim) is not None
    opt = optimal_size_fraction(sim, strategy="tbw")
    st = per_draw_statistics(sim)
    weighted = (st["bpv_var_log"].sel(strategy="aibw") / st["bpv_var_log"].sel(strategy="tbw")).sel(metric="auc_c1")
    np.testing.assert_allclose(opt["ratio_aibw_vs_tbw"].sel(metric="auc_c1").values, weighted.values, rtol=1e-6)
    off = optimal_size_fraction(sim.drop_vars("source_weight"), strategy="tbw")
    assert not np.allclose(off["f_opt"].values, opt["f_opt"].values, rtol=1e-3)


def _table(rows, weights):
    idx, data = [], []
    for model, (med, lo, hi) in rows.items():
        idx.append((model, "aibw", "cmax_c1"))
        data.append({"label": "6 mg/kg AIBW", "weight": weights.get(model, 1.0), "var_ratio_median": med,
                     "var_ratio_lo": lo, "var_ratio_hi": hi})
    t = pd.DataFrame(data, index=pd.MultiIndex.from_tuples(idx, names=["model", "strategy", "metric"]))
    t.attrs.update({"ci": 0.9, "method": "stacking"})
    return t


@pytest.mark.parametrize("rows, weights, depends, phrase", [
    # one interval excludes 1, the other straddles it and its median lies outside the first: depends
    ({"averaged": (0.7, 0.5, 1.1), "TBW": (0.86, 0.64, 1.15), "AIBW": (0.56, 0.47, 0.66)},
     {"TBW": 0.5, "AIBW": 0.5}, True, "disagree on whether"),
    # nearly the same answer: agree
    ({"averaged": (0.8, 0.7, 0.9), "TBW": (0.8, 0.7, 0.92), "AIBW": (0.79, 0.69, 0.9)},
     {"TBW": 0.5, "AIBW": 0.5}, False, "agree"),
    # one model carries the weight; the light one points elsewhere
    ({"averaged": (1.2, 1.1, 1.3), "TBW": (1.2, 1.1, 1.3), "AIBW": (0.6, 0.5, 0.7)},
     {"TBW": 0.98, "AIBW": 0.02}, False, "One model carries the weight"),
])
def test_model_dependence_rules(rows, weights, depends, phrase):
    from poppk.simulate.averaging import model_dependence

    v = model_dependence(_table(rows, weights), "6 mg/kg AIBW", "cmax_c1")
    assert v["depends"] is depends and phrase in v["verdict"]
    with pytest.raises(ConfigError, match="metric"):
        model_dependence(_table(rows, weights), "aibw", "auc_c9")
