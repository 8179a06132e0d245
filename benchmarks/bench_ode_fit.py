"""Fit recovery of nonlinear-elimination models (the ODE path) over several seeds.

Usage::

    nice .venv/bin/python benchmarks/bench_ode_fit.py [--model mm|td|tv|tv-mis|both] [--seeds 1 2 3]
        [--draws 1000 --tune 500 --chains 4] [--low-rank auto|on|off] [--skip-grad]

Three models, each simulated by an independent generator (scipy ``solve_ivp``,
``tests/_ode_studies.py``) from known truth:

``mm``
    1-cmt IV Michaelis–Menten (VMAX 10 mg/h, KM 2 mg/L, V1 10 L; IIV on VMAX and
    V1), 8 subjects at each of 10, 100 and 1000 mg (1-h infusion daily × 3), the
    top dose saturating.
``td``
    2-cmt time-dependent clearance on a Q3W schedule (days; CL 0.7 L/day falling
    from CL·(1 + TDA), TDA 0.4, KDES 0.05/day, V1 3 L, Q 0.5, V2 2; IIV on CL
    and V1), 24 subjects, 4 cycles — in the spirit of published ADC models.
``tv``
    2-cmt linear elimination on the same schedule with clearance following each
    cycle's weight (``(WT/70)^0.75``, weight recorded per record and drifting
    about −3% per cycle) and inter-occasion variability on CL per cycle (ω_IOV
    0.2), IIV on CL and V1: ``time_varying=("WT",), iov=("CL",)``, integrated by
    the ODE solver's piecewise-constant parameters.  Its "linear" comparison is
    the closed-form model with the weight at baseline and no IOV.
``tv-mis``
    The ``tv`` model fitted to data whose truth it does not assume
    (``simulate_tv_misspecified``): weight also on V1 (``(WT/70)^1.0``, per
    cycle) and IOV also on V1 (ω_IOV 0.15).  Coverage is of the parameters the
    model has; the unmodelled truth is recorded under ``unmodelled``, and
    posterior medians under ``median``.

Each seed is fitted at poppk's default settings (``fit(spec, data, seed=s)``;
``--low-rank``/``--tune``/``--draws``/``--chains`` override them) and its
summary cached in ``benchmarks/ode_fit/<model>_seed<s>_<draws>x<tune>x<chains>_lr<0|1>.json``
(``lr``: nutpie's low-rank mass matrix, as the fit used it), so a run resumes
where it stopped.  Printed per seed: 90% interval coverage of the population
truth, max R-hat and its parameter, divergences, min bulk ESS, compile,
sampling and wall time, ms per log-density gradient (numba, as nutpie runs
it; ``--skip-grad`` skips it, two extra numba compiles) against the
closed-form linear model on the same data in the same process, and min bulk
ESS/s of sampling.  The 1-min load averages before and after each fit are
recorded: the timings are only comparable on an equally loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from _ode_studies import simulate_mm, simulate_td, simulate_tv, simulate_tv_misspecified  # noqa: E402

from poppk.data import read_nonmem  # noqa: E402
from poppk.model import ModelSpec, fit  # noqa: E402
from poppk.model.effects import CovariateEffect  # noqa: E402
from poppk.model.fit import _default_low_rank  # noqa: E402

OUT = HERE / "ode_fit"


def problem(model: str, seed: int):
    """(spec, linear spec on the same data, data, truth) of one model and seed."""
    if model == "mm":
        df, truth = simulate_mm(seed)
        spec = ModelSpec(structure="1cmt", elimination="michaelis-menten",
                         typical={"VMAX": 5.0, "KM": 1.0, "V1": 5.0}, iiv=("VMAX", "V1"),
                         error="proportional", units={"time": "h"})
        lin = ModelSpec(structure="1cmt", typical={"CL": 2.0, "V1": 5.0}, iiv=("CL", "V1"),
                        error="proportional", units={"time": "h"})
    elif model in ("tv", "tv-mis"):
        df, truth = simulate_tv(seed) if model == "tv" else simulate_tv_misspecified(seed)
        wt = (CovariateEffect("CL", "WT", reference=70.0),)
        spec = ModelSpec(structure="2cmt", typical={"CL": 0.5, "V1": 2.0, "Q": 0.3, "V2": 1.5}, iiv=("CL", "V1"),
                         covariates=wt, time_varying=("WT",), iov=("CL",), error="proportional",
                         units={"time": "day"})
        lin = ModelSpec(structure="2cmt", typical={"CL": 0.5, "V1": 2.0, "Q": 0.3, "V2": 1.5}, iiv=("CL", "V1"),
                        covariates=wt, error="proportional", units={"time": "day"})
    else:
        df, truth = simulate_td(seed)
        spec = ModelSpec(structure="2cmt", elimination="time-dependent",
                         typical={"CL": 0.5, "TDA": 0.3, "KDES": 0.1, "V1": 2.0, "Q": 0.3, "V2": 1.5},
                         iiv=("CL", "V1"), error="proportional", units={"time": "day"})
        lin = ModelSpec(structure="2cmt", typical={"CL": 0.5, "V1": 2.0, "Q": 0.3, "V2": 1.5}, iiv=("CL", "V1"),
                        error="proportional", units={"time": "day"})
    return spec, lin, read_nonmem(df), truth


def gradient_ms(spec, data, n: int = 200) -> float:
    """Milliseconds per log density + gradient (numba mode, at the Laplace-EM start)."""
    from poppk.model import build_design, build_model, laplace_init

    from bench_fit import model_gradient_ms

    spec = spec.resolved(data.covariates)
    design = build_design(spec, data)
    return model_gradient_ms(build_model(spec, design=design, init=laplace_init(spec, design)), n)


def run_seed(model: str, seed: int, draws: int, tune: int, chains: int, low_rank: str = "auto",
             grad: bool = True) -> dict:
    spec, lin, data, truth = problem(model, seed)
    lr = _default_low_rank(spec) if low_rank == "auto" else low_rank == "on"
    path = OUT / f"{model}_seed{seed}_{draws}x{tune}x{chains}_lr{int(lr)}.json"
    if path.exists():
        return json.loads(path.read_text())
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    f = fit(spec, data, seed=seed, draws=draws, tune=tune, chains=chains, progress=False, warn=False,
            log_likelihood=False, low_rank=lr)
    wall = time.perf_counter() - t0
    post = f.idata.posterior
    cover = {}
    unmodelled = {k: v for k, v in truth.items() if k not in post}
    for name, true in truth.items():
        if name in unmodelled:
            continue
        lo, hi = np.quantile(post[name].values.ravel(), [0.05, 0.95])
        cover[name] = [float(lo), float(hi), float(true), bool(lo < true < hi)]
    table = f.convergence().table
    st = f.idata.sample_stats
    tm = f.settings["timings"]
    rhat = table["r_hat"].astype(float)
    ess = table["ess_bulk"].astype(float)
    res = {
        "model": model, "seed": seed, "draws": draws, "tune": tune, "chains": chains,
        "low_rank": bool(f.settings["low_rank"]), "cover": cover,
        "max_rhat": float(rhat.max()), "max_rhat_parameter": str(rhat.idxmax()),
        "min_ess_bulk": float(ess.min()), "min_ess_bulk_parameter": str(ess.idxmin()),
        "divergences": int(st["diverging"].sum()), "wall_s": wall,
        "compile_s": float(tm.get("compile_s", float("nan"))), "sample_s": float(tm["sample_s"]),
        "steps_per_draw": float(st["n_steps"].mean()),
        "load1_before": load0, "load1_after": os.getloadavg()[0],
        "ms_per_gradient": gradient_ms(spec, data) if grad else None,
        "ms_per_gradient_linear": gradient_ms(lin, data) if grad else None,
    }
    res["ess_per_s"] = res["min_ess_bulk"] / res["sample_s"]
    if unmodelled:
        res["unmodelled"] = unmodelled
        res["median"] = {k: float(np.median(post[k].values)) for k in cover}
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("mm", "td", "tv", "tv-mis", "both"), default="both",
                    help="both = mm and td (tv and tv-mis are run on their own)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--low-rank", choices=("auto", "on", "off"), default="auto",
                    help="nutpie's low-rank mass matrix adaptation (auto: fit()'s default)")
    ap.add_argument("--skip-grad", action="store_true",
                    help="skip the gradient cost (two numba compiles of their own per seed)")
    args = ap.parse_args(argv)
    models = ("mm", "td") if args.model == "both" else (args.model,)
    for model in models:
        rows = [run_seed(model, s, args.draws, args.tune, args.chains, args.low_rank, not args.skip_grad)
                for s in args.seeds]
        print(f"\n== {model}: {args.chains} chains x ({args.tune} + {args.draws}), low-rank {args.low_rank} ==")
        for r in rows:
            miss = [k for k, v in r["cover"].items() if not v[3]]
            grad = (f"gradient {r['ms_per_gradient']:.3f} ms (closed-form linear {r['ms_per_gradient_linear']:.3f}); "
                    if r.get("ms_per_gradient") is not None else "")
            print(f"seed {r['seed']}: covered {len(r['cover']) - len(miss)}/{len(r['cover'])}"
                  f"{' (missed ' + ', '.join(miss) + ')' if miss else ''}; "
                  f"max R-hat {r['max_rhat']:.4f} ({r.get('max_rhat_parameter', '?')}); "
                  f"divergences {r['divergences']}; min bulk ESS {r['min_ess_bulk']:.0f}; "
                  f"wall {r['wall_s']:.0f} s (compile {r.get('compile_s', float('nan')):.0f} s, "
                  f"sampling {r['sample_s']:.0f} s); {grad}"
                  f"steps/draw {r['steps_per_draw']:.1f}; min bulk ESS/s {r['ess_per_s']:.1f}")
        n = sum(len(r["cover"]) for r in rows)
        k = sum(v[3] for r in rows for v in r["cover"].values())
        print(f"coverage of 90% intervals: {k}/{n} ({k / n:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
