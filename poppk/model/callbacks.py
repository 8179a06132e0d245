"""nutpie's C callbacks around numba-compiled PyTensor functions, called by address.

nutpie samples through two C callbacks: the log density with its gradient, and
the expansion of a point into the traced values.  Those built here read the
point's length from the call and the data arrays (address and sizes) from the
``user_data`` block each fit brings, so one compilation serves every size, and
they call the compiled PyTensor function by address instead of linking it in,
which would have numba optimise and generate the whole log density a second
time.  With a ``cache_key`` the callback is kept in numba's on-disk cache (under
PyTensor's numba cache directory): the address it calls goes through a symbol
named by the key, bound to the current process's function before the callback
is loaded.  The callbacks check and copy with scalar loops rather than numpy
calls (``np.all(np.isfinite(out))``, ``out[...] = grad``): the same checks, but
numba then need not type and compile those numpy implementations in every new
structure's callback (a compile measured 2.5x shorter).
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import numpy as np

from poppk.errors import ModelSpecError

_LOG = logging.getLogger(__name__)

__all__ = ["callback", "user_data"]

def _c_signature(n_args: int) -> Any:
    import numba

    dbl = numba.types.CPointer(numba.types.double)
    if n_args == 5:
        return numba.types.int64(numba.types.uint64, dbl, dbl, dbl, numba.types.voidptr)
    return numba.types.int64(numba.types.uint64, numba.types.uint64, dbl, dbl, numba.types.voidptr)


_PROXY_COUNT = [0]


def _address_proxy(dispatcher: Any, symbol: str | None = None) -> Any:
    """An njit function that calls ``dispatcher``'s one compiled overload by its address.

    Calling the dispatcher itself from the C callback would link its whole LLVM
    module into the callback and optimise and generate it a second time (as long
    as compiling it in the first place); through the address the callback stays
    a few instructions.  ``dispatcher`` must be kept alive as long as the proxy.
    ``symbol`` names the address (a stable name lets a cached callback find this
    process's function); by default a name unique in the process.
    """
    import llvmlite.binding as llb
    import numba
    from numba.core import cgutils
    from numba.extending import intrinsic

    if len(dispatcher.overloads) != 1:
        raise ModelSpecError(f"internal: expected one compiled overload, got {len(dispatcher.overloads)}")
    cres = next(iter(dispatcher.overloads.values()))
    address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    if symbol is None:
        _PROXY_COUNT[0] += 1
        symbol = f"poppk_compiled_model_{_PROXY_COUNT[0]}_{address:x}"
    llb.add_symbol(symbol, address)
    restype, argtypes = cres.signature.return_type, cres.signature.args
    # PyTensor's function takes *args: numba compiled it for one tuple argument
    star = len(argtypes) == 1 and isinstance(argtypes[0], numba.core.types.BaseTuple)
    params = tuple(argtypes[0].types) if star else tuple(argtypes)
    names = [f"a{i}" for i in range(len(params))]

    def codegen(context, builder, signature, args):  # pragma: no cover - numba
        fnty = context.call_conv.get_function_type(restype, argtypes)
        fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
        call_args = [context.make_tuple(builder, argtypes[0], args)] if star else list(args)
        status, res = context.call_conv.call_function(builder, fn, restype, argtypes, call_args)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return res

    def typer(typingctx, *args):  # pragma: no cover - numba
        if tuple(args) != params:
            raise numba.core.errors.TypingError(f"compiled model called with {args}, expects {params}")
        return restype(*params), codegen

    env = {"typer": typer}
    exec(f"def call_compiled(typingctx, {', '.join(names)}):\n    return typer(typingctx, {', '.join(names)})", env)
    call = intrinsic(env["call_compiled"])
    env2 = {"call": call}
    exec(f"def proxy({', '.join(names)}):\n    return call({', '.join(names)})", env2)
    return numba.njit(env2["proxy"])


def _callback_source(kind: str, layout: list[tuple[str, int]], needed: list[str]) -> str:
    """Source of a C callback (nutpie's signatures) that unpacks the data arrays from
    ``user_data``: per array of ``layout`` (name, ndim), ``[address, dim_0, ...]`` as uint64
    words; ``needed`` are the arrays ``inner`` takes after the point, in order."""
    offsets, off = {}, 0
    for name, nd in layout:
        offsets[name] = (off, nd)
        off += 1 + nd
    lines, args = [], []
    for i, name in enumerate(needed):
        o, nd = offsets[name]
        shape = ", ".join(f"ud[{o + 1 + d}]" for d in range(nd))
        lines.append(f"    a{i} = carray(void_pointer(ud[{o}]), ({shape}{',' if nd == 1 else ''}), dtype{i})")
        args.append(f"a{i}")
    call = ", ".join(["x", *args])
    unpack = "\n".join(lines)
    if kind == "logp":
        return f"""
def callback(dim, x_, out_, logp_, user_data_):
    ud = carray(user_data_, ({max(off, 1)},), np.uint64)
    x = carray(x_, (dim,))
    out = carray(out_, (dim,))
    logp = carray(logp_, ())
{unpack}
    logp_val, grad = inner({call})
    if grad.shape[0] != dim:
        return -1
    logp[()] = logp_val
    finite = True
    for i in range(dim):
        g = grad[i]
        out[i] = g
        if not isfinite(g):
            finite = False
    if not finite:
        return 3
    if not isfinite(logp[()]):  # logp_val may be a float or a 0-d array
        return 4
    return 0
"""
    return f"""
def callback(dim, expanded, x_, out_, user_data_):
    ud = carray(user_data_, ({max(off, 1)},), np.uint64)
    x = carray(x_, (dim,))
    out = carray(out_, (expanded,))
{unpack}
    (values,) = inner({call})
    if values.shape[0] != expanded:
        return -1
    for i in range(expanded):
        out[i] = values[i]
    return 0
"""


def callback(kind: str, inner: Any, layout: list[tuple[str, int]], needed: list[str], dtypes: list[Any],
             cache_key: str | None = None) -> Any:
    """Compile nutpie's ``logp`` or ``expand`` C callback around ``inner`` (called by address).

    Parameters
    ----------
    kind
        ``"logp"`` or ``"expand"``.
    inner
        The numba dispatcher of the PyTensor function, with its one compiled overload.
    layout
        ``(name, ndim)`` of every array in ``user_data``, in order.
    needed
        The arrays ``inner`` takes after the point, in order.
    dtypes
        Their dtypes.
    cache_key
        Keep the compiled callback in numba's disk cache under this key, extended
        by a hash of the source, the dtypes and ``inner``'s signature (so an entry
        never serves another layout); ``None``, or PyTensor's numba cache turned
        off, compiles in memory only.

    Returns
    -------
    numba.core.ccallback.CFunc
    """
    import numba
    from nutpie.compile_pymc import address_as_void_pointer

    source = _callback_source(kind, layout, needed)
    if cache_key is not None:
        from pytensor import config

        if not config.numba__cache:  # PyTensor's numba cache (where the callback would go) is off
            cache_key = None
    symbol = None
    if cache_key is not None:
        # the key names what the machine code depends on, not only the structure: the source
        # (user_data layout, argument order), the dtypes and inner's compiled signature
        cres = next(iter(inner.overloads.values()))
        what = f"{kind}|{source}|{[np.dtype(d).str for d in dtypes]}|{cres.signature}"
        symbol = f"poppk_{cache_key}_{hashlib.sha256(what.encode()).hexdigest()[:16]}_{kind}"
    env: dict[str, Any] = {"np": np, "carray": numba.carray, "void_pointer": address_as_void_pointer,
                           "isfinite": math.isfinite,
                           "inner": _address_proxy(inner, symbol)}
    env.update({f"dtype{i}": np.dtype(d) for i, d in enumerate(dtypes)})
    signature = _c_signature(5 if kind == "logp" else 6)
    if symbol is not None:
        from pytensor.link.numba.cache import compile_numba_function_src

        # globals of a real module: numba pickles the callback's environment by module name
        env["__name__"] = __name__
        fn = compile_numba_function_src(source, "callback", env, cache_key=f"{symbol}_v2")
        try:
            return numba.cfunc(signature, cache=True)(fn)
        except RuntimeError as err:  # no cache locator (numba's caching unavailable here)
            _LOG.info("callback not cached (%s); compiling it in memory", err)
    exec(source, env)
    return numba.cfunc(signature)(env["callback"])


def user_data(arrays: list[np.ndarray]) -> np.ndarray:
    """The ``user_data`` words the callbacks read (keep ``arrays`` alive with it)."""
    words: list[int] = []
    for a in arrays:
        words.append(a.ctypes.data)
        words.extend(int(n) for n in a.shape)
    return np.array(words or [0], dtype=np.uint64)


