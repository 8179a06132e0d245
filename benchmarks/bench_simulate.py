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
* ``cluster_threads`` -- the same cluster with its workers as threads of this process
  (``processes=False``): the compiled loops release the GIL, and nothing is pickled;
* ``lazy``    -- serial statistics plus the per-patient exposures kept as a lazy dask array,
  then reduced over patients chunk by chunk (the per-patient median over draws), on the
  cluster: the cost of keeping every exposure without holding it in memory.

Every row runs in a fresh Python process, so its peak memory is its own: the peak RSS of
that process and, for the cluster, of its largest worker.  Times exclude start-up (imports,
cluster start, a small warm-up run).  Posterior draws are synthetic
(PosteriorDraws.from_values) so the benchmark needs no MCMC.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


HEADER = (f"{'mode':>8} {'patients':>9} {'draws':>6} {'seconds':>8} {'patient-draws/s':>16} "
          f"{'peak RSS MB':>12} {'worker peak MB':>15}")


def measure(mode: str, n: int, n_draws: int, workers: int) -> str:
    """One row: simulate ``n`` patients x ``n_draws`` draws in ``mode``; returns the printed row."""
    from poppk.model import CovariateEffect, ModelSpec
    from poppk.simulate import PerKg, PosteriorDraws, Schedule, sample_population, simulate_strategies

    spec = ModelSpec("2cmt", {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, iiv=("CL", "V1"), error="combined",
                     units={"time": "day"}, covariates=(CovariateEffect("CL", "AIBW", reference=60.0),
                                                        CovariateEffect("V1", "AIBW", reference=60.0)))
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                       betas={"beta_CL_AIBW": 0.45, "beta_V1_AIBW": 0.5},
                                       omega={"CL": 0.3, "V1": 0.2}, n_draws=n_draws)
    strategies = {"5 TBW": PerKg(5), "5 AIBW": PerKg(5, "AIBW", ibw_method="label"),
                  "6 AIBW": PerKg(6, "AIBW", ibw_method="label")}
    schedule = Schedule.q3w(6, infusion="1 h")
    kw = dict(n_draws=n_draws, keep_exposure=False, metrics=["cmax_c1", "auc_c1", "ctrough_c1", "auc_ss"])
    pop = sample_population(n, 1, female_fraction=1.0)
    small = sample_population(100, 0, female_fraction=1.0)
    if mode not in ("serial", "threads", "cluster", "cluster_threads", "lazy"):
        raise SystemExit(f"unknown mode {mode!r}; use serial, threads, cluster, cluster_threads or lazy")
    client = cluster = None
    try:
        if mode in ("cluster", "cluster_threads", "lazy"):
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=mode != "cluster_threads",
                                   dashboard_address=":0")
            client = Client(cluster)
        simulate_strategies(draws, strategies, schedule, small, n_draws=2, keep_exposure=False, executor=client)
        t0 = time.perf_counter()
        if mode == "serial":
            sim = simulate_strategies(draws, strategies, schedule, pop, **kw)
        elif mode == "threads":
            with ThreadPoolExecutor(workers) as ex:
                sim = simulate_strategies(draws, strategies, schedule, pop, executor=ex, **kw)
        elif mode in ("cluster", "cluster_threads"):
            sim = simulate_strategies(draws, strategies, schedule, pop, executor=client, **kw)
        else:  # lazy: statistics on the cluster, then a reduction over every per-patient exposure
            kw["keep_exposure"] = "lazy"
            sim = simulate_strategies(draws, strategies, schedule, pop, executor=client, **kw)
            with client.as_current():  # type: ignore[union-attr]
                med = sim["exposure"].sel(metric="auc_c1").median("draw").compute()
            assert np.isfinite(med.values).all()
        el = time.perf_counter() - t0
        assert np.isfinite(sim["log_var"].values).all()
        wp = float("nan")
        if client is not None and mode != "cluster_threads":
            wp = max(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024).values())
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (f"{mode:>8} {n:>9} {n_draws:>6} {el:>8.1f} {n * n_draws / el:>16,.0f} "
            f"{peak:>12,.0f} {wp:>15,.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--modes", default="serial,cluster")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--one", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(measure(args.one[0], int(args.one[1]), args.draws, args.workers), flush=True)
        return 0
    print(HEADER, flush=True)
    # (cluster_threads: the workers' memory is this process's)
    for n in [int(s) for s in args.sizes.split(",")]:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            run = subprocess.run([sys.executable, __file__, "--one", mode, str(n), "--draws", str(args.draws),
                                  "--workers", str(args.workers)], capture_output=True, text=True)
            if run.returncode:
                sys.stderr.write(run.stderr)
                return run.returncode
            print(run.stdout.rstrip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
