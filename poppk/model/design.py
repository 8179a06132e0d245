"""The numeric design of a dataset for a given model spec.

:class:`ModelDesign` is the bridge from :class:`~poppk.data.PKData` (tables)
to the arrays that the PK kernel and the likelihood consume: subject index of
each observation, the padded per-observation dose matrix, BLQ flags and the
per-subject covariate values a spec needs.  It is built once per fit and
reused by the PyMC model and by every post-sampling computation (IPRED,
PRED, pointwise log-likelihood, posterior predictive checks).

Compartment conventions (NONMEM ADVAN-like): without absorption every dose
goes into the central compartment (CMT 1); with first-order absorption doses
into CMT 1 go into the depot (oral) and doses into any other CMT are IV into
the central compartment.  Predictions are central-compartment concentrations
(amount/volume); observations must be recorded there (CMT 1 or 0 without a
depot; CMT 1, 2 or 0 with one), see :mod:`poppk.data.observation_type`.  The
model's time unit must come from the spec or the data
(:func:`poppk.model.time_unit.resolve_time_unit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poppk.data.observation_type import check_central_compartment
from poppk.errors import ModelSpecError
from poppk.model.analytes import observation_analytes
from poppk.model.elimination import uses_ode
from poppk.model.parameters import base_key, covariate_columns
from poppk.model.spec import ModelSpec
from poppk.model.time_unit import resolve_time_unit
from poppk.model.time_varying import SegmentTable, has_time_variation, segment_table
from poppk.pk import padded_dose_matrix
from poppk.pk.ode import OdeDesign, ode_design
from poppk.pk.recursion import recursion_plan

__all__ = ["ModelDesign", "build_design", "warn_nonpositive_dv"]


@dataclass(frozen=True)
class ModelDesign:
    """Arrays describing a dataset for one model (see module docstring).

    Attributes
    ----------
    subject_ids
        Subject IDs in dataset order (the ``id`` coordinate).
    obs_subject
        Index into ``subject_ids`` of each observation used in the likelihood.
    obs_time, dv, blq, lloq, obs_row
        Per observation: time, observed value (LLOQ on BLQ records), BLQ flag,
        LLOQ (0 where none) and the record's row in the file.
    doses
        Padded dose matrix (``dt, amt, dur, oral, ss, ii, mask``), each of
        shape ``(n_obs, max_doses)``.
    covariates
        ``{effect name: per-subject values}`` for the spec's covariate effects.
    dropped_blq
        Rows of BLQ records discarded under ``blq="m1"``.
    obs_analyte
        Analyte index of each observation (0 the parent) for a spec with
        ``analytes``; ``None`` otherwise.
    ode
        The observations and doses grouped by subject for the ODE solver
        (:func:`poppk.pk.ode.ode_design`) when the spec's elimination is not
        linear or parameters change over time (then ``plan`` is ``None``);
        ``None`` otherwise.
    segments
        Each subject's parameter segments when the spec has time-varying
        covariates or occasions (:func:`poppk.model.time_varying.segment_table`);
        ``None`` otherwise.
    """

    subject_ids: np.ndarray
    obs_subject: np.ndarray
    obs_time: np.ndarray
    dv: np.ndarray
    blq: np.ndarray
    lloq: np.ndarray
    obs_row: np.ndarray
    doses: dict[str, np.ndarray] = field(repr=False)
    covariates: dict[str, np.ndarray] = field(repr=False)
    dropped_blq: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    plan: Any = field(default=None, repr=False)
    obs_analyte: np.ndarray | None = field(default=None, repr=False)
    ode: OdeDesign | None = field(default=None, repr=False)
    segments: SegmentTable | None = field(default=None, repr=False)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return int(len(self.subject_ids))

    @property
    def n_obs(self) -> int:
        """Number of observations in the likelihood."""
        return int(len(self.dv))

    @property
    def has_blq(self) -> bool:
        """True if any BLQ record enters the likelihood (M3)."""
        return bool(self.blq.any())

    def sum_by_subject(self, values: np.ndarray) -> np.ndarray:
        """Sum per-observation values (last axis, ``n_obs``) within each subject.

        Memory and time are linear in observations and subjects (no observation ×
        subject matrix): ``(..., n_obs) -> (..., n_subjects)``.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != self.n_obs:
            raise ValueError(f"expected {self.n_obs} observations on the last axis, got shape {values.shape}")
        flat = values.reshape(-1, self.n_obs)
        out = np.zeros((flat.shape[0], self.n_subjects))
        if self.n_obs:
            subj = np.asarray(self.obs_subject)
            if np.any(subj[1:] < subj[:-1]):
                order = np.argsort(subj, kind="stable")
                subj, flat = subj[order], flat[:, order]
            present, starts = np.unique(subj, return_index=True)
            out[:, present] = np.add.reduceat(flat, starts, axis=1)
        return out.reshape(values.shape[:-1] + (self.n_subjects,))


def build_design(spec: ModelSpec, data: Any, *, max_doses: int | None = None, fast: bool = True) -> ModelDesign:
    """Build the :class:`ModelDesign` of ``data`` for ``spec``.

    Parameters
    ----------
    spec
        A model spec; covariate references must be resolved
        (:meth:`ModelSpec.resolved`).
    data
        A :class:`~poppk.data.PKData`.
    max_doses
        Cap on doses per observation (error if exceeded); default: the
        largest number any observation has.
    fast
        Precompute the O(n_obs + n_doses) modal recursion
        (:mod:`poppk.pk.recursion`) where the design allows it (IV doses);
        ``False`` forces dense superposition.

    Returns
    -------
    ModelDesign
    """
    resolve_time_unit(spec, data)  # no model without a time unit: refuse before any work
    analyte = observation_analytes(spec, data.observations)
    check_central_compartment(data, depot=spec.absorption is not None,
                              rows=None if analyte is None else analyte == 0)
    subjects = np.asarray(data.subjects)
    index = {sid: i for i, sid in enumerate(subjects.tolist())}
    obs = data.observations
    doses = data.doses
    if len(obs) == 0:
        raise ModelSpecError("the dataset has no observations to fit")
    if len(doses) == 0:
        raise ModelSpecError("the dataset has no dose records; a PK model needs doses")

    dropped = np.zeros(0, dtype=int)
    if spec.blq == "m1" and obs["BLQ"].any():
        dropped = obs.loc[obs["BLQ"], "ROW"].to_numpy(dtype=int)
        if analyte is not None:
            analyte = analyte[~obs["BLQ"].to_numpy(dtype=bool)]
        obs = obs.loc[~obs["BLQ"]]

    obs_subject = np.array([index[s] for s in obs["ID"].tolist()], dtype=np.int64)
    dose_subject = np.array([index[s] for s in doses["ID"].tolist()], dtype=np.int64)
    cmt = doses["CMT"].to_numpy(dtype=np.int64)
    if spec.absorption == "first-order":
        oral = cmt == 1
        if (oral & (doses["DUR"].to_numpy(dtype=float) > 0)).any():
            bad = doses.loc[oral & (doses["DUR"].to_numpy(dtype=float) > 0)].iloc[0]
            raise ModelSpecError(
                f"row {int(bad['ROW'])}: a zero-order infusion into the depot (CMT 1) is not supported "
                "with first-order absorption; give oral doses as boluses (RATE 0) or dose IV into CMT 2"
            )
    else:
        oral = np.zeros(len(doses), dtype=bool)
        if (cmt != 1).any():
            bad = doses.loc[cmt != 1].iloc[0]
            raise ModelSpecError(
                f"row {int(bad['ROW'])}: dose into CMT {int(bad['CMT'])}, but an IV {spec.structure} "
                "model doses the central compartment, CMT 1 (use absorption='first-order' for depot doses)"
            )

    # record order within the file decides dose/observation ties at equal times
    obs_order = obs["ROW"].to_numpy(dtype=float)
    dose_order = doses["ROW"].to_numpy(dtype=float) + 1e-3 * doses.get("ADDL_INDEX", 0 * doses["ROW"]).to_numpy(dtype=float)
    mat = padded_dose_matrix(
        obs_subject,
        obs["TIME"].to_numpy(dtype=float),
        obs["SEGMENT"].to_numpy(dtype=np.int64),
        obs_order,
        dose_subject,
        doses["TIME"].to_numpy(dtype=float),
        doses["SEGMENT"].to_numpy(dtype=np.int64),
        dose_order,
        doses["AMT"].to_numpy(dtype=float),
        doses["DUR"].to_numpy(dtype=float),
        oral,
        doses["SS"].to_numpy(dtype=np.int64),
        doses["II"].to_numpy(dtype=float),
        max_doses=max_doses,
    )
    cov_table = data.covariates.loc[subjects.tolist()] if len(spec.covariates) else None
    covs = covariate_columns(spec, cov_table) if cov_table is not None else {}
    for name, values in covs.items():
        if not np.all(np.isfinite(values)):
            bad = subjects[~np.isfinite(values)][0]
            raise ModelSpecError(f"covariate for {name} is missing or not numeric for subject {bad!r}")
    for c in spec.covariates:
        if c.form != "adjusted":
            continue
        for col, values in ((c.covariate, covs[c.name]), (c.base, covs[base_key(c)])):
            if np.any(values <= 0):
                bad = subjects[values <= 0][0]
                raise ModelSpecError(
                    f"adjusted size model: column {col!r} is {values[values <= 0][0]:g} for subject {bad!r}; "
                    f"{c.base} + f·({c.covariate} − {c.base}) needs both sizes > 0 (check the IBW formula for "
                    "very short subjects, or use another size model)"
                )
    lloq = obs["LLOQ"].to_numpy(dtype=float)
    lloq = np.where(np.isfinite(lloq), lloq, 0.0)
    segments = segment_table(spec, data, subjects, covs) if has_time_variation(spec) else None
    ode = _ode_design(spec, doses, obs_subject, obs["TIME"].to_numpy(dtype=float), dose_subject, oral,
                      len(subjects), segments) if uses_ode(spec) else None
    return ModelDesign(
        subject_ids=subjects,
        obs_subject=obs_subject,
        obs_time=obs["TIME"].to_numpy(dtype=float),
        dv=obs["DV"].to_numpy(dtype=float),
        blq=obs["BLQ"].to_numpy(dtype=bool),
        lloq=lloq,
        obs_row=obs["ROW"].to_numpy(dtype=np.int64),
        doses=mat,
        covariates=covs,
        dropped_blq=dropped,
        plan=recursion_plan(obs_subject, mat, dose_subject, doses["TIME"].to_numpy(dtype=float), len(subjects))
        if fast and ode is None
        else None,
        obs_analyte=analyte,
        ode=ode,
        segments=segments,
    )


def _ode_design(spec: ModelSpec, doses: Any, obs_subject: np.ndarray, obs_time: np.ndarray,
                dose_subject: np.ndarray, oral: np.ndarray, n_subjects: int,
                segments: SegmentTable | None = None) -> OdeDesign:
    """The ODE solver's design; refuses what it does not integrate (steady-state records).

    A dose at the time of an observation counts for it (the solver's rule),
    whatever the order of the two records in the file.
    """
    ss = doses["SS"].to_numpy(dtype=np.int64)
    if (ss != 0).any():
        bad = doses.loc[ss != 0].iloc[0]
        raise ModelSpecError(
            f"row {int(bad['ROW'])}: steady-state dose record (SS={int(bad['SS'])}), but "
            f"{_why_ode(spec)} is integrated by the ODE solver, which starts every subject "
            "empty; give the doses that lead to steady state explicitly (ADDL/II with SS=0), or use "
            "elimination='linear'"
        )
    if "SEGMENT" in doses and (doses["SEGMENT"].to_numpy() != 0).any():
        raise ModelSpecError(
            f"{_why_ode(spec)}: the dataset has reset records (EVID 3/4), which the ODE "
            "solver does not model; split such subjects or use elimination='linear'"
        )
    return ode_design(obs_subject, obs_time, dose_subject, doses["TIME"].to_numpy(dtype=float),
                      doses["AMT"].to_numpy(dtype=float), doses["DUR"].to_numpy(dtype=float), oral,
                      n_subjects=n_subjects, seg_subject=None if segments is None else segments.subject,
                      seg_time=None if segments is None else segments.time)


def _why_ode(spec: ModelSpec) -> str:
    """What sends a spec to the ODE solver, for messages."""
    return f"elimination={spec.elimination!r}" if spec.elimination != "linear" else "a model with time-varying parameters"


def warn_nonpositive_dv(spec: ModelSpec, design: ModelDesign) -> None:
    """Warn about quantified observations ≤ 0 under a relative (proportional or exponential) error.

    Such a record is a −100% residual (or log 0): it weighs like any other and drags σ up;
    a concentration of 0 is nearly always one below the limit of quantification.  Called by
    :func:`poppk.model.fit` on the data it fits (designs of prediction grids hold DV = 0).
    """
    import warnings

    from poppk.errors import DataWarning

    kinds = [spec.error] + [a.error or spec.error for a in spec.analytes[1:]]
    relative = np.array([k in ("proportional", "exponential") for k in kinds])
    analyte = np.zeros(design.n_obs, dtype=np.int64) if design.obs_analyte is None else design.obs_analyte
    bad = ~design.blq & (design.dv <= 0) & relative[np.clip(analyte, 0, len(kinds) - 1)]
    if bad.any():
        rows = design.obs_row[bad]
        warnings.warn(
            f"{int(bad.sum())} quantified observation(s) have DV <= 0 under a relative error model "
            f"({', '.join(sorted(set(k for k in kinds if k in ('proportional', 'exponential'))))}; rows "
            f"{', '.join(str(int(r)) for r in rows[:10])}{', ...' if rows.size > 10 else ''}): each is a -100% "
            "residual that inflates sigma; record them as BLQ (BLQ=1 with their LLOQ) so M3 treats them as "
            "censored, or use a combined error model", DataWarning, stacklevel=3)
