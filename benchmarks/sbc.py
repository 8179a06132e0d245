"""Simulation-based calibration (SBC) of poppk's default model on a small design.

If data are simulated from the model's own priors and the model is fitted to
them, the rank of each true parameter value among the posterior draws is
uniform -- for every parameter, whatever the design -- exactly when the fitting
machinery (likelihood, parametrisation, sampler) computes the posterior the
spec defines (Talts et al. 2018; Modrák et al. 2023).  A posterior that is too
narrow gives U-shaped ranks, too wide a hump, a bias a slope.

*Model and design.*  The default model of a 1-compartment IV study: typical
CL and V1 with poppk's default priors for a bare initial estimate
(``LogNormal(median, 1)``), log-normal IIV on both (ω ~ HalfNormal(0.5), the
default), proportional error (σ ~ HalfNormal(0.5), the default) truncated at
zero (``truncate_at_zero=True``: the model must generate the data poppk
accepts, and ``read_nonmem`` refuses negative concentrations, which the
untruncated error makes), the default ``"laplace"`` parametrisation.

Without an LLOQ (``--lloq 0``) the priors make datasets whose smallest
concentrations are below 1e-12 mg/L (a CL or V drawn far from the median);
``observation_loglik`` floors IPRED at 1e-12, so the model cannot fit those
values and σ is overestimated (the cached ``--lloq 0`` replicates show it; the
README gives the figures).  A real assay reports such samples BLQ, hence the
LLOQ of the default design.  ``--subjects`` subjects (12) with a 100 mg
bolus and samples at 1, 4, 12 and 24 h; a sample below ``--lloq`` (0.05 mg/L,
1% of the typical peak) is reported BLQ and enters the likelihood by M3 (the
default), as an assay would report it.  Each replicate draws the population
parameters from those priors, then each subject's η, then the observations,
with poppk's own PK kernel (:func:`poppk.pk.concentration`), and fits the
spec with :func:`poppk.fit`.

*Ranks.*  The posterior (``--chains`` × ``--draws``) is thinned to
``--thin-to`` L draws evenly spaced over the chains (99: thinning also takes
out most of the autocorrelation, which would otherwise pile ranks at the
ends); the rank of the truth is the number of those draws below it, 0..L.
Every population parameter is ranked: CL, V1, omega_CL, omega_V1,
sigma_prop.

*Uniformity.*  Per parameter, a chi-square test on the ranks in ``--bins``
equal bins, and the simultaneous ECDF test of Säilynoja, Bürkner & Vehtari
(2022): the ECDF of the ranks against the discrete uniform CDF, with a band
holding 1 − α of uniform ECDFs over every rank value at once (calibrated by
simulation); its p-value is the fraction of uniform rank sets whose smallest
pointwise binomial tail probability is as small as the observed one.  A
parameter is flagged when either p-value is below α / (2 × parameters)
(Bonferroni over both tests and every parameter), so a calibrated model is
flagged at most α of the time.

*Non-converged replicates* (any population parameter with R-hat ≥ 1.01, bulk
or tail ESS < 100 per chain, a divergence, or E-BFMI < 0.3:
:meth:`poppk.model.Fit.convergence`) are kept in the main result, since
dropping them conditions on the data and can itself bend the ranks, and
counted; the result on converged replicates only is reported beside it.  A
replicate whose fit raised is recorded with its error, counted, and has no
ranks.

*Running.*  Every replicate is cached as one small JSON file under
``--cache`` (a directory per setting, so the study resumes where it stopped and
other settings do not mix in).  Fits run on :func:`poppk.model.fit_many`:
``--workers N`` starts a LocalCluster of N single-threaded processes (each
compiles the model once), ``--scheduler tcp://host:8786`` uses a running
cluster, ``--workers 0`` runs here.

    .venv/bin/python benchmarks/sbc.py --replicates 200 --workers 1 --figure sbc.png
    .venv/bin/python benchmarks/sbc.py --report-only --figure sbc.png   # from the cache
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: Base of every replicate's simulation seed (replicate r uses ``default_rng([SEED, r])``).
SEED = 20_261_127


@dataclass(frozen=True)
class Settings:
    """Design, fit and rank settings of one SBC study (they name its cache directory)."""

    subjects: int = 12
    dose: float = 100.0
    times: tuple[float, ...] = (1.0, 4.0, 12.0, 24.0)
    chains: int = 4
    tune: int = 500
    draws: int = 500
    thin_to: int = 99
    lloq: float | None = 0.05

    def __post_init__(self) -> None:
        if self.subjects < 2:
            raise ValueError(f"subjects must be >= 2, got {self.subjects}")
        if not 1 <= self.thin_to <= self.chains * self.draws:
            raise ValueError(f"thin_to must be in 1..chains*draws = {self.chains * self.draws}, got {self.thin_to}")
        if self.lloq is not None and not self.lloq > 0:
            raise ValueError(f"lloq must be > 0 (or None: no limit of quantification), got {self.lloq}")

    @property
    def tag(self) -> str:
        """The cache directory's name."""
        tag = f"1cmt_n{self.subjects}_c{self.chains}_t{self.tune}_d{self.draws}_L{self.thin_to}"
        return tag + (f"_lloq{self.lloq:g}" if self.lloq is not None else "")


def sbc_spec() -> Any:
    """The model under calibration: poppk's defaults for a 1-cmt IV model with IIV on CL and V1.

    One departure: the proportional error is truncated at zero, so that the
    model generates only datasets poppk accepts (``read_nonmem`` refuses a
    negative concentration; with the untruncated default, σ ~ HalfNormal(0.5)
    makes some).
    """
    from poppk.model import ModelSpec

    return ModelSpec(structure="1cmt", typical={"CL": 2.0, "V1": 20.0}, iiv=("CL", "V1"),
                     error="proportional", truncate_at_zero=True, units={"time": "h"})


def draw_prior(prior: Any, rng: np.random.Generator) -> float:
    """One draw from a :class:`~poppk.model.Prior` (the families a population parameter can have)."""
    p = dict(prior.params)
    if prior.family == "lognormal":
        return float(p["median"] * np.exp(p["sigma"] * rng.standard_normal()))
    if prior.family == "halfnormal":
        return float(abs(p["sigma"] * rng.standard_normal()))
    if prior.family == "halfcauchy":
        return float(abs(p["beta"] * rng.standard_cauchy()))
    if prior.family == "exponential":
        return float(rng.exponential(p["scale"]))
    if prior.family == "normal":
        return float(p["mu"] + p["sigma"] * rng.standard_normal())
    if prior.family == "beta":
        return float(rng.beta(p["alpha"], p["beta"]))
    if prior.family == "fixed":
        return float(p["value"])
    raise ValueError(f"cannot draw from a {prior.family!r} prior; supported: lognormal, halfnormal, halfcauchy, "
                     "exponential, normal, beta, fixed")


def simulate_replicate(spec: Any, settings: Settings, rep: int) -> tuple[dict[str, float], pd.DataFrame]:
    """Population parameters from the spec's priors, then η, then a NONMEM-style dataset.

    Returns the true population parameters (named as in the posterior) and the records.
    """
    from scipy import stats

    from poppk.pk import concentration

    if (spec.error != "proportional" or not spec.truncate_at_zero or spec.covariates
            or spec.iiv_correlation != "diagonal" or (settings.lloq is not None and spec.blq != "m3")):
        raise ValueError("the SBC simulator covers proportional error truncated at zero, diagonal IIV, no "
                         f"covariates and M3 BLQ records; got error={spec.error!r}, truncate_at_zero="
                         f"{spec.truncate_at_zero!r}, iiv_correlation={spec.iiv_correlation!r}, "
                         f"{len(spec.covariates)} covariate effects, blq={spec.blq!r}")
    rng = np.random.default_rng([SEED, rep])
    truth = {p: draw_prior(pr, rng) for p, pr in spec.typical}
    omega = {p: draw_prior(pr, rng) for p, pr in spec.omega}
    sigma = draw_prior(dict(spec.sigma).get("prop") or _default_sigma(), rng)
    n, times = settings.subjects, np.asarray(settings.times, float)
    eta = {p: omega[p] * rng.standard_normal(n) for p in spec.iiv}
    ind = {p: truth[p] * np.exp(eta.get(p, 0.0)) for p in truth}
    dt = np.broadcast_to(times[None, :, None], (n, len(times), 1))
    amt = np.full((n, len(times), 1), settings.dose)
    conc = concentration(dt, amt, {p: v[:, None, None] for p, v in ind.items()}, n_cmt=spec.n_cmt)
    # the spec's likelihood: Normal(c, sigma c) truncated at 0 (read_nonmem refuses negative concentrations)
    dv = stats.truncnorm.rvs(-1.0 / sigma, np.inf, loc=conc, scale=sigma * conc, random_state=rng)
    lloq = settings.lloq
    blq = dv < lloq if lloq is not None else np.zeros(dv.shape, bool)
    extra = (lambda b: {"BLQ": int(b), "LLOQ": lloq}) if lloq is not None else (lambda b: {})
    rows = []
    for i in range(n):
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": settings.dose, "EVID": 1, "MDV": 1, "DV": np.nan, **extra(0)})
        rows += [{"ID": i + 1, "TIME": t, "AMT": 0.0, "EVID": 0, "MDV": 0, "DV": lloq if b else y, **extra(b)}
                 for t, y, b in zip(times, dv[i], blq[i])]
    true = {**truth, **{f"omega_{p}": v for p, v in omega.items()}, "sigma_prop": sigma}
    return true, pd.DataFrame(rows)


def _default_sigma() -> Any:
    from poppk.model import Prior

    return Prior.halfnormal(0.5)  # the spec's default for "prop" (poppk.model.build._sigma_prior)


def thinned_draws(fit: Any, thin_to: int) -> dict[str, Any]:
    """Run on the worker: ``thin_to`` evenly spaced draws of each population parameter, and convergence."""
    post = fit.posterior
    names = fit.population_variables
    n = post.sizes["chain"] * post.sizes["draw"]
    idx = np.round(np.linspace(0, n - 1, thin_to)).astype(int)
    conv = fit.convergence()
    return {"draws": {v: post[v].values.reshape(n)[idx].tolist() for v in names},
            "converged": bool(conv.ok), "max_r_hat": float(conv.table["r_hat"].max()),
            "min_ess_bulk": float(conv.table["ess_bulk"].min()), "divergences": int(conv.divergences),
            "problems": [str(p)[:160] for p in conv.problems]}


class _Thin:
    """``then`` for the runner: :func:`thinned_draws` with the study's L (a picklable callable)."""

    def __init__(self, thin_to: int) -> None:
        self.thin_to = thin_to

    def __call__(self, fit: Any) -> dict[str, Any]:
        return thinned_draws(fit, self.thin_to)


# ------------------------------------------------------------------ rank statistics

def sbc_rank(draws: Iterable[float], truth: float) -> int:
    """Number of posterior draws below the true value (0..len(draws)); ties count half, rounded down."""
    d = np.asarray(list(draws), float)
    return int(np.sum(d < truth) + np.sum(d == truth) // 2)


def chi2_uniformity(ranks: Iterable[int], n_values: int, bins: int) -> tuple[float, int, float]:
    """Chi-square test of ranks in ``0..n_values-1`` against the discrete uniform, in ``bins`` bins.

    Bins are contiguous runs of rank values as equal as possible; the expected
    count of each is proportional to the rank values it holds.

    Returns
    -------
    tuple
        ``(statistic, degrees of freedom, p-value)``.
    """
    from scipy import stats

    r = np.asarray(list(ranks), int)
    if r.size == 0 or r.min() < 0 or r.max() >= n_values:
        raise ValueError(f"ranks must be in 0..{n_values - 1}; got {r.size} ranks in "
                         f"{(r.min(), r.max()) if r.size else '()'}")
    if not 2 <= bins <= n_values:
        raise ValueError(f"bins must be in 2..{n_values} (the number of rank values), got {bins}")
    edges = np.linspace(0, n_values, bins + 1).round().astype(int)
    observed = np.histogram(r, bins=edges)[0]
    expected = np.diff(edges) / n_values * r.size
    stat, p = stats.chisquare(observed, expected)
    return float(stat), bins - 1, float(p)


def _min_tail(counts: np.ndarray, n: int, cdf: np.ndarray) -> np.ndarray:
    """Smallest two-sided binomial tail probability over the ECDF points, per row of ``counts``."""
    from scipy import stats

    lo = stats.binom.cdf(counts, n, cdf)
    hi = stats.binom.sf(counts - 1, n, cdf)
    return np.minimum(1.0, 2 * np.minimum(lo, hi)).min(axis=-1)


def ecdf_uniformity(ranks: Iterable[int], n_values: int, *, alpha: float = 0.05, n_sim: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """Simultaneous ECDF test of ranks in ``0..n_values-1`` (Säilynoja, Bürkner & Vehtari 2022).

    Returns
    -------
    dict
        ``p_value`` (share of uniform rank sets of the same size whose smallest
        pointwise tail probability is at most the observed one), ``gamma``
        (the pointwise level that makes the band simultaneous at 1 − α),
        ``x`` (rank values), ``ecdf``, ``cdf`` and the band ``lower``/``upper``
        (as proportions).
    """
    from scipy import stats

    r = np.asarray(list(ranks), int)
    n = r.size
    if n == 0 or r.min() < 0 or r.max() >= n_values:
        raise ValueError(f"ranks must be in 0..{n_values - 1}; got {n} ranks")
    x = np.arange(n_values - 1)  # the CDF at the last value is 1 for any ranks
    cdf = (x + 1) / n_values
    counts = np.searchsorted(np.sort(r), x, side="right")
    observed = float(_min_tail(counts[None, :], n, cdf)[0])
    rng = np.random.default_rng(seed)
    sims = np.sort(rng.integers(0, n_values, size=(n_sim, n)), axis=1)
    sim_counts = np.stack([np.searchsorted(s, x, side="right") for s in sims])
    null = _min_tail(sim_counts, n, cdf)
    gamma = float(np.quantile(null, alpha))
    return {"p_value": float(np.mean(null <= observed)), "gamma": gamma, "x": x, "ecdf": counts / n, "cdf": cdf,
            "lower": stats.binom.ppf(gamma / 2, n, cdf) / n, "upper": stats.binom.ppf(1 - gamma / 2, n, cdf) / n}


def uniformity_table(ranks: pd.DataFrame, n_values: int, *, alpha: float = 0.05, bins: int | None = None) -> pd.DataFrame:
    """Chi-square and ECDF uniformity tests of every column of ``ranks`` (one row per replicate).

    Parameters
    ----------
    ranks
        Ranks in ``0..n_values-1``, a column per parameter.
    n_values
        Number of possible ranks (L + 1).
    alpha
        Family-wise level: a parameter is ``flagged`` when either p-value is
        below ``alpha / (2 × columns)``.
    bins
        Chi-square bins (default: about N/10, between 2 and 20, so at least
        ~10 replicates are expected per bin).

    Returns
    -------
    pandas.DataFrame
        Per parameter: ``n``, ``chi2``, ``df``, ``p_chi2``, ``p_ecdf``, ``flagged``.
    """
    k = ranks.shape[1]
    rows = []
    for name in ranks.columns:
        r = ranks[name].dropna().astype(int).to_numpy()
        b = bins or int(np.clip(r.size // 10, 2, 20))
        stat, df, p = chi2_uniformity(r, n_values, min(b, n_values))
        pe = ecdf_uniformity(r, n_values, alpha=alpha)["p_value"]
        rows.append({"parameter": name, "n": int(r.size), "chi2": stat, "df": df, "p_chi2": p, "p_ecdf": pe,
                     "flagged": bool(min(p, pe) < alpha / (2 * k))})
    return pd.DataFrame(rows).set_index("parameter")


def plot_ranks(ranks: pd.DataFrame, n_values: int, path: str | Path, *, title: str = "", alpha: float = 0.05) -> Path:
    """Rank histograms (with the 99% range of a uniform bin count) and ECDF differences with their band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    k = ranks.shape[1]
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 5.6), squeeze=False)
    for j, name in enumerate(ranks.columns):
        r = ranks[name].dropna().astype(int).to_numpy()
        b = int(np.clip(r.size // 10, 2, 20))
        edges = np.linspace(0, n_values, b + 1).round()
        ax = axes[0, j]
        ax.hist(r, bins=edges, color="0.55", edgecolor="white")
        p_bin = np.diff(edges).mean() / n_values
        lo, hi = stats.binom.ppf([0.005, 0.995], r.size, p_bin)
        ax.axhspan(lo, hi, color="tab:blue", alpha=0.15, lw=0)
        ax.axhline(r.size * p_bin, color="tab:blue", lw=1)
        ax.set_title(name)
        ax.set_xlabel("rank")
        e = ecdf_uniformity(r, n_values, alpha=alpha)
        ax = axes[1, j]
        ax.fill_between(e["x"], e["lower"] - e["cdf"], e["upper"] - e["cdf"], step="post", color="tab:blue",
                        alpha=0.15, lw=0)
        ax.step(e["x"], e["ecdf"] - e["cdf"], where="post", color="k", lw=1)
        ax.axhline(0, color="tab:blue", lw=0.8)
        ax.set_xlabel(f"rank (ECDF p = {e['p_value']:.2f})")
    axes[0, 0].set_ylabel("replicates")
    axes[1, 0].set_ylabel(f"ECDF − uniform ({100 * (1 - alpha):.0f}% band)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------- running

def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def _cache_path(cache: Path, settings: Settings, rep: int) -> Path:
    return cache / settings.tag / f"rep_{rep:04d}.json"


def run(reps: Iterable[int], settings: Settings, cache: Path, *, workers: int = 0, scheduler: str | None = None,
        log: Any = print) -> int:
    """Simulate and fit the replicates not yet cached, writing each one's JSON as it finishes.

    Returns the number of replicates run.
    """
    from poppk.data import read_nonmem
    from poppk.model import FitJob, iter_fits
    from poppk.model.reuse import code_revision

    spec = sbc_spec()
    todo = [r for r in reps if not _cache_path(cache, settings, r).is_file()]
    truths, jobs = {}, []
    for r in todo:
        truth, records = simulate_replicate(spec, settings, r)
        truths[r] = truth
        jobs.append(FitJob(r, spec, read_nonmem(records, time_unit="h"),
                           {"draws": settings.draws, "tune": settings.tune, "chains": settings.chains, "seed": r,
                            "log_likelihood": False}))
    if not jobs:
        return 0
    log(f"{len(jobs)} replicates to run, {settings.tag}", flush=True)
    for out in iter_fits(jobs, workers=workers or None, address=scheduler, then=_Thin(settings.thin_to)):
        r = int(out.key)
        doc: dict[str, Any] = {"rep": r, "seed": [SEED, r], "truth": truths[r], "seconds": out.seconds,
                               "worker": out.worker, "compiled": out.compiled, "settings": asdict(settings),
                               "spec_digest": spec_digest(spec), "code_revision": code_revision()}
        if out.ok:
            v = out.value
            doc["ranks"] = {name: sbc_rank(d, truths[r][name]) for name, d in v["draws"].items()}
            doc["posterior_median"] = {name: float(np.median(d)) for name, d in v["draws"].items()}
            doc.update({k: v[k] for k in ("converged", "max_r_hat", "min_ess_bulk", "divergences", "problems")})
        else:
            doc.update(failed=True, error=out.error)
        _write_json(_cache_path(cache, settings, r), doc)
        log(f"  rep {r}: {out.seconds:.1f} s{' (compiled)' if out.compiled else ''}"
            f"{'' if out.ok else ' FAILED ' + str(out.error)[:120]}"
            f"{'' if not out.ok or doc['converged'] else ' (not converged)'}", flush=True)
    return len(jobs)


def spec_digest(spec: Any) -> str:
    """A digest of the model (priors included) a replicate was simulated from and fitted with."""
    import hashlib

    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def load(cache: Path, settings: Settings, *, log: Any = print) -> list[dict[str, Any]]:
    """Every cached replicate of these settings made with today's :func:`sbc_spec`.

    A replicate records the digest of its spec (``spec_digest``) and poppk's
    code revision; one of another spec (e.g. other default priors) is a different
    study and is left out, with a message.  Replicates cached before the digest
    was recorded are kept (they carry the settings of the tag only).
    """
    current = spec_digest(sbc_spec())
    docs = [json.loads(p.read_text()) for p in sorted((cache / settings.tag).glob("rep_*.json"))]
    other = [d for d in docs if d.get("spec_digest") not in (None, current)]
    if other:
        log(f"left out {len(other)} replicate(s) of another spec than today's sbc_spec() "
            f"(digests {sorted({d['spec_digest'] for d in other})}, today {current}); "
            f"use another --cache for a new study")
    return [d for d in docs if d.get("spec_digest") in (None, current)]


def report(results: list[dict[str, Any]], settings: Settings, *, alpha: float = 0.05) -> dict[str, Any]:
    """Counts, per-replicate time and the uniformity tables (all replicates; converged ones only)."""
    ok = [r for r in results if not r.get("failed")]
    ranks = pd.DataFrame([r["ranks"] for r in ok])
    conv = np.array([r["converged"] for r in ok], bool)
    secs = np.array([r["seconds"] for r in ok if not r.get("compiled")], float)
    out: dict[str, Any] = {"n": len(results), "n_failed": len(results) - len(ok), "n_not_converged": int((~conv).sum()),
                           "median_seconds": float(np.median(secs)) if secs.size else float("nan"),
                           "ranks": ranks, "ranks_converged": ranks[conv] if len(ok) else ranks}
    n_values = settings.thin_to + 1
    if len(ok) >= 2:
        out["all"] = uniformity_table(ranks, n_values, alpha=alpha)
        if conv.sum() >= 2:
            out["converged"] = uniformity_table(ranks[conv], n_values, alpha=alpha)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--first", type=int, default=0, help="first replicate index")
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / "sbc"), help="one JSON per replicate (resumable)")
    ap.add_argument("--workers", type=int, default=1, help="LocalCluster processes (0: serially, in this process)")
    ap.add_argument("--scheduler", default=None, help="address of a running dask scheduler (--workers is then ignored)")
    ap.add_argument("--subjects", type=int, default=Settings.subjects)
    ap.add_argument("--chains", type=int, default=Settings.chains)
    ap.add_argument("--tune", type=int, default=Settings.tune)
    ap.add_argument("--draws", type=int, default=Settings.draws)
    ap.add_argument("--lloq", type=float, default=Settings.lloq, help="BLQ below this (mg/L); 0: no LLOQ")
    ap.add_argument("--thin-to", type=int, default=Settings.thin_to, help="posterior draws ranked against (L)")
    ap.add_argument("--alpha", type=float, default=0.05, help="family-wise level of the uniformity tests")
    ap.add_argument("--figure", default=None, help="write the rank histograms and ECDF plots here (PNG, PDF, ...)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if args.workers < 0:
        ap.error(f"--workers must be >= 0, got {args.workers}")
    settings = Settings(subjects=args.subjects, chains=args.chains, tune=args.tune, draws=args.draws,
                        thin_to=args.thin_to, lloq=args.lloq or None)
    cache = Path(args.cache)
    t0 = time.perf_counter()
    if not args.report_only:
        run(range(args.first, args.first + args.replicates), settings, cache,
            workers=0 if args.scheduler else args.workers, scheduler=args.scheduler)
    results = load(cache, settings)
    if not results:
        print(f"no cached replicates under {cache / settings.tag}")
        return 0
    rep = report(results, settings, alpha=args.alpha)
    pd.set_option("display.width", 160)
    print(f"\nSBC of {settings.tag}: {rep['n']} replicates, {rep['n_failed']} failed, "
          f"{rep['n_not_converged']} not converged; median {rep['median_seconds']:.1f} s per replicate "
          f"(fit on one core, first compile excluded); this run {time.perf_counter() - t0:.0f} s")
    for which in ("all", "converged"):
        if which in rep:
            print(f"\nuniformity, {which} replicates (flagged: p < {args.alpha}/(2 x parameters)):")
            print(rep[which].round(3).to_string())
    if args.figure and rep["n"] - rep["n_failed"] >= 2:
        path = plot_ranks(rep["ranks"], settings.thin_to + 1, args.figure, alpha=args.alpha,
                          title=f"SBC {settings.tag}: {len(rep['ranks'])} replicates "
                                f"({rep['n_not_converged']} not converged, kept)")
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
