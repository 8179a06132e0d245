"""Benchmark: the random-effect parametrisations on every supported kind of model.

Run by hand (not a test), one fit at a time:

    .venv/bin/python benchmarks/bench_parametrizations.py [--seed 1]
        [--parametrizations centered,laplace] [--variants NAME,...] [--low-rank auto|on|off]
        [--draws 1000] [--tune 500]

Fits simulated studies that cover the model variants poppk supports (diagonal
and full Ω; 1/2/3 compartments; IV bolus, infusion and oral with lag; additive,
proportional, combined and exponential error; M3 BLQ; power and categorical
covariates; rich and sparse sampling) plus the bundled IMGN853-like trial, with
``fit()``'s defaults except the parametrisation, and prints one row per fit:
compile and sampling time, max R-hat and min bulk ESS of the population
parameters, min ESS/s (sampling time), min ESS per 1,000 gradient evaluations
(independent of the machine's load), divergences and leapfrog steps per draw.
The last table compares the posterior means of each parametrisation with the
first one's, in units of their joint Monte Carlo standard error.

The simulated studies come from ``tests/_studies.py`` (poppk's own kernel).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TRUTH_2CMT = {"CL": 2.0, "V1": 20.0, "Q": 3.0, "V2": 40.0}
TRUTH_3CMT = {"CL": 2.0, "V1": 20.0, "Q": 3.0, "V2": 40.0, "Q3": 0.5, "V3": 80.0}
LONG = (0.5, 1, 2, 4, 8, 12, 24, 48, 72)


def variants() -> dict[str, tuple[dict, dict]]:
    """name -> (simulate_study arguments, ModelSpec arguments)."""
    from poppk.model import CovariateEffect, Prior

    return {
        "1cmt-iv-diag-prop": (
            dict(n_subjects=24, seed=1),
            dict(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional"),
        ),
        "1cmt-iv-sparse-diag-add": (
            dict(n_subjects=60, times=(0.5, 4.0, 12.0), sigma_prop=0.0, sigma_add=0.4, lloq=0.1, seed=2),
            dict(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="additive"),
        ),
        "2cmt-iv-full-comb-m3-wt": (
            dict(n_subjects=40, structure="2cmt", truth=TRUTH_2CMT, omega={"CL": 0.3, "V1": 0.2, "Q": 0.3},
                 wt_exponent=0.75, sigma_add=0.05, lloq=0.4, times=LONG, seed=3),
            dict(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 2.0, "V2": 30.0}, iiv=("CL", "V1", "Q"),
                 iiv_correlation="full", error="combined", blq="m3",
                 covariates=(CovariateEffect("CL", "WT", reference=70.0),)),
        ),
        "3cmt-inf-diag-prop": (
            dict(n_subjects=30, structure="3cmt", truth=TRUTH_3CMT, omega={"CL": 0.3, "V1": 0.2, "V2": 0.3},
                 infusion=1.0, times=LONG + (120, 168), seed=4),
            dict(structure="3cmt", typical={"CL": 1.5, "V1": 15.0, "Q": 2.0, "V2": 30.0, "Q3": 1.0, "V3": 50.0},
                 iiv=("CL", "V1", "V2"), error="proportional"),
        ),
        "1cmt-oral-full-exp-sex": (
            dict(n_subjects=40, oral=True, truth={"CL": 2.0, "V1": 20.0, "KA": 1.0},
                 omega={"CL": 0.3, "V1": 0.2, "KA": 0.4}, seed=5),
            dict(structure="1cmt", absorption="first-order", typical={"CL": 1.5, "V1": 15.0, "KA": 0.8},
                 iiv=("CL", "V1", "KA"), iiv_correlation="full", error="exponential",
                 covariates=(CovariateEffect("V1", "SEX", form="categorical", level="F"),)),
        ),
        "2cmt-oral-lag-diag-comb": (
            dict(n_subjects=30, structure="2cmt", oral=True, truth={**TRUTH_2CMT, "KA": 1.2, "ALAG1": 0.4},
                 omega={"CL": 0.3, "V1": 0.2, "KA": 0.3}, sigma_add=0.05, lloq=0.05, times=(0.25, 0.5, 1, 2, 4, 8, 12, 24, 48),
                 seed=6),
            dict(structure="2cmt", absorption="first-order", lag=True,
                 typical={"CL": 1.5, "V1": 15.0, "Q": 2.0, "V2": 30.0, "KA": 1.0, "ALAG1": 0.3},
                 iiv=("CL", "V1", "KA"), omega={"KA": Prior.halfnormal(0.5)}, error="combined"),
        ),
        "bundled-trial-aibw": (None, {}),
    }


def study(name: str):
    from _studies import simulate_study

    from poppk.data import read_nonmem
    from poppk.model import ModelSpec

    sim, kw = variants()[name]
    if sim is None:  # the bundled trial, as data/imgn853_analysis.toml fits it (AIBW)
        from poppk.model import CovariateEffect

        data = read_nonmem(ROOT / "data" / "imgn853_phase1.csv").with_size_descriptors(ibw_method="label", aibw_factor=0.4)
        spec = ModelSpec(
            structure="2cmt", typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0}, iiv=("CL", "V1"),
            iiv_correlation="full", error="combined", blq="m3",
            units={"time": "day", "amount": "mg", "volume": "L"},
            covariates=(CovariateEffect("CL", "ALB", reference=4.0), CovariateEffect("CL", "AIBW"),
                        CovariateEffect("V1", "AIBW")),
        )
        return spec, data
    df, _ = simulate_study(**sim)
    return ModelSpec(**{"units": {"time": "h"}, **kw}), read_nonmem(df)  # simulate_study's TIME is in hours


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--parametrizations", default="centered,laplace")
    ap.add_argument("--variants", default=",".join(variants()))
    ap.add_argument("--low-rank", choices=("auto", "on", "off"), default="auto",
                    help="nutpie's low-rank mass matrix adaptation (auto: fit()'s default)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    import dataclasses

    import arviz as az

    from poppk.model import fit

    pars = args.parametrizations.split(",")
    rows, means = [], []
    for name in args.variants.split(","):
        spec0, data = study(name)
        for par in pars:
            spec = dataclasses.replace(spec0, parametrization=par)
            t0 = time.perf_counter()
            f = fit(spec, data, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                    progress=False, log_likelihood=False, warn=False,
                    low_rank={"auto": None, "on": True, "off": False}[args.low_rank])
            total = time.perf_counter() - t0
            s = f.summary()
            st = f.idata.sample_stats
            tm = f.settings["timings"]
            grads = float(st["n_steps"].sum())
            mcse = az.mcse(f.idata, var_names=f.population_variables)
            rows.append({
                "variant": name, "param": par, "low_rank": f.settings["low_rank"], "n_id": f.design.n_subjects, "n_obs": f.design.n_obs,
                "compile_s": tm["compile_s"], "sample_s": tm["sample_s"], "total_s": total,
                "max_rhat": s["r_hat"].max(), "min_ess": s["ess_bulk"].min(),
                "worst": s["ess_bulk"].idxmin(),
                "ess_per_s": s["ess_bulk"].min() / tm["sample_s"],
                "ess_per_kgrad": s["ess_bulk"].min() / grads * 1e3,
                "div": int(st["diverging"].sum()), "steps": float(st["n_steps"].mean()),
            })
            means.append(pd.DataFrame({"variant": name, "param": par, "mean": s["mean"],
                                       "mcse": [float(mcse[v]) for v in s.index]}))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1,
                                                     float_format=lambda x: f"{x:.4g}"), flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print("\n" + table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    m = pd.concat(means).reset_index(names="parameter")
    ref = m[m.param == pars[0]].set_index(["variant", "parameter"])
    for par in pars[1:]:
        other = m[m.param == par].set_index(["variant", "parameter"])
        z = (other["mean"] - ref["mean"]) / np.sqrt(other["mcse"] ** 2 + ref["mcse"] ** 2)
        print(f"\nposterior means, {par} vs {pars[0]}: |difference| / joint MCSE by variant (max, median)")
        print(z.abs().groupby(level=0).agg(["max", "median"]).round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
