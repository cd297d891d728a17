"""Fused per-step RTRL kernel (Numba): reset + trace update + gradient accumulation, one pass.

Reproduces the NumPy reference `rtrl_ref.traces.trace_step_accumulate`: for every batch element b
and unit h, with keep_b = 1 - reset_t[b] and J = dc_dctm1 (docs/derivation.md, Eqs. 7-10),

    S.W_z[b, h, :] = (keep_b J[b, h]) S.W_z[b, h, :] + dc_dzpre[b, h] x_t[b, :]
    S.W_f[b, h, :] = (keep_b J[b, h]) S.W_f[b, h, :] + dc_dfpre[b, h] x_t[b, :]
    S.w_z[b, h]    = (keep_b J[b, h]) S.w_z[b, h]    + dc_dzpre[b, h] c_tm1[b, h]   (w_f likewise)
    S.b_z[b, h]    = (keep_b J[b, h]) S.b_z[b, h]    + dc_dzpre[b, h]               (b_f likewise)
    grads.<p>     += g_c_t[b, h] * S.<p>[b, h]

One trace matrix at a time (S.W_z, then S.W_f), in blocks of units whose gradient rows fit in
128 KiB (`block_units`), and within a block four batch elements per pass (b outer), units inner,
and one contiguous inner loop over I that LLVM vectorises: each gradient row is loaded and
stored once per four elements, and only five rows stream at once (four trace rows and one
gradient row); this layout measured faster than updating both matrices of a pair of elements in
one loop (eight trace streams). Each trace row is read once and written once (a read-modify-write
stream of 4*B*H*I numbers); the gradient block stays in L2. Blocking the units matters for
float64, whose (H, I) gradient (526 KB at H=256, I=257) can exceed L2; for float32 at these
sizes it is one block. Measurements: docs/performance.md.
The (B, H) vector traces are a separate, tiny pass. Traces and grads are updated in place and
returned (the backend contract: callers treat both inputs as consumed).

Two variants, separate `def`s so their cache entries stay apart: `step_serial` and
`step_parallel` (units split into n_chunks contiguous blocks, one per thread; each thread loops
b outer over its own block, so no two threads write the same gradient row). Gradient sums are
associated per four batch elements, so they differ from the reference by round-off only.
"""

from __future__ import annotations

import numba
import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.kernels.numba_config import JIT, JIT_PARALLEL, as_input, as_keep, as_output, kernel_dtype, n_chunks_for
from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces
from rtrl_ref.validate import check_array


@numba.njit(**JIT)
def _update_matrix(S, G, dc_dpre, x_t, dc_dctm1, keep, g_c_t, h0, h1):
    """One (B, H, I) trace matrix (S.W_z with dc_dzpre, or S.W_f with dc_dfpre) and its (H, I)
    gradient, units h0..h1-1, in place: four batch elements per pass over the units, so each
    gradient row is loaded and stored once per four elements; leftover elements one at a time."""
    B, _, I = S.shape
    B4 = B - B % 4
    for b in range(0, B4, 4):
        x0 = x_t[b]
        x1 = x_t[b + 1]
        x2 = x_t[b + 2]
        x3 = x_t[b + 3]
        for h in range(h0, h1):
            s0 = S[b, h]
            s1 = S[b + 1, h]
            s2 = S[b + 2, h]
            s3 = S[b + 3, h]
            G_h = G[h]
            j0 = keep[b] * dc_dctm1[b, h]
            j1 = keep[b + 1] * dc_dctm1[b + 1, h]
            j2 = keep[b + 2] * dc_dctm1[b + 2, h]
            j3 = keep[b + 3] * dc_dctm1[b + 3, h]
            a0 = dc_dpre[b, h]
            a1 = dc_dpre[b + 1, h]
            a2 = dc_dpre[b + 2, h]
            a3 = dc_dpre[b + 3, h]
            g0 = g_c_t[b, h]
            g1 = g_c_t[b + 1, h]
            g2 = g_c_t[b + 2, h]
            g3 = g_c_t[b + 3, h]
            for i in range(I):
                u0 = j0 * s0[i] + a0 * x0[i]
                u1 = j1 * s1[i] + a1 * x1[i]
                u2 = j2 * s2[i] + a2 * x2[i]
                u3 = j3 * s3[i] + a3 * x3[i]
                s0[i] = u0
                s1[i] = u1
                s2[i] = u2
                s3[i] = u3
                G_h[i] += (g0 * u0 + g1 * u1) + (g2 * u2 + g3 * u3)
    for b in range(B4, B):
        x0 = x_t[b]
        for h in range(h0, h1):
            s0 = S[b, h]
            G_h = G[h]
            j0 = keep[b] * dc_dctm1[b, h]
            a0 = dc_dpre[b, h]
            g0 = g_c_t[b, h]
            for i in range(I):
                u0 = j0 * s0[i] + a0 * x0[i]
                s0[i] = u0
                G_h[i] += g0 * u0


@numba.njit(**JIT)
def _update_matrix_blocked(S, G, dc_dpre, x_t, dc_dctm1, keep, g_c_t, h0, h1, hb):
    """`_update_matrix` over units h0..h1-1 in blocks of hb units (every batch element per block)."""
    for k0 in range(h0, h1, hb):
        _update_matrix(S, G, dc_dpre, x_t, dc_dctm1, keep, g_c_t, k0, min(h1, k0 + hb))


@numba.njit(**JIT)
def _update_vector_units(h0, h1, s_wz, s_wf, s_bz, s_bf, G_wz, G_wf, G_bz, G_bf,
                         c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t):
    """Units h0..h1-1, every batch element: the (H,) traces and gradients (a separate, tiny pass:
    interleaving these scalar updates with the row loops made the kernel ~15% slower)."""
    for b in range(dc_dctm1.shape[0]):
        for h in range(h0, h1):
            J = keep[b] * dc_dctm1[b, h]
            dz = dc_dzpre[b, h]
            df = dc_dfpre[b, h]
            g_c = g_c_t[b, h]
            c = c_tm1[b, h]
            s = J * s_wz[b, h] + dz * c
            s_wz[b, h] = s
            G_wz[h] += g_c * s
            s = J * s_wf[b, h] + df * c
            s_wf[b, h] = s
            G_wf[h] += g_c * s
            s = J * s_bz[b, h] + dz
            s_bz[b, h] = s
            G_bz[h] += g_c * s
            s = J * s_bf[b, h] + df
            s_bf[b, h] = s
            G_bf[h] += g_c * s


@numba.njit(**JIT)
def step_serial(S_Wz, S_Wf, s_wz, s_wf, s_bz, s_bf, G_Wz, G_Wf, G_wz, G_wf, G_bz, G_bf,
                x_t, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t, hb):
    """One thread: one trace matrix at a time, blocks of hb units, b outer (in fours), h inner."""
    H = dc_dctm1.shape[1]
    _update_matrix_blocked(S_Wz, G_Wz, dc_dzpre, x_t, dc_dctm1, keep, g_c_t, 0, H, hb)
    _update_matrix_blocked(S_Wf, G_Wf, dc_dfpre, x_t, dc_dctm1, keep, g_c_t, 0, H, hb)
    _update_vector_units(0, H, s_wz, s_wf, s_bz, s_bf, G_wz, G_wf, G_bz, G_bf,
                         c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t)


@numba.njit(**JIT_PARALLEL)
def step_parallel(S_Wz, S_Wf, s_wz, s_wf, s_bz, s_bf, G_Wz, G_Wf, G_wz, G_wf, G_bz, G_bf,
                  x_t, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t, hb, n_chunks):
    """n_chunks threads, each owning a block of units; per matrix b outer, h inner in the block."""
    H = dc_dctm1.shape[1]
    for k in numba.prange(n_chunks):
        h0 = k * H // n_chunks
        h1 = (k + 1) * H // n_chunks
        _update_matrix_blocked(S_Wz, G_Wz, dc_dzpre, x_t, dc_dctm1, keep, g_c_t, h0, h1, hb)
        _update_matrix_blocked(S_Wf, G_Wf, dc_dfpre, x_t, dc_dctm1, keep, g_c_t, h0, h1, hb)
        _update_vector_units(h0, h1, s_wz, s_wf, s_bz, s_bf, G_wz, G_wf, G_bz, G_bf,
                             c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t)


_VEC = ("w_z", "w_f", "b_z", "b_f")
_S_NAMES = tuple(f"traces.{f}" for f in Traces._fields)
_G_NAMES = tuple(f"grads.{f}" for f in ELSTMParams._fields)
_C_NAMES = tuple(f"cache.{f}" for f in ("c_tm1", "dc_dzpre", "dc_dfpre", "dc_dctm1"))


def _prepare(traces: Traces, cache: CellCache, reset_t, g_c_t, grads: ELSTMParams):
    """Check shapes and one shared dtype (no finiteness scan: that would be a second pass)."""
    if not isinstance(traces, Traces):
        raise ValueError(f"traces: expected a Traces container, got {type(traces).__name__}")
    dtype = kernel_dtype("traces.W_z", traces.W_z)
    check_array("traces.W_z", traces.W_z, (("B", None), ("H", None), ("I", None)), dtype, finite=False)
    S_Wz = as_output("traces.W_z", traces.W_z, traces.W_z.shape, dtype)
    B, H, I = S_Wz.shape
    S = [S_Wz] + [as_output(n, a, (B, H, I) if k == 1 else (B, H), dtype, "B,H,I")
                  for k, (n, a) in enumerate(zip(_S_NAMES, traces)) if k > 0]
    G = [as_output(n, a, (H, I) if k < 2 else (H,), dtype, "H,I")
         for k, (n, a) in enumerate(zip(_G_NAMES, grads))]
    inputs = [as_input("cache.x_t", cache.x_t, (B, I), dtype, "B,I")]
    inputs += [as_input(n, a, (B, H), dtype, "B,H")
               for n, a in zip(_C_NAMES, (cache.c_tm1, cache.dc_dzpre, cache.dc_dfpre, cache.dc_dctm1))]
    inputs += [as_keep("reset_t", reset_t, B, dtype), as_input("g_c_t", g_c_t, (B, H), dtype, "B,H")]
    return S, G, inputs


def _prepare_fast(traces, cache, reset_t, g_c_t, grads):
    """The common case in a few microseconds (every argument already a C-contiguous ndarray of
    one float dtype with the expected shape; outputs writeable); None sends the call through
    `_prepare`, which builds the error messages. At B = 1 the full check costs about as much
    as the kernel itself."""
    W = traces.W_z
    if type(W) is not np.ndarray or W.ndim != 3 or W.dtype not in _FLOATS:
        return None
    B, H, I = W.shape
    dt = W.dtype
    BHI, BH, HI = (B, H, I), (B, H), (H, I)
    outputs = (*traces, *grads)
    inputs = (cache.x_t, cache.c_tm1, cache.dc_dzpre, cache.dc_dfpre, cache.dc_dctm1)
    shapes = (BHI, BHI, BH, BH, BH, BH, HI, HI, (H,), (H,), (H,), (H,), (B, I), BH, BH, BH, BH)
    for a, shape in zip(outputs + inputs, shapes):
        if type(a) is not np.ndarray or a.dtype != dt or a.shape != shape or not a.flags.c_contiguous:
            return None
    for a in outputs:
        if not a.flags.writeable:
            return None
    if not (type(g_c_t) is np.ndarray and g_c_t.dtype == dt and g_c_t.shape == BH and g_c_t.flags.c_contiguous):
        return None
    return list(traces), list(grads), [*inputs, as_keep("reset_t", reset_t, B, dt), g_c_t]


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
BLOCK_BYTES = 128 * 1024


def block_units(I: int, itemsize: int) -> int:
    """Units per block: gradient rows of I numbers filling at most BLOCK_BYTES (at least 4)."""
    return max(4, BLOCK_BYTES // max(1, I * itemsize))


def trace_step_accumulate(traces: Traces, cache: CellCache, reset_t, g_c_t, grads: ELSTMParams):
    """Serial fused step; same contract as `rtrl_ref.traces.trace_step_accumulate` (in place)."""
    prepared = _prepare_fast(traces, cache, reset_t, g_c_t, grads) if isinstance(traces, Traces) else None
    S, G, inputs = prepared or _prepare(traces, cache, reset_t, g_c_t, grads)
    step_serial(*S, *G, *inputs, block_units(S[0].shape[2], S[0].itemsize))
    return Traces(*S), ELSTMParams(*G)


def trace_step_accumulate_parallel(traces: Traces, cache: CellCache, reset_t, g_c_t,
                                   grads: ELSTMParams):
    """Parallel fused step (units split over Numba's threads); same contract, in place."""
    prepared = _prepare_fast(traces, cache, reset_t, g_c_t, grads) if isinstance(traces, Traces) else None
    S, G, inputs = prepared or _prepare(traces, cache, reset_t, g_c_t, grads)
    step_parallel(*S, *G, *inputs, block_units(S[0].shape[2], S[0].itemsize),
                  n_chunks_for(S[0].shape[1]))
    return Traces(*S), ELSTMParams(*G)
