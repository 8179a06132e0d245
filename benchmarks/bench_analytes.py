"""Benchmark: recovery and speed of the joint multi-analyte fit (ADC + DM4 + S-methyl-DM4).

For each seed, simulate an IMGN853-like trial with ``data/generate_analytes.py``
(scipy ODE, independent of poppk's kernel; cohorts of the bundled trial
scaled to ``--n-subjects``), fit the joint model with poppk's default
sampler settings (``--chains`` chains; draws/tune shortened by default, see
the options), and report per population parameter: truth, posterior median,
90% equal-tailed interval and whether it covers the truth; R-hat, ESS,
divergences and the minimum bulk ESS per second of sampling and of total
(build + compile + sample) time.  On the same data the parent alone
(``read_nonmem(..., dvid=1)``, the same ADC spec without analytes) is fitted
too, so the joint and single-analyte ESS/s are measured in the same run.

Coverage is aggregated over seeds and parameters (covered / total, with a
Clopper-Pearson 95% interval).  Each seed's result is cached as JSON in
``--out`` (default ``benchmarks/analytes/``): a rerun resumes.

Run by hand (not a test), e.g.::

    nice -n 5 .venv/bin/python benchmarks/bench_analytes.py --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "analytes"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_analytes", ROOT / "data" / "generate_analytes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ga = _generator()
TRUTH = ga.population_truth()

#: Posterior variable -> true value.
TRUE_VALUES: dict[str, float] = {
    "CL": TRUTH["CL"], "V1": TRUTH["V1"], "Q": TRUTH["Q"], "V2": TRUTH["V2"],
    "beta_CL_WT": TRUTH["CL_WT"], "beta_CL_ALB": TRUTH["CL_ALB"], "beta_V1_WT": TRUTH["V_WT"],
    "beta_Q_WT": TRUTH["V_WT"], "beta_V2_WT": TRUTH["V_WT"],
    "omega_CL": TRUTH["OMEGA_CL"], "omega_V1": TRUTH["OMEGA_V1"],
    "sigma_prop": TRUTH["PROP"], "sigma_add": TRUTH["ADD"],
    "CL_DM4": TRUTH["CL_DM4"], "V_DM4": TRUTH["V_DM4"], "CL_MeDM4": TRUTH["CL_MeDM4"], "V_MeDM4": TRUTH["V_MeDM4"],
    "omega_CL_DM4": TRUTH["OMEGA_CL_DM4"], "omega_CL_MeDM4": TRUTH["OMEGA_CL_MeDM4"],
    "sigma_prop_DM4": TRUTH["PROP_DM4"], "sigma_add_DM4": TRUTH["ADD_DM4"], "sigma_prop_MeDM4": TRUTH["PROP_MeDM4"],
}


def specs():
    """(joint spec, parent-only spec): the true structure, initial guesses off the truth."""
    from poppk.model import CovariateEffect, ModelSpec

    cov = (CovariateEffect("CL", "WT", "power", reference=70.0), CovariateEffect("CL", "ALB", "power", reference=4.0),
           CovariateEffect("V1", "WT", "power", reference=70.0), CovariateEffect("Q", "WT", "power", reference=70.0),
           CovariateEffect("V2", "WT", "power", reference=70.0))
    adc = {"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0}
    a = ga.ANALYTES
    joint = ModelSpec(
        structure="2cmt",
        typical={**adc, "CL_DM4": 200.0, "V_DM4": 400.0, "CL_MeDM4": 80.0, "V_MeDM4": 300.0},
        analytes=[{"name": "ADC", "dvid": 1, "unit": "ug/mL"},
                  {"name": "DM4", "dvid": 2, "source": "ADC", "scale": a[1]["scale"], "error": "combined", "unit": "ng/mL"},
                  {"name": "MeDM4", "dvid": 3, "source": "DM4", "scale": a[2]["scale"], "error": "proportional",
                   "unit": "ng/mL"}],
        covariates=cov, iiv=("CL", "V1", "CL_DM4", "CL_MeDM4"), error="combined", units={"time": "day"},
    )
    parent = ModelSpec(structure="2cmt", typical=adc, covariates=cov, iiv=("CL", "V1"), error="combined",
                       units={"time": "day"})
    return joint, parent


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta

    a = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _fit_result(fit) -> dict:
    s = fit.summary(hdi_prob=0.90)
    conv = fit.convergence()
    t = fit.settings["timings"]
    total = float(sum(t.values()))
    rows = {}
    for name, r in s.iterrows():
        truth = TRUE_VALUES.get(name)
        rows[name] = {
            "truth": truth, "median": r["median"], "lower": r["lower"], "upper": r["upper"],
            "covered": None if truth is None else bool(r["lower"] <= truth <= r["upper"]),
            "r_hat": r["r_hat"], "ess_bulk": r["ess_bulk"],
        }
    min_ess = float(s["ess_bulk"].min())
    return {
        "parameters": rows, "max_r_hat": float(s["r_hat"].max()), "min_ess_bulk": min_ess,
        "divergences": int(conv.divergences), "timings": t, "total_s": total,
        "min_ess_per_s_sampling": min_ess / t["sample_s"], "min_ess_per_s_total": min_ess / total,
        "converged": bool(conv.ok), "problems": list(conv.problems),
    }


def run_seed(seed: int, args) -> dict:
    import poppk
    from poppk.data import read_nonmem

    records, truth = ga.generate_analytes(seed=seed, n_subjects=args.n_subjects)
    sub = truth[truth["LEVEL"] == "subject"].pivot(index="ID", columns="PARAMETER", values="VALUE")
    realised = {f"mean_{c}": float(sub[c].mean()) for c in sub.columns if c.startswith("ETA_")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trial.csv"
        records.to_csv(path, index=False, na_rep=".")
        data = read_nonmem(path, time_unit="day", dvid=[1, 2, 3])
        parent_data = read_nonmem(path, time_unit="day", dvid=1)
    obs = data.observations
    joint, parent = specs()
    kw = dict(draws=args.draws, tune=args.tune, chains=args.chains, seed=seed)
    t0 = time.perf_counter()
    fit_j = poppk.fit(joint, data, **kw)
    wall_j = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit_p = poppk.fit(parent, parent_data, **kw)
    wall_p = time.perf_counter() - t0
    out = {
        "seed": seed, "n_subjects": int(obs["ID"].nunique()), "settings": kw,
        "n_obs": {str(int(k)): int(v) for k, v in obs["DVID"].value_counts().sort_index().items()},
        "blq_share": {str(int(k)): float(v) for k, v in obs.groupby("DVID")["BLQ"].mean().items()},
        "realised": realised,
        "joint": {**_fit_result(fit_j), "wall_s": wall_j},
        "parent": {**_fit_result(fit_p), "wall_s": wall_p},
    }
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def report(results: list[dict]) -> str:
    lines = []
    names = [n for n in TRUE_VALUES if n in results[0]["joint"]["parameters"]]
    head = "| parameter | truth | " + " | ".join(f"seed {r['seed']}: median [90% CI]" for r in results) + " | covered |"
    lines += [head, "|" + "---|" * (3 + len(results))]
    k = n = 0
    for name in names:
        cells, cov = [], 0
        for r in results:
            p = r["joint"]["parameters"][name]
            mark = "" if p["covered"] else " ✗"
            cells.append(f"{_fmt(p['median'])} [{_fmt(p['lower'])}, {_fmt(p['upper'])}]{mark}")
            cov += bool(p["covered"])
        k += cov
        n += len(results)
        lines.append(f"| {name} | {_fmt(TRUE_VALUES[name])} | " + " | ".join(cells) + f" | {cov}/{len(results)} |")
    lo, hi = clopper_pearson(k, n)
    lines += ["", f"Joint fit, 90% intervals: {k}/{n} covered ({k / n:.1%}; Clopper-Pearson 95% CI "
              f"{lo:.1%}-{hi:.1%}; nominal 90%)."]
    # parent parameters in the parent-only fit
    pk = pn = 0
    for r in results:
        for name, p in r["parent"]["parameters"].items():
            if p["covered"] is not None:
                pk += bool(p["covered"])
                pn += 1
    if all("realised" in r for r in results):
        keys = list(results[0]["realised"])
        lines += ["", "Realised mean of the true η over the simulated subjects (the typical values' posteriors "
                  "follow the sample; |mean| > 1.645 ω/√n misses a 90% interval by chance):", "",
                  "| seed | " + " | ".join(k.replace("mean_", "") for k in keys) + " |",
                  "|---|" + "---|" * len(keys)]
        for r in results:
            lines.append(f"| {r['seed']} | " + " | ".join(f"{r['realised'][k]:+.3f}" for k in keys) + " |")
        lines.append("")
    plo, phi = clopper_pearson(pk, pn)
    lines += [f"Parent-only fit, 90% intervals: {pk}/{pn} covered (Clopper-Pearson 95% CI {plo:.1%}-{phi:.1%}).", ""]
    lines += ["| seed | subjects | obs ADC/DM4/MeDM4 | BLQ DM4 / MeDM4 | fit | max R-hat | divergences | min ESS bulk |"
              " sampling s | total s | min ESS/s (sampling) | min ESS/s (total) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for label in ("joint", "parent"):
            f = r[label]
            lines.append(
                f"| {r['seed']} | {r['n_subjects']} | {'/'.join(map(str, r['n_obs'].values()))} | "
                f"{r['blq_share']['2']:.0%} / {r['blq_share']['3']:.0%} | {label} | {f['max_r_hat']:.3f} | "
                f"{f['divergences']} | {f['min_ess_bulk']:.0f} | {f['timings']['sample_s']:.0f} | {f['total_s']:.0f} | "
                f"{f['min_ess_per_s_sampling']:.2f} | {f['min_ess_per_s_total']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n-subjects", type=int, default=40)
    parser.add_argument("--draws", type=int, default=1000, help="default: poppk's (1000)")
    parser.add_argument("--tune", type=int, default=500, help="default: poppk's (500)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--report-only", action="store_true", help="print the table of the cached seeds")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        path = out / f"seed_{seed}_n{args.n_subjects}_c{args.chains}_d{args.draws}_t{args.tune}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
            continue
        if args.report_only:
            continue
        t0 = time.perf_counter()
        r = run_seed(seed, args)
        r["seed_wall_s"] = time.perf_counter() - t0
        path.write_text(json.dumps(r, indent=1, default=float))
        print(f"seed {seed}: {r['seed_wall_s']:.0f} s (joint {r['joint']['wall_s']:.0f} s, "
              f"parent {r['parent']['wall_s']:.0f} s)", flush=True)
        results.append(r)
    if results:
        s = results[0]["settings"]
        print(f"\n{len(results)} seeds, {results[0]['n_subjects']} subjects each, {s['chains']} chains x "
              f"{s['draws']} draws (tune {s['tune']}); cpu count {os.cpu_count()}\n")
        print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
