"""poppk.pk.dosing.padded_dose_matrix: hand-built cases and a randomised
comparison against a per-observation Python loop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from poppk.errors import DatasetError
from poppk.pk import concentration, padded_dose_matrix
from poppk.pk.dosing import PADDING

KEYS = ("dt", "amt", "dur", "oral", "ss", "ii", "mask", "dose_index")


def build(obs, doses, **kw):
    """obs: list of (subject, time, segment, order); doses: list of dicts."""
    o = np.array(obs, dtype=float).reshape(-1, 4)
    g = lambda k, default=0.0: np.array([d.get(k, default) for d in doses])  # noqa: E731
    return padded_dose_matrix(
        o[:, 0].astype(int), o[:, 1], o[:, 2].astype(int), o[:, 3],
        g("subject", 0).astype(int), g("time"), g("segment", 0).astype(int), g("order"),
        g("amt", 100.0), g("dur"), g("oral", False).astype(bool), g("ss", 0).astype(int),
        g("ii"), **kw,
    )


def rows(m):
    """Per observation: the list of dose indices (mask True)."""
    return [list(r[k]) for r, k in zip(m["dose_index"], m["mask"])]


def reference(o_sub, o_time, o_seg, o_ord, d_sub, d_time, d_seg, d_ord, d_ss):
    out = []
    for j in range(len(o_sub)):
        cand = [
            i for i in range(len(d_sub))
            if d_sub[i] == o_sub[j] and d_seg[i] == o_seg[j]
            and (d_time[i] < o_time[j] or (d_time[i] == o_time[j] and d_ord[i] < o_ord[j]))
        ]
        cand.sort(key=lambda i: (d_time[i], d_ord[i], i))
        resets = [k for k, i in enumerate(cand) if d_ss[i] == 1]
        if resets:
            cand = cand[resets[-1]:]
        out.append(cand)
    return out


def test_same_time_record_order():
    doses = [{"time": 0.0, "order": 1}, {"time": 12.0, "order": 5}]
    obs = [(0, 12.0, 0, 4), (0, 12.0, 0, 6), (0, 0.0, 0, 0), (0, 0.0, 0, 2)]
    m = build(obs, doses)
    assert rows(m) == [[0], [0, 1], [], [0]]
    np.testing.assert_array_equal(m["dt"][1], [12.0, 0.0])
    assert m["dt"].shape == (4, 2)


def test_ss1_resets_and_ss2_does_not():
    doses = [
        {"time": 0.0, "order": 0},
        {"time": 12.0, "order": 2, "ss": 1, "ii": 12.0},
        {"time": 24.0, "order": 4},
        {"time": 36.0, "order": 6, "ss": 2, "ii": 12.0},
    ]
    obs = [(0, 6.0, 0, 1), (0, 18.0, 0, 3), (0, 30.0, 0, 5), (0, 40.0, 0, 7), (0, 12.0, 0, 1.5)]
    m = build(obs, doses)
    assert rows(m) == [[0], [1], [1, 2], [1, 2, 3], [0]]
    np.testing.assert_array_equal(m["ss"][3, :3], [True, False, True])
    np.testing.assert_array_equal(m["ii"][3, :3], [12.0, 0.0, 12.0])
    # an SS=1 dose at the same time as an earlier-recorded dose resets it too
    doses2 = [{"time": 5.0, "order": 0}, {"time": 5.0, "order": 1, "ss": 1, "ii": 8.0}]
    assert rows(build([(0, 6.0, 0, 2)], doses2)) == [[1]]


def test_segments_and_subjects_and_unsorted_input():
    doses = [
        {"subject": 1, "time": 0.0, "order": 10, "amt": 5.0},
        {"subject": 0, "time": 24.0, "order": 3, "segment": 1, "amt": 7.0},
        {"subject": 0, "time": 0.0, "order": 0, "amt": 1.0},
        {"subject": 1, "time": 8.0, "order": 12, "amt": 6.0, "oral": True},
        {"subject": 0, "time": 12.0, "order": 1, "amt": 2.0, "dur": 1.5},
    ]
    obs = [
        (1, 10.0, 0, 13), (0, 30.0, 1, 4), (0, 20.0, 0, 2), (2, 5.0, 0, 20), (0, 30.0, 0, 5),
    ]
    m = build(obs, doses)
    assert rows(m) == [[0, 3], [1], [2, 4], [], [2, 4]]
    np.testing.assert_array_equal(m["amt"][0], [5.0, 6.0])
    np.testing.assert_array_equal(m["oral"][0], [False, True])
    np.testing.assert_array_equal(m["dur"][2], [0.0, 1.5])
    np.testing.assert_array_equal(m["dt"][2], [20.0, 8.0])
    np.testing.assert_array_equal(m["dt"][1], [6.0, 0.0])


def test_padding_values_and_width():
    doses = [{"time": 0.0, "order": 0}, {"time": 1.0, "order": 1}]
    m = build([(0, 0.5, 0, 0.5), (0, 2.0, 0, 2)], doses)
    for key in KEYS:
        assert m[key].shape == (2, 2)
        assert m[key][0, 1] == PADDING[key]
    assert m["oral"].dtype == bool and m["ss"].dtype == bool and m["mask"].dtype == bool
    wide = build([(0, 0.5, 0, 0.5), (0, 2.0, 0, 2)], doses, max_doses=5)
    assert wide["dt"].shape == (2, 5) and not wide["mask"][:, 2:].any()
    with pytest.raises(DatasetError, match="max_doses=1"):
        build([(0, 2.0, 0, 2)], doses, max_doses=1)


def test_no_doses():
    m = padded_dose_matrix([0, 1], [1.0, 2.0], None, [0, 1], [], [], None, [], [], None,
                           None, None, None)
    assert m["dt"].shape == (2, 1) and not m["mask"].any()
    c = concentration(m["dt"], m["amt"], {"CL": 1.0, "V1": 2.0}, n_cmt=1, dur=m["dur"])
    np.testing.assert_array_equal(c, [0.0, 0.0])


def test_validation():
    with pytest.raises(DatasetError, match="positive dosing interval"):
        build([(0, 1.0, 0, 1)], [{"time": 0.0, "order": 0, "ss": 1, "ii": 0.0}])
    with pytest.raises(DatasetError, match="steady-state code"):
        build([(0, 1.0, 0, 1)], [{"time": 0.0, "order": 0, "ss": 3, "ii": 1.0}])
    with pytest.raises(DatasetError, match="negative duration"):
        build([(0, 1.0, 0, 1)], [{"time": 0.0, "order": 0, "dur": -1.0}])
    with pytest.raises(DatasetError, match="length"):
        padded_dose_matrix([0], [1.0, 2.0], None, [0], [0], [0.0], None, [0], [1.0], None,
                           None, None, None)


@pytest.mark.parametrize("seed", range(6))
def test_random_against_python_loop(seed):
    rng = np.random.default_rng(seed)
    n_obs, n_dose, n_sub = 300, 80, 6
    times = np.arange(0.0, 48.0, 4.0)  # a coarse grid: many ties
    order = rng.permutation(n_obs + n_dose).astype(float)
    o_sub = rng.integers(0, n_sub, n_obs)
    o_time = rng.choice(times, n_obs) + rng.choice([0.0, 0.0, 1.5], n_obs)
    o_seg = rng.integers(0, 2, n_obs) * 5  # non-contiguous segment labels
    o_ord = order[:n_obs]
    d_sub = rng.integers(0, n_sub, n_dose)
    d_time = rng.choice(times, n_dose)
    d_seg = rng.integers(0, 2, n_dose) * 5
    d_ord = order[n_obs:]
    d_amt = rng.uniform(1, 100, n_dose)
    d_dur = rng.choice([0.0, 0.0, 1.0, 2.5], n_dose)
    d_oral = rng.random(n_dose) < 0.3
    d_dur[d_oral] = 0.0
    d_ss = rng.choice([0, 0, 0, 0, 1, 2], n_dose)
    d_ii = np.where(d_ss > 0, rng.choice([6.0, 12.0], n_dose), 0.0)
    m = padded_dose_matrix(o_sub, o_time, o_seg, o_ord, d_sub, d_time, d_seg, d_ord, d_amt,
                           d_dur, d_oral, d_ss, d_ii)
    ref = reference(o_sub, o_time, o_seg, o_ord, d_sub, d_time, d_seg, d_ord, d_ss)
    assert rows(m) == ref
    assert m["dt"].shape[1] == max(1, max(len(r) for r in ref))
    idx, mask = m["dose_index"], m["mask"]
    safe = np.maximum(idx, 0)
    np.testing.assert_array_equal(m["dt"][mask], (o_time[:, None] - d_time[safe])[mask])
    for key, src in (("amt", d_amt), ("dur", d_dur), ("oral", d_oral), ("ss", d_ss > 0),
                     ("ii", d_ii)):
        np.testing.assert_array_equal(m[key][mask], src[safe][mask])
        np.testing.assert_array_equal(m[key][~mask], np.full((~mask).sum(), PADDING[key]))
    assert np.all(m["dt"][mask] >= 0)


def test_scales_to_large_datasets():
    rng = np.random.default_rng(0)
    n_sub, per = 5_000, 20
    # 5,000 subjects x 20 doses; 100,000 observations
    d_sub = np.repeat(np.arange(n_sub), per)
    d_time = np.tile(np.arange(per) * 12.0, n_sub)
    o_sub = np.repeat(np.arange(n_sub), 20)
    o_time = rng.uniform(0, 250, n_sub * 20)
    t0 = time.perf_counter()
    m = padded_dose_matrix(o_sub, o_time, None, np.zeros(o_sub.size), d_sub, d_time, None,
                           np.zeros(d_sub.size), np.full(d_sub.size, 100.0), None, None,
                           None, None)
    elapsed = time.perf_counter() - t0
    assert m["dt"].shape == (100_000, 20)
    np.testing.assert_array_equal(m["mask"].sum(1), np.minimum(np.floor(o_time / 12.0) + 1, 20))
    assert elapsed < 5.0, elapsed
