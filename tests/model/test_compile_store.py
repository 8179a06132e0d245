"""The on-disk store of compiled structures: entries that cannot be read or written are misses,
never errors; nutpie's callbacks compile with numba's cache on or off."""

from __future__ import annotations

import ctypes
import os
import stat

import numpy as np
import pytest

from poppk.model import callbacks
from poppk.model import compile_store as cs


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("POPPK_COMPILE_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


def test_round_trip_discard_and_corrupt_entries(store):
    blob = cs.save("entry", {"a": [1, 2, 3]})
    assert cs.loads(blob) == {"a": [1, 2, 3]} and cs.load("entry") == {"a": [1, 2, 3]}
    assert not list(store.glob(".*.tmp"))  # written atomically: no temporary left behind
    cs.discard("entry")
    assert cs.load("entry") is None and cs.load("never-written") is None
    (store / "bad.pkl").write_bytes(b"not a pickle")
    assert cs.load("bad") is None


def test_a_store_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        target = tmp_path / "a-file"  # root writes anywhere: a path under a regular file fails instead
        target.write_text("x")
        monkeypatch.setenv("POPPK_COMPILE_CACHE", str(target / "store"))
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        monkeypatch.setenv("POPPK_COMPILE_CACHE", str(locked / "store"))
    blob = cs.save("entry", [1, 2])
    assert cs.loads(blob) == [1, 2] and cs.load("entry") is None


def test_the_store_can_be_turned_off_and_the_key_follows_the_code(monkeypatch):
    for off in ("0", "off", "false"):
        monkeypatch.setenv("POPPK_COMPILE_CACHE", off)
        assert cs.store_dir() is None
    assert cs.digest(("a", 1)) == cs.digest(("a", 1)) != cs.digest(("a", 2))


def test_unpicklable_objects_are_not_stored(store):
    assert cs.save("lambda", lambda: 1) is None and cs.load("lambda") is None


@pytest.mark.parametrize("numba_cache", [True, False])
def test_callbacks_compile_with_numba_cache_on_or_off(numba_cache, monkeypatch):
    """With PyTensor's numba cache off the callback is compiled in memory (it used to raise)."""
    import numba
    from pytensor import config

    monkeypatch.setattr(config, "numba__cache", numba_cache)

    @numba.njit
    def inner(x, a0):
        return (np.sum(x * a0), x * 2.0)

    x, a = np.ones(3), np.arange(3.0)
    inner(x, a)
    key = f"test{np.random.default_rng().integers(1 << 40)}"
    cf = callbacks.callback("logp", inner, [("a", 1)], ["a"], [np.float64], cache_key=key)
    ud = callbacks.user_data([a])
    grad, logp = np.zeros(3), np.zeros(())
    ptr = ctypes.POINTER(ctypes.c_double)
    code = cf.ctypes(ctypes.c_uint64(3), x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
                     ctypes.c_void_p(ud.ctypes.data))
    assert code == 0 and float(logp) == 3.0 and np.all(grad == 2.0)
