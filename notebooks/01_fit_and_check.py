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
# # 01 — Fit and check a population-PK model of an antibody–drug conjugate
#
# The bundled dataset is a **simulated** phase 1 trial modelled on IMGN853
# (mirvetuximab soravtansine): dose escalation on total body weight (TBW), then
# expansion cohorts dosed on adjusted ideal body weight (AIBW); see
# `data/README.md`.  This notebook reads and checks the data, derives body-size
# descriptors, fits a two-compartment model with AIBW as the size covariate and
# checks the fit: convergence, VPC / pcVPC, goodness of fit, NPDE and shrinkage.
#
# Set `POPPK_QUICK=1` to run on small settings (as the test suite does), and
# `POPPK_FIT_STORE=<dir>` to keep the fits there: a fit saved with the same
# model, data and settings is loaded instead of refitted (`poppk.fit(..., file=)`),
# so the notebooks share fits with each other and with `poppk run --out <dir>/..`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import matplotlib.pyplot as plt

import poppk
from poppk import diagnostics as dx
from poppk import plots
from poppk.workflow import bundled_trial_data, trial_spec

QUICK = os.environ.get("POPPK_QUICK") == "1"
DRAWS, TUNE, CHAINS = (150, 150, 2) if QUICK else (1000, 500, 4)
STORE = os.environ.get("POPPK_FIT_STORE")


def kept(name):
    """Where the fit called ``name`` is kept (None: not kept)."""
    return Path(STORE) / name if STORE else None

# %% [markdown]
# ## Data: read, validate, derive size descriptors
# IBW uses the metric formula of the mirvetuximab label (female 0.9·height − 92);
# AIBW = IBW + 0.4·(TBW − IBW).

# %%
data = bundled_trial_data()  # as data/imgn853_analysis.toml reads it: time in days, label IBW
print(data)
data.covariates[["TBW", "IBW", "AIBW", "LBW", "BSA", "BMI"]].describe().round(2)

# %% [markdown]
# ## The model
# Two compartments, power effects of AIBW on CL and V1 (exponents estimated),
# albumin on CL, correlated log-normal IIV on CL and V1, combined residual error,
# BLQ records by Beal's M3.

# %%
spec = trial_spec("AIBW")
print(spec.describe())

# %%
fit = poppk.fit(spec, data, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=1, progress=False, file=kept("AIBW"))
print(fit.convergence())
fit.summary().round(3)

# %% [markdown]
# ## Visual predictive check (time after dose, log scale) and prediction-corrected VPC

# %%
vpc = dx.vpc_table(fit, n_draws=100 if QUICK else 300)
fig = plots.plot_vpc(vpc, log_y=True)
fig


# %%
pcvpc = dx.vpc_table(fit, pred_corrected=True, n_draws=100 if QUICK else 300)
fig = plots.plot_vpc(pcvpc, log_y=True)
fig


# %% [markdown]
# ## Goodness of fit: DV vs PRED/IPRED, NPDE vs time and PRED

# %%
gof = dx.gof_table(fit, n_draws=100 if QUICK else 300)
fig = plots.plot_gof(gof, log=True)
fig


# %%
dx.npde_tests(dx.npde_table(fit, n_draws=100 if QUICK else 300))

# %% [markdown]
# ## Individual fits (first six subjects)

# %%
curves, points = dx.individual_fit_table(fit, ids=list(data.subjects[:6]))
fig = plots.plot_individual_fits(curves, points, log_y=True)
fig


# %% [markdown]
# ## Shrinkage and random effects versus covariates
# High η-shrinkage (> 30 %) makes η-vs-covariate plots unreliable.

# %%
dx.shrinkage_table(fit)

# %%
eta = dx.eta_table(fit)
fig = plots.plot_eta_covariates(eta)
fig

