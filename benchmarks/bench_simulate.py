"""Benchmark: dosing-strategy simulation throughput and memory.

Run by hand (not a test):

    .venv/bin/python benchmarks/bench_simulate.py [--sizes 1000,10000,100000] [--draws 200]

For each population size, simulates three strategies (5 mg/kg TBW, 5 and 6 mg/kg AIBW,
Q3W x 6, 1-h infusions) of a 2-compartment model with AIBW covariates over posterior
draws (fresh random effects per draw) and prints patient-draws per second and the peak
resident memory.  Posterior draws are synthetic (PosteriorDraws.from_values, spread by
a small jitter) so the benchmark needs no MCMC.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args(argv)
    from poppk.model import CovariateEffect, ModelSpec
    from poppk.simulate import PerKg, PosteriorDraws, Schedule, sample_population, simulate_strategies

    spec = ModelSpec("2cmt", {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, iiv=("CL", "V1"), error="combined",
                     units={"time": "day"}, covariates=(CovariateEffect("CL", "AIBW", reference=60.0),
                                                        CovariateEffect("V1", "AIBW", reference=60.0)))
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                       betas={"beta_CL_AIBW": 0.45, "beta_V1_AIBW": 0.5},
                                       omega={"CL": 0.3, "V1": 0.2}, n_draws=args.draws)
    strategies = {"5 TBW": PerKg(5), "5 AIBW": PerKg(5, "AIBW", ibw_method="label"),
                  "6 AIBW": PerKg(6, "AIBW", ibw_method="label")}
    schedule = Schedule.q3w(6, infusion="1 h")
    # warm-up (imports, first-call overheads)
    simulate_strategies(draws, strategies, schedule, sample_population(100, 0, female_fraction=1.0), n_draws=2,
                        keep_exposure=False)
    print(f"{'patients':>10} {'draws':>6} {'seconds':>9} {'patient-draws/s':>16} {'peak RSS (MB)':>14}")
    for n in [int(s) for s in args.sizes.split(",")]:
        pop = sample_population(n, 1, female_fraction=1.0)
        t0 = time.perf_counter()
        sim = simulate_strategies(draws, strategies, schedule, pop, n_draws=args.draws, keep_exposure=False,
                                  metrics=["cmax_c1", "auc_c1", "ctrough_c1", "auc_ss"])
        el = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>10} {args.draws:>6} {el:>9.1f} {n * args.draws / el:>16,.0f} {peak:>14,.0f}")
        assert np.isfinite(sim["bpv_var_log"].values).all() if "bpv_var_log" in sim else True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
