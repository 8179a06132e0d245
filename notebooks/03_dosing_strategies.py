# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 — Dosing strategies: how much does AIBW dosing shrink between-patient exposure variance?
#
# For every posterior draw, a virtual population (resampled from the trial's
# covariates) gets fresh random effects and is dosed by each strategy; the
# between-patient variance of log exposure is computed per draw, so each
# figure below carries **parameter uncertainty** (the spread across draws) on
# top of **between-patient variability** (the spread within a draw).
#
# The answer must not hang on which size covariate the analyst picked, so
# the trial is fitted three ways — size on TBW, on AIBW, and the adjusted
# size model IBW + f·(TBW − IBW) with f estimated — and each fit's answer is
# simulated and combined by LOO stacking weights; the optimal dosing size f*
# comes with its interval.  The virtual population is a Bayesian bootstrap of
# the trial's patients, so the intervals also carry the uncertainty of the
# covariate distribution.
#
# Then the same analysis on a trial regenerated with size exponents of 1,
# where mg/kg dosing on TBW is already right: the averaged answer must no
# longer favour AIBW (a fit that assumes AIBW would, by construction).
# Finally an exposure–toxicity model of the ocular adverse events predicts
# their incidence under each strategy.
#
# Set `POPPK_QUICK=1` to run on small settings (as the test suite does), and
# `POPPK_FIT_STORE=<dir>` to keep the fits there: a fit saved with the same
# model, data and settings is loaded instead of refitted (`poppk.fit(..., file=)`),
# so the notebooks share fits with each other and with `poppk run --out <dir>/..`.

# %%
# %matplotlib inline
import importlib.util
import os
import tempfile
from pathlib import Path

import poppk
from poppk.simulate import (
    PerKg,
    Schedule,
    fit_exposure_toxicity,
    match_dose,
    plot_exposure_by_strategy,
    plot_exposure_vs_weight,
    plot_model_answers,
    plot_variance_ratio,
    predict_incidence,
    resample_population,
    simulate_strategies,
    summarize_strategies,
)
from poppk.diagnostics import compare
from poppk.simulate.answer import simulate_candidates
from poppk.workflow import bundled_trial_data, bundled_trial_path, trial_spec

QUICK = os.environ.get("POPPK_QUICK") == "1"
DRAWS, TUNE, CHAINS = (150, 150, 2) if QUICK else (1000, 500, 4)
N_PATIENTS, N_SIM_DRAWS = (1000, 50) if QUICK else (5000, 200)


STORE = os.environ.get("POPPK_FIT_STORE")


def fit_trial(path, descriptor="TBW", name=None):
    """Fit one candidate model to a trial (read as the bundled analysis reads it); kept as ``name``."""
    if path == bundled_trial_path():
        data = bundled_trial_data()
    else:
        data = poppk.read_nonmem(path, time_unit="day").with_size_descriptors(ibw_method="label")
    file = Path(STORE) / (name or descriptor) if STORE else None
    return poppk.fit(trial_spec(descriptor), data, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=1, progress=False,
                     file=file)


def averaged_answer(fits, pop):
    """Simulate every fit, weight by LOO stacking, and return the answer (tables and sentences)."""
    weights = compare(fits)["weight"].to_dict()
    return simulate_candidates(fits, weights, strategies, schedule, pop, n_draws=N_SIM_DRAWS, seed=1,
                               metrics=["cmax_c1", "auc_c1"], reference="5 mg/kg TBW",
                               optimal_target="6 mg/kg AIBW")


strategies = {
    "5 mg/kg TBW": PerKg(5),
    "5 mg/kg AIBW": PerKg(5, "AIBW", ibw_method="label"),
    "6 mg/kg AIBW": PerKg(6, "AIBW", ibw_method="label"),
}
schedule = Schedule.q3w(6, infusion="1 h")

# %% [markdown]
# ## The shipped trial (true size exponents 0.45 on CL, 0.5 on V)

# %%
fit = fit_trial(bundled_trial_path())
print(fit.convergence())
fit.summary().round(3)

# %%
pop = resample_population(fit, N_PATIENTS, seed=1)
sim = simulate_strategies(fit, strategies, schedule, pop, n_draws=N_SIM_DRAWS, seed=1,
                          metrics=["cmax_c1", "auc_c1", "auc_ss"])
summary = summarize_strategies(sim, reference="5 mg/kg TBW")
summary[["median_exposure_median", "bpv_cv_median", "var_ratio_median", "var_ratio_lo", "var_ratio_hi",
         "prob_var_ratio_below_1"]].round(3)

# %%
fig = plot_variance_ratio(summary)
fig


# %%
fig = plot_exposure_vs_weight(sim, pop, metric="cmax_c1")
fig


# %%
fig = plot_exposure_by_strategy(sim, metric="auc_c1")
fig


# %% [markdown]
# ## The answer over candidate size models
#
# The TBW fit above is one of three plausible models.  Fit the other two,
# weight them by leave-one-subject-out LOO stacking, and read every model's
# answer beside the averaged one.  `size_fraction` of the adjusted model says
# which size the PK data support (0 = IBW, 0.4 = AIBW, 1 = TBW).

# %%
fits = {"TBW": fit, "AIBW": fit_trial(bundled_trial_path(), "AIBW"), "ADJ": fit_trial(bundled_trial_path(), "ADJ")}
fits["ADJ"].summary().loc[["size_fraction", "beta_CL_SIZE", "beta_V1_SIZE"]].round(3)

# %%
answer = averaged_answer(fits, pop)
answer.strategies.loc[(slice(None), "5 mg/kg AIBW"), ["weight", "var_ratio_median", "var_ratio_lo", "var_ratio_hi",
                                                       "prob_var_ratio_below_1"]].round(3)

# %%
fig = plot_model_answers(answer.strategies, "5 mg/kg AIBW", "cmax_c1").figure
fig

# %% [markdown]
# The optimal size fraction f* (dose = mg/kg × (IBW + f*·(TBW − IBW))), its
# variance against AIBW (f = 0.4) and TBW (f = 1), and the mg/kg at f* that
# gives the median exposure of 6 mg/kg AIBW:

# %%
answer.optimal[["weight", "f_opt_median", "f_opt_lo", "f_opt_hi", "ratio_opt_vs_aibw_median",
                "ratio_opt_vs_tbw_median", "dose_per_kg_median"]].round(3)

# %%
print("\n\n".join(answer.headline))

# %% [markdown]
# ## Equal typical exposure: which AIBW dose matches 5 mg/kg TBW?

# %%
match_dose(fit, PerKg(5), PerKg(1, "AIBW", ibw_method="label"), schedule, pop, metric="auc_c1")

# %% [markdown]
# ## Weekly ×3 every 4 weeks instead of Q3W

# %%
weekly = simulate_strategies(fit, strategies, Schedule.weekly_x3_q4w(3, infusion="1 h"), pop,
                             n_draws=N_SIM_DRAWS, seed=1, metrics=["cmax_c1", "auc_ss"])
summarize_strategies(weekly, reference="5 mg/kg TBW")[["median_exposure_median", "var_ratio_median", "var_ratio_lo",
                                                        "var_ratio_hi"]].round(3)

# %% [markdown]
# ## Exposure–toxicity: ocular adverse events on cycle-1 Cmax

# %%
tox = fit_exposure_toxicity(fit, "AE_OCULAR", "cmax_c1", n_pk_draws=50 if QUICK else 200,
                            draws=150 if QUICK else 1000, tune=150 if QUICK else 1000, seed=2)
predict_incidence(tox, sim, reference="5 mg/kg TBW", ci=0.95).round(3)

# %% [markdown]
# ## If the truth were linear in weight (size exponents 1), AIBW would not help

# %%
spec_ = importlib.util.spec_from_file_location("generate_trial", Path(poppk.__file__).resolve().parents[1] / "data" / "generate_trial.py")
gt = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(gt)
records, truth = gt.generate_trial(cl_size_exponent=1.0, v_size_exponent=1.0)
path, _ = gt.write_trial(records, truth, Path(tempfile.mkdtemp()))
linear_fits = {"TBW": fit_trial(path, name="linear_TBW"), "AIBW": fit_trial(path, "AIBW", name="linear_AIBW")}
lin_pop = resample_population(linear_fits["TBW"], N_PATIENTS, seed=1)
lin_answer = averaged_answer(linear_fits, lin_pop)
lin_answer.strategies.loc[(slice(None), "5 mg/kg AIBW"), ["weight", "var_ratio_median", "var_ratio_lo",
                                                           "var_ratio_hi", "prob_var_ratio_below_1"]].round(3)

# %% [markdown]
# The fit that assumes AIBW reports a ratio below 1 (AIBW dosing "helps") by
# construction; the averaged answer follows the weights, and in the
# generator's population the true ratio for cycle-1 Cmax is about 1.26
# (`benchmarks/calibrate_ratio.py`, truth `TBW^1`).

# %%
print("\n\n".join(lin_answer.headline))

# %%
fig = plot_model_answers(lin_answer.strategies, "5 mg/kg AIBW", "cmax_c1").figure
fig

