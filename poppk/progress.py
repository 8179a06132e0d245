"""Progress messages of long steps, through :mod:`logging` (logger ``"poppk"``).

The steps of an analysis report what they are doing with :func:`echo` (INFO on
``poppk.run``) and :func:`step` (a step's name and, when it ends, its time).
Where logging is configured (any handler on ``poppk`` or the root logger:
the command line's :func:`to_stderr`, an application's own set-up, pytest)
the messages go through it; where it is not (a notebook, a plain script),
:func:`echo` prints to stderr, so ``run_analysis`` is not silent by default.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["echo", "error", "step", "to_stderr", "quiet_pymc"]

_RUN = logging.getLogger("poppk.run")


def _say(level: int, message: str) -> None:
    """``message`` on ``poppk.run`` at ``level`` where logging is configured, else on stderr."""
    if _RUN.hasHandlers():
        _RUN.log(level, message)
    else:
        print(message, file=sys.stderr)


def echo(message: str = "") -> None:
    """One progress line (INFO)."""
    _say(logging.INFO, message)


def error(message: str) -> None:
    """A line that explains a failure (ERROR: shown even with ``--quiet``)."""
    _say(logging.ERROR, message)


@contextmanager
def step(name: str, logger: str = "poppk.run") -> Iterator[None]:
    """Log ``name`` when the step starts and its time when it ends (INFO)."""
    log = logging.getLogger(logger)
    log.info("   %s ...", name)
    t0 = time.perf_counter()
    yield
    log.info("   %s: %.1f s", name, time.perf_counter() - t0)


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a message is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: D102
        pass


def to_stderr(level: int = logging.INFO) -> None:
    """Show poppk's messages (``level`` and above) on stderr, once per process."""
    logger = logging.getLogger("poppk")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


@contextmanager
def quiet_pymc() -> Iterator[None]:
    """Silence PyMC's INFO messages (``Sampling: [...]``) inside a step that reports its own progress."""
    log = logging.getLogger("pymc")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)
