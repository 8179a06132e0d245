"""The padded per-observation dose matrix consumed by the PK kernel.

:func:`padded_dose_matrix` lists, for every observation, the doses that
precede it (same subject, same segment), as rectangular ``(n_obs, D)`` arrays
that :func:`poppk.pk.kernel.concentration` sums over.  Fitting and simulation
both build their inputs with it, so they see the same dose history.

Pure NumPy; the construction is vectorised (two sorts and a gather, O(n log n
+ n_obs * D)), with no Python loop over observations or subjects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poppk.errors import DatasetError

__all__ = ["padded_dose_matrix", "PADDING"]

#: Values used for padded entries (mask False).
PADDING: dict[str, Any] = {
    "dt": 0.0,
    "amt": 0.0,
    "dur": 0.0,
    "oral": False,
    "ss": False,
    "ii": 1.0,
    "mask": False,
    "dose_index": -1,
}


def _vec(x: Any, n: int, name: str, default: Any = None, dtype: Any = float) -> np.ndarray:
    if x is None:
        if default is None:
            raise DatasetError(f"{name} is required", column=name)
        return np.full(n, default, dtype=dtype)
    a = np.asarray(x)
    if a.ndim == 0:
        a = np.full(n, a.item())
    if a.ndim != 1 or a.shape[0] != n:
        raise DatasetError(
            f"{name} must be a 1-D array of length {n}, got shape {np.shape(x)}",
            column=name,
        )
    return a.astype(dtype, copy=False)


def padded_dose_matrix(
    obs_subject: Any,
    obs_time: Any,
    obs_segment: Any,
    obs_order: Any,
    dose_subject: Any,
    dose_time: Any,
    dose_segment: Any,
    dose_order: Any,
    dose_amt: Any,
    dose_dur: Any,
    dose_oral: Any,
    dose_ss: Any,
    dose_ii: Any,
    *,
    max_doses: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-observation matrix of the doses preceding each observation.

    A dose counts for observation j when it belongs to the same subject and
    the same segment, and precedes the observation: ``dose_time < obs_time``,
    or ``dose_time == obs_time`` and ``dose_order < obs_order`` (a dose
    recorded before the observation at the same time counts).  An SS=1 dose
    resets the system: doses of that subject and segment that come before it
    in (time, record order) are excluded for the observations after it.  SS=2
    doses do not reset.

    Parameters
    ----------
    obs_subject, dose_subject
        Integer subject indices 0..n_subjects-1.
    obs_time, dose_time
        Event times.
    obs_segment, dose_segment
        Integer segment labels (e.g. counted from EVID=3/4 resets); doses and
        observations in different segments never interact.  ``None`` = one
        segment.
    obs_order, dose_order
        Record order in the file (any comparable numbers, e.g. row numbers);
        only used to break ties at equal times.
    dose_amt
        Dose amounts.
    dose_dur
        Infusion durations (0 = bolus); ``None`` = all 0.
    dose_oral
        True for doses into the depot; ``None`` = all False.
    dose_ss
        Steady-state codes 0, 1 or 2 (or booleans, True meaning 1); ``None``
        = all 0.
    dose_ii
        Dosing intervals (used for SS doses, which need II > 0); ``None`` =
        all 0.
    max_doses
        Width D of the matrix.  Default: the largest number of doses preceding
        any observation (at least 1).  If given and some observation has more
        doses, :class:`~poppk.errors.DatasetError` is raised.

    Returns
    -------
    dict of ndarray, each of shape (n_obs, D)
        ``dt`` (obs_time - dose_time), ``amt``, ``dur``, ``oral`` (bool),
        ``ss`` (bool, SS=1 or 2), ``ii``, ``mask`` (bool, True for real doses)
        and ``dose_index`` (index into the dose arrays, -1 for padding).  Doses
        are in chronological order in each row, padding last: dt = 0, amt =
        0, dur = 0, oral False, ss False, ii = 1, mask False.

    Examples
    --------
    >>> m = padded_dose_matrix([0, 0], [1.0, 13.0], None, [1, 3],
    ...                        [0, 0], [0.0, 12.0], None, [0, 2],
    ...                        [100.0, 100.0], None, None, None, None)
    >>> m["dt"]
    array([[ 1.,  0.],
           [13.,  1.]])
    >>> m["mask"]
    array([[ True, False],
           [ True,  True]])
    """
    obs_subject = np.asarray(obs_subject)
    dose_subject = np.asarray(dose_subject)
    for name, a in (("obs_subject", obs_subject), ("dose_subject", dose_subject)):
        if a.ndim != 1:
            raise DatasetError(f"{name} must be a 1-D array", column=name)
    n_obs, n_dose = obs_subject.shape[0], dose_subject.shape[0]

    o_sub = _vec(obs_subject, n_obs, "obs_subject", dtype=np.int64)
    o_time = _vec(obs_time, n_obs, "obs_time")
    o_seg = _vec(obs_segment, n_obs, "obs_segment", default=0, dtype=np.int64)
    o_ord = _vec(obs_order, n_obs, "obs_order")
    d_sub = _vec(dose_subject, n_dose, "dose_subject", dtype=np.int64)
    d_time = _vec(dose_time, n_dose, "dose_time")
    d_seg = _vec(dose_segment, n_dose, "dose_segment", default=0, dtype=np.int64)
    d_ord = _vec(dose_order, n_dose, "dose_order")
    d_amt = _vec(dose_amt, n_dose, "dose_amt")
    d_dur = _vec(dose_dur, n_dose, "dose_dur", default=0.0)
    d_oral = _vec(dose_oral, n_dose, "dose_oral", default=False, dtype=bool)
    d_ssc = _vec(dose_ss, n_dose, "dose_ss", default=0, dtype=np.int64)
    d_ii = _vec(dose_ii, n_dose, "dose_ii", default=0.0)

    for name, a in (("obs_time", o_time), ("dose_time", d_time), ("dose_amt", d_amt),
                    ("dose_dur", d_dur), ("dose_ii", d_ii)):
        if not np.all(np.isfinite(a)):
            i = int(np.flatnonzero(~np.isfinite(a))[0])
            raise DatasetError(f"{name}[{i}] is not finite", column=name, value=float(a[i]),
                               valid="finite numbers")
    if np.any(d_dur < 0):
        i = int(np.flatnonzero(d_dur < 0)[0])
        raise DatasetError(f"dose {i} has a negative duration", column="DUR",
                           value=float(d_dur[i]), valid="DUR >= 0")
    bad = ~np.isin(d_ssc, (0, 1, 2))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"dose {i} has an invalid steady-state code", column="SS",
                           value=int(d_ssc[i]), valid="0, 1 or 2")
    bad = (d_ssc > 0) & ~(d_ii > 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"steady-state dose {i} needs a positive dosing interval",
                           column="II", value=float(d_ii[i]), valid="II > 0 when SS is 1 or 2")

    # One integer key per (subject, segment) group.
    segs, seg_inv = np.unique(np.concatenate([o_seg, d_seg]), return_inverse=True)
    n_seg = max(len(segs), 1)
    o_grp = o_sub * n_seg + seg_inv[:n_obs]
    d_grp = d_sub * n_seg + seg_inv[n_obs:]

    # Doses sorted by (group, time, order); ties keep input order.
    d_perm = np.lexsort((np.arange(n_dose), d_ord, d_time, d_grp))
    g_sorted = d_grp[d_perm]

    # Merge observations (type 0) and sorted doses (type 1): at equal
    # (group, time, order) the observation comes first, so the dose does not
    # count (it needs dose_order < obs_order).
    grp = np.concatenate([o_grp, g_sorted])
    tim = np.concatenate([o_time, d_time[d_perm]])
    ordr = np.concatenate([o_ord, d_ord[d_perm]])
    typ = np.concatenate([np.zeros(n_obs, np.int8), np.ones(n_dose, np.int8)])
    tie = np.concatenate([np.zeros(n_obs, np.int64), np.arange(n_dose)])
    perm = np.lexsort((tie, typ, ordr, tim, grp))
    is_dose = typ[perm] == 1
    n_before = np.cumsum(is_dose)  # doses at or before each merged position
    end = np.empty(n_obs, np.int64)
    end[perm[~is_dose]] = n_before[~is_dose]  # one past the last preceding dose

    start = np.searchsorted(g_sorted, o_grp, side="left")  # first dose of the group
    if n_dose:
        reset_pos = np.where(d_ssc[d_perm] == 1, np.arange(n_dose), -1)
        last_reset = np.maximum.accumulate(reset_pos)
        has = end > start
        start[has] = np.maximum(start[has], last_reset[end[has] - 1])
    count = end - start

    largest = int(count.max()) if n_obs else 0
    if max_doses is None:
        width = max(largest, 1)
    else:
        width = int(max_doses)
        if largest > width:
            j = int(np.argmax(count))
            raise DatasetError(
                f"observation {j} (subject index {int(o_sub[j])}, time "
                f"{float(o_time[j])}) is preceded by {largest} doses, more than "
                f"max_doses={width}",
                valid=f"max_doses >= {largest}, or max_doses=None",
            )

    cols = np.arange(width)
    mask = cols[None, :] < count[:, None]
    pos = np.where(mask, start[:, None] + cols[None, :], 0)
    if n_dose:
        idx = np.where(mask, d_perm[np.minimum(pos, n_dose - 1)], -1)
    else:
        idx = np.full((n_obs, width), -1, np.int64)
    safe = np.maximum(idx, 0)

    def take(a: np.ndarray, pad: Any) -> np.ndarray:
        if n_dose == 0:
            return np.full((n_obs, width), pad, dtype=a.dtype)
        return np.where(mask, a[safe], pad)

    return {
        "dt": np.where(mask, o_time[:, None] - (d_time[safe] if n_dose else 0.0), 0.0),
        "amt": take(d_amt, 0.0),
        "dur": take(d_dur, 0.0),
        "oral": take(d_oral, False),
        "ss": take(d_ssc > 0, False),
        "ii": take(d_ii, 1.0),
        "mask": mask,
        "dose_index": idx,
    }
