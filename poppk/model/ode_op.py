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
from poppk.pk.ode import ELIMINATIONS, OdeDesign, parameter_names, slot_matrix, solver_arguments

__all__ = ["OdeConcentration", "ode_concentration_op"]

_N_DESIGN = 8  # obs_ptr, obs_time, obs_out, dose_ptr, dose_time, dose_amt, dose_dur, dose_oral


class OdeConcentration(Op):
    """``(theta, *design arrays) -> (concentrations, dC/dθ)``; see the module docstring."""

    __props__ = ("n_cmt", "elimination", "oral", "rtol", "atol", "max_steps")

    def __init__(self, n_cmt: int, elimination: str = "linear", oral: bool = False, rtol: float = 1e-8,
                 atol: float = 1e-12, max_steps: int = 100_000) -> None:
        parameter_names(n_cmt, elimination, oral)  # validates n_cmt and elimination
        if not (0.0 < rtol < 1.0 and atol > 0.0 and max_steps > 0):
            raise ModelSpecError(f"need 0 < rtol < 1, atol > 0, max_steps > 0; got {rtol}, {atol}, {max_steps}")
        self.n_cmt = int(n_cmt)
        self.elimination = str(elimination)
        self.oral = bool(oral)
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)

    @property
    def names(self) -> tuple[str, ...]:
        return parameter_names(self.n_cmt, self.elimination, self.oral)

    def make_node(self, theta, obs_ptr, obs_time, obs_out, dose_ptr, dose_time, dose_amt, dose_dur, dose_oral):
        theta = pt.as_tensor_variable(theta).astype("float64")
        if theta.ndim != 2:
            raise ModelSpecError(f"theta must be a matrix (n_subjects, {len(self.names)}), got ndim {theta.ndim}")
        ints = [pt.as_tensor_variable(v).astype("int64") for v in (obs_ptr, obs_out, dose_ptr, dose_oral)]
        floats = [pt.as_tensor_variable(v).astype("float64") for v in (obs_time, dose_time, dose_amt, dose_dur)]
        ins = [theta, ints[0], floats[0], ints[1], ints[2], floats[1], floats[2], floats[3], ints[3]]
        return Apply(self, ins, [pt.dvector(), pt.dmatrix()])

    def perform(self, node, inputs, outputs):
        theta, obs_ptr, obs_time, obs_out, dose_ptr, dose_time, dose_amt, dose_dur, dose_oral = inputs
        design = OdeDesign(n_subjects=theta.shape[0], obs_ptr=obs_ptr, obs_time=obs_time, obs_out=obs_out,
                           dose_ptr=dose_ptr, dose_time=dose_time, dose_amt=dose_amt, dose_dur=dose_dur,
                           dose_oral=dose_oral)
        pidx, lower = solver_arguments(self.names)
        conc, jac, status = _ode.run_solver(design, slot_matrix(np.asarray(theta), pidx), pidx, lower,
                                            n_cmt=self.n_cmt, elimination=self.elimination, rtol=self.rtol,
                                            atol=self.atol, max_steps=self.max_steps, jacobian=True)
        for i in np.flatnonzero(status != 0):
            conc[obs_out[obs_ptr[i]:obs_ptr[i + 1]]] = np.nan
        outputs[0][0] = conc
        outputs[1][0] = jac

    def infer_shape(self, fgraph, node, shapes):
        n_obs = shapes[2][0]
        return [(n_obs,), (n_obs, shapes[0][1])]

    def connection_pattern(self, node):
        return [[True, True]] + [[False, False]] * _N_DESIGN

    def L_op(self, inputs, outputs, output_grads):
        theta, obs_ptr, _, obs_out = inputs[:4]
        g_conc, g_jac = output_grads
        if not isinstance(g_jac.type, DisconnectedType):
            raise NotImplementedError("OdeConcentration: the Jacobian output has no gradient "
                                      "(second derivatives of the ODE solution are not implemented)")
        if isinstance(g_conc.type, DisconnectedType):
            return [pt.zeros_like(theta)] + [DisconnectedType()() for _ in range(_N_DESIGN)]
        # subject of each observation, in output order
        n_sub = theta.shape[0]
        counts = obs_ptr[1:] - obs_ptr[:-1]
        subject_sorted = pt.repeat(pt.arange(n_sub), counts)
        subject = pt.zeros_like(obs_out)[obs_out].set(subject_sorted)
        g_theta = pt.zeros_like(theta)[subject].inc(g_conc[:, None] * outputs[1])
        return [g_theta] + [DisconnectedType()() for _ in range(_N_DESIGN)]


def ode_concentration_op(theta: Any, design: OdeDesign, *, n_cmt: int, elimination: str = "linear",
                         rtol: float = 1e-8, atol: float = 1e-12, max_steps: int = 100_000) -> Any:
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
    """
    if elimination not in ELIMINATIONS:
        parameter_names(n_cmt, elimination)  # raises with the valid names
    op = OdeConcentration(n_cmt, elimination, design.has_oral, rtol, atol, max_steps)
    arrays = [design.obs_ptr, design.obs_time, design.obs_out, design.dose_ptr, design.dose_time,
              design.dose_amt, design.dose_dur, design.dose_oral]
    conc, _ = op(theta, *[pt.constant(a) for a in arrays])
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
        n_cmt, elim, oral = op.n_cmt, ELIMINATIONS[op.elimination], op.oral
        rtol, atol, max_steps = op.rtol, op.atol, op.max_steps
        n_par = len(pidx_t)

        @numba_basic.numba_njit
        def ode_concentration(theta, obs_ptr, obs_time, obs_out, dose_ptr, dose_time, dose_amt, dose_dur,
                              dose_oral):
            pidx = np.array(pidx_t, dtype=np.int64)
            lower = np.array(lower_t, dtype=np.float64)
            default = np.array(default_t, dtype=np.float64)
            n_sub = theta.shape[0]
            slots = np.empty((n_sub, 9))
            for i in range(n_sub):
                for k in range(9):
                    slots[i, k] = default[k]
                for j in range(n_par):
                    slots[i, pidx[j]] = theta[i, j]
            n_obs = obs_time.shape[0]
            conc = np.zeros(n_obs)
            jac = np.zeros((n_obs, n_par))
            status = np.zeros(n_sub, dtype=np.int64)
            core(slots, pidx, n_cmt, oral, elim, lower, obs_ptr, obs_time, obs_out, dose_ptr, dose_time,
                 dose_amt, dose_dur, dose_oral, rtol, atol, max_steps, True, conc, jac, status)
            for i in range(n_sub):
                if status[i] != 0:
                    for k in range(obs_ptr[i], obs_ptr[i + 1]):
                        conc[obs_out[k]] = np.nan
            return conc, jac

        return ode_concentration, version


_register_numba()
