"""Simulated NONMEM-style studies with known truth (a helper module, not a conftest).

Test modules import it as ``from _studies import simulate_study``; importing it
``from conftest`` breaks when another ``conftest.py`` (tests/simulate) has been
imported first under the same module name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    oral: bool = False,
    seed: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a NONMEM-style dataset from known truth with poppk's own kernel.

    ``oral``: doses are boluses into the depot (CMT 1, first-order absorption;
    ``truth`` must then give ``KA``).  Returns the dataset and the true
    individual parameters.
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
                             n_cmt=int(structure[0]), dur=np.full_like(dt, infusion) if infusion else None,
                             oral=np.ones(dt.shape, dtype=bool) if oral else None)
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
