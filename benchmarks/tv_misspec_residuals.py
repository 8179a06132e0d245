"""Residuals by cycle that reveal the misspecified time-varying truth (README, "Under a truth the
model does not assume").

The tv model (weight and occasion variability on CL only) is fitted by Laplace-EM alone (no
sampling, seconds) to the data of ``bench_ode_fit.py --model tv`` and ``--model tv-mis`` (V1
also follows weight and varies between cycles), and the mean IWRES of the end-of-infusion,
mid-cycle and trough samples is printed by cycle.  Laplace-EM ignores the occasion effects, so
its σ is large on both datasets; the drift of the end-of-infusion residuals over the cycles is
what differs.

    .venv/bin/python benchmarks/tv_misspec_residuals.py [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bench_ode_fit import problem  # also puts tests/ on the path (the study generators)


def cycle_residuals(model: str, seed: int) -> pd.DataFrame:
    """Mean IWRES at the Laplace-EM modes by sample kind (rows) and cycle (columns)."""
    from poppk.diagnostics.gof import iwres
    from poppk.model import build_design, laplace_init
    from poppk.model.init import _predict

    spec, _, data, _ = problem(model, seed)
    spec = spec.resolved(data.covariates)
    design = build_design(spec, data)
    li = laplace_init(spec, design)
    r = iwres(design.dv, _predict(spec, design, li.log_typical, li.betas, li.eta), li.sigma, spec.error)
    t = np.asarray(design.obs_time, float)
    cycle = np.minimum(np.floor(t / 21.0 + 1e-9), 3).astype(int) + 1
    tad = t - 21.0 * (cycle - 1)
    kind = np.where(tad < 0.1, "end of infusion", np.where(tad > 20, "trough", "mid-cycle"))
    tab = pd.DataFrame({"cycle": cycle, "kind": kind, "iwres": r})
    return tab.pivot_table(index="kind", columns="cycle", values="iwres", aggfunc="mean")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args(argv)
    for seed in args.seeds:
        for model in ("tv", "tv-mis"):
            tab = cycle_residuals(model, seed)
            drift = tab.loc["end of infusion", 4] - tab.loc["end of infusion", 1]
            print(f"== seed {seed}, {model}: end-of-infusion IWRES, cycle 4 minus cycle 1: {drift:+.2f}")
            print(tab.round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
