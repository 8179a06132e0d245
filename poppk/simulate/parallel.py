"""Executors for large simulations.

:func:`simulate_strategies` runs its blocks of posterior draws on any
executor.  :func:`parallel_executor` starts the usual ones for the CLI and the
configuration file:

* ``"threads"`` (default) -- a thread pool in this process.  The hot loops
  (compiled unit-dose exposures and per-draw statistics,
  :mod:`poppk.simulate.fast_exposure`, :mod:`poppk.simulate.fast_stats`)
  release the GIL, and nothing is copied (``benchmarks/bench_simulate.py``
  compares the ways of running on a machine; README, "Large simulations");
* ``"processes"`` -- a ``dask.distributed`` ``LocalCluster`` of single-threaded
  worker processes (:func:`local_cluster`);
* a dask scheduler address (``tcp://host:8786``) -- a cluster elsewhere.

In Python, a ``dask.distributed.Client`` of your own can be passed directly as
``executor=``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

from poppk.errors import ConfigError

__all__ = ["local_cluster", "parallel_executor", "PARALLEL_KINDS"]

#: Kinds of local executor.
PARALLEL_KINDS = ("threads", "processes")


@contextmanager
def local_cluster(workers: int, *, memory_limit: str | float | None = "auto") -> Iterator[Any]:
    """A ``dask.distributed`` client on a local cluster, closed on exit.

    Parameters
    ----------
    workers
        Worker processes (one thread each: the NumPy reference path, used
        where the compiled loops do not apply, holds the GIL for much of its
        time).  ``0`` yields ``None``: run in this
        process.
    memory_limit
        Per-worker memory limit passed to ``LocalCluster`` (``"auto"``: the
        machine's memory divided among the workers).

    Yields
    ------
    distributed.Client or None
        Pass it as ``executor=`` to :func:`~poppk.simulate.simulate_strategies`.

    Examples
    --------
    >>> with local_cluster(0) as client:
    ...     client is None
    True
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers must be a whole number >= 0 (0: run in this process), got {workers!r}")
    if workers == 0:
        yield None
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit=memory_limit) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def parallel_executor(workers: int = 0, kind: str = "threads", *, address: str | None = None,
                      connect_timeout: float = 20.0) -> Iterator[Any]:
    """An executor for :func:`~poppk.simulate.simulate_strategies`, closed on exit.

    Parameters
    ----------
    workers
        Threads or worker processes; ``0`` (and no ``address``) yields
        ``None``: run serially in this process.
    kind
        ``"threads"`` (a thread pool) or ``"processes"`` (a local
        ``dask.distributed`` cluster).
    address
        Address of a running dask scheduler (e.g. ``"tcp://10.0.0.5:8786"``):
        connect a ``dask.distributed.Client`` to it (``workers`` and ``kind``
        are then the cluster's business).
    connect_timeout
        Seconds to wait for that scheduler.

    Examples
    --------
    >>> with parallel_executor(2) as ex:
    ...     type(ex).__name__
    'ThreadPoolExecutor'
    """
    if kind not in PARALLEL_KINDS:
        raise ConfigError(f"parallel kind {kind!r} is not one of {', '.join(PARALLEL_KINDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers must be a whole number >= 0 (0: run in this process), got {workers!r}")
    if address:
        from distributed import Client

        try:
            client = Client(address, timeout=f"{float(connect_timeout)}s")
        except OSError as err:
            raise ConfigError(f"cannot reach the dask scheduler at {address!r}: {err}") from None
        with client:
            yield client
        return
    if kind == "processes" or workers == 0:
        with local_cluster(workers) as client:
            yield client
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="poppk-simulate") as pool:
        yield pool
