"""Benchmark: how each step grows with the number of subjects (the benchmark dataset replicated).

The public 2-cmt multiple-dose benchmark (120 subjects) is replicated to N
subjects (copies with new IDs: the same design and observations per subject),
and each step of a fit is timed at each N, in a fresh process per N so that the
peak memory is that N's own:

* reading and validating the dataset (``read_nonmem``);
* the design (``build_design``: padded dose matrix and the recursion plan);
* Laplace-EM (``laplace_init``: the start of every chain);
* compiling (``compile_nutpie``; the first size compiles or loads the structure
  from the on-disk store, the others reuse it);
* one log density + gradient, as nutpie calls it (median of repeats; ms and ns
  per observation);
* post-processing: the per-subject sums of the pointwise log likelihood over
  200 draws, per draw (what LOO and the saved ``log_likelihood`` group need);
* optionally (``--fit-sizes``) a whole fit, 4 chains x (500 + 500).

Growth is linear when time/N (the "per subject" columns) stays flat.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 120,480,1920,7680] [--fit-sizes 480]

Needs ../shared/benchmarks/ (not bundled: see its README).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent / "shared" / "benchmarks" / "iv_2cmt_multiple_dose.csv"


def replicate(df: pd.DataFrame, n_subjects: int) -> pd.DataFrame:
    """``df`` copied until it has ``n_subjects`` subjects (new IDs; a partial last copy)."""
    ids = df["ID"].unique()
    copies = []
    for k in range(int(np.ceil(n_subjects / len(ids)))):
        c = df.copy()
        c["ID"] = c["ID"] + k * (int(ids.max()) + 1)
        copies.append(c)
    out = pd.concat(copies, ignore_index=True)
    keep = out["ID"].unique()[:n_subjects]
    return out[out["ID"].isin(keep)].reset_index(drop=True)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_size(n: int, fit_it: bool, repeats: int = 50) -> dict[str, float]:
    """Time every step at ``n`` subjects (in this process)."""
    import warnings

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_fit import _problem_inputs, benchmark_spec

    from poppk.data import read_nonmem
    from poppk.model import build_design, fit
    from poppk.model.compile_cache import compile_nutpie, logp_and_gradient

    warnings.simplefilter("ignore")
    row: dict[str, float] = {"subjects": n}
    df = replicate(pd.read_csv(CSV), n)
    t = time.perf_counter()
    data = read_nonmem(df)
    row["read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    spec, design, init, ip, var_names = _problem_inputs(benchmark_spec(), data)  # resolve, design, Laplace-EM
    row["design_and_laplace_em_s"] = time.perf_counter() - t
    t = time.perf_counter()
    design = build_design(spec, data)
    row["design_s"] = time.perf_counter() - t
    row["laplace_em_s"] = row.pop("design_and_laplace_em_s") - row["design_s"]
    row["observations"] = design.n_obs
    t = time.perf_counter()
    compiled, info = compile_nutpie(spec, design, init, initial_points=ip, var_names=var_names)
    row["compile_s"] = time.perf_counter() - t
    x = compiled.initial_point_func(1)
    for _ in range(3):
        logp_and_gradient(compiled, x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        logp_and_gradient(compiled, x)
        times.append(time.perf_counter() - t)
    row["gradient_ms"] = float(np.median(times) * 1e3)
    row["gradient_ns_per_obs"] = row["gradient_ms"] * 1e6 / design.n_obs
    ll = np.random.default_rng(0).normal(size=(4, 50, design.n_obs))
    t = time.perf_counter()
    design.sum_by_subject(ll)
    row["loglik_by_subject_ms_per_draw"] = (time.perf_counter() - t) * 1e3 / 200
    del ll
    row["peak_mb_before_fit"] = _peak_mb()
    if fit_it:
        t = time.perf_counter()
        f = fit(spec, data, draws=500, tune=500, chains=4, seed=1, progress=False)
        row["fit_s"] = time.perf_counter() - t
        summ = f.summary()
        row["min_ess_bulk"] = float(summ["ess_bulk"].min())
        conv = f.convergence()
        row["max_r_hat"] = float(conv.table["r_hat"].max())
        row["divergences"] = int(conv.divergences)
        row["peak_mb"] = _peak_mb()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="120,480,1920,7680")
    ap.add_argument("--fit-sizes", default="", help="comma list of sizes also fitted (4 x (500 + 500))")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child process: one size
    ap.add_argument("--fit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not CSV.is_file():
        print(f"benchmark data not found at {CSV}", file=sys.stderr)
        return 2
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.fit)))
        return 0
    fit_sizes = {int(s) for s in args.fit_sizes.split(",") if s}
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--fit"] if n in fit_sizes else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"N={n}: done", file=sys.stderr)
    table = pd.DataFrame(rows).set_index("subjects")
    for col in ("read_s", "design_s", "laplace_em_s"):
        table[col.removesuffix("_s") + "_ms_per_subject"] = table[col] * 1e3 / table.index
    table["loglik_by_subject_us_per_subject_draw"] = table["loglik_by_subject_ms_per_draw"] * 1e3 / table.index
    pd.set_option("display.width", 200)
    print(table.round(3).T.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
