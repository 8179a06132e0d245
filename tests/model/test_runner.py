"""Many fits at once: job checks, serial runs, a LocalCluster of two processes, failures by key.

The fits are tiny (8 subjects, 2 chains x 100 draws); what costs time is the one
compile per structure per process (about half a minute here), so the fitting
tests are marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from _studies import simulate_study
from poppk.data import read_nonmem
from poppk.errors import ConfigError, FitError
from poppk.model import CovariateEffect, ModelSpec
from poppk.model.runner import FitJob, FitOutcome, fit_many, iter_fits, worker_cache_info

OPTIONS = {"draws": 100, "tune": 100, "chains": 2, "log_likelihood": False}


def _spec(**kw) -> ModelSpec:
    base = dict(structure="1cmt", typical={"CL": 2.0, "V1": 20.0}, iiv=("CL", "V1"), error="proportional",
                units={"time": "h"})
    base.update(kw)
    return ModelSpec(**base)


def _data(seed: int, n: int = 8):
    df, _ = simulate_study(n_subjects=n, times=(1, 4, 12, 24), seed=seed)
    return read_nonmem(df)


def _jobs() -> list[FitJob]:
    return [
        FitJob(("a", 1), _spec(), _data(1), {**OPTIONS, "seed": 11}),
        FitJob(("a", 2), _spec(), _data(2, n=6), {**OPTIONS, "seed": 12}),
        # fails inside fit(): the data have no column ALB
        FitJob("bad", _spec(covariates=(CovariateEffect("CL", "ALB", "power"),)), _data(3), {**OPTIONS, "seed": 1}),
        FitJob(("a", 3), _spec(typical={"CL": 1.0, "V1": 30.0}), _data(4), {**OPTIONS, "seed": 13}),
    ]


# --------------------------------------------------------------------- fast checks

def test_jobs_are_checked_before_anything_runs():
    spec, data = _spec(), None
    with pytest.raises(ConfigError, match="'drawz'.*valid: .*draws"):
        FitJob("k", spec, data, {"drawz": 10})
    with pytest.raises(ConfigError, match="hashable"):
        FitJob(["k"], spec, data)
    with pytest.raises(ConfigError, match="ModelSpec"):
        FitJob("k", {"structure": "1cmt"}, data)
    with pytest.raises(ConfigError, match="key 'k'.*unique"):
        fit_many([FitJob("k", spec, data), FitJob("k", spec, data)])
    with pytest.raises(ConfigError, match="at most one of"):
        fit_many([], workers=2, address="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="whole number >= 0.*-1"):
        fit_many([], workers=-1)
    with pytest.raises(ConfigError, match="'return' or 'raise'"):
        fit_many([], errors="ignore")


def test_an_outcome_reraises_its_error_with_the_key():
    bad = FitOutcome(key=("x", 3), error="ValueError('boom')", worker="tcp://w:1")
    assert not bad.ok
    with pytest.raises(FitError, match=r"\('x', 3\).*boom"):
        bad.result()
    assert FitOutcome(key="v", value=5).result() == 5


# ------------------------------------------------------------------- real fits

@pytest.fixture(scope="module")
def serial():
    return fit_many(_jobs())


@pytest.mark.slow
def test_serial_runs_every_job_and_reports_the_failure_by_key(serial):
    assert [o.key for o in serial] == [("a", 1), ("a", 2), "bad", ("a", 3)]
    bad = serial[2]
    assert not bad.ok and bad.fit is None and "ALB" in bad.error and "Traceback" in bad.traceback
    good = [o for o in serial if o.ok]
    assert len(good) == 3 and all(o.worker == "local" for o in good)
    assert good[0].fit.posterior.sizes == {"chain": 2, "draw": 100, "id": 8, "iiv": 2}
    assert good[1].fit.design.n_subjects == 6
    # one structure: compiled at most once (not at all if an earlier test of the session compiled it)
    assert sum(o.compiled for o in good) <= 1 and good[1].compiled == 0 and good[2].compiled == 0
    with pytest.raises(FitError, match="1 of 2 fits failed -- 'bad': .*ALB"):
        fit_many(_jobs()[1:3], errors="raise")


@pytest.mark.slow
def test_then_returns_a_summary_instead_of_the_fit(serial):
    outs = list(iter_fits(_jobs()[:1], then=lambda f: float(f.posterior["CL"].mean())))
    assert outs[0].fit is None and outs[0].compiled == 0
    assert outs[0].value == pytest.approx(float(serial[0].fit.posterior["CL"].mean()), rel=0, abs=0)


@pytest.mark.slow
def test_a_two_process_cluster_gives_the_serial_posteriors_and_compiles_once_per_worker(serial):
    from poppk.simulate.parallel import local_cluster

    with local_cluster(2) as client:
        # by the scheduler's address, as for a remote cluster (the runner opens and closes its own client)
        cluster = fit_many(_jobs(), address=client.scheduler.address)
        info = worker_cache_info(client)
    assert [o.key for o in cluster] == [o.key for o in serial]
    assert not cluster[2].ok and "ALB" in cluster[2].error and cluster[2].worker.startswith("tcp://")
    for a, b in zip(serial, cluster):
        if not a.ok:
            continue
        assert b.fit.settings["cores"] == 1  # one core per fit on a worker
        for name in ("CL", "V1", "omega_CL", "omega_V1", "sigma_prop", "theta"):
            np.testing.assert_array_equal(a.fit.posterior[name].values, b.fit.posterior[name].values)
    # each worker that ran a good job compiled the structure once: misses per worker = 1
    used = {o.worker for o in cluster if o.ok}
    assert used <= set(info)
    for addr in used:
        assert info[addr]["misses"] == 1, info
        assert sum(o.compiled for o in cluster if o.ok and o.worker == addr) == 1
    assert sum(o.compiled for o in cluster if o.ok) == len(used)
