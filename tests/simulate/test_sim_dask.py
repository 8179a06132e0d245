"""Dask-backed simulation: lazy exposure arrays, dask's local scheduler and a dask.distributed LocalCluster.

Every way of running must give bit-for-bit the numbers of the serial in-memory run (an IV model,
analytic metrics): the random effects depend only on the seed, the draw and the patient.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from _sim_helpers import two_cmt_spec
from poppk.simulate import (
    PerKg,
    PosteriorDraws,
    Schedule,
    per_draw_statistics,
    sample_population,
    simulate_strategies,
    summarize_strategies,
)

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

Q3W = Schedule.q3w(4, infusion="1 h")
KW = dict(metrics=["cmax_c1", "auc_c1", "ctrough_ss", "time_above"], threshold=20.0, exceed={"cmax_c1": 100.0},
          seed=5)
STRATEGIES = {"tbw": PerKg(5), "aibw": PerKg(6, "AIBW")}
COMPARED = ("log_var", "log_mean", "quantiles", "p_exceed", "mean", "sd")


def _draws(n=6):
    spec = two_cmt_spec("TBW", corr=True)
    return PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                      betas={"beta_CL_TBW": 0.5, "beta_V1_TBW": 0.5, "beta_Q_TBW": 0.5,
                                             "beta_V2_TBW": 0.5}, omega={"CL": 0.3, "V1": 0.2}, n_draws=n)


@pytest.fixture(scope="module")
def pop():
    return sample_population(300, seed=3)


@pytest.fixture(scope="module")
def serial(pop):
    return simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure=True, **KW)


def _same(a: xr.Dataset, b: xr.Dataset, variables=COMPARED) -> None:
    for v in variables:
        np.testing.assert_array_equal(np.asarray(a[v].values), np.asarray(b[v].values), err_msg=v)


def test_serial_run_is_labelled(serial):
    assert serial.attrs["executed_by"] == "serial"
    assert isinstance(serial["exposure"].data, np.ndarray)


def test_lazy_exposure_is_a_dask_array_equal_to_the_eager_one(serial, pop):
    lazy = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure="lazy", chunk_draws=4,
                               chunk_patients=70, **KW)
    ex = lazy["exposure"]
    assert isinstance(ex.data, da.Array)
    assert ex.dims == ("draw", "patient", "strategy", "metric")
    # chunked by draw (4 + 2) and by patient (70, ..., 20)
    assert ex.data.chunks[0] == (4, 2)
    assert ex.data.chunks[1] == (70, 70, 70, 70, 20)
    assert lazy.attrs["n_patients_kept"] == pop.n and lazy.sizes["patient"] == pop.n
    _same(lazy, serial)
    np.testing.assert_array_equal(ex.values, serial["exposure"].values)
    # the per-draw statistics are the statistics of the lazy exposures
    log_var = np.log(ex).var("patient", ddof=1).sel(metric="auc_c1")
    assert isinstance(log_var.data, da.Array)
    np.testing.assert_allclose(log_var.values, lazy["log_var"].sel(metric="auc_c1").values, rtol=1e-12)


def test_lazy_exposure_feeds_new_thresholds_and_netcdf(serial, pop, tmp_path):
    lazy = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure="lazy", chunk_draws=2, **KW)
    got = summarize_strategies(lazy, exceed={"auc_c1": 300.0})
    want = summarize_strategies(serial, exceed={"auc_c1": 300.0})
    np.testing.assert_array_equal(got["p_exceed_median"].to_numpy(), want["p_exceed_median"].to_numpy())
    frac = per_draw_statistics(lazy, exceed={"auc_c1": 300.0})["p_exceed"].sel(metric="auc_c1")
    assert 0 < float(frac.mean()) < 1
    path = tmp_path / "sim.nc"
    lazy.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        np.testing.assert_array_equal(back["exposure"].values, serial["exposure"].values)


def test_dask_local_scheduler_gives_the_serial_result(serial, pop):
    calls = []
    got = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure=True, chunk_draws=1, use_dask=True,
                              progress=lambda done, total: calls.append((done, total)), **KW)
    assert got.attrs["executed_by"] == "dask (threads)"
    _same(got, serial, COMPARED + ("exposure",))
    assert [c[0] for c in calls] == list(range(1, 7)) and all(c[1] == 6 for c in calls)


@pytest.fixture(scope="module")
def thread_cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def test_local_cluster_executor_gives_the_serial_result(thread_cluster, serial, pop):
    got = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure=True, chunk_draws=1,
                              executor=thread_cluster, **KW)
    assert got.attrs["executed_by"] == "dask.distributed"
    _same(got, serial, COMPARED + ("exposure",))


def test_use_dask_runs_on_the_default_client(thread_cluster, serial, pop):
    with thread_cluster.as_current():
        got = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure="lazy", chunk_draws=2,
                                  use_dask=True, **KW)
        assert got.attrs["executed_by"] == "dask.distributed"
        _same(got, serial)
        # the lazy exposures are computed on the cluster too
        np.testing.assert_array_equal(got["exposure"].values, serial["exposure"].values)


@pytest.mark.slow
def test_process_cluster_gives_the_serial_result(serial, pop):
    """Worker processes: the task inputs are pickled and the kernel runs in other interpreters."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        got = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure=True, chunk_draws=2,
                                  executor=client, **KW)
    assert got.attrs["executed_by"] == "dask.distributed"
    _same(got, serial, COMPARED + ("exposure",))


def test_keep_exposure_rejects_unknown_values(pop):
    from poppk.errors import ConfigError

    with pytest.raises(ConfigError, match="'lazy'"):
        simulate_strategies(_draws(2), STRATEGIES, Q3W, pop, keep_exposure="disk", **KW)


def test_lazy_exposures_are_computed_once_for_new_thresholds(pop, monkeypatch):
    """summarize_strategies with new thresholds reduces the lazy array in one pass, not once per
    strategy and metric."""
    from poppk.simulate import execution as engine

    calls = []
    real = engine._block_exposure
    monkeypatch.setattr(engine, "_block_exposure", lambda *a: calls.append(a[1:]) or real(*a))
    lazy = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure="lazy", chunk_draws=2, **KW)
    n_chunks = lazy["exposure"].data.npartitions
    assert n_chunks == 3 and not calls
    summarize_strategies(lazy, exceed={"auc_c1": 300.0, "cmax_c1": 80.0})
    assert len(calls) == n_chunks


def test_other_executors_and_conflicting_options(serial, pop):
    """An executor whose futures are not concurrent.futures ones: results are taken in order."""
    from poppk.errors import ConfigError

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

        def cancel(self):
            return False

    class Inline:
        def submit(self, fn, *args):
            return Done(fn(*args))

    got = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure=True, chunk_draws=2, executor=Inline(),
                              **KW)
    assert got.attrs["executed_by"] == "Inline"
    _same(got, serial, COMPARED + ("exposure",))
    with pytest.raises(ConfigError, match="not both"):
        simulate_strategies(_draws(), STRATEGIES, Q3W, pop, executor=Inline(), use_dask=True, **KW)


def test_report_of_a_lazy_simulation_loads_only_a_sample(pop, tmp_path):
    from poppk.simulate import write_simulation_report

    lazy = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure="lazy", chunk_draws=2, **KW)
    written = write_simulation_report(lazy, tmp_path / "out", max_lazy_patients=50, figures=True,
                                      metrics=["auc_c1"])
    import pandas as pd

    by_wt = pd.read_csv(written["exposure_vs_TBW_auc_c1"])
    assert written["fig_exposure_vs_weight_auc_c1"].is_file()
    assert by_wt["n_patients"].sum() == 50 * len(STRATEGIES)  # the first 50 patients, every strategy
    first = np.asarray(pop["TBW"])[:50]
    assert by_wt["bin_lo"].min() == pytest.approx(first.min()) and by_wt["bin_hi"].max() == pytest.approx(first.max())
    with xr.open_dataset(written["dataset"], engine="h5netcdf") as back:
        assert back.sizes["patient"] == pop.n


def test_parallel_executor_connects_to_a_scheduler_address(serial, pop):
    """`--dask-scheduler ADDRESS`: a Client connected to a running scheduler, closed afterwards."""
    from distributed import LocalCluster

    from poppk.errors import ConfigError
    from poppk.simulate import parallel_executor

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        with parallel_executor(address=cluster.scheduler_address) as client:
            got = simulate_strategies(_draws(), STRATEGIES, Q3W, pop, keep_exposure=True, executor=client, **KW)
            assert got.attrs["executed_by"] == "dask.distributed"
        assert client.status == "closed"
    _same(got, serial, COMPARED + ("exposure",))
    with pytest.raises(ConfigError, match="cannot reach the dask scheduler"):
        with parallel_executor(address="tcp://127.0.0.1:9", connect_timeout=2):
            pass


# --------------------------------------------------------------------------
# the population's Bayesian bootstrap: the weighted statistics are the same however the blocks run
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boot_pop():
    from poppk.simulate import resample_population

    return resample_population(sample_population(40, seed=8).covariates, 300, seed=1)


@pytest.fixture(scope="module")
def boot_serial(boot_pop):
    sim = simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure=True, **KW)
    assert sim.attrs["population_uncertainty"] == "bootstrap"
    return sim


def test_bootstrap_weights_do_not_depend_on_chunking_or_executors(boot_serial, boot_pop, thread_cluster):
    from concurrent.futures import ThreadPoolExecutor

    variables = COMPARED + ("exposure", "source_weight")
    one = simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure=True, chunk_draws=1,
                              chunk_patients=37, **KW)
    _same(one, boot_serial, variables)
    with ThreadPoolExecutor(2) as ex:
        _same(simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure=True, chunk_draws=2,
                                  executor=ex, **KW), boot_serial, variables)
    _same(simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure=True, chunk_draws=1,
                              use_dask=True, **KW), boot_serial, variables)
    got = simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure=True, chunk_draws=1,
                              executor=thread_cluster, **KW)
    assert got.attrs["executed_by"] == "dask.distributed"
    _same(got, boot_serial, variables)
    # the bootstrap changes the statistics (it is on), the random effects stay those of the fixed population
    off = simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure=True, population_uncertainty=None,
                              **KW)
    np.testing.assert_array_equal(off["exposure"].values, boot_serial["exposure"].values)
    assert not np.allclose(off["log_var"].values, boot_serial["log_var"].values)


def test_lazy_bootstrapped_simulation_gives_the_eager_weighted_statistics(boot_serial, boot_pop, thread_cluster):
    from poppk.simulate.summaries import patient_weights

    lazy = simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure="lazy", chunk_draws=4,
                               chunk_patients=70, **KW)
    assert isinstance(lazy["exposure"].data, da.Array)
    _same(lazy, boot_serial, COMPARED + ("source_weight",))
    np.testing.assert_array_equal(patient_weights(lazy).values, patient_weights(boot_serial).values)
    # new thresholds: the weighted fraction, reduced chunk by chunk (weights built per chunk too)
    got = per_draw_statistics(lazy, exceed={"auc_c1": 300.0})["p_exceed"]
    want = per_draw_statistics(boot_serial, exceed={"auc_c1": 300.0})["p_exceed"]
    np.testing.assert_allclose(got.values, want.values, rtol=1e-12)
    E = boot_serial["exposure"].sel(metric="auc_c1").transpose("draw", "patient", "strategy").values
    w = patient_weights(boot_serial).values
    np.testing.assert_allclose(want.sel(metric="auc_c1").transpose("draw", "strategy").values,
                               np.einsum("dp,dps->ds", w, (E > 300.0).astype(float)), rtol=1e-12)
    with thread_cluster.as_current():
        on_cluster = simulate_strategies(_draws(), STRATEGIES, Q3W, boot_pop, keep_exposure="lazy", chunk_draws=2,
                                         use_dask=True, **KW)
        _same(on_cluster, boot_serial)
        np.testing.assert_allclose(per_draw_statistics(on_cluster, exceed={"auc_c1": 300.0})["p_exceed"].values,
                                   want.values, rtol=1e-12)
