"""Shared test fixtures: paths, the public benchmark (skipped when absent), simulated studies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCHMARK_CSV = SHARED / "benchmarks" / "iv_2cmt_multiple_dose.csv"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def benchmark_csv() -> Path:
    if not BENCHMARK_CSV.is_file():
        pytest.skip("../shared/benchmarks is not available on this machine")
    return BENCHMARK_CSV


def simulate_study(
    *,
    n_subjects: int = 24,
    structure: str = "1cmt",
    truth: dict | None = None,
    omega: dict | None = None,
    wt_exponent: float | None = None,
    sigma_prop: float = 0.1,
    sigma_add: float = 0.0,
    dose: float = 100.0,
    infusion: float = 0.0,
    n_doses: int = 1,
    interval: float = 24.0,
    times: tuple = (0.5, 1, 2, 4, 8, 12, 24),
    lloq: float | None = None,
    seed: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a NONMEM-style dataset from known truth with poppk's own kernel.

    Returns the dataset and the true individual parameters.
    """
    from poppk.pk import concentration

    rng = np.random.default_rng(seed)
    truth = truth or ({"CL": 2.0, "V1": 20.0} if structure == "1cmt" else {"CL": 2.0, "V1": 20.0, "Q": 3.0, "V2": 40.0})
    omega = omega or {"CL": 0.3, "V1": 0.2}
    wt = np.exp(rng.normal(np.log(70), 0.25, n_subjects))
    ht = rng.normal(168, 8, n_subjects)
    sex = rng.choice(["F", "M"], n_subjects)
    rows = []
    ind = []
    for i in range(n_subjects):
        p = {}
        for k, v in truth.items():
            val = v * np.exp(omega.get(k, 0.0) * rng.normal())
            if wt_exponent is not None and k in ("CL", "V1"):
                val *= (wt[i] / 70.0) ** (wt_exponent if k == "CL" else 1.0)
            p[k] = val
        ind.append({"ID": i + 1, **p})
        dose_times = np.arange(n_doses) * interval
        obs_t = np.sort(np.concatenate([dose_times[-1] + np.asarray(times, float)]))
        dt = obs_t[:, None] - dose_times[None, :]
        amt = np.where(dt >= 0, dose, 0.0)
        conc = concentration(np.maximum(dt, 0), amt, {k: np.asarray(v) for k, v in p.items()},
                             n_cmt=int(structure[0]), dur=np.full_like(dt, infusion) if infusion else None)
        sd = np.sqrt(sigma_add ** 2 + (sigma_prop * conc) ** 2)
        dv = conc + sd * rng.normal(size=conc.shape)
        for t in dose_times:
            rows.append({"ID": i + 1, "TIME": t, "AMT": dose, "RATE": dose / infusion if infusion else 0.0,
                         "EVID": 1, "MDV": 1, "DV": np.nan, "WT": wt[i], "HT": ht[i], "SEX": sex[i]})
        for t, y in zip(obs_t, dv):
            blq = lloq is not None and y < lloq
            rows.append({"ID": i + 1, "TIME": t, "AMT": 0.0, "RATE": 0.0, "EVID": 0, "MDV": 0,
                         "DV": lloq if blq else y, "WT": wt[i], "HT": ht[i], "SEX": sex[i],
                         **({"BLQ": int(blq), "LLOQ": lloq} if lloq is not None else {})})
    df = pd.DataFrame(rows)
    if lloq is not None:
        df["BLQ"] = df["BLQ"].fillna(0).astype(int)
        df["LLOQ"] = df["LLOQ"].fillna(lloq)
    return df, pd.DataFrame(ind)


@pytest.fixture(scope="session")
def small_study():
    """A 1-cmt IV bolus study of 24 subjects with known truth (fast to fit)."""
    from poppk.data import read_nonmem

    df, truth = simulate_study()
    return read_nonmem(df), truth


@pytest.fixture(scope="session")
def small_fit(small_study):
    """One real (small) fit shared by the whole session."""
    from poppk.model import ModelSpec, fit

    data, _ = small_study
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional")
    return fit(spec, data, draws=300, tune=300, chains=2, seed=3, progress=False)
