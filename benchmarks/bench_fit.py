"""Benchmark: the public 2-cmt multiple-dose problem (Stan/Torsten, NONMEM and Pumas
were compared on it), fitted with poppk's default pipeline.

Run by hand (not a test):

    .venv/bin/python benchmarks/bench_fit.py [--draws 1000] [--tune 500] [--chains 4]
        [--parametrization laplace|centered|noncentered] [--grad-only | --skip-grad] [--compile-only [--legacy]]
        [--backend numba|jax]

Prints compile time, sampling time, per-parameter bulk/tail ESS and R-hat,
divergences, min/mean bulk ESS per second, leapfrog steps per draw, the cost of
one log-density gradient (and the dense-superposition cost for comparison),
the posterior against the true simulation values, and the compile time of a
second fit of the same structure on other data (60 of the subjects, other
priors; short sampling) in the same process.

``--compile-only`` times compiling alone: the first compile (with its phases:
PyTensor graph work, numba for the log density and gradient, the C callback,
the expand function), then a repeat on the other data.  Run it twice for a
new process with a warm disk cache; ``--legacy`` times what ``fit`` did before
the compile cache (``nutpie.compile_pymc_model`` on a model with the data as
constants), the baseline.  ``--backend jax`` fits with ``fit(..., backend="jax")`` (XLA
compiles the model; poppk[jax]) and times its gradient as nutpie calls it.
Needs ../shared/benchmarks/ (not bundled: see its README).
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
BENCH = ROOT.parent / "shared" / "benchmarks"


def benchmark_spec(parametrization: str | None = None):
    """The benchmark model of ../shared/benchmarks/README.md (``None``: the default parametrisation)."""
    from poppk.model import ModelSpec, Prior

    P = ("CL", "V1", "Q", "V2")
    extra = {} if parametrization is None else {"parametrization": parametrization}
    return ModelSpec(
        structure="2cmt",
        typical={"CL": Prior.lognormal(4, 1), "V1": Prior.lognormal(70, 1), "Q": Prior.lognormal(4, 1), "V2": Prior.lognormal(50, 1)},
        iiv=P,
        iiv_correlation="full",
        omega={p: Prior.halfnormal(0.4) for p in P},
        lkj_eta=2.0,
        error="proportional",
        sigma={"prop": Prior.halfnormal(0.5)},
        truncate_at_zero=True,
        units={"time": "h"},  # the benchmark's TIME is in hours (README)
        **extra,
    )


def gradient_cost(spec, data, n: int = 300) -> dict[str, float]:
    """Milliseconds per log-density + gradient evaluation (numba, as nutpie runs it)."""
    from poppk.model import build_design, build_model, laplace_init

    out = {}
    spec = spec.resolved(data.covariates)
    for label, fast in (("recursion", True), ("dense", False)):
        design = build_design(spec, data, fast=fast)
        out[label] = model_gradient_ms(build_model(spec, design=design, init=laplace_init(spec, design)), n)
    return out


def gradient_cost_jax(spec, data, n: int = 300) -> float:
    """Milliseconds per log density + gradient with the JAX backend, as nutpie calls it (one thread)."""
    from poppk.model import build_design, build_model, laplace_init
    from poppk.model.jax_backend import compile_jax

    spec = spec.resolved(data.covariates)
    design = build_design(spec, data)
    model = build_model(spec, design=design, init=laplace_init(spec, design))
    compiled = compile_jax(model, initial_points={}, jitter_rvs={model["z"]}, var_names=["CL"])
    return _ms_per_call(compiled._make_logp_func(), compiled._make_initial_points(0), n)


def model_gradient_ms(model, n: int = 300) -> float:
    """Milliseconds per log density + gradient of a PyMC model (numba mode, at its initial point)."""
    fn = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
    fn.set_extra_values({})
    point = model.initial_point()
    return _ms_per_call(fn, np.concatenate([np.ravel(point[v.name]) for v in fn._grad_vars]), n)


def _ms_per_call(fn, x, n: int) -> float:
    """Milliseconds per call of ``fn(x)``, after five warm-up calls."""
    for _ in range(5):
        fn(x)
    t0 = time.perf_counter()
    for _ in range(n):
        fn(x)
    return (time.perf_counter() - t0) / n * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parametrization", default=None, help="default: ModelSpec's default")
    ap.add_argument("--grad-only", action="store_true")
    ap.add_argument("--skip-grad", action="store_true",
                    help="skip the gradient cost of the uncached models (two NUMBA compiles of their own)")
    ap.add_argument("--compile-only", action="store_true", help="time compiling only (first and repeat)")
    ap.add_argument("--legacy", action="store_true", help="with --compile-only: today's compile path (baseline)")
    ap.add_argument("--second-draws", type=int, default=100, help="draws and tune of the second fit (0: skip it)")
    ap.add_argument("--backend", choices=("numba", "jax"), default="numba", help="fit(..., backend=)")
    ap.add_argument("--low-rank", choices=("auto", "on", "off"), default="auto",
                    help="nutpie's low-rank mass matrix adaptation (auto: fit()'s default)")
    args = ap.parse_args(argv)
    csv = BENCH / "iv_2cmt_multiple_dose.csv"
    if not csv.is_file():
        print(f"benchmark data not found at {csv}", file=sys.stderr)
        return 1
    warnings.filterwarnings("ignore", category=UserWarning)
    from poppk.data import read_nonmem
    from poppk.model import fit

    data = read_nonmem(csv)
    spec = benchmark_spec(args.parametrization)
    print(f"parametrization: {spec.parametrization}")
    if args.compile_only:
        return compile_only(spec, data, legacy=args.legacy)
    if not args.skip_grad and args.backend == "jax":
        g = gradient_cost_jax(spec, data)
        print(f"gradient (jax, as nutpie calls it): {g:.3f} ms; {g * 1e6 / len(data.observations):.0f} ns per observation")
    elif not args.skip_grad:
        g = gradient_cost(spec, data)
        n_obs = len(data.observations)
        print(f"gradient: {g['recursion']:.3f} ms (modal recursion), {g['dense']:.3f} ms (dense superposition); "
              f"{1e3 / g['recursion']:.0f} gradients/s; {g['recursion'] * 1e6 / n_obs:.0f} ns per observation")
    if args.grad_only:
        return 0
    t0 = time.perf_counter()
    f = fit(spec, data, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, progress=False,
            log_likelihood=False, warn=False, low_rank={'auto': None, 'on': True, 'off': False}[args.low_rank],
            backend=args.backend)
    total = time.perf_counter() - t0
    tm = f.settings["timings"]
    s = f.summary()
    st = f.idata.sample_stats
    steps = float(st["n_steps"].mean())
    sample_s = tm["sample_s"]
    truth = pd.read_csv(BENCH / "iv_2cmt_multiple_dose_true_params.csv")
    true_typ = np.exp(np.log(truth[["CL", "VC", "Q", "VP"]]).mean()).to_numpy()
    true_om = np.log(truth[["CL", "VC", "Q", "VP"]]).std().to_numpy()
    ref = dict(zip(["CL", "V1", "Q", "V2"], true_typ)) | dict(zip(["omega_CL", "omega_V1", "omega_Q", "omega_V2"], true_om))
    s["sample value"] = [ref.get(i, np.nan) for i in s.index]
    pd.set_option("display.width", 160)
    print(s[["median", "lower", "upper", "sample value", "r_hat", "ess_bulk", "ess_tail"]].round({"median": 3, "lower": 3, "upper": 3, "sample value": 3, "r_hat": 4, "ess_bulk": 0, "ess_tail": 0}).to_string())
    print(f"\ninit (Laplace-EM) {tm['init_s']:.1f} s; compile {tm['compile_s']:.1f} s; sampling {sample_s:.1f} s; "
          f"total {total:.1f} s")
    print(f"chains {args.chains} x ({args.tune} + {args.draws}); divergences {int(st['diverging'].sum())}; "
          f"steps/draw {steps:.1f}; max R-hat {s['r_hat'].max():.4f}")
    print(f"bulk ESS/s (sampling time): min {s['ess_bulk'].min() / sample_s:.1f}, mean {s['ess_bulk'].mean() / sample_s:.1f}; "
          f"min bulk ESS/s (total time) {s['ess_bulk'].min() / total:.1f}")
    print("('sample value' = geometric mean / SD of log of the 120 simulated individual parameters)")
    if args.second_draws:
        other_spec, other_data = other_problem(spec, data)
        f2 = fit(other_spec, other_data, draws=args.second_draws, tune=args.second_draws, chains=args.chains,
                 seed=args.seed + 1, progress=False, log_likelihood=False, warn=False, backend=args.backend)
        print(f"second fit (same structure, {other_data.n_subjects} subjects, other priors): "
              f"compile {f2.settings['timings']['compile_s']:.2f} s")
    return 0


def other_problem(spec, data):
    """Another problem of the benchmark's structure: 60 of the subjects, other prior medians."""
    import dataclasses

    from poppk.model import Prior

    typical = tuple((p, Prior.lognormal(pr["median"] * 1.5, pr["sigma"])) for p, pr in spec.typical)
    return dataclasses.replace(spec, typical=typical), data.subset(list(data.subjects)[::2])


def _problem_inputs(spec, data):
    from poppk.model import build_design, laplace_init
    from poppk.model.fit import population_variables

    spec = spec.resolved(data.covariates)
    design = build_design(spec, data)
    init = laplace_init(spec, design)
    k = len(spec.iiv)
    ip = {f"log_{p}": v for p, v in init.log_typical.items()}
    ip.update({f"omega_{p}": v for p, v in init.omega.items()})
    ip.update({f"sigma_{n}": v for n, v in init.sigma.items()})
    ip["omega_chol"] = np.diag([init.omega[p] for p in spec.iiv])[np.tril_indices(k)]
    ip["z"] = np.zeros((design.n_subjects, k))
    var_names = population_variables(spec) + ["theta", "omega_corr"]
    return spec, design, init, ip, var_names


def compile_only(spec, data, *, legacy: bool = False) -> int:
    """Time the first compile and a repeat on other data (see module doc)."""
    from poppk.model import build_model

    problems = [_problem_inputs(spec, data), _problem_inputs(*other_problem(spec, data))]
    t0 = time.perf_counter()
    import nutpie  # noqa: F401 - imported before timing: a process pays it once, not per compile
    import pymc  # noqa: F401

    print(f"import pymc, nutpie: {time.perf_counter() - t0:.2f} s (not in the compile times)")
    models = []
    for label, (sp, design, init, ip, var_names) in zip(("first", "repeat (other data)"), problems):
        t0 = time.perf_counter()
        if legacy:
            import nutpie

            model = build_model(sp, design=design, init=init)
            compiled = nutpie.compile_pymc_model(model, initial_points=ip, jitter_rvs={model["z"]}, var_names=var_names)
            info = {"cache": "legacy"}
        else:
            from poppk.model.compile_cache import compile_nutpie

            compiled, info = compile_nutpie(sp, design, init, initial_points=ip, var_names=var_names)
        models.append(compiled)
        dt = time.perf_counter() - t0
        phases = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in info.get("phases", {}).items())
        print(f"compile {label}: {dt:.2f} s ({info['cache']}{'; ' + phases if phases else ''})")
    print(f"gradient of the compiled callback (what nutpie calls): {callback_cost(models[0]):.3f} ms")
    if not legacy:
        from poppk.model.compile_cache import cache_info

        print(f"cache: {cache_info()}")
    return 0


def callback_cost(compiled, n: int = 500) -> float:
    """Milliseconds per call of a nutpie compiled model's log-density-and-gradient callback."""
    import ctypes

    from threadpoolctl import threadpool_limits

    x = compiled.initial_point_func(0)
    grad, logp = np.zeros_like(x), np.zeros(())
    dbl = ctypes.POINTER(ctypes.c_double)
    args = (ctypes.c_uint64(len(x)), x.ctypes.data_as(dbl), grad.ctypes.data_as(dbl), logp.ctypes.data_as(dbl),
            ctypes.c_void_p(compiled.user_data.ctypes.data))
    fn = compiled.compiled_logp_func.ctypes
    with threadpool_limits(limits=1):
        for _ in range(20):
            fn(*args)
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n):
                fn(*args)
            best = min(best, (time.perf_counter() - t0) / n * 1e3)
    return best


if __name__ == "__main__":
    raise SystemExit(main())
