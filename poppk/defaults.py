"""Default settings shared by the API, the command line and the analysis file.

One place for each number, so that ``poppk.fit(...)``, ``poppk fit ...`` and a
``[fit]`` section without ``draws`` mean the same run (and likewise for the
checks, the simulation and the forecasts).  A value given explicitly anywhere
always wins.
"""

from __future__ import annotations

__all__ = ["FIT_DRAWS", "FIT_TUNE", "FIT_CHAINS", "CHECK_DRAWS", "SIMULATION_DRAWS", "FORECAST_DRAWS",
           "AIBW_FACTOR", "LOO_MAX_REFITS"]

#: Posterior draws per chain, warm-up iterations per chain, chains of a fit.
FIT_DRAWS = 1000
FIT_TUNE = 500
FIT_CHAINS = 4

#: Replicate studies simulated for the VPC, NPDE and the other predictive checks.
CHECK_DRAWS = 500

#: Posterior draws a dosing-strategy simulation uses.
SIMULATION_DRAWS = 200

#: Population posterior draws an individual forecast integrates over.
FORECAST_DRAWS = 200

#: The label's adjusted ideal body weight: IBW + 0.4 (TBW - IBW).
AIBW_FACTOR = 0.4

#: Subjects with Pareto k > 0.7 refitted exactly per model in ``poppk run``'s LOO comparison.
LOO_MAX_REFITS = 5
