"""Compile a model structure once; sample it on any dataset of that structure.

``nutpie.compile_pymc_model`` on a model whose data are graph constants costs
most of a fit (PyTensor rewriting, then numba compiling the log density and
its gradient), and a new dataset, other covariate values, other priors or
another size descriptor change only numbers.  Here the model is built once per
*structure* with every number a shared variable
(:class:`~poppk.model.inputs.GraphInputs`), compiled to numba with sizes left
free, and kept in an in-process cache keyed by :func:`structure_key`.  A fit of
a structure seen before rebuilds only the numbers (``build_model`` in constant
mode, a fraction of a second) and hands nutpie the compiled functions with the
new arrays as their data: nothing is compiled again, whatever the number of
subjects, observations or doses.

The log density is the same expression as the one ``build_model`` assembles
with constants (see ``tests/model/test_compile_cache.py``).  The key is what
changes the graph (:mod:`poppk.model.graph_key`); with it go the inputs'
names, types and sizes past the first axis (:meth:`GraphInputs.signature`: the padded doses per
observation, for instance).  The first axis of every input (subjects,
observations, ...) stays free.

nutpie samples through two C callbacks (:mod:`poppk.model.callbacks`) that read
the data arrays from the ``user_data`` block each fit brings, so one
compilation serves every size.  (Hence ``CompiledPyMCModel.with_data`` does not
apply to these models: a new fit of the structure is the way to new data.)

A new process (a dask worker, a new Python session, a notebook kernel) finds a
structure compiled before on this machine in the on-disk store
(:mod:`poppk.model.compile_store`): the rewritten graphs are loaded instead of
rebuilt and rewritten, and numba's disk cache serves their machine code and the
callbacks.  The store also says under which key and source numba's cache holds
the two graph functions, so such a process loads them without turning the
graphs into PyTensor functions again (:func:`_load_direct`; it falls back to
that when numba's cache no longer has them).  ``cache=False`` bypasses both
caches (a fresh compile: the reference in tests).

"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from poppk.errors import ModelSpecError
from poppk.model import callbacks as _callbacks
from poppk.model.design import ModelDesign
from poppk.model.init import LaplaceInit
from poppk.model.inputs import GraphInputs
from poppk.model.graph_key import structure_key
from poppk.model.spec import ModelSpec

__all__ = ["structure_key", "compile_nutpie", "cache_info", "clear_cache", "logp_and_gradient"]

_LOCK = threading.RLock()
_CACHE: dict[tuple[Any, ...], "_Compiled"] = {}
_COMPILING: dict[tuple[Any, ...], threading.Lock] = {}  # one thread compiles a key, the others wait
_STATS = {"hits": 0, "misses": 0}


def logp_and_gradient(compiled: Any, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Evaluate a nutpie compiled model's log density and gradient at ``x`` (the C callback
    the sampler calls, on the data it carries)."""
    import ctypes

    x = np.ascontiguousarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    logp = np.zeros(())
    fn = compiled.compiled_logp_func.ctypes
    code = fn(ctypes.c_uint64(len(x)), x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
              grad.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), logp.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
              ctypes.c_void_p(compiled.user_data.ctypes.data))
    if code not in (0, 3, 4):
        raise RuntimeError(f"log density callback failed (code {code})")
    return float(logp), grad


def cache_info() -> dict[str, int]:
    """``{"hits", "misses", "size"}`` of the in-process cache."""
    with _LOCK:
        return {**_STATS, "size": len(_CACHE)}


def clear_cache() -> None:
    """Forget every compiled structure (and reset the counters)."""
    with _LOCK:
        _CACHE.clear()
        _STATS.update(hits=0, misses=0)


@dataclass
class _Compiled:
    """One compiled structure: the template model's functions and how to feed them."""

    spec: ModelSpec
    signature: tuple[Any, ...]
    shared_vars: dict[str, Any]
    logp_cfunc: Any
    expand_cfunc: Any
    logp_fn: Any
    expand_fn: Any
    free_names: list[str]
    expanded_names: list[str]
    free_shape_fn: Any
    rest_shape_fn: Any
    transform_fn: Any
    free_vars: list[tuple[str, str, tuple[Any, ...]]]  # (name, dtype, static shape) of the free variables
    dims: dict[str, tuple[str, ...]]
    compile_s: float
    phases: dict[str, float]
    found: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def compile_nutpie(
    spec: ModelSpec,
    design: ModelDesign,
    init: LaplaceInit | None,
    *,
    initial_points: Mapping[str, Any],
    var_names: list[str],
    jitter: str = "z",
    cache: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """A nutpie compiled model of ``spec`` on ``design``, from the cache when possible.

    Parameters
    ----------
    spec
        Resolved spec.
    design, init
        The design and Laplace-EM result (``build_model``'s inputs).
    initial_points
        Start values (natural scale) of every free variable, by name.
    var_names
        Variables to keep in the trace (free variables are always kept).
    jitter
        ``"z"``: U(-1, 1) jitter on the random-effect coordinates only; ``"all"``:
        on every free variable (in the sampler's unconstrained space).
    cache
        Look the structure up in (and add it to) the in-process cache;
        ``False`` compiles a fresh copy (the reference for tests).

    Returns
    -------
    (CompiledPyMCModel, info)
        ``info``: ``{"cache": "hit" | "miss" | "off", "compile_s": ...}``.
    """
    from poppk.model.build import build_model

    t0 = time.perf_counter()
    # the numbers of this fit: the build in constant mode (its signature fixes the other sizes)
    values_inputs = GraphInputs(shared=False)
    build_model(spec, design=design, init=init, inputs=values_inputs)
    positions = {name: f"coef{i}" for i, (name, _) in enumerate(spec.coefficients)}
    key = (structure_key(spec, design), values_inputs.signature(), tuple(positions.get(v, v) for v in var_names),
           jitter)
    def template() -> Any:
        return build_model(spec, design=design, init=init, inputs=GraphInputs(shared=True))

    source = "memory"  # or "disk" / "compiled": where a structure not in memory came from
    if cache:
        with _LOCK:
            compiled = _CACHE.get(key)
            gate = _COMPILING.setdefault(key, threading.Lock()) if compiled is None else None
        if gate is not None:
            with gate:  # one thread compiles a key; others wait for it and take its result
                compiled = _CACHE.get(key)
                if compiled is None:
                    compiled, source = _compile(key, template, list(var_names), values_inputs.values(), use_store=True)
                    with _LOCK:
                        _CACHE[key] = compiled
        with _LOCK:
            _STATS["hits" if source == "memory" else "misses"] += 1
        status = "hit" if source == "memory" else "miss"
    else:
        compiled, source = _compile(key, template, list(var_names), values_inputs.values(), use_store=False)
        status = "off"
    if values_inputs.signature() != compiled.signature:  # the key holds it: a broken invariant
        raise ModelSpecError("internal: a compiled model's inputs differ from the fit's")
    to_fit = _rename(compiled.spec, spec)  # template name -> this spec's name
    to_template = {v: k for k, v in to_fit.items()}
    ip = {to_template.get(k, k): v for k, v in initial_points.items()}
    ip = {name: ip[name] for name, _, _ in compiled.free_vars if name in ip}
    result = _instantiate(compiled, values_inputs.values(), ip, design, spec, to_fit, jitter)
    info = {"cache": status, "compile_s": time.perf_counter() - t0}
    if status != "hit":
        info["phases"] = dict(compiled.phases)
        info["source"] = source
    return result, info


def _rename(template_spec: ModelSpec, spec: ModelSpec) -> dict[str, str]:
    """Coefficient names of the template spec -> those of ``spec`` (same positions)."""
    return {a: b for (a, _), (b, _) in zip(template_spec.coefficients, spec.coefficients) if a != b}


# ------------------------------------------------------------------ compiling

def _free_shape(model: Any, rv: Any) -> Any:
    """The shape of a free variable's unconstrained value: static where known, else a graph of
    the inputs (the random variable's own node rewritten away, so no RNG enters the model)."""
    import pytensor
    import pytensor.tensor as pt

    value = model.rvs_to_values[rv]
    static = value.type.shape
    if all(s is not None for s in static):
        return tuple(int(s) for s in static)
    if value.ndim != rv.ndim:
        raise ModelSpecError(f"internal: {rv.name}: a transform that changes the rank and a free size")
    shape = pytensor.graph.rewrite_graph(pt.as_tensor(rv.shape), include=("ShapeOpt", "canonicalize"))
    from pytensor.graph.traversal import ancestors

    if any(a is rv or getattr(a.type, "__class__", None).__name__ == "RandomGeneratorType" for a in ancestors([shape])):
        raise ModelSpecError(f"internal: the size of {rv.name} is not a function of the model's inputs")
    return tuple(s if s is not None else shape[i] for i, s in enumerate(static))


def _graphs(model: Any, var_names: list[str]) -> dict[str, Any]:
    """The PyTensor half of compiling: the rewritten log density with its gradient, the
    expansion to traced values and the small helper graphs, as one picklable mapping (the
    shared variables are the same objects throughout, so they stay so through a pickle)."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc

    free_rvs = list(model.free_RVs)
    value_vars = [model.rvs_to_values[rv] for rv in free_rvs]
    logp = model.logp()
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = pytensor.graph.rewrite_graph(logp, include=rewrites)
    grads = pytensor.gradient.grad(logp, value_vars)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in grads])

    joined = pt.dvector("_unconstrained_point")
    replacements = {}
    offset: Any = 0
    for rv, value in zip(free_rvs, value_vars):
        shape = _free_shape(model, rv)
        size = int(np.prod(shape)) if all(isinstance(s, int) for s in shape) else pt.prod(pt.stack(list(shape)))
        replacements[value] = joined[offset: offset + size].reshape(shape).astype(value.dtype)
        offset = offset + size
    logp_r, grad_r = pytensor.clone_replace([logp, grad], replacements)
    with model:
        logp_fn = compile_pymc((joined,), (logp_r, grad_r), mode="NUMBA")

    free_names = [v.name for v in value_vars]
    remaining = [v for v in model.unobserved_value_vars if v.name not in free_names and v.name in set(var_names)]
    expanded_names = free_names + [v.name for v in remaining]
    allvars = pt.concatenate([joined, *[pt.as_tensor(v).ravel() for v in remaining]])
    with model:
        expand_fn = compile_pymc((joined,), [allvars], givens=list(replacements.items()), mode="NUMBA")

    shared_vars = dict(model.poppk_inputs.variables)
    logp_shared = [v.name for v in logp_fn.get_shared()]
    expand_shared = [v.name for v in expand_fn.get_shared()]
    for name in logp_shared + expand_shared:
        if name not in shared_vars:
            raise ModelSpecError(f"internal: the compiled model reads a shared variable {name!r} that is no input")

    # sizes and start values: small graphs, compiled in Python mode and called with the
    # template's shared variables set to a fit's values (under the structure's lock)
    free_shapes = [pt.as_tensor(list(_free_shape(model, rv)), dtype="int64") for rv in free_rvs]
    rest_shapes = pytensor.clone_replace([pt.as_tensor(v.shape) for v in remaining], replacements)
    free_shapes = pytensor.graph.rewrite_graph(free_shapes, include=("ShapeOpt", "canonicalize"))
    rest_shapes = pytensor.graph.rewrite_graph(rest_shapes, include=("ShapeOpt", "canonicalize"))
    natural = [rv.type() for rv in free_rvs]
    transformed = []
    for rv, x in zip(free_rvs, natural):
        tr = model.rvs_to_transforms.get(rv)
        transformed.append(x if tr is None else tr.forward(x, *rv.owner.inputs))
    dims = {}
    for name in expanded_names:
        if name in ("theta", "z"):
            dims[name] = ("id", "iiv")
        elif name == "omega_corr":
            dims[name] = ("iiv", "iiv_bis")

    def rewritten(fn: Any) -> tuple[Any, ...]:
        maker = fn.maker
        return (maker.inputs, maker.outputs, maker.fgraph.inputs, maker.fgraph.outputs)

    return {
        "spec": model.poppk_spec,
        "signature": model.poppk_inputs.signature(),
        "shared_vars": {k: shared_vars[k] for k in dict.fromkeys(logp_shared + expand_shared)},
        "logp": rewritten(logp_fn),
        "expand": rewritten(expand_fn),
        "logp_shared": logp_shared,
        "expand_shared": expand_shared,
        "free_names": free_names,
        "expanded_names": expanded_names,
        "free_vars": [(rv.name, rv.type.dtype, tuple(rv.type.shape)) for rv in free_rvs],
        "joined": joined,
        "free_shapes": free_shapes,
        "rest_shapes": rest_shapes,
        "natural": natural,
        "transformed": transformed,
        "dims": dims,
    }


def _function(rewritten: tuple[Any, ...]) -> Any:
    """A NUMBA-mode PyTensor function of an already rewritten graph (no rewriting again)."""
    from pytensor.compile.function.types import Function, FunctionMaker
    from pytensor.compile.mode import get_mode
    from pytensor.graph.destroyhandler import DestroyHandler
    from pytensor.graph.fg import FunctionGraph

    ins, outs, fg_in, fg_out = rewritten
    fgraph = FunctionGraph(fg_in, fg_out, clone=False, update_mapping={})
    if any(getattr(node.op, "destroy_map", None) for node in fgraph.apply_nodes):
        fgraph.attach_feature(DestroyHandler())
    maker = FunctionMaker(ins, outs, fgraph=fgraph, mode=get_mode("NUMBA"), accept_inplace=True,
                          no_fgraph_prep=True, on_unused_input="ignore", function_builder=Function)
    return maker.create([i.value for i in ins])


def _direct(fn: Any) -> tuple[Any, tuple[str, str, str] | None]:
    """The numba function of ``fn`` (PyTensor's, compiled as PyTensor compiles it), and how to
    find it again in numba's disk cache.

    PyTensor's NUMBA linker jits a wrapper ``f(*args): return fgraph_fn(*args)``, cached on
    disk under a key of the whole graph.  The wrapper's source is the same for every graph,
    so the source and the key are all :func:`_load_direct` needs to load the machine code in
    a later process without building the PyTensor function (its per-node conversion is most
    of a warm load).  Returns ``(fn.vm.jit_fn, (source, name, key))``, or ``None`` in place
    of the triple when PyTensor did not wrap or cache it as expected.

    (Jitting ``fgraph_fn`` itself would skip the wrapper's second optimisation of the linked
    graph, 0.70x numba time on the first compile, but gave a gradient 1.10x slower: tried and
    reverted.)
    """
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    outer = fn.vm.jit_fn
    wrapper = getattr(outer, "py_func", None)
    key = CACHED_SRC_FUNCTIONS.get(wrapper) if wrapper is not None else None
    source = getattr(wrapper, "__source__", None)
    if key is None or source is None or wrapper.__closure__ is not None:
        return outer, None
    return outer, (source, wrapper.__name__, key)


def _load_direct(found: tuple[str, str, str], args: list[np.ndarray]) -> Any | None:
    """The function :func:`_direct` compiled, from numba's disk cache, called once on ``args``
    (which loads it); ``None`` if the cache does not have it.

    The function is rebuilt from its source alone: numba finds a cached entry by the key
    (PyTensor's key of the whole graph: its nodes, their order and constants) and the
    function's bytecode, and never looks at the globals (the graph's function) unless it
    must compile, which here fails for want of them -- a miss.
    """
    import warnings

    from pytensor.link.numba.cache import compile_numba_function_src
    from pytensor.link.numba.dispatch.basic import numba_njit

    source, name, key = found
    fn = compile_numba_function_src(source, name, {}, cache_key=key)
    dispatcher = numba_njit(fn, final_function=True, cache=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dispatcher(*args)  # loads from the cache; on a miss, typing fails on the first global
    except Exception:  # noqa: BLE001 - any failure is a miss (the caller compiles)
        return None
    if len(dispatcher.overloads) != 1:
        return None
    return dispatcher


def _link(g: dict[str, Any], store_key: str | None, values: Mapping[str, np.ndarray],
          phases: dict[str, float], found: Mapping[str, Any] | None = None) -> _Compiled:
    """The numba half: compile (or load from numba's disk cache) the functions of :func:`_graphs`
    and nutpie's C callbacks around them, first called on ``values`` (a fit's inputs).
    ``store_key`` names the callbacks in numba's disk cache (``None``: in memory only).
    ``found``: what :func:`_direct` returned for ``"logp"`` and ``"expand"`` in an earlier
    process; when numba's cache has both, the PyTensor functions are not rebuilt (their
    ``logp_fn``/``expand_fn`` are then ``None``).  The result's ``found`` is this process's
    (for the store)."""
    import pytensor

    t0 = time.perf_counter()
    shared_vars = g["shared_vars"]
    for name, var in shared_vars.items():
        var.set_value(np.array(values[name], order="C"))
    free_shape_fn = pytensor.function([], g["free_shapes"], mode="FAST_COMPILE", on_unused_input="ignore")
    rest_shape_fn = pytensor.function([g["joined"]], g["rest_shapes"], mode="FAST_COMPILE",
                                      on_unused_input="ignore")
    transform_fn = pytensor.function(g["natural"], g["transformed"], mode="FAST_COMPILE", on_unused_input="ignore")
    current = {k: np.array(v.get_value(), order="C") for k, v in shared_vars.items()}
    layout = [(k, v.ndim) for k, v in current.items()]
    x_probe = np.zeros(sum(int(np.prod(sh)) for sh in free_shape_fn()))
    args = {part: [x_probe, *[current[k] for k in g[f"{part}_shared"]]] for part in ("logp", "expand")}
    jit: dict[str, Any] = {}
    if found and store_key is not None and all(found.get(part) for part in ("logp", "expand")):
        for part in ("logp", "expand"):
            jit[part] = _load_direct(found[part], args[part])
            if jit[part] is None:
                jit.clear()
                break
    fns: dict[str, Any] = {"logp": None, "expand": None}
    new_found: dict[str, Any] = dict(found or {}) if jit else {}
    if not jit:
        for part in ("logp", "expand"):
            fns[part] = _function(g[part])
            jit[part], new_found[part] = _direct(fns[part])
    phases["helpers_s"] = time.perf_counter() - t0
    # numba: the functions first (typed as the callbacks will call them), then the callbacks
    t1 = time.perf_counter()
    jit["logp"](*args["logp"])
    phases["numba_logp_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    logp_cfunc = _callbacks.callback("logp", jit["logp"], layout, g["logp_shared"],
                                     [current[k].dtype for k in g["logp_shared"]], cache_key=store_key)
    phases["numba_logp_callback_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    jit["expand"](*args["expand"])
    expand_cfunc = _callbacks.callback("expand", jit["expand"], layout, g["expand_shared"],
                                       [current[k].dtype for k in g["expand_shared"]], cache_key=store_key)
    phases["numba_expand_s"] = time.perf_counter() - t1
    compiled = _Compiled(
        spec=g["spec"],
        signature=g["signature"],
        shared_vars=shared_vars,
        logp_cfunc=logp_cfunc,
        expand_cfunc=expand_cfunc,
        logp_fn=fns["logp"],
        expand_fn=fns["expand"],
        free_names=g["free_names"],
        expanded_names=g["expanded_names"],
        free_shape_fn=free_shape_fn,
        rest_shape_fn=rest_shape_fn,
        transform_fn=transform_fn,
        free_vars=g["free_vars"],
        dims=g["dims"],
        compile_s=0.0,
        phases=phases,
    )
    compiled.found = new_found
    return compiled


def _compile(key: Any, build_template: Any, var_names: list[str], values: Mapping[str, np.ndarray],
             use_store: bool) -> tuple[_Compiled, str]:
    """Compile a structure: from the disk store's rewritten graphs when it has them, else from
    the template model ``build_template()`` (and store its graphs, without the template's
    data).  ``values`` are the fit's inputs (the numbers numba is first called with).
    Returns the compiled structure and ``"disk"`` or ``"compiled"``."""
    from poppk.model import compile_store

    t0 = time.perf_counter()
    name = compile_store.digest(key) if use_store and compile_store.store_dir() is not None else None
    graphs = compile_store.load(name) if name else None
    if graphs is not None:
        try:
            found = compile_store.load(name + _FOUND)
            compiled = _link(graphs, name[:40], values, {"pytensor_s": time.perf_counter() - t0}, found=found)
            if compiled.found and compiled.found != found:
                compile_store.save(name + _FOUND, compiled.found)
            compiled.compile_s = time.perf_counter() - t0
            return compiled, "disk"
        except Exception as err:  # noqa: BLE001 - an entry that loads but does not link: drop it, compile
            compile_store.discard(name, reason=repr(err))
            compile_store.discard(name + _FOUND, reason=repr(err))
    graphs = _graphs(build_template(), list(var_names))
    # the store keeps graphs, not patients: every input emptied before pickling (the fit's
    # values are set again when linking)
    _empty_inputs(graphs)
    # link what a later process will load: the graphs as unpickled, whose node order numba's
    # key follows (the live graphs if they cannot be pickled)
    blob = compile_store.save(name, graphs) if name else None
    if blob is not None:
        graphs = compile_store.loads(blob)
    compiled = _link(graphs, name[:40] if blob is not None else None, values,
                     {"pytensor_s": time.perf_counter() - t0})
    if blob is not None and all(compiled.found.get(part) for part in ("logp", "expand")):
        compile_store.save(name + _FOUND, compiled.found)
    compiled.compile_s = time.perf_counter() - t0
    return compiled, "compiled"


#: Suffix of the store entry that says where numba's cache holds a structure's functions.
_FOUND = ".numba"


def _empty_inputs(g: dict[str, Any]) -> None:
    """Replace the value of every data input in the graphs by an empty array (same type)."""
    from pytensor.compile.sharedvalue import SharedVariable

    shared = list(g["shared_vars"].values())
    for part in ("logp", "expand"):
        shared += [i.variable for i in g[part][0] if isinstance(i.variable, SharedVariable)]
    for var in shared:
        if var.name in g["shared_vars"]:
            shape = tuple(0 if n is None else n for n in var.type.shape)  # free sizes empty, fixed kept
            var.set_value(np.zeros(shape, dtype=var.type.dtype))


# --------------------------------------------------------------- instantiating

def _instantiate(
    compiled: _Compiled,
    values: dict[str, np.ndarray],
    initial_points: Mapping[str, Any],
    design: ModelDesign,
    spec: ModelSpec,
    rename: dict[str, str],
    jitter: str,
) -> Any:
    """A CompiledPyMCModel of ``compiled`` on one fit's values."""
    import pandas as pd
    from nutpie.compile_pymc import CompiledPyMCModel

    shared_data = {}
    for name in compiled.shared_vars:
        arr = np.array(values[name], order="C", copy=True)
        arr.flags.writeable = False
        shared_data[name] = arr
    user_data = _callbacks.user_data(list(shared_data.values()))
    with compiled.lock:
        for name, var in compiled.shared_vars.items():
            var.set_value(shared_data[name])
        shapes = [tuple(int(s) for s in sh) for sh in compiled.free_shape_fn()]
        n_dim = sum(int(np.prod(sh)) for sh in shapes)
        shapes += [tuple(int(s) for s in sh) for sh in compiled.rest_shape_fn(np.zeros(n_dim))] if compiled.expanded_names[
            len(shapes):] else []
        natural = []
        for key, dtype, static in compiled.free_vars:
            if key not in initial_points:
                raise ModelSpecError(f"internal: no initial value for {key!r}")
            natural.append(np.asarray(initial_points[key], dtype=dtype).reshape(static if all(
                s is not None for s in static) else np.shape(initial_points[key])))
        start = [np.asarray(v, dtype=np.float64) for v in compiled.transform_fn(*natural)]
    n_free = len(compiled.free_names)
    free_shapes = shapes[:n_free]
    for name, v, sh in zip(compiled.free_names, start, free_shapes):
        if tuple(v.shape) != sh:
            raise ModelSpecError(f"initial value of {name} has shape {v.shape}, the model expects {sh}")
    x0 = np.concatenate([v.ravel() for v in start])
    blocks, pos = [], 0
    for name, sh in zip(compiled.free_names, free_shapes):
        n = int(np.prod(sh))
        if jitter == "all" or name == "z":
            blocks.append((pos, pos + n))
        pos += n

    def initial_point(seed: Any = None) -> np.ndarray:
        # PyMC's make_initial_point_fn, drawn the same way: one PCG64 per jittered variable
        # spawned from the seed, U(-1, 1) added in the unconstrained space
        out = x0.copy()
        for (a, b), sub in zip(blocks, np.random.SeedSequence(seed).spawn(len(blocks))):
            out[a:b] = out[a:b] + np.random.Generator(np.random.PCG64(sub)).uniform(-1.0, 1.0, size=b - a)
        return out

    def out_name(name: str) -> str:
        for old, new in rename.items():
            if name == old or name.startswith(old + "_"):
                return new + name[len(old):]
        return name

    names = [out_name(n) for n in compiled.expanded_names]
    slices, count = [], 0
    for sh in shapes:
        n = int(np.prod(sh))
        slices.append(slice(count, count + n))
        count += n
    coords: dict[str, Any] = {
        "id": pd.Index([str(s) for s in design.subject_ids]),
        "iiv": pd.Index(list(spec.iiv)),
        "iiv_bis": pd.Index(list(spec.iiv)),
    }
    flat_names = []
    for base, sh in zip(names[:n_free], free_shapes):
        flat_names += [base] if not sh else [f"{base}_{'.'.join(map(str, i))}" for i in np.ndindex(*sh)]
    coords["unconstrained_parameter"] = pd.Index(flat_names)
    return CompiledPyMCModel(
        _n_dim=int(len(x0)),
        dims={out_name(k): v for k, v in compiled.dims.items()},
        _coords=coords,
        _shapes={n: sh for n, sh in zip(names, shapes)},
        compiled_logp_func=compiled.logp_cfunc,
        compiled_expand_func=compiled.expand_cfunc,
        initial_point_func=initial_point,
        shared_data=shared_data,
        user_data=user_data,
        n_expanded=int(count),
        shape_info=(names, slices, shapes),
        logp_func=compiled.logp_fn,
        expand_func=compiled.expand_fn,
    )
