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
# # 04 — Individual dosing: forecast one patient and recommend her dose
#
# The population analysis chose the dosing basis for the label; in the clinic
# the question is *this* patient.  Given her weight, height, sex and albumin,
# the doses she has had and one or two measured concentrations (one below the
# LLOQ), `poppk.forecast` computes her individual posterior **integrated over
# the population posterior** (the Laplace approximation of her random effects
# under each population draw, corrected by importance sampling, her data
# reweighting the draws; BLQ samples by M3 as in the fit), and from it her
# concentration curve, exposure and parameters beside the population
# prediction for her covariates.  `poppk.recommend_dose` then finds the dose
# that meets an exposure target, with the probability of meeting it, beside
# the label's 6 mg/kg AIBW for the same patient.
#
# Set `POPPK_QUICK=1` to run on small settings (as the test suite does), and
# `POPPK_FIT_STORE=<dir>` to reuse the AIBW fit of notebook 03 (same model,
# data and settings).

# %%
# %matplotlib inline
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import poppk
from poppk.bodysize import size_descriptors
from poppk.forecast.page import plot_exposure, plot_forecast_curve
from poppk.workflow import bundled_trial_data, trial_spec

QUICK = os.environ.get("POPPK_QUICK") == "1"
DRAWS, TUNE, CHAINS = (150, 150, 2) if QUICK else (1000, 500, 4)
STORE = os.environ.get("POPPK_FIT_STORE")

fit = poppk.fit(trial_spec("AIBW"), bundled_trial_data(), draws=DRAWS, tune=TUNE, chains=CHAINS, seed=1,
                progress=False, file=Path(STORE) / "AIBW" if STORE else None)
fit.summary().round(3)

# %% [markdown]
# ## The patient
#
# 82 kg, 165 cm, female, albumin 3.6 g/dL.  Cycle 1: 6 mg/kg AIBW (label IBW)
# as a 1-hour infusion; cycle 2 planned three weeks later at the same dose.
# Two samples in cycle 1: at the end of the infusion and on day 14 -- the
# day-14 one came back below the LLOQ.

# %%
patient = {"WT": 82, "HT": 165, "SEX": "F", "ALB": 3.6}
label = "6 mg/kg AIBW label"
aibw = size_descriptors(82.0, 165.0, "F", ibw_method="label")["AIBW"]
dose = round(6 * float(aibw), 1)
doses = [{"TIME": 0.0, "AMT": dose, "DUR": 1 / 24}, {"TIME": 21.0, "AMT": dose, "DUR": 1 / 24}]
pop_only = poppk.forecast(fit, patient, doses, seed=1)
typical_eoi = float(pop_only.predict([1 / 24 + 1e-6], residual=False)["quantiles"].sel(quantile=0.5)[0])
typical_d14 = float(pop_only.predict([14.0], residual=False)["quantiles"].sel(quantile=0.5)[0])
print(f"dose {dose} mg; population median at EOI {typical_eoi:.3g}, on day 14 {typical_d14:.3g}")
# her measured concentrations: a high end-of-infusion value, and below an LLOQ set above the typical day-14 level
lloq = round(1.5 * typical_d14, 3)
observations = [{"TIME": 1 / 24 + 1e-6, "DV": round(1.3 * typical_eoi, 3)}, {"TIME": 14.0, "BLQ": 1, "LLOQ": lloq}]
fc = poppk.forecast(fit, patient, doses, observations, seed=1)
fc

# %% [markdown]
# Her parameters and exposure, individual beside population (median and 90%
# interval).  The Pareto k̂ and effective sample size of the importance
# weights say whether the approximation can be trusted (k̂ < 0.7).

# %%
print(f"Pareto k {fc.posterior.pareto_k:.2f}, ESS {fc.posterior.ess:.0f}, {fc.elapsed_s:.2f} s")
fc.table().round(3)

# %%
fig, axes = plt.subplots(2, 1, figsize=(8, 7))
plot_forecast_curve(fc, axes[0])
plot_exposure(fc, ax=axes[1])
fig.tight_layout()
fig

# %% [markdown]
# ## Her dose
#
# A target: steady-state AUC within ±20% of what the label gives the typical
# patient of her covariates, and at most a 10% chance that Cmax in cycle 1
# exceeds 1.5 times the population's median.  Doses in 10-mg steps.

# %%
schedule = poppk.Schedule.q3w(2, infusion="1 h")
auc_ref = float(np.median(pop_only.exposure_per_dose(schedule, ["auc_ss"], prediction="population")["auc_ss"])) * dose
cmax_ref = float(pop_only.summary["exposure"].sel(prediction="population", metric="cmax_c1", quantile=0.5))
target = f"auc_ss in [{0.8 * auc_ref:.4g}, {1.2 * auc_ref:.4g}] and P(cmax_c1 > {1.5 * cmax_ref:.4g}) <= 0.1"
rec = poppk.recommend_dose(fc, target=target, schedule=schedule, label=label, step=10)
print(target)
for line in rec.reasoning:
    print("-", line)
rec.exposure.round(2)

# %% [markdown]
# ## Another schedule?
#
# The same target, with Q4W and days 1 and 8 of a 3-week cycle considered beside
# her Q3W.  Her schedule is kept when a dose on it meets the target, unless
# another meets it with a probability at least 0.10 higher; the steady-state AUC
# of a 4-week cycle is compared per 3 weeks (the same average concentration).

# %%
rec_s = poppk.recommend_dose(fc, target=target, schedule=schedule, schedules=["q4w", "d1,8 q3w"], label=label,
                             step=10)
for line in rec_s.reasoning:
    print("-", line)
rec_s.schedules[["rule", "schedule", "dose_mg", "mg_per_week", "probability", "chosen"]].round(3)

# %% [markdown]
# The same page from the command line (one self-contained HTML and a JSON):
#
# ```
# poppk forecast FIT_DIR --patient "WT=82 HT=165 SEX=F ALB=3.6" --doses doses.csv \
#     --observations obs.csv --target "auc_ss in [a, b] and P(cmax_c1 > x) <= 0.1" \
#     --schedule q3w --schedules "q4w;d1,8 q3w" --out patient_42
# ```
