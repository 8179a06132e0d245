"""Micro-benchmark of the simulation's per-draw statistics (``poppk/simulate/fast_stats.py``), baseline beside change.

    .venv/bin/python benchmarks/bench_sim_stats.py BASELINE_TREE

BASELINE_TREE is another checkout of poppk (e.g. ``git worktree add /tmp/base <commit>``); both versions of
``draw_statistics`` run alternately in one process on the same random exposures (10^5 patients x 20 draws,
3 strategies x 4 metrics), 7 times each, so machine load affects both alike.  Prints whether the quantiles are
equal bit for bit, the largest relative difference of log_var, and the time per patient-draw of each.
"""
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASE = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


base = load(BASE / "poppk/simulate/fast_stats.py", "fs_base")
new = load(ROOT / "poppk/simulate/fast_stats.py", "fs_new")
rng = np.random.default_rng(0)
npat, nb, L, S = 100_000, 20, 4, 3
unit = rng.lognormal(0, 0.4, (L, nb * npat)); doses = rng.uniform(200, 600, (npat, S))
exceed = np.array([np.nan, 150.0, np.nan, np.nan]); q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
args = (unit, [0, 1, 2, 3], doses, nb, exceed, q)
a = base.draw_statistics(*args); b = new.draw_statistics(*args)
print("quantiles equal:", np.array_equal(a["quantiles"], b["quantiles"]), "log_var maxrel:", float(np.max(np.abs(a["log_var"]/b["log_var"]-1))))
res = {"base": [], "new": []}
for _ in range(7):
    for k, m in (("base", base), ("new", new)):
        t = time.perf_counter(); m.draw_statistics(*args); res[k].append(time.perf_counter() - t)
n = nb * npat
for k, v in res.items():
    print(f"{k}: min {min(v):.3f} s, median {np.median(v):.3f} s -> {np.median(v)/n*1e9:.0f} ns per patient-draw (3 strategies x 4 metrics)")
