"""poppk.io: atomic files and directories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from poppk.io import atomic_directory, atomic_write_bytes, atomic_write_text, atomic_writer


class Boom(Exception):
    pass


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_write_bytes_and_text(tmp_path):
    p = tmp_path / "a.bin"
    assert atomic_write_bytes(p, b"\x00\x01abc") == p
    assert p.read_bytes() == b"\x00\x01abc"
    assert atomic_write_bytes(str(p), b"new") == p  # overwrites, accepts str
    assert p.read_bytes() == b"new"
    t = tmp_path / "b.txt"
    assert atomic_write_text(t, "é\nx") == t
    assert t.read_bytes() == "é\nx".encode("utf-8")
    atomic_write_text(t, "é", encoding="latin-1")
    assert t.read_bytes() == b"\xe9"
    assert _names(tmp_path) == ["a.bin", "b.txt"]


def test_writer_gets_temp_path_with_suffix_in_same_directory(tmp_path):
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert tmp.exists() and tmp.parent == tmp_path
        tmp.write_text("x,y\n1,2\n")

    p = tmp_path / "table.csv"
    assert atomic_writer(p, write) == p
    (tmp,) = seen
    assert tmp != p and tmp.suffix == ".csv" and tmp.name.startswith(".table.csv.")
    assert not tmp.exists()
    assert p.read_text() == "x,y\n1,2\n"
    assert _names(tmp_path) == ["table.csv"]


def test_writer_suffix_picks_format(tmp_path):
    pd = pytest.importorskip("pandas")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = atomic_writer(tmp_path / "f.png", fig.savefig)
    svg = atomic_writer(tmp_path / "f.svg", fig.savefig)
    plt.close(fig)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in svg.read_bytes()
    df = pd.DataFrame({"a": [1, 2]})
    atomic_writer(tmp_path / "t.csv", lambda tmp: df.to_csv(tmp, index=False))
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"
    assert _names(tmp_path) == ["f.png", "f.svg", "t.csv"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o027)
    try:
        p = atomic_write_bytes(tmp_path / "m", b"x")
        with atomic_directory(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


@pytest.mark.parametrize("exc", [Boom("in writer"), KeyboardInterrupt()])
def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, exc):
    p = tmp_path / "out.csv"
    p.write_bytes(b"old content")

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise exc

    with pytest.raises(type(exc)):
        atomic_writer(p, write)
    assert p.read_bytes() == b"old content"
    assert _names(tmp_path) == ["out.csv"]


def test_failed_write_of_new_file_leaves_nothing(tmp_path):
    def write(tmp: Path) -> None:
        raise Boom

    with pytest.raises(Boom):
        atomic_writer(tmp_path / "new.png", write)
    assert _names(tmp_path) == []


def test_failed_rename_keeps_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "x.txt"
    atomic_write_text(p, "old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "old"
    assert _names(tmp_path) == ["x.txt"]


def test_atomic_directory_creates_and_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "fit"
    with atomic_directory(target) as d:
        assert d.parent == target.parent and d != target and not target.exists()
        (d / "a.json").write_text("1")
    assert _names(target) == ["a.json"]
    with atomic_directory(target) as d:
        (d / "b.json").write_text("2")
        assert (target / "a.json").read_text() == "1"  # old one intact until the block ends
    assert _names(target) == ["b.json"]  # replaced whole, not merged
    assert _names(target.parent) == ["fit"]  # no temporary or old directory left


def test_atomic_directory_keeps_old_on_error(tmp_path):
    target = tmp_path / "fit"
    with atomic_directory(target) as d:
        (d / "a.json").write_text("1")
    with pytest.raises(Boom):
        with atomic_directory(target) as d:
            (d / "b.json").write_text("2")
            raise Boom
    assert _names(target) == ["a.json"] and (target / "a.json").read_text() == "1"
    assert _names(tmp_path) == ["fit"]


def test_atomic_directory_restores_old_when_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "fit"
    with atomic_directory(target) as d:
        (d / "a.json").write_text("1")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == target and ".tmp-" in Path(src).name:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        with atomic_directory(target) as d:
            (d / "b.json").write_text("2")
    monkeypatch.undo()
    assert _names(target) == ["a.json"]
    assert _names(tmp_path) == ["fit"]


def test_jsonable_gives_strict_json():
    import json
    import math
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from poppk.io import jsonable

    got = jsonable({1: np.float64(math.nan), "a": np.arange(2), "b": (np.bool_(True), pd.NA), "p": Path("x/y")})
    assert got == {"1": None, "a": [0, 1], "b": [True, None], "p": "x/y"}
    json.dumps(got, allow_nan=False)
