"""Parameters that change within a subject: time-varying covariates and inter-occasion variability.

By default a covariate enters a model at its baseline (the subject's first
non-missing value).  ``ModelSpec(time_varying=...)`` opts covariate effects in
to their value *on each record*, and ``ModelSpec(iov=..., occasion="OCC")``
adds inter-occasion variability (IOV): a random effect κ per subject and
occasion (e.g. dosing cycle) on the named parameters,
``log P_i(t) = log P_i + κ_{i,occ(t)}``, κ ~ N(0, ω_IOV²), sampled as κ = s·z
with s each κ's conditional SD at the Laplace-EM estimates (centred where an
occasion's data determine κ, non-centred where they do not).

Both make the parameters piecewise constant in time.  Each subject's record
times where any time-varying value or the occasion changes start a new
*segment*; the value of a record holds from its time until the next change
(last observation carried forward, the convention of nlmixr2/rxode2; NONMEM
applies a record's value to the interval *ending* at it, so a dataset written
for NONMEM that changes a covariate between two records can differ by that
interval).  A missing value carries the one before it forward (the baseline
before the first).  On segment ``s`` of subject ``i`` a parameter is its
baseline individual value times ``exp(δ_s)``, with::

    δ_s = Σ_c [log f_c(x_{i,s}) − log f_c(x_{i,baseline})] + κ_{i,occ(s)}

over the time-varying effects ``c`` on that parameter, so the IIV, the
Laplace parametrisation and every baseline covariate keep their meaning.
Superposition does not hold when parameters change between doses, so such
models are integrated by the ODE solver (:mod:`poppk.pk.ode`, its segments
and their sensitivities), with ``elimination="linear"`` as well.  Amounts
are carried across a change (a change of volume makes the concentration
jump, as in NONMEM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from poppk.errors import ModelSpecError
from poppk.model.priors import Prior

__all__ = [
    "OFFSETS",
    "IOV_LATENT",
    "IOV_EFFECT",
    "SegmentTable",
    "has_time_variation",
    "normalise_time_variation",
    "varying_parameters",
    "segment_table",
    "segment_offsets",
    "kappa_draws",
]

#: Key of the per-segment log offsets ``(..., n_segments, n_varying)`` in a parameter mapping.
OFFSETS = "segment_offset"
#: Sampled variable of the standardised occasion effects ``(pair, iov)`` (not kept in the posterior).
IOV_LATENT = "z_iov"
#: Posterior variable of the occasion effects κ, dims ``(occasion, iov)``.
IOV_EFFECT = "kappa"
#: Default prior of an IOV standard deviation (log scale): 90% below ≈ 0.49.
DEFAULT_IOV_PRIOR = Prior.halfnormal(0.3)


def has_time_variation(spec: Any) -> bool:
    """True when ``spec`` has time-varying covariate effects or inter-occasion variability."""
    return bool(getattr(spec, "time_varying", ()) or getattr(spec, "iov", ()))


def normalise_time_variation(spec: Any) -> tuple[tuple[str, ...], tuple[tuple[str, Prior], ...], str]:
    """``(time_varying effect names, iov (parameter, prior) pairs, occasion column)`` of a spec, checked.

    ``time_varying`` entries name a covariate effect (``"beta_CL_WT"``) or a
    covariate column (every effect of that column, e.g. ``"WT"``); ``iov``
    is a sequence of parameter names or a ``{parameter: prior}`` mapping.
    """
    params = spec.parameters
    names: list[str] = []
    for entry in spec.time_varying:
        entry = str(entry)
        hits = [c for c in spec.covariates if entry in (c.name, c.covariate)]
        if not hits:
            raise ModelSpecError(
                f"time_varying entry {entry!r} names no covariate effect of this model; give an effect name "
                f"({', '.join(c.name for c in spec.covariates) or 'none defined'}) or its covariate column")
        for c in hits:
            if c.form == "adjusted":
                raise ModelSpecError(
                    f"time_varying: {c.name} is an adjusted size effect, computed from baseline weight and "
                    "height; use a power effect of a weight column recorded on each record instead")
            if c.name not in names:
                names.append(c.name)
    raw = spec.iov.items() if isinstance(spec.iov, Mapping) else (
        (p if isinstance(p, (tuple, list)) else (p, None)) for p in spec.iov)
    iov: list[tuple[str, Prior]] = []
    for p, prior in raw:
        p = str(p)
        if p not in params:
            raise ModelSpecError(f"iov on {p!r}: not a parameter of this model; parameters: {params}")
        if any(p == q for q, _ in iov):
            raise ModelSpecError(f"iov lists {p!r} twice")
        if prior is None:
            prior = DEFAULT_IOV_PRIOR
        elif not isinstance(prior, Prior):
            prior = Prior.from_dict(prior)
        if prior.family not in ("halfnormal", "halfcauchy", "exponential", "fixed"):
            raise ModelSpecError(f"iov[{p!r}]: use a positive prior (halfnormal, ...), got {prior.family!r}")
        iov.append((p, prior))
    occasion = str(spec.occasion)
    if not occasion.strip():
        raise ModelSpecError("occasion: give the column that holds each record's occasion, e.g. 'OCC'")
    return tuple(names), tuple(iov), occasion


def varying_parameters(spec: Any) -> tuple[str, ...]:
    """Parameters that change between segments, in the spec's parameter order."""
    tv = {c.parameter for c in spec.covariates if c.name in spec.time_varying}
    tv |= {p for p, _ in spec.iov}
    return tuple(p for p in spec.parameters if p in tv)


@dataclass(frozen=True)
class SegmentTable:
    """Each subject's parameter segments (see the module docstring), built by :func:`segment_table`.

    Attributes
    ----------
    subject
        Subject index of each segment (subjects in design order, segments in time order).
    time
        Start time of each segment; a subject's first is ``-inf``.
    values
        ``{effect name: value on each segment}`` of the time-varying effects
        (0/1 indicators for categorical effects).
    baseline
        ``{effect name: the subject's baseline value on each segment}``.
    pair
        Index of each segment's (subject, occasion) pair, ``-1`` without IOV.
    pair_subject, pair_occasion
        The subject index and occasion value of each pair.
    """

    subject: np.ndarray
    time: np.ndarray
    values: dict[str, np.ndarray] = field(repr=False)
    baseline: dict[str, np.ndarray] = field(repr=False)
    pair: np.ndarray = field(repr=False)
    pair_subject: np.ndarray = field(repr=False)
    pair_occasion: np.ndarray = field(repr=False)

    @property
    def n_segments(self) -> int:
        return int(self.subject.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.pair_subject.shape[0])


def _filled(frame: Any, column: str, baseline: Mapping[Any, Any], numeric: bool) -> np.ndarray:
    """A record column with missing values carried forward within subjects (the baseline before the first)."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce") if numeric else frame[column]
    filled = values.groupby(frame["ID"], sort=False).ffill()
    missing = filled.isna().to_numpy()
    if missing.any():
        filled = filled.copy()
        ids = frame["ID"].to_numpy()[missing]
        filled.iloc[np.flatnonzero(missing)] = [baseline.get(i, np.nan) for i in ids]
    return filled.to_numpy()


def segment_table(spec: Any, data: Any, subjects: np.ndarray, covariates: Mapping[str, np.ndarray]) -> SegmentTable:
    """The parameter segments of ``data`` for a spec with time variation.

    Parameters
    ----------
    spec
        A resolved spec with :func:`has_time_variation`.
    data
        The :class:`~poppk.data.PKData` (its ``records`` hold the per-record values).
    subjects
        Subject IDs in design order.
    covariates
        The design's baseline covariate arrays (:func:`poppk.model.parameters.covariate_columns`).
    """
    from poppk.model.parameters import _indicator

    records = data.records
    effects = [c for c in spec.covariates if c.name in spec.time_varying]
    for c in effects:
        if c.covariate not in records.columns:
            raise ModelSpecError(
                f"time_varying {c.name}: column {c.covariate!r} is not in the dataset's records (derived size "
                "descriptors exist at baseline only); record the covariate on each row, e.g. a WT column")
    index = {sid: i for i, sid in enumerate(np.asarray(subjects).tolist())}
    rec = records.loc[records["ID"].isin(list(index))].copy()
    cols: dict[str, np.ndarray] = {}
    table = data.covariates
    for c in effects:
        base_by_id = dict(zip(table.index.tolist(), table[c.covariate].tolist())) if c.covariate in table else {}
        raw = _filled(rec, c.covariate, base_by_id, numeric=c.form != "categorical")
        if c.form == "categorical":
            cols[c.name] = _indicator(raw, c.level)
        else:
            cols[c.name] = raw.astype(np.float64)
            bad = ~np.isfinite(cols[c.name])
            if bad.any():
                row = rec.iloc[int(np.flatnonzero(bad)[0])]
                raise ModelSpecError(f"row {int(row['ROW'])}: {c.covariate} is missing or not numeric for subject "
                                     f"{row['ID']!r} and no earlier value exists (time_varying {c.name})")
    occ = None
    if spec.iov:
        if spec.occasion not in rec.columns:
            raise ModelSpecError(f"iov needs the occasion column {spec.occasion!r} on every record; the dataset "
                                 f"has {list(records.columns)} (set ModelSpec(occasion=...))")
        rec["__occ__"] = rec[spec.occasion]
        first = rec.dropna(subset=["__occ__"]).groupby("ID", sort=False)["__occ__"].first().to_dict()
        occ = _filled(rec, "__occ__", first, numeric=False)
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in occ):
            bad = rec.iloc[[i for i, v in enumerate(occ) if v is None or v != v][0]]
            raise ModelSpecError(f"subject {bad['ID']!r} has no {spec.occasion} value on any record; "
                                 "every subject needs an occasion for iov")
    sub = np.array([index[s] for s in rec["ID"].tolist()], dtype=np.int64)
    time = rec["TIME"].to_numpy(dtype=float)
    if "SEGMENT" in rec and (rec["SEGMENT"].to_numpy() != 0).any():
        raise ModelSpecError("time_varying/iov: the dataset has reset records (EVID 3/4), which the ODE solver "
                             "does not model; split such subjects")
    order = np.lexsort((np.arange(len(rec)), time, sub))  # file order breaks ties at equal times
    sub, time = sub[order], time[order]
    keys = [cols[c.name][order] for c in effects]
    occ_sorted = None if occ is None else np.asarray(occ, dtype=object)[order]
    # the last record at a time holds from that time on: compare each record with the next one
    last_at_time = np.ones(len(sub), dtype=bool)
    last_at_time[:-1] = (sub[1:] != sub[:-1]) | (time[1:] != time[:-1])
    idx = np.flatnonzero(last_at_time)
    new_subject = np.ones(idx.size, dtype=bool)
    new_subject[1:] = sub[idx[1:]] != sub[idx[:-1]]
    change = new_subject.copy()
    for k in keys:
        v = k[idx]
        change[1:] |= v[1:] != v[:-1]
    if occ_sorted is not None:
        o = occ_sorted[idx]
        change[1:] |= np.array([a != b for a, b in zip(o[1:], o[:-1])], dtype=bool)
    keep = idx[change]
    seg_sub = sub[keep]
    seg_time = np.where(new_subject[change], -np.inf, time[keep])
    missing = sorted(set(range(len(index))) - set(seg_sub.tolist()))
    if missing:
        raise ModelSpecError(f"subject {np.asarray(subjects)[missing[0]]!r} has no records for its segments")
    values = {c.name: cols[c.name][order][keep] for c in effects}
    baseline = {c.name: np.asarray(covariates[c.name], dtype=np.float64)[seg_sub] for c in effects}
    if occ_sorted is None:
        pair = np.full(keep.size, -1, dtype=np.int64)
        pair_subject = np.zeros(0, dtype=np.int64)
        pair_occasion = np.zeros(0, dtype=object)
    else:
        labels = list(zip(seg_sub.tolist(), occ_sorted[keep].tolist()))
        unique = list(dict.fromkeys(labels))
        where = {lab: k for k, lab in enumerate(unique)}
        pair = np.array([where[lab] for lab in labels], dtype=np.int64)
        pair_subject = np.array([u[0] for u in unique], dtype=np.int64)
        pair_occasion = np.array([u[1] for u in unique], dtype=object)
    return SegmentTable(subject=seg_sub, time=seg_time, values=values, baseline=baseline, pair=pair,
                        pair_subject=pair_subject, pair_occasion=pair_occasion)


def segment_offsets(spec: Any, segments: SegmentTable, betas: Mapping[str, Any], kappa: Any = None, *,
                    references: Mapping[str, tuple[Any, Any]] | None = None,
                    inputs: Mapping[str, Any] | None = None) -> Any:
    """Log offsets ``δ`` of every segment, ``(..., n_segments, n_varying)`` (NumPy or PyTensor).

    Parameters
    ----------
    spec
        The spec (its :func:`varying_parameters` order the last axis).
    segments
        From :func:`segment_table`.
    betas
        Covariate coefficients by effect name: scalars or tensors, or NumPy
        draws of shape ``(n, 1)``.
    kappa
        Occasion effects ``(..., n_pairs, n_iov)`` in the order of
        ``spec.iov``, or ``None`` (κ = 0: the typical, PRED, offsets).
    references
        Stand-ins for the effects' reference values (graph inputs).
    inputs
        Stand-ins for ``values``/``baseline`` arrays (graph inputs), keyed
        ``"<effect>/values"``, ``"<effect>/baseline"``.
    """
    from poppk.model.parameters import covariate_log_effect
    from poppk.pk.ops import is_tensor

    varying = varying_parameters(spec)
    tensor = is_tensor(kappa, *betas.values(), *(inputs or {}).values())
    n_seg = segments.n_segments
    iov = [p for p, _ in spec.iov]
    cols: list[Any] = []
    for p in varying:
        total: Any = 0.0
        for c in spec.covariates:
            if c.parameter != p or c.name not in spec.time_varying:
                continue
            x = segments.values[c.name] if inputs is None else inputs[f"{c.name}/values"]
            x0 = segments.baseline[c.name] if inputs is None else inputs[f"{c.name}/baseline"]
            ref = (references or {}).get(c.name, (None, None))[0]
            total = total + (covariate_log_effect(c, betas[c.name], x, reference=ref)
                             - covariate_log_effect(c, betas[c.name], x0, reference=ref))
        if p in iov and kappa is not None:
            pair = segments.pair if inputs is None else inputs["iov/pair"]
            total = total + kappa[..., pair, iov.index(p)]
        cols.append(total)
    if tensor:
        import pytensor.tensor as pt

        return pt.stack([pt.broadcast_to(c, (n_seg,)) if getattr(c, "ndim", 0) == 0 else c for c in cols], axis=-1)
    arrays = [np.asarray(c, dtype=np.float64) for c in cols]
    shape = np.broadcast_shapes((n_seg,), *[a.shape if a.ndim else (n_seg,) for a in arrays])
    return np.stack([np.broadcast_to(a, shape) for a in arrays], axis=-1)


def kappa_draws(spec: Any, posterior: Any, index: np.ndarray | None = None) -> np.ndarray | None:
    """κ per flattened draw, ``(n, n_pairs, n_iov)``, from the posterior's ``kappa``; ``None`` without IOV."""
    if not spec.iov:
        return None
    dims = ("chain", "draw")
    k = posterior[IOV_EFFECT]
    k = k.transpose(*dims, *[d for d in k.dims if d not in dims]).values
    k = k.reshape((-1,) + k.shape[2:])
    return k if index is None else k[index]
