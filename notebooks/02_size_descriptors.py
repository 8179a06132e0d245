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
# # 02 — Which body-size descriptor? TBW vs AIBW (and LBW) by leave-one-subject-out LOO
#
# The same two-compartment model is fitted with total body weight (TBW),
# adjusted ideal body weight (AIBW) and lean body weight (LBW) as the size
# covariate on CL and V1.  The fits are compared by PSIS-LOO with the *subject*
# as the unit left out (the unit a population model predicts), and the random
# effects of a model without any size covariate are plotted against every
# descriptor — the graphical check a pharmacometrician starts from.
#
# Set `POPPK_QUICK=1` to run on small settings (as the test suite does), and
# `POPPK_FIT_STORE=<dir>` to keep the fits there: a fit saved with the same
# model, data and settings is loaded instead of refitted (`poppk.fit(..., file=)`),
# so the notebooks share fits with each other and with `poppk run --out <dir>/..`.

# %%
# %matplotlib inline
import dataclasses
import os
from pathlib import Path

import poppk
from poppk import diagnostics as dx
from poppk import plots
from poppk.workflow import bundled_trial_data, trial_spec

QUICK = os.environ.get("POPPK_QUICK") == "1"
DRAWS, TUNE, CHAINS = (150, 150, 2) if QUICK else (1000, 500, 4)
DESCRIPTORS = ("TBW", "AIBW") if QUICK else ("TBW", "AIBW", "LBW")
STORE = os.environ.get("POPPK_FIT_STORE")


def kept(name):
    """Where the fit called ``name`` is kept (None: not kept)."""
    return Path(STORE) / name if STORE else None


data = bundled_trial_data()

# %% [markdown]
# ## A model without size: do the random effects trend with body size?

# %%
no_size = dataclasses.replace(trial_spec("TBW"), covariates=tuple(c for c in trial_spec("TBW").covariates if c.covariate == "ALB"))
base = poppk.fit(no_size, data, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=1, progress=False, file=kept("no_size"))
eta = dx.eta_table(base)
dx.eta_covariate_table(eta).round(3)

# %%
fig = plots.plot_eta_covariates(eta, covariates=["TBW", "AIBW", "LBW", "BSA", "ALB"])
fig


# %% [markdown]
# ## One fit per descriptor

# %%
fits = {"none": base}
for d in DESCRIPTORS:
    fits[d] = poppk.fit(trial_spec(d), data, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=1, progress=False,
                        file=kept(d))
    print(d, fits[d].convergence())
{d: f.summary().loc[[c for c in f.summary().index if c.startswith("beta_")], ["median", "lower", "upper"]].round(3)
 for d, f in fits.items() if d != "none"}

# %% [markdown]
# ## Comparison by leave-one-subject-out PSIS-LOO
# `d_elpd` is the loss in expected log predictive density against the best model,
# `dse` its standard error; Pareto-k above 0.7 flags subjects for which the
# importance-sampling approximation is unreliable (common when individual data
# are rich).

# %%
table = dx.compare(fits)
table.round(2)

# %%
fig = plots.plot_compare(table)
fig

