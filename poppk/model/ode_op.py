"""The ODE solver of :mod:`poppk.pk.ode` as a PyTensor Op (for the likelihood graph).

:class:`OdeConcentration` maps per-subject natural-scale parameters ``theta``
(``n_subjects × P``, columns in the order of
:func:`poppk.pk.ode.parameter_names`) to the concentrations at a fixed design's
observations, and also returns their Jacobian ``dC/dθ`` (from the forward
sensitivities integrated with the state).  Its gradient is the
vector–Jacobian product ``g_θ[i, j] = Σ_{k ∈ obs(i)} ḡ_k J[k, j]``, built from
the Jacobian output, so a log density and its gradient evaluated together (as
NUTS does) cost one solve with sensitivities.  Second derivatives are not
implemented (the Jacobian output has no gradient).

The same compiled core runs in :meth:`OdeConcentration.perform` (Python
modes) and, through a ``numba_funcify`` registration, inside PyTensor's
NUMBA mode, which is what nutpie compiles.  A subject the solver cannot
integrate (step limit, step-size underflow, a parameter outside its domain)
gets NaN concentrations, so that the log density is not finite and the
sampler rejects the point, instead of an exception in the middle of sampling;
:func:`poppk.pk.ode.solve_ode` raises on the same input.

Examples
--------
>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> from poppk.pk.ode import ode_design
>>> d = ode_design([0, 0], [2.0, 5.0], [0, 0], [0.0, 4.0], [100.0, 100.0])
>>> theta = pt.dmatrix("theta")
>>> conc = ode_concentration_op(theta, d, n_cmt=1)
>>> f = pytensor.function([theta], conc)
>>> np.round(f(np.array([[1.0, 10.0]])), 4)
array([ 8.1873, 15.1137])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from poppk.errors import ModelSpecError
from poppk.model.numba_dispatch import funcify_register, source_version
from poppk.pk import ode as _ode
from poppk.pk.ode import (ELIMINATIONS, OdeDesign, parameter_names, slot_matrix, solver_arguments,
                         varying_columns)

__all__ = ["OdeConcentration", "ode_concentration_op"]

#: Design arrays after ``theta`` and ``offsets``, in input order.
DESIGN_ARRAYS = ("obs_ptr", "obs_time", "obs_out", "dose_ptr", "dose_time", "dose_amt", "dose_dur", "dose_oral",
                 "seg_ptr", "seg_time", "seg_order")
_INT_ARRAYS = frozenset({"obs_ptr", "obs_out", "dose_ptr", "dose_oral", "seg_ptr", "seg_order"})
_N_DESIGN = len(DESIGN_ARRAYS)


class OdeConcentration(Op):
    """``(theta, offsets, *design arrays) -> (concentrations, dC/dθ, dC/d offsets)``; see the module docstring."""

    __props__ = ("n_cmt", "elimination", "oral", "rtol", "atol", "max_steps", "varying")

    def __init__(self, n_cmt: int, elimination: str = "linear", oral: bool = False, rtol: float = 1e-8,
                 atol: float = 1e-12, max_steps: int = 100_000, varying: tuple[str, ...] = ()) -> None:
        names = parameter_names(n_cmt, elimination, oral)  # validates n_cmt and elimination
        if not (0.0 < rtol < 1.0 and atol > 0.0 and max_steps > 0):
            raise ModelSpecError(f"need 0 < rtol < 1, atol > 0, max_steps > 0; got {rtol}, {atol}, {max_steps}")
        varying_columns(names, tuple(varying))
        self.n_cmt = int(n_cmt)
        self.elimination = str(elimination)
        self.oral = bool(oral)
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.varying = tuple(str(v) for v in varying)

    @property
    def names(self) -> tuple[str, ...]:
        return parameter_names(self.n_cmt, self.elimination, self.oral)

    def make_node(self, theta, offsets, *design):
        theta = pt.as_tensor_variable(theta).astype("float64")
        offsets = pt.as_tensor_variable(offsets).astype("float64")
        if theta.ndim != 2:
            raise ModelSpecError(f"theta must be a matrix (n_subjects, {len(self.names)}), got ndim {theta.ndim}")
        if offsets.ndim != 2:
            raise ModelSpecError(f"offsets must be a matrix (n_segments, {len(self.varying)}), got ndim {offsets.ndim}")
        if len(design) != _N_DESIGN:
            raise ModelSpecError(f"OdeConcentration takes the design arrays {DESIGN_ARRAYS}, got {len(design)}")
        arrays = [pt.as_tensor_variable(v).astype("int64" if k in _INT_ARRAYS else "float64")
                  for k, v in zip(DESIGN_ARRAYS, design)]
        return Apply(self, [theta, offsets, *arrays], [pt.dvector(), pt.dmatrix(), pt.dtensor3()])

    def perform(self, node, inputs, outputs):
        theta, offsets = inputs[:2]
        a = dict(zip(DESIGN_ARRAYS, inputs[2:]))
        design = OdeDesign(n_subjects=theta.shape[0], dose_oral=a["dose_oral"], **{
            k: a[k] for k in DESIGN_ARRAYS if k != "dose_oral"})
        pidx, lower = solver_arguments(self.names)
        conc, jac, jseg, status = _ode.run_solver(
            design, slot_matrix(np.asarray(theta), pidx), pidx, lower, n_cmt=self.n_cmt,
            elimination=self.elimination, rtol=self.rtol, atol=self.atol, max_steps=self.max_steps,
            jacobian=True, offsets=np.asarray(offsets), varying=varying_columns(self.names, self.varying))
        for i in np.flatnonzero(status != 0):
            conc[a["obs_out"][a["obs_ptr"][i]:a["obs_ptr"][i + 1]]] = np.nan
        outputs[0][0] = conc
        outputs[1][0] = jac
        outputs[2][0] = jseg

    def infer_shape(self, fgraph, node, shapes):
        n_obs = shapes[3][0]
        seg_ptr = node.inputs[2 + DESIGN_ARRAYS.index("seg_ptr")]
        max_seg = pt.maximum(pt.max(seg_ptr[1:] - seg_ptr[:-1]), 1)
        return [(n_obs,), (n_obs, shapes[0][1]), (n_obs, max_seg, shapes[1][1])]

    def connection_pattern(self, node):
        return [[True, True, True], [True, True, True]] + [[False, False, False]] * _N_DESIGN

    def L_op(self, inputs, outputs, output_grads):
        theta, offsets = inputs[:2]
        a = dict(zip(DESIGN_ARRAYS, inputs[2:]))
        g_conc, g_jac, g_jseg = output_grads
        if not (isinstance(g_jac.type, DisconnectedType) and isinstance(g_jseg.type, DisconnectedType)):
            raise NotImplementedError("OdeConcentration: the Jacobian outputs have no gradient "
                                      "(second derivatives of the ODE solution are not implemented)")
        rest = [DisconnectedType()() for _ in range(_N_DESIGN)]
        if isinstance(g_conc.type, DisconnectedType):
            return [pt.zeros_like(theta), pt.zeros_like(offsets)] + rest
        # subject of each observation, in output order
        obs_ptr, obs_out, seg_ptr = a["obs_ptr"], a["obs_out"], a["seg_ptr"]
        n_sub = theta.shape[0]
        subject_sorted = pt.repeat(pt.arange(n_sub), obs_ptr[1:] - obs_ptr[:-1])
        subject = pt.zeros_like(obs_out)[obs_out].set(subject_sorted)
        g_theta = pt.zeros_like(theta)[subject].inc(g_conc[:, None] * outputs[1])
        if not self.varying:
            return [g_theta, pt.zeros_like(offsets)] + rest
        # dC/d offsets: row s of an observation's block is its subject's s-th segment (time order)
        jseg = outputs[2]
        n_seg = offsets.shape[0]
        first = seg_ptr[subject]
        count = (seg_ptr[1:] - seg_ptr[:-1])[subject]
        s = pt.arange(jseg.shape[1])
        row = pt.switch(s[None, :] < count[:, None], first[:, None] + s[None, :], n_seg)
        g_sorted = pt.zeros((n_seg + 1, offsets.shape[1]))[row].inc(g_conc[:, None, None] * jseg)[:-1]
        g_off = pt.zeros_like(offsets)[a["seg_order"]].set(g_sorted)
        return [g_theta, g_off] + rest


def ode_concentration_op(theta: Any, design: OdeDesign, *, n_cmt: int, elimination: str = "linear",
                         rtol: float = 1e-8, atol: float = 1e-12, max_steps: int = 100_000,
                         offsets: Any = None, varying: tuple[str, ...] = ()) -> Any:
    """Concentrations (a PyTensor vector, the design's observation order) of an ODE model.

    Parameters
    ----------
    theta
        Natural-scale parameters, ``(n_subjects, P)`` tensor, columns in the
        order of ``parameter_names(n_cmt, elimination, design.has_oral)``.
    design
        From :func:`poppk.pk.ode.ode_design` (constants of the graph).
    n_cmt, elimination, rtol, atol, max_steps
        As for :func:`poppk.pk.ode.solve_ode`.
    offsets, varying
        Piecewise-constant parameters, as for :func:`poppk.pk.ode.solve_ode`:
        a ``(n_segments, len(varying))`` tensor of log offsets (caller's
        segment order), differentiable.
    """
    if elimination not in ELIMINATIONS:
        parameter_names(n_cmt, elimination)  # raises with the valid names
    op = OdeConcentration(n_cmt, elimination, design.has_oral, rtol, atol, max_steps, tuple(varying))
    if offsets is None:
        if varying:
            raise ModelSpecError("time-varying parameters need offsets= (one row per segment)")
        offsets = np.zeros((design.n_segments, 0))
    conc, _, _ = op(theta, offsets, *[pt.constant(getattr(design, k)) for k in DESIGN_ARRAYS])
    return conc


def _kernel_version() -> int:
    """A hash of the solver's source (:func:`poppk.model.numba_dispatch.source_version`)."""
    return source_version(_ode, _register_numba)


def _register_numba() -> None:
    """Numba implementation for PyTensor's NUMBA mode (what nutpie compiles)."""
    from pytensor.link.numba.dispatch import basic as numba_basic

    register = funcify_register()
    version = _kernel_version()
    core = _ode._solve_all

    @register(OdeConcentration)
    def _funcify(op, node, **kwargs):
        pidx_t = tuple(int(v) for v in solver_arguments(op.names)[0])
        lower_t = tuple(float(v) for v in solver_arguments(op.names)[1])
        default_t = tuple(float(v) for v in _ode._SLOT_DEFAULT)
        tv_t = tuple(int(v) for v in varying_columns(op.names, op.varying))
        n_cmt, elim, oral = op.n_cmt, ELIMINATIONS[op.elimination], op.oral
        rtol, atol, max_steps = op.rtol, op.atol, op.max_steps
        n_par = len(pidx_t)
        n_tv = len(tv_t)
        tv_pad = tv_t + (0,)  # numba cannot type an empty tuple

        @numba_basic.numba_njit
        def ode_concentration(theta, offsets, obs_ptr, obs_time, obs_out, dose_ptr, dose_time, dose_amt, dose_dur,
                              dose_oral, seg_ptr, seg_time, seg_order):
            pidx = np.array(pidx_t, dtype=np.int64)
            lower = np.array(lower_t, dtype=np.float64)
            default = np.array(default_t, dtype=np.float64)
            tv = np.array(tv_pad, dtype=np.int64)[:n_tv]
            n_sub = theta.shape[0]
            slots = np.empty((n_sub, 9))
            for i in range(n_sub):
                for k in range(9):
                    slots[i, k] = default[k]
                for j in range(n_par):
                    slots[i, pidx[j]] = theta[i, j]
            n_seg = seg_time.shape[0]
            max_seg = 1
            for i in range(n_sub):
                if seg_ptr[i + 1] - seg_ptr[i] > max_seg:
                    max_seg = seg_ptr[i + 1] - seg_ptr[i]
            off = np.empty((n_seg, n_tv))
            for g in range(n_seg):
                for jj in range(n_tv):
                    off[g, jj] = offsets[seg_order[g], jj]
            n_obs = obs_time.shape[0]
            conc = np.zeros(n_obs)
            jac = np.zeros((n_obs, n_par))
            jseg = np.zeros((n_obs, max_seg, n_tv))
            status = np.zeros(n_sub, dtype=np.int64)
            core(slots, pidx, n_cmt, oral, elim, lower, obs_ptr, obs_time, obs_out, dose_ptr, dose_time,
                 dose_amt, dose_dur, dose_oral, seg_ptr, seg_time, off, tv, rtol, atol, max_steps, True, conc,
                 jac, jseg, status)
            for i in range(n_sub):
                if status[i] != 0:
                    for k in range(obs_ptr[i], obs_ptr[i + 1]):
                        conc[obs_out[k]] = np.nan
            return conc, jac, jseg

        return ode_concentration, version


_register_numba()
