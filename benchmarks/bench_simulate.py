"""Benchmark: dosing-strategy simulation throughput and memory.

Run by hand (not a test):

    .venv/bin/python benchmarks/bench_simulate.py [--sizes 1000,10000,100000] [--draws 200]
        [--modes serial,threads,cluster] [--workers 2]

For each population size, simulates three strategies (5 mg/kg TBW, 5 and 6 mg/kg AIBW,
Q3W x 6, 1-h infusions) of a 2-compartment model with AIBW covariates over posterior
draws (fresh random effects per draw) and prints patient-draws per second and peak
resident memory, for each way of running the tasks:

* ``serial``  -- in this process, one block of draws after another;
* ``threads`` -- a ``concurrent.futures.ThreadPoolExecutor`` of ``--workers`` threads;
* ``cluster`` -- a ``dask.distributed.LocalCluster`` of ``--workers`` single-threaded
  worker processes (the shared inputs are scattered to them once);
* ``lazy``    -- serial statistics plus the per-patient exposures kept as a lazy dask array,
  then reduced over patients chunk by chunk (the per-patient median over draws), on the
  cluster: the cost of keeping every exposure without holding it in memory.

Peak memory is this process's peak RSS and, for the cluster, the largest worker's.
Posterior draws are synthetic (PosteriorDraws.from_values) so the benchmark needs no MCMC.
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--modes", default="serial,cluster")
    ap.add_argument("--workers", type=int, default=2)
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
    metrics = ["cmax_c1", "auc_c1", "ctrough_c1", "auc_ss"]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    client = cluster = None
    if {"cluster", "lazy"} & set(modes):
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)

    def worker_peak() -> float:
        if client is None:
            return float("nan")
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return max(peaks.values())

    # warm-up (imports, first-call overheads; workers import poppk)
    small = sample_population(100, 0, female_fraction=1.0)
    simulate_strategies(draws, strategies, schedule, small, n_draws=2, keep_exposure=False)
    if client is not None:
        simulate_strategies(draws, strategies, schedule, small, n_draws=2, keep_exposure=False, executor=client)
    print(f"{'mode':>8} {'patients':>9} {'draws':>6} {'seconds':>8} {'patient-draws/s':>16} "
          f"{'peak RSS MB':>12} {'worker peak MB':>15}")
    for n in [int(s) for s in args.sizes.split(",")]:
        pop = sample_population(n, 1, female_fraction=1.0)
        for mode in modes:
            kw = dict(n_draws=args.draws, keep_exposure=False, metrics=metrics)
            t0 = time.perf_counter()
            if mode == "serial":
                sim = simulate_strategies(draws, strategies, schedule, pop, **kw)
            elif mode == "threads":
                with ThreadPoolExecutor(args.workers) as ex:
                    sim = simulate_strategies(draws, strategies, schedule, pop, executor=ex, chunk_draws=4, **kw)
            elif mode == "cluster":
                sim = simulate_strategies(draws, strategies, schedule, pop, executor=client, chunk_draws=4, **kw)
            elif mode == "lazy":
                kw["keep_exposure"] = "lazy"
                sim = simulate_strategies(draws, strategies, schedule, pop, executor=client, chunk_draws=4, **kw)
                with client.as_current():  # type: ignore[union-attr]
                    med = sim["exposure"].sel(metric="auc_c1").median("draw").compute()
                assert np.isfinite(med.values).all()
            else:
                raise SystemExit(f"unknown mode {mode!r}; use serial, threads, cluster or lazy")
            el = time.perf_counter() - t0
            wp = worker_peak() if mode in ("cluster", "lazy") else float("nan")
            print(f"{mode:>8} {n:>9} {args.draws:>6} {el:>8.1f} {n * args.draws / el:>16,.0f} "
                  f"{_peak_mb():>12,.0f} {wp:>15,.0f}", flush=True)
            assert np.isfinite(sim["log_var"].values).all()
    if client is not None:
        client.close()
        cluster.close()  # type: ignore[union-attr]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
