"""A local dask.distributed cluster for large simulations.

:func:`simulate_strategies` runs its blocks of posterior draws on any
executor; this module starts the usual one -- a ``LocalCluster`` of
single-threaded worker processes on this machine -- for the CLI and the
configuration file (``workers = N``).  For a cluster elsewhere, create a
``dask.distributed.Client`` yourself and pass it as ``executor=``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from poppk.errors import ConfigError

__all__ = ["local_cluster"]


@contextmanager
def local_cluster(workers: int, *, memory_limit: str | float | None = "auto") -> Iterator[Any]:
    """A ``dask.distributed`` client on a local cluster, closed on exit.

    Parameters
    ----------
    workers
        Worker processes (one thread each, as the PK kernel is NumPy code that
        holds the GIL for much of its time).  ``0`` yields ``None``: run in this
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
