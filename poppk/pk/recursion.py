"""Fast evaluation of the closed form for IV dosing: modal state recursion.

Dense superposition (:func:`poppk.pk.kernel.concentration` on a padded dose
matrix) evaluates every (observation, preceding dose) pair: O(n_obs × n_doses)
exponentials.  For intravenous doses (bolus or infusion, steady state
included) the same closed form can be evaluated in O(n_obs + n_doses): each
disposition mode λ of the impulse response decays independently, so the
contribution of all *finished* doses (bolus given, infusion ended) at time t
is

.. math:: c \\, R_r \\, e^{-\\lambda (t - e_r)}, \\qquad
   R_r = R_{r-1} e^{-\\lambda (e_r - e_{r-1})} + A_r \\varphi(\\lambda T_r)\\,s_r

where :math:`e_r` is the end time of the r-th finished dose (doses sorted by
end time), :math:`T_r` its duration, :math:`\\varphi(x) = (1-e^{-x})/x` and
:math:`s_r = 1/(1-e^{-\\lambda\\tau})` for a steady-state dose (1 otherwise);
a reset (EVID 3/4 segment start, SS=1) sets :math:`R_{r-1}` to 0.  Doses
still infusing at the observation time are added with the dense kernel on a
small matrix.  Both parts use the same per-dose formulas as
:func:`~poppk.pk.kernel.concentration` (``tests/pk`` checks that the two agree
to rounding on random designs, and the dense kernel against an ODE solver).

Oral doses (and absorption lags, which make the event order depend on a
parameter) are not handled here: :func:`recursion_plan` returns ``None`` and
the caller uses dense superposition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from poppk.errors import ModelSpecError
from poppk.pk.analytes import Formation, analyte_coefficients, formed_modes
from poppk.pk.disposition import disposition
from poppk.pk.kernel import concentration, phi
from poppk.pk.ops import get_ops

__all__ = ["RecursionPlan", "recursion_plan", "concentration_recursive", "plan_arrays"]


@dataclass(frozen=True)
class RecursionPlan:
    """Precomputed indices for :func:`concentration_recursive`.

    Attributes
    ----------
    n_subjects, width
        Number of subjects and the padded number of chained doses per subject.
    end, amt, dur, ss, ii, reset
        Per-subject chains of finished-dose events, shape ``(n_subjects, width)``
        sorted by end time; ``reset`` marks chain links that drop the state.
    gap
        ``end[:, r] - end[:, r-1]`` (0 for r = 0 and for padding).
    last
        For each observation, the flat index ``subject * width + r`` of the last
        finished dose, or ``-1`` when none.
    since
        Time from that dose's end to the observation (0 when ``last == -1``).
    active_rows
        Observations with at least one dose still infusing.
    active
        Dense sub-matrix (``dt, amt, dur, ss, ii, mask``) of those doses,
        shape ``(len(active_rows), W)``.
    obs_subject
        Subject index of every observation.
    """

    n_subjects: int
    width: int
    end: np.ndarray
    amt: np.ndarray
    dur: np.ndarray
    ss: np.ndarray
    ii: np.ndarray
    reset: np.ndarray
    gap: np.ndarray
    last: np.ndarray
    since: np.ndarray
    active_rows: np.ndarray
    active: dict[str, np.ndarray]
    obs_subject: np.ndarray

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return int(len(self.last))


def recursion_plan(
    obs_subject: np.ndarray,
    dose_matrix: Mapping[str, np.ndarray],
    dose_subject: np.ndarray,
    dose_time: np.ndarray,
    n_subjects: int,
) -> RecursionPlan | None:
    """Build a :class:`RecursionPlan` from a padded dose matrix.

    Parameters
    ----------
    obs_subject
        Subject index of each observation.
    dose_matrix
        Output of :func:`poppk.pk.dosing.padded_dose_matrix` (must include
        ``dose_index``).
    dose_subject, dose_time
        Subject index and time of every dose (the arrays the matrix indexes).
    n_subjects
        Number of subjects.

    Returns
    -------
    RecursionPlan or None
        ``None`` when the design has oral doses or when the finished doses of
        some observation are not a contiguous chain (e.g. overlapping infusions
        of different durations around a reset); use dense superposition then.
    """
    m = dose_matrix
    if np.any(m["oral"] & m["mask"]):
        return None
    obs_subject = np.asarray(obs_subject, dtype=np.int64)
    mask = m["mask"]
    idx = m["dose_index"]
    finished = mask & (m["dt"] >= m["dur"])
    n_obs = len(obs_subject)

    # chain: every dose that is finished for some observation, per subject, by end time
    used = np.unique(idx[finished])
    dose_time = np.asarray(dose_time, dtype=float)
    dose_dur = np.zeros(len(dose_time))
    dose_amt = np.zeros(len(dose_time))
    dose_ss = np.zeros(len(dose_time), dtype=bool)
    dose_ii = np.ones(len(dose_time))
    flat_i = idx[mask]
    dose_dur[flat_i] = m["dur"][mask]
    dose_amt[flat_i] = m["amt"][mask]
    dose_ss[flat_i] = m["ss"][mask]
    dose_ii[flat_i] = m["ii"][mask]
    end_all = dose_time + dose_dur

    # one sort by (subject, end time, dose index), split by subject: linear in subjects
    used_subject = np.asarray(dose_subject)[used]
    by = used[np.lexsort((used, end_all[used], used_subject))]
    bounds = np.searchsorted(np.asarray(dose_subject)[by], np.arange(n_subjects + 1))
    chains: list[np.ndarray] = [by[bounds[s]:bounds[s + 1]] for s in range(n_subjects)]
    width = max(1, max((len(c) for c in chains), default=1))
    pos = np.full(len(dose_time), -1, dtype=np.int64)
    end = np.zeros((n_subjects, width))
    amt = np.zeros((n_subjects, width))
    dur = np.zeros((n_subjects, width))
    ss = np.zeros((n_subjects, width), dtype=bool)
    ii = np.ones((n_subjects, width))
    for s, c in enumerate(chains):
        k = len(c)
        pos[c] = np.arange(k)
        end[s, :k] = end_all[c]
        amt[s, :k] = dose_amt[c]
        dur[s, :k] = dose_dur[c]
        ss[s, :k] = dose_ss[c]
        ii[s, :k] = dose_ii[c]
        if k:
            end[s, k:] = end_all[c[-1]]

    # per observation: last finished link, and the first link it needs
    r_last = np.where(finished, pos[np.where(finished, idx, 0)], -1).max(axis=1)
    r_first = np.where(finished, pos[np.where(finished, idx, 0)], width).min(axis=1)
    n_fin = finished.sum(axis=1)
    has = n_fin > 0
    # the finished set must be exactly the links r_first..r_last
    if np.any(has & (r_last - r_first + 1 != n_fin)):
        return None
    # resets: a link drops the earlier state when some observation's chain starts there
    reset = np.zeros((n_subjects, width), dtype=bool)
    reset[:, 0] = True
    reset[obs_subject[has], r_first[has]] = True
    # ... and a link's observations must not span a reset inside their chain
    cum_reset = np.cumsum(reset, axis=1)
    if np.any(has & (cum_reset[obs_subject, np.maximum(r_last, 0)] != cum_reset[obs_subject, np.minimum(r_first, width - 1)])):
        return None
    gap = np.zeros((n_subjects, width))
    gap[:, 1:] = np.diff(end, axis=1)
    last = np.where(has, obs_subject * width + r_last, -1)
    obs_time = np.where(finished, m["dt"] + dose_time[np.where(finished, idx, 0)], np.nan)
    t_obs = np.nanmax(np.where(finished, obs_time, -np.inf), axis=1)
    since = np.where(has, t_obs - end[obs_subject, np.maximum(r_last, 0)], 0.0)
    since = np.maximum(since, 0.0)

    act = mask & ~finished
    rows = np.nonzero(act.any(axis=1))[0]
    w_act = int(act.sum(axis=1).max()) if rows.size else 0
    active: dict[str, np.ndarray] = {}
    if rows.size:
        sub = act[rows]
        order = np.argsort(~sub, axis=1, kind="stable")[:, :w_act]
        take = lambda a: np.take_along_axis(a[rows], order, axis=1)  # noqa: E731
        keep = np.take_along_axis(sub, order, axis=1)
        active = {
            "dt": np.where(keep, take(m["dt"]), 0.0),
            "amt": np.where(keep, take(m["amt"]), 0.0),
            "dur": np.where(keep, take(m["dur"]), 0.0),
            "ss": keep & take(m["ss"]),
            "ii": np.where(keep, take(m["ii"]), 1.0),
            "mask": keep,
        }
    return RecursionPlan(
        n_subjects=n_subjects,
        width=width,
        end=end,
        amt=amt,
        dur=dur,
        ss=ss,
        ii=ii,
        reset=reset,
        gap=gap,
        last=last.astype(np.int64),
        since=since,
        active_rows=rows.astype(np.int64),
        active=active,
        obs_subject=obs_subject,
    )


#: The plan's arrays that :func:`concentration_recursive` reads (``keep`` = 1 - ``reset``).
PLAN_ARRAYS = ("amt", "dur", "ss", "ii", "keep", "gap", "last", "since", "obs_subject", "active_rows")


def plan_arrays(plan: RecursionPlan) -> dict[str, np.ndarray]:
    """The arrays of a plan that enter the computation, by name (``active_<name>`` for the
    dense sub-matrix); what a compiled graph takes as inputs (see ``arrays=`` of
    :func:`concentration_recursive`)."""
    out = {k: getattr(plan, k) for k in PLAN_ARRAYS if k != "keep"}
    out["keep"] = 1.0 - plan.reset.astype(float)
    out.update({f"active_{k}": v for k, v in plan.active.items() if k != "mask"})
    return out


def concentration_recursive(
    plan: RecursionPlan, params: Mapping[str, Any], *, n_cmt: int, arrays: Mapping[str, Any] | None = None,
    formation: tuple[Formation, ...] = (), analyte: Any = None,
) -> Any:
    """Concentrations at the plan's observations (NumPy or PyTensor).

    Parameters
    ----------
    plan
        From :func:`recursion_plan`.
    params
        Per-subject parameters (``CL``, ``V1``, ...), each of shape
        ``(n_subjects,)`` or scalar; NumPy arrays may carry leading dimensions
        ``(..., n_subjects)``.
    n_cmt
        1, 2 or 3.
    arrays
        PyTensor variables standing for :func:`plan_arrays` (graph inputs, e.g.
        shared variables); the plan then decides only the structure (width,
        steady-state and still-infusing terms), so one compiled graph serves
        every plan of that structure.
    formation, analyte
        Formed analytes and the analyte index of each observation, as in
        :func:`poppk.pk.kernel.concentration` (``analyte`` of shape ``(n_obs,)``).

    Returns
    -------
    Concentrations of shape ``(..., n_obs)``.
    """
    ops = get_ops(*params.values(), *(arrays or {}).values())
    a_ = dict(plan_arrays(plan)) if arrays is None else dict(arrays)
    n_sub = plan.n_subjects if arrays is None else a_["amt"].shape[0]
    lead = _lead_shape(params, plan.n_subjects)
    full = {k: _broadcast_subjects(v, lead, n_sub, ops) for k, v in params.items()}
    lams, coefs = disposition(full, n_cmt, ops)
    sub = a_["obs_subject"]
    if formation:
        if analyte is None:
            raise ModelSpecError("formed analytes need the analyte index of each observation (analyte=)")
        lams, sets = formed_modes(lams, coefs, full, formation, ops)
        picked = [[_take_last(c, sub, ops) if not isinstance(c, float) else c for c in s] for s in sets]
        coef_obs_all = analyte_coefficients(picked, analyte, ops)
    total = None
    for i, lam in enumerate(lams):
        # per-link input: A φ(λT) (÷ (1 - e^{-λτ}) at steady state)
        lam_l = lam[..., :, None]
        b = a_["amt"] * phi(lam_l * a_["dur"], ops)
        if plan.ss.any():
            b = ops.where(a_["ss"], b / (-ops.expm1(-lam_l * a_["ii"])), b)
        decay = ops.exp(-lam_l * a_["gap"])
        keep = a_["keep"]
        states = []
        state = None
        for r in range(plan.width):
            if state is None:
                state = b[..., r]
            else:
                state = state * decay[..., r] * keep[:, r] + b[..., r]
            states.append(state)
        R = _stack_last(states, ops)
        flat = _flatten_last2(R, ops)
        flat = _append_zero(flat, ops)  # index -1 -> the zero slot
        r_obs = _take_last(flat, a_["last"], ops)
        lam_obs = _take_last(lam, sub, ops)
        coef_obs = coef_obs_all[i] if formation else _take_last(coefs[i], sub, ops)
        term = coef_obs * r_obs * ops.exp(-lam_obs * a_["since"])
        total = term if total is None else total + term
    if plan.active_rows.size:
        a = {k: a_[f"active_{k}"] for k in plan.active if k != "mask"}
        rows = a_["active_rows"]
        act_params = {k: _take_last(v, sub[rows], ops)[..., None] for k, v in full.items()}
        has_ss = bool(plan.active["ss"].any())
        extra = concentration(
            a["dt"], a["amt"], act_params, n_cmt=n_cmt, dur=a["dur"],
            ss=a["ss"] if has_ss else None, ii=a["ii"] if has_ss else None, ops=ops,
            formation=formation, analyte=analyte[..., rows][:, None] if formation else None,
        )
        total = _add_at_last(total, rows, extra, ops)
    return total


# -- small backend helpers (last-axis gathers that work on both backends) --------

def _lead_shape(params: Mapping[str, Any], n: int) -> tuple[int, ...]:
    lead: tuple[int, ...] = ()
    for v in params.values():
        shape = getattr(v, "shape", ())
        if isinstance(v, np.ndarray) and v.ndim >= 1 and shape[-1] == n:
            lead = np.broadcast_shapes(lead, shape[:-1])
    return lead


def _broadcast_subjects(v: Any, lead: tuple[int, ...], n: int, ops: Any) -> Any:
    from poppk.pk.ops import PYTENSOR

    if ops is PYTENSOR:
        import pytensor.tensor as pt

        v = pt.as_tensor_variable(v)
        return v if v.ndim >= 1 else pt.broadcast_to(v, (n,))
    v = np.asarray(v, dtype=float)
    if v.ndim >= 1 and v.shape[-1] == n:
        return np.broadcast_to(v, lead + (n,))
    return np.broadcast_to(v[..., None] if v.ndim else v, lead + (n,))


def _stack_last(items: list[Any], ops: Any) -> Any:
    if isinstance(items[0], np.ndarray):
        return np.stack(items, axis=-1)
    import pytensor.tensor as pt

    return pt.stack(items, axis=-1)


def _flatten_last2(x: Any, ops: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.reshape(x.shape[:-2] + (-1,))
    return x.reshape((-1,)) if x.ndim == 2 else x.flatten(ndim=x.ndim - 1)


def _append_zero(x: Any, ops: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np.concatenate([x, np.zeros(x.shape[:-1] + (1,))], axis=-1)
    import pytensor.tensor as pt

    return pt.concatenate([x, pt.zeros((1,))], axis=-1) if x.ndim == 1 else pt.concatenate(
        [x, pt.zeros_like(x[..., :1])], axis=-1
    )


def _take_last(x: Any, index: np.ndarray, ops: Any) -> Any:
    return x[..., index]


def _add_at_last(x: Any, index: np.ndarray, values: Any, ops: Any) -> Any:
    if isinstance(x, np.ndarray):
        out = x.copy()
        out[..., index] += values
        return out
    import pytensor.tensor as pt

    return pt.inc_subtensor(x[..., index], values)
