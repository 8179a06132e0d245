"""Calibration of the dosing answer: does the 90% interval of the AIBW/TBW variance ratio cover the truth?

Trials of about 60 patients are re-simulated from the bundled trial's
generator (``data/generate_trial.py``) under several truths -- PK scaling on
total body weight with exponents 0.5 and 1, on AIBW, on LBW, and no size
effect -- and each is analysed with poppk's default workflow: fits with TBW,
AIBW and the adjusted size model (IBW + f·(TBW − IBW), f estimated),
leave-one-subject-out LOO stacking weights, simulation of 6 mg/kg TBW and
6 mg/kg AIBW (Q3W, 90-min infusion) from every fit for a virtual population
resampled from the trial, and the stacking-weighted average.  The candidates
carry their size covariate on ``--size-parameters`` (default ``CL,V1,Q,V2``, the
workflow's default, one exponent per parameter, scaling Q and V2 as every truth
does; ``CL,V1`` was the first study's set).  The truth is the
variance ratio in the population the trial is a sample of: 200,000 women
drawn from the generator's demographic distribution, with the true
parameters.

Reported per truth and pooled: coverage of the 90% interval (with a 95%
Clopper-Pearson interval of the coverage), how often the interval excludes 1
on the wrong side of the truth, and the bias (median of log(estimate/truth));
the same for the single-model answers (TBW fit only, AIBW fit only), which is
what an analyst who picks one fit would report.  Replicates whose fits did
not converge are kept (the workflow's answer is what a user gets) and counted.

Every replicate's result is cached as JSON under ``--cache`` (resumable; a run
can span sessions and machines).  The default cache is ``benchmarks/calibration``
for ``CL,V1`` and ``benchmarks/calibration_size4`` for ``CL,V1,Q,V2`` (another set:
``benchmarks/calibration_size_<P1>-<P2>...``), so replicates of different
candidate sets never mix; the replicates of a non-default set record it and the
report refuses a cache holding another set.  The true ratios do not depend on
the candidates: a cache without them reads those of ``benchmarks/calibration``.
The trial of replicate r under a truth (and the fits' seeds) is the same for
every parameter set, so the studies are paired replicate by replicate.

Replicates run in parallel on a ``dask.distributed`` cluster: ``--workers N``
starts a LocalCluster of N single-threaded processes here, ``--scheduler
tcp://host:8786`` uses a remote one (each worker needs poppk installed);
``--workers 0`` runs serially in this process.

    .venv/bin/python benchmarks/calibrate_ratio.py --replicates 20 --workers 1
    .venv/bin/python benchmarks/calibrate_ratio.py --report-only      # tables from the cache
    .venv/bin/python benchmarks/calibrate_ratio.py --size-parameters CL,V1 --report-only   # the first study
    .venv/bin/python benchmarks/calibrate_ratio.py --report-only \
        --paired-with benchmarks/calibration    # only the trials both studies analysed
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

#: The truths: (descriptor of the true size, exponent on CL, exponent on V1, Q and V2).
TRUTHS: dict[str, tuple[str, float, float]] = {
    "TBW^0.5": ("TBW", 0.5, 0.6),
    "TBW^1": ("TBW", 1.0, 1.0),
    "AIBW": ("AIBW", 0.8, 1.0),
    "LBW": ("LBW", 0.75, 1.0),
    "none": ("none", 0.0, 0.0),
}
#: About 60 patients: escalation on TBW (mg/kg: n), expansion on AIBW.
ESCALATION = {1.0: 3, 2.0: 6, 3.3: 6, 5.0: 10, 7.0: 6}
EXPANSION = {5.0: 14, 6.0: 15}
STRATEGIES = {"6 mg/kg TBW": "6 mg/kg", "6 mg/kg AIBW": "6 mg/kg AIBW"}
METRICS = ("cmax_c1", "auc_c1")
CANDIDATES = ("TBW", "AIBW", "ADJ")
#: Parameters the candidates' size covariate may scale (all four: the workflow's default), and the
#: set of the first study (``benchmarks/calibration``, whose records predate the option and omit it).
SIZE_PARAMETERS = ("CL", "V1", "Q", "V2")
DEFAULT_SIZE_PARAMETERS = ("CL", "V1")
DEFAULT_CACHE = ROOT / "benchmarks" / "calibration"
#: Bump when the generator's population, the truth's model or the schedule change (cached truths are keyed by it).
TRUTH_VERSION = 1


@dataclass(frozen=True)
class Settings:
    """Fit and simulation settings of every replicate."""

    chains: int = 4
    tune: int = 300
    draws: int = 300
    n_patients: int = 2000
    n_sim_draws: int = 200
    n_truth: int = 200_000
    ci: float = 0.9
    cohort_scale: float = 1.0  # multiplies every cohort size (the tests' one-trial version uses fewer patients)
    size_parameters: tuple[str, ...] = DEFAULT_SIZE_PARAMETERS  # scaled by every candidate's size covariate

    def cohorts(self) -> tuple[dict[float, int], dict[float, int]]:
        """Escalation and expansion cohort sizes."""
        def scale(c: dict[float, int]) -> dict[float, int]:
            return {k: max(1, int(round(v * self.cohort_scale))) for k, v in c.items()}
        return scale(ESCALATION), scale(EXPANSION)


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_trial", ROOT / "data" / "generate_trial.py")
    gt = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(gt)  # type: ignore[union-attr]
    return gt


def _schedule() -> Any:
    from poppk.simulate import parse_schedule

    return parse_schedule("q3w:6", infusion="90 min")


def base_spec() -> Any:
    """The analysis model: 2-cmt, ALB on CL, correlated IIV on CL and V1, combined error, M3."""
    from poppk.model import CovariateEffect, ModelSpec

    return ModelSpec(
        structure="2cmt", typical={"CL": 0.5, "V1": 3.0, "Q": 0.5, "V2": 2.0},
        covariates=(CovariateEffect("CL", "ALB", "power", reference=4.0),),
        iiv=("CL", "V1"), iiv_correlation="full", error="combined", blq="m3",
        units={"time": "day", "amount": "mg", "volume": "L"},
    )


def true_ratio(truth: str, settings: Settings) -> dict[str, Any]:
    """Variance ratios (AIBW/TBW dosing) and f* in the generator's population, at the true parameters."""
    from poppk.model import CovariateEffect, ModelSpec, Prior
    from poppk.simulate import PosteriorDraws, per_draw_statistics, population_from_table, simulate_strategies
    from poppk.simulate.optimal import optimal_size_fraction

    gt = _generator()
    descriptor, e_cl, e_v = TRUTHS[truth]
    demo = gt.demographics(settings.n_truth, seed=99)
    table = pd.DataFrame({"WT": demo["WT"], "HT": demo["HT"], "SEX": "F", "ALB": demo["ALB"]})
    pop = population_from_table(table, ibw_method="label")
    p = gt.TRUE_PARAMETERS
    covs = [CovariateEffect("CL", "ALB", "power", reference=p["ALB_REF"])]
    betas = {"beta_CL_ALB": p["CL_ALB"]}
    if descriptor != "none":
        _, ref = gt.size_descriptor_values(descriptor, [p["WT_REF"]], [gt.HT_REF])
        for name, e in (("CL", e_cl), ("V1", e_v), ("Q", e_v), ("V2", e_v)):
            covs.append(CovariateEffect(name, descriptor, "power", reference=ref, prior=Prior.fixed(e)))
    spec = ModelSpec("2cmt", {k: p[k] for k in ("CL", "V1", "Q", "V2")}, covariates=tuple(covs),
                     iiv=("CL", "V1"), iiv_correlation="full", error="combined", units={"time": "day"})
    r = p["CORR_CL_V1"]
    draws = PosteriorDraws.from_values(spec, typical={k: p[k] for k in ("CL", "V1", "Q", "V2")}, betas=betas,
                                       omega={"CL": p["OMEGA_CL"], "V1": p["OMEGA_V1"]},
                                       correlation=[[1.0, r], [r, 1.0]], n_draws=1)
    sim = simulate_strategies(draws, dict(STRATEGIES), _schedule(), pop, metrics=METRICS, seed=5,
                              keep_exposure=True, chunk_patients=50_000)
    st = per_draw_statistics(sim)
    ratio = (st["bpv_var_log"].sel(strategy="6 mg/kg AIBW") / st["bpv_var_log"].sel(strategy="6 mg/kg TBW"))
    opt = optimal_size_fraction(sim, strategy="6 mg/kg TBW")
    return {"var_ratio": {m: float(ratio.sel(metric=m).values[0]) for m in METRICS},
            "f_opt": {m: float(opt["f_opt"].sel(metric=m).values[0]) for m in METRICS}}


def run_replicate(truth: str, rep: int, settings: Settings) -> dict[str, Any]:
    """Simulate one trial under ``truth`` (seed = replicate), analyse it with the default workflow."""
    os.environ.setdefault("PYTENSOR_FLAGS", "")
    warnings.simplefilter("ignore")
    from poppk.config import candidate_spec
    from poppk.data import read_nonmem
    from poppk.diagnostics import compare
    from poppk.model import fit
    from poppk.simulate import parse_population
    from poppk.simulate.answer import simulate_candidates

    t0 = time.perf_counter()
    gt = _generator()
    descriptor, e_cl, e_v = TRUTHS[truth]
    seed = 1000 * (list(TRUTHS).index(truth) + 1) + rep
    escalation, expansion = settings.cohorts()
    records, _ = gt.generate_trial(seed, escalation, expansion, e_cl, e_v, size_descriptor=descriptor)
    data = read_nonmem(records, time_unit="day").with_size_descriptors(ibw_method="label")
    base = base_spec()
    fits, conv = {}, {}
    for d in CANDIDATES:
        f = fit(candidate_spec(base, d, tuple(settings.size_parameters)), data, draws=settings.draws,
                tune=settings.tune, chains=settings.chains, seed=rep, progress=False, warn=False)
        fits[d] = f
        c = f.convergence()
        conv[d] = {"ok": bool(c.ok), "max_r_hat": float(c.table["r_hat"].max()), "divergences": int(c.divergences)}
    cmp = compare(fits)
    weights = {str(k): float(v) for k, v in cmp["weight"].items()}
    pop = parse_population(f"resample:{settings.n_patients}", fits["TBW"], seed=rep, ibw_method="label")
    answer = simulate_candidates(fits, weights, dict(STRATEGIES), _schedule(), pop, n_draws=settings.n_sim_draws,
                                 seed=rep, metrics=METRICS, reference="6 mg/kg TBW", ci=settings.ci)
    tab = answer.strategies
    out: dict[str, Any] = {"truth": truth, "rep": rep, "seed": seed, "n_subjects": int(data.n_subjects),
                           "weights": weights, "convergence": conv,
                           **_size_record(settings.size_parameters),
                           "elpd": {str(k): float(v) for k, v in cmp["elpd"].items()},
                           "n_k_unhandled": {str(k): int(v) for k, v in cmp["n_k_unhandled"].items()}
                           if "n_k_unhandled" in cmp else {},
                           "answers": {}}
    for model in ("averaged", *CANDIDATES):
        out["answers"][model] = {
            m: {k: float(tab.loc[(model, "6 mg/kg AIBW", m), f"var_ratio_{k}"]) for k in ("median", "lo", "hi")}
            for m in METRICS}
    if answer.optimal is not None:
        out["f_opt"] = {m: {k: float(answer.optimal.loc[("averaged", m), f"f_opt_{k}"]) for k in ("median", "lo", "hi")}
                        for m in METRICS}
    adj = fits["ADJ"].idata.posterior["size_fraction"].values.ravel()
    out["size_fraction"] = {k: float(v) for k, v in zip(("lo", "median", "hi"), np.quantile(adj, [0.05, 0.5, 0.95]))}
    out["seconds"] = time.perf_counter() - t0
    return out


def _failure(truth: str, rep: int, exc: BaseException,
             size_parameters: tuple[str, ...] = DEFAULT_SIZE_PARAMETERS) -> dict[str, Any]:
    """The record of a replicate whose analysis raised (counted in the table as n_failed)."""
    print(f"  {truth} rep {rep} FAILED: {exc!r}", flush=True)
    return {"truth": truth, "rep": rep, "failed": True, "error": repr(exc), "seconds": float("nan"),
            **_size_record(size_parameters)}


def parse_size_parameters(text: str) -> tuple[str, ...]:
    """``"CL,V1,Q,V2"`` -> the parameters in the order of SIZE_PARAMETERS (ValueError if unknown or none)."""
    names = {p.strip().upper() for p in text.split(",") if p.strip()}
    bad = sorted(names - set(SIZE_PARAMETERS))
    if bad or not names:
        raise ValueError(f"size parameters {sorted(names)}: choose one or more of {list(SIZE_PARAMETERS)}")
    return tuple(p for p in SIZE_PARAMETERS if p in names)


def default_cache(size_parameters: tuple[str, ...]) -> Path:
    """The cache of a candidate set: the committed study's for the default, its own directory otherwise."""
    if tuple(size_parameters) == DEFAULT_SIZE_PARAMETERS:
        return DEFAULT_CACHE
    if tuple(size_parameters) == SIZE_PARAMETERS:
        return ROOT / "benchmarks" / "calibration_size4"
    return ROOT / "benchmarks" / f"calibration_size_{'-'.join(size_parameters)}"


def _size_record(size_parameters: tuple[str, ...]) -> dict[str, Any]:
    """The candidate set in a replicate's record (left out for the default: its records predate the option)."""
    sp = list(size_parameters)
    return {} if tuple(sp) == DEFAULT_SIZE_PARAMETERS else {"size_parameters": sp}


def _cache_path(cache: Path, truth: str, rep: int) -> Path:
    return cache / truth.replace("^", "pow") / f"rep_{rep:03d}.json"


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a proportion k/n."""
    from scipy import stats

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def summarize(results: list[dict[str, Any]], truths: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Coverage, wrong-side rate and bias per truth, metric and answer (averaged or one model), and pooled.

    Rows ``answer = "f*"`` judge the averaged interval of the optimal size
    fraction against the true f* (bias on the f scale, no wrong side).
    Replicates that failed are counted in ``n_failed`` and left out of the rest.
    """
    rows = []
    failed: dict[str, int] = {}
    for r in results:
        if r.get("failed"):
            failed[r["truth"]] = failed.get(r["truth"], 0) + 1
            continue
        for m, a in (r.get("f_opt") or {}).items():
            t = truths[r["truth"]]["f_opt"][m]
            rows.append({"truth": r["truth"], "metric": m, "answer": "f*", "covered": a["lo"] <= t <= a["hi"],
                         "wrong_side": False, "log_bias": a["median"] - t,
                         "converged": all(c["ok"] for c in r["convergence"].values())})
        for model, per_metric in r["answers"].items():
            for m, a in per_metric.items():
                t = truths[r["truth"]]["var_ratio"][m]
                wrong = (a["hi"] < 1 <= t) or (a["lo"] > 1 >= t)
                rows.append({"truth": r["truth"], "metric": m, "answer": model, "covered": a["lo"] <= t <= a["hi"],
                             "wrong_side": wrong, "log_bias": np.log(a["median"] / t),
                             "converged": all(c["ok"] for c in r["convergence"].values())})
    df = pd.DataFrame(rows)
    out = []
    for keys, g in list(df.groupby(["answer", "metric", "truth"])) + [
            ((a, m, "pooled"), g) for (a, m), g in df.groupby(["answer", "metric"])]:
        n, k = len(g), int(g["covered"].sum())
        lo, hi = clopper_pearson(k, n)
        n_failed = sum(failed.values()) if keys[2] == "pooled" else failed.get(keys[2], 0)
        out.append({"answer": keys[0], "metric": keys[1], "truth": keys[2], "n": n, "coverage": k / n,
                    "coverage_lo": lo, "coverage_hi": hi, "wrong_side": float(g["wrong_side"].mean()),
                    "median_log_bias": float(g["log_bias"].median()),
                    "n_not_converged": int((~g["converged"]).sum()), "n_failed": n_failed})
    return pd.DataFrame(out).set_index(["answer", "metric", "truth"])


def plot_coverage(table: pd.DataFrame, path: str | Path, *, nominal: float = 0.9) -> Path:
    """The shortfall: coverage of each answer's 90% interval per truth, with Clopper-Pearson 95% bars.

    One panel per metric; rows of :func:`summarize` (``answer`` ``f*`` left out).
    Written atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from poppk.io import atomic_write_bytes

    tab = table.drop(index="f*", level="answer", errors="ignore")
    metrics = list(dict.fromkeys(tab.index.get_level_values("metric")))
    answers = list(dict.fromkeys(tab.index.get_level_values("answer")))
    truths = list(dict.fromkeys(t for t in tab.index.get_level_values("truth") if t != "pooled")) + ["pooled"]
    fig = Figure(figsize=(4.2 * len(metrics), 0.5 * len(truths) * len(answers) / 2 + 1.6))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    step = 0.8 / max(len(answers), 1)
    for ax, m in zip(axes, metrics):
        for j, a in enumerate(answers):
            rows = [(i, tab.loc[(a, m, t)]) for i, t in enumerate(truths) if (a, m, t) in tab.index]
            if not rows:
                continue
            y = np.array([len(truths) - 1 - i + 0.4 - (j + 0.5) * step for i, _ in rows])
            cov = np.array([r["coverage"] for _, r in rows])
            lo = np.array([r["coverage_lo"] for _, r in rows])
            hi = np.array([r["coverage_hi"] for _, r in rows])
            ax.errorbar(cov, y, xerr=[cov - lo, hi - cov], fmt="o" if a == "averaged" else ".", ms=6 if a == "averaged"
                        else 4, capsize=2, label=a)
        ax.axvline(nominal, color="0.3", ls="--", lw=1)
        ax.set_xlim(0, 1.02)
        ax.set_title(f"variance ratio of {m}")
        ax.set_xlabel(f"coverage of the {nominal:.0%} interval")
    labels = [f"{t} (n={int(tab.loc[(answers[0], metrics[0], t), 'n'])})" if (answers[0], metrics[0], t) in tab.index
              else t for t in truths]
    axes[0].set_yticks(np.arange(len(truths))[::-1], labels)
    axes[-1].legend(loc="lower left", fontsize=8, title="answer")
    fig.suptitle("Calibration of the dosing answer (AIBW vs TBW dosing) against the truth", fontsize=10)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(Path(path), buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truths", default=",".join(TRUTHS), help=f"comma-separated, of {list(TRUTHS)}")
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--first", type=int, default=0, help="first replicate index")
    ap.add_argument("--size-parameters", default=",".join(SIZE_PARAMETERS),
                    help=f"comma-separated, of {list(SIZE_PARAMETERS)}: what the candidates' size covariate scales")
    ap.add_argument("--cache", default=None,
                    help="one JSON per replicate (committed, so a study resumes in a later session); default "
                         "benchmarks/calibration for CL,V1, benchmarks/calibration_size4 for CL,V1,Q,V2")
    ap.add_argument("--workers", type=int, default=1, help="LocalCluster processes (0: serial, in this process)")
    ap.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--plot", default=None, metavar="PNG", help="write the coverage per truth and answer (the shortfall)")
    ap.add_argument("--paired-with", default=None, metavar="CACHE",
                    help="report only the (truth, replicate) pairs also cached in CACHE (the same simulated "
                         "trials: seeds follow truth and replicate), to compare two candidate sets trial by trial")
    args = ap.parse_args(argv)
    truths = [t for t in args.truths.split(",") if t]
    bad = [t for t in truths if t not in TRUTHS]
    if bad:
        ap.error(f"unknown truths {bad}; choose from {list(TRUTHS)}")
    try:
        size_parameters = parse_size_parameters(args.size_parameters)
    except ValueError as err:
        ap.error(str(err))
    settings = Settings(chains=args.chains, tune=args.tune, draws=args.draws, size_parameters=size_parameters)
    cache = Path(args.cache) if args.cache else default_cache(size_parameters)
    t0 = time.perf_counter()

    truth_values = {}
    for t in truths:
        name = f"{t.replace('^', 'pow')}_n{settings.n_truth}_v{TRUTH_VERSION}.json"
        path = cache / "truth" / name
        if not path.is_file() and (DEFAULT_CACHE / "truth" / name).is_file():
            path = DEFAULT_CACHE / "truth" / name  # the truth does not depend on the candidates: shared
        if not path.is_file():
            _write_json(path, true_ratio(t, settings))
        truth_values[t] = json.loads(path.read_text())
        print(f"truth {t}: var ratio AIBW/TBW {truth_values[t]['var_ratio']}, f* {truth_values[t]['f_opt']}")

    todo = [(t, r) for r in range(args.first, args.first + args.replicates) for t in truths
            if not _cache_path(cache, t, r).is_file()]  # replicate-major: every truth advances together
    if todo and not args.report_only:
        print(f"{len(todo)} replicates to run ({args.replicates * len(truths) - len(todo)} cached)", flush=True)
        if args.workers == 0 and not args.scheduler:
            for t, r in todo:
                try:
                    res = run_replicate(t, r, settings)
                except Exception as exc:  # noqa: BLE001 - recorded and counted, the study goes on
                    res = _failure(t, r, exc, size_parameters)
                _write_json(_cache_path(cache, t, r), res)
                print(f"  {t} rep {r}: {res['seconds']:.0f} s", flush=True)
        else:
            from dask.distributed import Client, LocalCluster, as_completed

            cluster = None if args.scheduler else LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                               processes=True, dashboard_address=None)
            with Client(args.scheduler or cluster) as client:
                futures = {client.submit(run_replicate, t, r, settings, pure=False): (t, r) for t, r in todo}
                for fut in as_completed(futures):
                    t, r = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - recorded and counted, the study goes on
                        res = _failure(t, r, exc, size_parameters)
                    _write_json(_cache_path(cache, t, r), res)
                    print(f"  {t} rep {r}: {res['seconds']:.0f} s", flush=True)
            if cluster is not None:
                cluster.close()
    results = [json.loads(p.read_text()) for t in truths for p in sorted((cache / t.replace("^", "pow")).glob("rep_*.json"))]
    if args.paired_with:
        results = [r for r in results if _cache_path(Path(args.paired_with), r["truth"], r["rep"]).is_file()]
    if not results:
        print("no cached replicates yet")
        return 0
    mixed = sorted({r["truth"] for r in results
                    if tuple(r.get("size_parameters", DEFAULT_SIZE_PARAMETERS)) != size_parameters})
    if mixed:
        print(f"{cache} holds replicates (truths {mixed}) of another --size-parameters than "
              f"{','.join(size_parameters)}")
        return 2
    table = summarize(results, truth_values)
    pd.set_option("display.width", 200)
    print(f"\n{len(results)} replicates in {cache}; {asdict(settings)}")
    print(table.round(3).to_string())
    if args.plot:
        print(f"figure: {plot_coverage(table, args.plot)}")
    secs = [r["seconds"] for r in results if not r.get("failed")]
    print(f"\nper replicate: median {np.median(secs):.0f} s (3 fits + LOO + simulations); "
          f"this run {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
