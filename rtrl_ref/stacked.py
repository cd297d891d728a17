"""Exact RTRL for L stacked eLSTM layers: the NumPy reference (docs/derivation.md, section 11, Eqs. 34-39).

Layers are numbered l = 1..L in the derivation; here layer l is index l - 1 of every per-layer tuple
(`params[l - 1]`, `state.c[l - 1]`, ...). Layer 1 reads x_t (B, I); layer l > 1 reads the cell c^{l-1}_t
(B, H_{l-1}) of the layer below at the same step (not an output-gated h: the output gate of Eq. 4 stays
outside the stack, so no gate parameters enter the recurrence). Every layer is an eLSTM (Eqs. 1-3) and a
reset (Eq. 10) zeroes every layer's state and every trace of the row:

    u^1_t = x_t,  u^l_t = c^{l-1}_t,   c^l_t = eLSTM(p^l; u^l_t, c^l_tm1)                              Eq. 34
    dc_du^l_t = dc^l_t/du^l_t = dc_dzpre[:, None] * W_z^l + dc_dfpre[:, None] * W_f^l   (B, H_l, I_l)  Eq. 35

Traces S^{l,k}_t = dc^l_t/dtheta^k for k <= l. The own trace S^{l,l} is element-wise (Eqs. 7-8 with x_t
replaced by u^l_t; `rtrl_ref.traces.Traces`); a lower layer's parameters reach layer l through the dense
input Jacobian, so S^{l,k} for k < l is dense over layer l's H_l cells (`CrossTraces`, the parameter's
shape with a leading (B, H_l)):

    S^{l,k}_t = Jeff^l_t * S^{l,k}_tm1 + dc_du^l_t @ S^{l-1,k}_t                                        Eq. 36
    dL/dtheta^k = sum_t sum_b sum_{l >= k} <g^l_t, S^{l,k}_t>                                            Eq. 37

BPTT (Eq. 38) runs layer by layer from the top: the single-layer BPTT of layer l (`rtrl_ref.bptt.bptt`)
with the immediate gradient G^l_t = g^l_t + g_u^{l+1}_t, g_u^{l+1} the input gradient of the layer above.
`trace_bytes` gives the memory of all traces (Eq. 39).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rtrl_ref.bptt import BPTTResult, bptt
from rtrl_ref.cell import CellCache, cell_step
from rtrl_ref.cells.interface import add_grads, decay_add
from rtrl_ref.params import ELSTMParams, init_elstm
from rtrl_ref.traces import Traces, check_traces, grads_from_traces, reset_state, trace_step, zero_grads, zero_traces
from rtrl_ref.unroll import elstm_forward
from rtrl_ref.validate import check_array, check_memory, check_reset


class CrossTraces(NamedTuple):
    """S^{l,k}_t = dc^l_t/dtheta^k for a lower layer k < l (Eq. 36): ELSTMParams' fields of layer k, each with
    a leading (B, H_l). Index [b, h, j, i] of W_z is dc^l_t[b, h] / dW_z^k[j, i]."""

    W_z: np.ndarray  # (B, H_l, H_k, I_k)
    W_f: np.ndarray  # (B, H_l, H_k, I_k)
    w_z: np.ndarray  # (B, H_l, H_k)
    w_f: np.ndarray  # (B, H_l, H_k)
    b_z: np.ndarray  # (B, H_l, H_k)
    b_f: np.ndarray  # (B, H_l, H_k)


class StackedState(NamedTuple):
    """Everything the step form carries from step to step (0-based layer indices)."""

    c: tuple      # L x (B, H_l): the cells c^l_t
    own: tuple    # L x Traces: own[l] = S^{l,l}_t, element-wise (B, H_l, I_l) and (B, H_l)
    cross: tuple  # L tuples: cross[l][k] = S^{l,k}_t (CrossTraces) for k < l; cross[0] = ()


class StackedBPTTResult(NamedTuple):
    grads: tuple       # L x ELSTMParams, summed over T and B
    g_x: np.ndarray    # (T, B, I) dL/dx_t
    g_c0: tuple        # L x (B, H_l): dL/dc^l_{-1} (the carried-in cells, before the reset mask of step 0)
    lam: tuple         # L x (T, B, H_l): the adjoints lam^l (total gradient into c^l_t)


class StackedRTRLResult(NamedTuple):
    grads: tuple         # L x ELSTMParams: the exact gradient over the whole history since the last reset
    state: StackedState  # cells and traces after the last step (carry them into the next call)


# ---------------------------------------------------------------------------------------------
# parameters, sizes and checks


def init_stacked(rng: np.random.Generator, I: int, H: Sequence[int], dtype=np.float32, **init_kwargs) -> tuple:
    """L = len(H) layers, each by `init_elstm` (keyword arguments passed on); layer l reads H[l - 1] inputs."""
    H = tuple(H)
    if len(H) < 1:
        raise ValueError(f"H: expected at least one layer width, got {H!r}")
    widths_in = (I,) + H[:-1]
    return tuple(init_elstm(rng, I_l, H_l, dtype, **init_kwargs) for I_l, H_l in zip(widths_in, H))


def check_stacked_params(params, name: str = "params") -> tuple[int, tuple[int, ...]]:
    """A non-empty tuple of ELSTMParams of one dtype, layer l reading H_{l-1} inputs. Returns (I, (H_1, ..., H_L))."""
    if not isinstance(params, (tuple, list)) or not params or not all(isinstance(p, ELSTMParams) for p in params):
        raise ValueError(f"{name}: expected a non-empty tuple of ELSTMParams, got {type(params).__name__}")
    dtype = params[0].validate(f"{name}[0]").W_z.dtype
    widths = [params[0].W_z.shape[0]]
    for l in range(1, len(params)):
        p = params[l].validate(f"{name}[{l}]")
        if p.W_z.dtype != dtype:
            raise ValueError(f"{name}[{l}].W_z: expected dtype {dtype} (that of {name}[0]), got {p.W_z.dtype}")
        H_l, I_l = p.W_z.shape
        if I_l != widths[-1]:
            raise ValueError(f"{name}[{l}].W_z: expected I = {widths[-1]} (the H of {name}[{l - 1}]), got I = {I_l}")
        widths.append(H_l)
    return params[0].W_z.shape[1], tuple(widths)


def _check_inputs(params, x, reset) -> tuple[int, int, int, tuple[int, ...], np.dtype]:
    """(T, B, I, (H_1, ..., H_L), dtype) of a sequence x (T, B, I) with its reset mask (T, B)."""
    I, widths = check_stacked_params(params)
    dtype = params[0].W_z.dtype
    check_array("x", x, (("T", None), ("B", None), ("I", I)), dtype)
    T, B = x.shape[:2]
    if T < 1 or B < 1:
        raise ValueError(f"x: expected T >= 1 and B >= 1, got shape {tuple(x.shape)}")
    check_reset("reset", reset, (("T", T), ("B", B)))
    return T, B, I, widths, dtype


def _check_per_layer(name: str, arrays, shapes: list[tuple], dtype) -> tuple:
    """A sequence of one array (or None: zeros) per layer, array l of shapes[l]. Returns a tuple of arrays."""
    if not isinstance(arrays, (tuple, list)) or len(arrays) != len(shapes):
        got = f"length {len(arrays)}" if isinstance(arrays, (tuple, list)) else type(arrays).__name__
        raise ValueError(f"{name}: expected a tuple of {len(shapes)} arrays (one per layer), got {got}")
    out = []
    for l, (a, shape) in enumerate(zip(arrays, shapes)):
        out.append(np.zeros(tuple(s[1] for s in shape), dtype) if a is None
                   else check_array(f"{name}[{l}]", a, shape, dtype))
    return tuple(out)


def _check_g_c(g_c, T: int, B: int, widths, dtype) -> tuple:
    return _check_per_layer("g_c", g_c, [(("T", T), ("B", B), ("H", H_l)) for H_l in widths], dtype)


def check_state(name: str, state, params, B: int) -> StackedState:
    """Types, lengths, shapes and dtypes of a carried-in state; finiteness of the cells and the (B, H) own traces
    only (the larger traces, as in `rtrl_ref.traces.check_traces`, reach the gradient if non-finite)."""
    if not isinstance(state, StackedState):
        raise ValueError(f"{name}: expected a StackedState, got {type(state).__name__}")
    L = len(params)
    for field in ("c", "own", "cross"):
        got = getattr(state, field)
        if not isinstance(got, (tuple, list)) or len(got) != L:
            raise ValueError(f"{name}.{field}: expected a tuple of {L} entries (one per layer), got "
                             f"{len(got) if isinstance(got, (tuple, list)) else type(got).__name__}")
    dtype = params[0].W_z.dtype
    sizes = [p.W_z.shape for p in params]                             # L x (H_l, I_l)
    for l in range(L):
        H_l, I_l = sizes[l]
        check_array(f"{name}.c[{l}]", state.c[l], (("B", B), ("H", H_l)), dtype)
        check_traces(f"{name}.own[{l}]", state.own[l], B, H_l, I_l, dtype)
        row = state.cross[l]
        if not isinstance(row, (tuple, list)) or len(row) != l:
            raise ValueError(f"{name}.cross[{l}]: expected a tuple of {l} CrossTraces (layers below), got "
                             f"{len(row) if isinstance(row, (tuple, list)) else type(row).__name__}")
        for k in range(l):
            if not isinstance(row[k], CrossTraces):
                raise ValueError(f"{name}.cross[{l}][{k}]: expected CrossTraces, got {type(row[k]).__name__}")
            H_k, I_k = sizes[k]
            for field, a in zip(CrossTraces._fields, row[k]):
                shape = (B, H_l, H_k, I_k) if field in ("W_z", "W_f") else (B, H_l, H_k)
                check_array(f"{name}.cross[{l}][{k}].{field}", a, shape, dtype, finite=False)
    return state


def zero_stacked_state(params, B: int) -> StackedState:
    """Zero cells and zero traces (own and cross) for B batch rows; refused before allocating if the traces
    (`trace_bytes`) exceed the available memory."""
    dtype = params[0].W_z.dtype
    sizes = [p.W_z.shape for p in params]                             # L x (H_l, I_l)
    widths = [H_l for H_l, _ in sizes]
    check_memory("zero_stacked_state", trace_bytes(B, len(sizes), widths, sizes[0][1], dtype),
                 f"the traces of {len(sizes)} layers, B = {B}, H = {widths}, I = {sizes[0][1]}, {np.dtype(dtype)}")
    c = tuple(np.zeros((B, H_l), dtype) for H_l, _ in sizes)         # L x (B, H_l)
    own = tuple(zero_traces(B, H_l, I_l, dtype) for H_l, I_l in sizes)
    cross = tuple(
        tuple(CrossTraces(np.zeros((B, H_l, H_k, I_k), dtype), np.zeros((B, H_l, H_k, I_k), dtype),
                          *(np.zeros((B, H_l, H_k), dtype) for _ in range(4)))
              for H_k, I_k in sizes[:l])
        for l, (H_l, _) in enumerate(sizes))
    return StackedState(c, own, cross)


def trace_bytes(B: int, L: int, H: int | Sequence[int], I: int, dtype=np.float32) -> int:
    """Bytes of all traces carried per step (Eq. 39): own sum_l B |theta^l| plus cross sum_{k<l} B H_l |theta^k|,
    with |theta^l| = 2 H_l I_l + 4 H_l, I_1 = I, I_l = H_{l-1}. H: one width for every layer, or L widths.
    (The cells c^l and the forward caches are not counted.)"""
    widths = (H,) * L if isinstance(H, (int, np.integer)) else tuple(H)
    if L < 1 or len(widths) != L:
        raise ValueError(f"H: expected one width or L = {L} widths, got {H!r}")
    if B < 1 or I < 1 or min(widths) < 1:
        raise ValueError(f"trace_bytes: expected B, I and every H >= 1, got B={B}, I={I}, H={widths}")
    widths_in = (I,) + widths[:-1]
    n_theta = [2 * H_l * I_l + 4 * H_l for H_l, I_l in zip(widths, widths_in)]      # |theta^l|
    own = sum(n_theta)
    cross = sum(widths[l] * n_theta[k] for l in range(L) for k in range(l))
    return B * (own + cross) * np.dtype(dtype).itemsize


# ---------------------------------------------------------------------------------------------
# forward and BPTT (Eqs. 34 and 38)


def stacked_forward(params, x, reset, c_0=None) -> tuple:
    """Run the L layers over x (T, B, I) from the cells c_0 (L x (B, H_l); zeros if None), resets as in Eq. 10.

    Returns L trajectory caches (CellCache with a leading T axis; layer l's cells are traj[l].c_t (T, B, H_l)).
    """
    T, B, I, widths, dtype = _check_inputs(params, x, reset)
    c_0 = (None,) * len(widths) if c_0 is None else _check_per_layer(
        "c_0", c_0, [(("B", B), ("H", H_l)) for H_l in widths], dtype)
    trajs = []
    u = x                                                             # (T, B, I_l) layer l's input
    for p, c_0_l in zip(params, c_0):
        u, traj = elstm_forward(p, u, reset, c_0_l, validate=False)  # (T, B, H_l)
        trajs.append(traj)
    return tuple(trajs)


def _check_trajs(trajs, T: int, B: int, widths) -> tuple:
    if not isinstance(trajs, (tuple, list)) or len(trajs) != len(widths) or not all(
            isinstance(traj, CellCache) for traj in trajs):
        raise ValueError(f"trajs: expected a tuple of {len(widths)} CellCache (stacked_forward's result), got "
                         f"{type(trajs).__name__}")
    for l, (traj, H_l) in enumerate(zip(trajs, widths)):
        check_array(f"trajs[{l}].c_t", traj.c_t, (("T", T), ("B", B), ("H", H_l)), finite=False)
    return tuple(trajs)


def stacked_bptt(params, trajs, reset, g_c) -> StackedBPTTResult:
    """Full BPTT of sum_t sum_l <g_c[l][t], c^l_t> (Eq. 38): g_c holds L immediate gradients (T, B, H_l), None
    for a layer the loss does not read (zeros). Layer by layer from the top, each a single-layer `bptt`."""
    _, widths = check_stacked_params(params)
    T, B = check_reset("reset", reset, (("T", None), ("B", None))).shape
    trajs = _check_trajs(trajs, T, B, widths)
    g_c = _check_g_c(g_c, T, B, widths, params[0].W_z.dtype)
    L = len(params)
    results: list[BPTTResult] = [None] * L
    G = g_c[L - 1]                                                    # (T, B, H_L) G^L = g^L
    for l in range(L - 1, -1, -1):
        results[l] = bptt(params[l], trajs[l], reset, G)
        if l > 0:
            G = g_c[l - 1] + results[l].g_x                           # (T, B, H_{l-1}) G^{l-1} = g^{l-1} + g_u^l
    return StackedBPTTResult(tuple(r.grads for r in results), results[0].g_x,
                             tuple(r.g_c0 for r in results), tuple(r.lam for r in results))


# ---------------------------------------------------------------------------------------------
# RTRL step form (Eqs. 35-37)


def input_jacobian(p: ELSTMParams, cache: CellCache):
    """dc_du (B, H_l, I_l) = dc^l_t/du^l_t (Eq. 35): dense, through the rows of W_z and W_f."""
    return cache.dc_dzpre[:, :, None] * p.W_z + cache.dc_dfpre[:, :, None] * p.W_f   # (B, H_l, I_l)


def input_term(dc_du, S_below) -> CrossTraces:
    """dc_du^l_t @ S^{l-1,k}_t, the part of S^{l,k}_t that enters through layer l's input (Eq. 36).

    dc_du (B, H_l, H_{l-1}); S_below the current step's S^{l-1,k}_t: element-wise Traces (k = l-1), or
    CrossTraces (B, H_{l-1}, H_k, ...) (k < l-1, then a batched matrix product over the H_{l-1} cells).
    """
    if isinstance(S_below, Traces):
        return CrossTraces(
            dc_du[:, :, :, None] * S_below.W_z[:, None, :, :],        # (B, H_l, H_{l-1}, I_{l-1})
            dc_du[:, :, :, None] * S_below.W_f[:, None, :, :],        # (B, H_l, H_{l-1}, I_{l-1})
            *(dc_du * S[:, None, :] for S in S_below[2:]))           # 4 x (B, H_l, H_{l-1})
    B, H_l = dc_du.shape[:2]

    def product(S):                                                   # S (B, H_{l-1}, H_k, ...)
        flat = S.reshape(B, S.shape[1], -1)                           # (B, H_{l-1}, n)
        return (dc_du @ flat).reshape((B, H_l) + S.shape[2:])         # (B, H_l, H_k, ...)

    return CrossTraces(*(product(S) for S in S_below))


def cross_grads(g_c_t, S: CrossTraces) -> ELSTMParams:
    """sum_b sum_h g_c_t[b, h] S^{l,k}_t[b, h, ...] (Eq. 37's cross term): layer k's parameter shapes."""
    return ELSTMParams(*(np.tensordot(g_c_t, a, axes=([0, 1], [0, 1])) for a in S))   # (H_k, I_k), (H_k,)


def stacked_grads_from_traces(g_c_t, state: StackedState) -> tuple:
    """One step's term of Eq. 37 for every layer's parameters: g_c_t holds L arrays (B, H_l). L x ELSTMParams."""
    L = len(state.own)
    grads = []
    for k in range(L):
        g_k = grads_from_traces(g_c_t[k], state.own[k])               # <g^k, S^{k,k}> (Eq. 9)
        for l in range(k + 1, L):
            g_k = add_grads(g_k, cross_grads(g_c_t[l], state.cross[l][k]))
        grads.append(g_k)
    return tuple(grads)


def reset_stacked_state(state: StackedState, reset_t) -> StackedState:
    """Zero every cell and every trace (own and cross) of the rows with reset_t True (Eq. 10)."""
    c = tuple(np.where(reset_t[:, None], 0, c_l).astype(c_l.dtype) for c_l in state.c)   # L x (B, H_l)
    own = tuple(reset_state(S, reset_t) for S in state.own)
    cross = tuple(tuple(reset_state(S, reset_t) for S in row) for row in state.cross)
    return StackedState(c, own, cross)


def stacked_rtrl_step(params, x_t, reset_t, state: StackedState):
    """One online step of every layer, bottom-up: reset (Eq. 10), forward (Eq. 34), own traces (Eqs. 7-8) and
    cross traces (Eq. 36). Returns (state_t, L caches). Layer l's cross traces read layer l-1's traces of
    this step, hence the bottom-up order."""
    state = reset_stacked_state(state, reset_t)
    c, own, cross, caches = [], [], [], []
    u_t = x_t                                                         # (B, I_l)
    for l, p in enumerate(params):
        c_t, cache = cell_step(p, u_t, state.c[l])                    # (B, H_l)
        own.append(trace_step(state.own[l], cache))
        row = ()
        if l > 0:
            dc_du = input_jacobian(p, cache)                          # (B, H_l, H_{l-1})
            below = (*cross[l - 1], own[l - 1])                       # S^{l-1,k}_t for k = 0..l-1
            row = tuple(decay_add(cache.dc_dctm1, state.cross[l][k], input_term(dc_du, below[k]))
                        for k in range(l))
        cross.append(row)
        c.append(c_t)
        caches.append(cache)
        u_t = c_t
    return StackedState(tuple(c), tuple(own), tuple(cross)), tuple(caches)


def stacked_rtrl_sequence(params, x, reset, g_c, state: StackedState | None = None) -> StackedRTRLResult:
    """Step-form RTRL over x (T, B, I): the exact gradient of sum_t sum_l <g_c[l][t], c^l_t> (Eq. 37).

    g_c holds L arrays (T, B, H_l), None for a layer the loss does not read. state: the carried-in cells and
    traces (zeros if None; never modified). Runs the forward itself, one `stacked_rtrl_step` at a time.
    """
    T, B, _, widths, dtype = _check_inputs(params, x, reset)
    g_c = _check_g_c(g_c, T, B, widths, dtype)
    state = zero_stacked_state(params, B) if state is None else check_state("state", state, params, B)
    grads = tuple(zero_grads(H_l, I_l, dtype) for H_l, I_l in (p.W_z.shape for p in params))
    for t in range(T):
        state, _ = stacked_rtrl_step(params, x[t], reset[t], state)
        step = stacked_grads_from_traces(tuple(g[t] for g in g_c), state)
        grads = tuple(add_grads(a, b) for a, b in zip(grads, step))
    return StackedRTRLResult(grads, state)


__all__ = [
    "CrossTraces", "StackedState", "StackedBPTTResult", "StackedRTRLResult", "init_stacked",
    "check_stacked_params", "check_state", "zero_stacked_state", "trace_bytes", "stacked_forward", "stacked_bptt",
    "input_jacobian", "input_term", "cross_grads", "stacked_grads_from_traces", "reset_stacked_state",
    "stacked_rtrl_step", "stacked_rtrl_sequence",
]
