"""Many fits at once: serially in this process, or on a ``dask.distributed`` cluster.

Candidate models, calibration re-simulations and simulation-based calibration
are many fits of a few model structures.  :func:`fit_many` (results in job
order) and :func:`iter_fits` (results as they finish) run a list of
:class:`FitJob` -- a key, a spec, a dataset and :func:`~poppk.model.fit`
options -- and return one :class:`FitOutcome` per job:

* no ``client``, ``workers`` or ``address``: one after another in this process;
* ``workers=N``: on a ``LocalCluster`` of ``N`` single-threaded worker
  processes, started and closed here
  (:func:`poppk.simulate.parallel.local_cluster`);
* ``client=`` a ``dask.distributed.Client`` of your own, or ``address=`` a
  scheduler's address (``"tcp://host:8786"``): a cluster elsewhere, whose
  workers need poppk installed.

*Compiled code.*  Each worker process keeps the in-process cache of
:mod:`poppk.model.compile_cache`, so it compiles each model structure once,
whatever the number of datasets, priors or seeds it fits with it: a study of
``J`` jobs over ``S`` structures compiles at most ``S × workers`` times rather
than ``J`` times.  Each outcome records how many structures its job compiled
(:attr:`FitOutcome.compiled`, exact on single-threaded workers) and which
worker ran it; :func:`worker_cache_info` asks every worker for its counters.

*Cores.*  A worker thread runs one fit at a time, so on a cluster each fit
samples its chains on one core (``cores=1`` is passed to
:func:`~poppk.model.fit` unless the job's options name ``cores``); ``N``
single-threaded workers then use ``N`` cores, however many chains each fit
has.  ``fit`` itself limits BLAS/OpenMP pools to one thread while sampling.
In this process (no cluster) ``fit``'s own default applies (all cores, at most
one per chain).

*Results.*  A :class:`FitOutcome` carries the ordinary :class:`~poppk.model.Fit`
(pickled back from the worker) or, with ``then=``, only what ``then(fit)``
returned on the worker -- for studies that need a few numbers per fit rather
than the whole posterior.  A job that raises does not stop the others: its
outcome holds the error and the traceback under the job's key
(:meth:`FitOutcome.result` re-raises it as a :class:`~poppk.errors.FitError`
naming the key), and ``fit_many(..., errors="raise")`` raises one error
listing every failed key after all jobs have finished.
"""

from __future__ import annotations

import inspect
import os
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence

from poppk.errors import ConfigError, FitError
from poppk.model.spec import ModelSpec

__all__ = ["FitJob", "FitOutcome", "fit_many", "iter_fits", "worker_cache_info"]

#: Options of :func:`poppk.model.fit` a job may set (everything but ``spec`` and ``data``).
_FIT_OPTIONS: tuple[str, ...] = ()


def _fit_options() -> tuple[str, ...]:
    global _FIT_OPTIONS
    if not _FIT_OPTIONS:
        from poppk.model.fit import fit

        params = inspect.signature(fit).parameters
        _FIT_OPTIONS = tuple(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return _FIT_OPTIONS


@dataclass(frozen=True)
class FitJob:
    """One fit to run: ``fit(spec, data, **options)``, known by ``key``.

    Parameters
    ----------
    key
        A hashable name, unique among the jobs of one call (e.g. ``("TBW", 3)``).
    spec
        The model spec.
    data
        A :class:`~poppk.data.PKData`.
    options
        Keyword options of :func:`~poppk.model.fit` (``draws``, ``tune``,
        ``chains``, ``seed``, ...).  ``progress`` and ``warn`` default to
        ``False`` here; on a cluster ``cores`` defaults to 1.

    Examples
    --------
    >>> from poppk.model import ModelSpec
    >>> job = FitJob("a", ModelSpec("1cmt", {"CL": 1.0, "V1": 10.0}), data=None, options={"seed": 1})
    >>> job.key, dict(job.options)
    ('a', {'seed': 1})
    """

    key: Hashable
    spec: ModelSpec
    data: Any
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            hash(self.key)
        except TypeError:
            raise ConfigError(f"a job's key must be hashable (a string, number or tuple), got {self.key!r}") from None
        if not isinstance(self.spec, ModelSpec):
            raise ConfigError(f"job {self.key!r}: spec must be a ModelSpec, got {type(self.spec).__name__}")
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"job {self.key!r}: options must be a mapping of fit() options, got {self.options!r}")
        valid = _fit_options()
        bad = sorted(k for k in self.options if k not in valid)
        if bad:
            raise ConfigError(f"job {self.key!r}: {bad} are not options of poppk.fit; valid: {', '.join(valid)}")
        object.__setattr__(self, "options", dict(self.options))


@dataclass
class FitOutcome:
    """What became of one :class:`FitJob`.

    Attributes
    ----------
    key
        The job's key.
    fit
        The :class:`~poppk.model.Fit`, or ``None`` when the job failed or
        ``then`` was given (and ``keep_fit`` was not).
    value
        ``then(fit)`` when ``then`` was given, else ``None``.
    error
        ``repr`` of the exception the job raised, or ``None``.
    traceback
        Its formatted traceback (from the worker), or ``None``.
    worker
        Address of the worker that ran the job, ``"local"`` in this process.
    pid
        Process id of that worker.
    seconds
        Wall time of the job on the worker (fit and ``then``).
    compiled
        Model structures this job compiled (compile-cache misses); ``0``
        when it reused a structure its worker had compiled before; always 1
        for a fit with ``backend="jax"``, which compiles its model anew.
    """

    key: Hashable
    fit: Any = None
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    worker: str = "local"
    pid: int = 0
    seconds: float = float("nan")
    compiled: int = 0

    @property
    def ok(self) -> bool:
        """True when the job finished without an error."""
        return self.error is None

    def result(self) -> Any:
        """``value`` if ``then`` was given, else the fit; a failed job raises :class:`~poppk.errors.FitError`."""
        if self.error is not None:
            raise FitError(f"job {self.key!r} failed on {self.worker}: {self.error}")
        return self.value if self.fit is None else self.fit


def _run_job(job: FitJob, then: Callable[[Any], Any] | None, keep_fit: bool, on_cluster: bool) -> FitOutcome:
    """Run one job where this function is called (this process or a worker); never raises."""
    import warnings

    from poppk.model.compile_cache import cache_info
    from poppk.model.fit import fit

    worker, pid = "local", os.getpid()
    if on_cluster:
        try:
            from distributed import get_worker

            worker = get_worker().address
        except (ImportError, ValueError):  # pragma: no cover - called outside a worker
            pass
    options = {"progress": False, "warn": False, **job.options}
    if on_cluster:
        options.setdefault("cores", 1)
    misses = cache_info()["misses"]
    t0 = time.perf_counter()
    out = FitOutcome(key=job.key, worker=worker, pid=pid)
    try:
        with warnings.catch_warnings():
            if not options["warn"]:
                warnings.simplefilter("ignore")
            result = fit(job.spec, job.data, **options)
            if then is not None:
                out.value = then(result)
        out.fit = result if (then is None or keep_fit) else None
    except Exception as exc:  # noqa: BLE001 - reported under the job's key, the other jobs go on
        out.error = repr(exc)
        out.traceback = traceback.format_exc()
    out.seconds = time.perf_counter() - t0
    # a JAX fit compiles its own model every time (poppk.model.jax_backend): not a cache miss
    out.compiled = 1 if options.get("backend") == "jax" and out.error is None else cache_info()["misses"] - misses
    return out


@contextmanager
def _client(client: Any, workers: int | None, address: str | None) -> Iterator[Any]:
    """The client to submit to (``None``: run here), closing what was opened here."""
    given = sum(x is not None for x in (client, address)) + (workers is not None and workers > 0)
    if given > 1:
        raise ConfigError(
            f"give at most one of client, workers > 0 and address; got client={client!r}, "
            f"workers={workers!r}, address={address!r}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"workers must be a whole number >= 0 (0: run in this process), got {workers!r}")
    if client is not None:
        yield client
    elif address is not None:
        from poppk.simulate.parallel import parallel_executor

        with parallel_executor(address=address) as c:
            yield c
    elif workers:
        from poppk.simulate.parallel import local_cluster

        with local_cluster(workers) as c:
            yield c
    else:
        yield None


def _check_jobs(jobs: Iterable[FitJob]) -> list[FitJob]:
    jobs = list(jobs)
    seen: set[Hashable] = set()
    for j in jobs:
        if not isinstance(j, FitJob):
            raise ConfigError(f"jobs must be FitJob objects, got {type(j).__name__}: {j!r}")
        if j.key in seen:
            raise ConfigError(f"two jobs have the key {j.key!r}; keys must be unique")
        seen.add(j.key)
    return jobs


def iter_fits(
    jobs: Iterable[FitJob],
    *,
    client: Any = None,
    workers: int | None = None,
    address: str | None = None,
    then: Callable[[Any], Any] | None = None,
    keep_fit: bool = False,
) -> Iterator[FitOutcome]:
    """Run the jobs and yield each :class:`FitOutcome` as soon as its job finishes.

    Parameters
    ----------
    jobs
        The :class:`FitJob` objects (unique keys).
    client
        A ``dask.distributed.Client`` to submit to.
    workers
        Start a ``LocalCluster`` of this many single-threaded worker processes
        for the duration of the call; ``0`` or ``None``: run in this process.
    address
        Address of a running dask scheduler (``"tcp://host:8786"``).
    then
        A function of the :class:`~poppk.model.Fit`, called where the fit ran;
        its return value travels back as :attr:`FitOutcome.value` instead of
        the fit.  It must be picklable (a module-level function, or one
        ``cloudpickle`` can ship by value).
    keep_fit
        With ``then``: return the fit as well.

    Yields
    ------
    FitOutcome
        In order of completion (job order when run in this process).

    Notes
    -----
    At most one of ``client``, ``workers > 0`` and ``address`` may be given.
    A worker that dies takes its running job with it: that job's outcome
    carries the error, the others are unaffected.
    """
    jobs = _check_jobs(jobs)
    if then is not None and not callable(then):
        raise ConfigError(f"then must be a function of the Fit, got {then!r}")
    with _client(client, workers, address) as c:
        if c is None:
            for job in jobs:
                yield _run_job(job, then, keep_fit, on_cluster=False)
            return
        from distributed import as_completed

        tag = uuid.uuid4().hex[:8]
        futures = {
            c.submit(_run_job, job, then, keep_fit, True, pure=False, key=f"poppk-fit-{tag}-{i}"): job.key
            for i, job in enumerate(jobs)
        }
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                out = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. the worker died: reported under the key
                out = FitOutcome(key=key, error=repr(exc), traceback=traceback.format_exc(), worker="<lost>")
            fut.release()
            yield out


def fit_many(
    jobs: Sequence[FitJob] | Iterable[FitJob],
    *,
    client: Any = None,
    workers: int | None = None,
    address: str | None = None,
    then: Callable[[Any], Any] | None = None,
    keep_fit: bool = False,
    errors: str = "return",
) -> list[FitOutcome]:
    """Run the jobs (see :func:`iter_fits`) and return their outcomes in job order.

    Parameters
    ----------
    jobs, client, workers, address, then, keep_fit
        As in :func:`iter_fits`.
    errors
        ``"return"``: failed jobs are outcomes with :attr:`FitOutcome.error`
        set; ``"raise"``: after every job has finished, raise one
        :class:`~poppk.errors.FitError` naming each failed key and its error.

    Returns
    -------
    list of FitOutcome
        One per job, in the order of ``jobs``.

    Examples
    --------
    >>> fit_many([])
    []
    """
    if errors not in ("return", "raise"):
        raise ConfigError(f"errors must be 'return' or 'raise', got {errors!r}")
    jobs = _check_jobs(jobs)
    got = {o.key: o for o in iter_fits(jobs, client=client, workers=workers, address=address, then=then,
                                       keep_fit=keep_fit)}
    outcomes = [got[j.key] for j in jobs]
    failed = [o for o in outcomes if not o.ok]
    if failed and errors == "raise":
        lines = "; ".join(f"{o.key!r}: {o.error}" for o in failed)
        raise FitError(f"{len(failed)} of {len(outcomes)} fits failed -- {lines}")
    return outcomes


def worker_cache_info(client: Any = None) -> dict[str, dict[str, int]]:
    """The compile-cache counters (``hits``, ``misses``, ``size``) of every worker, by address.

    Parameters
    ----------
    client
        A ``dask.distributed.Client``; ``None``: this process only, under ``"local"``.

    Returns
    -------
    dict
        ``{worker address: {"hits": ..., "misses": ..., "size": ...}}``;
        ``misses`` is the number of structures that worker compiled.
    """
    from poppk.model.compile_cache import cache_info

    if client is None:
        return {"local": cache_info()}
    return dict(client.run(cache_info))
