"""Fused per-step RTRL kernel (Numba): reset + trace update + gradient accumulation, one pass.

Reproduces the NumPy reference `rtrl_ref.rtrl.trace_step_accumulate`: for every batch element b
and unit h, with keep_b = 1 - reset_t[b] and J = dc_dctm1 (DESIGN.md section 2),

    S.W_z[b, h, :] = (keep_b J[b, h]) S.W_z[b, h, :] + dc_dzpre[b, h] x_t[b, :]
    S.W_f[b, h, :] = (keep_b J[b, h]) S.W_f[b, h, :] + dc_dfpre[b, h] x_t[b, :]
    S.w_z[b, h]    = (keep_b J[b, h]) S.w_z[b, h]    + dc_dzpre[b, h] c_tm1[b, h]   (w_f likewise)
    S.b_z[b, h]    = (keep_b J[b, h]) S.b_z[b, h]    + dc_dzpre[b, h]               (b_f likewise)
    grads.<p>     += g_c_t[b, h] * S.<p>[b, h]

Loop order b outer (two batch elements at a time), h inner, and one contiguous inner loop over I
that LLVM vectorises, updating the W_z and W_f rows of a unit for both elements together: x_t is
loaded once per unit and the gradient rows once per pair (each step up to 1.2-1.5x faster in
our measurements than one loop per matrix and element). Each trace row is read once and written
once (a read-modify-write stream of 4*B*H*I numbers); the gradient rows (H, I) stay in cache.
The (B, H) vector traces are a separate, tiny pass. Traces and grads are updated in place and returned (the backend
contract: callers treat both inputs as consumed).

Two variants, separate `def`s so their cache entries stay apart: `step_serial` and
`step_parallel` (units split into n_chunks contiguous blocks, one per thread; each thread loops
b outer over its own block, so no two threads write the same gradient row). Gradient sums are
associated per pair of batch elements, so they differ from the reference by round-off only.
"""

from __future__ import annotations

import numba

from rtrl_ref.cell import CellCache
from rtrl_ref.kernels.numba_config import (
    JIT, JIT_PARALLEL, as_input, as_keep, as_output, kernel_dtype, n_chunks_for)
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import Traces
from rtrl_ref.validate import check_array


@numba.njit(**JIT)
def _update_rows(S_z, S_f, G_z, G_f, x_row, J, g_z, g_f, g_c):
    """One unit's two (I,) rows, in place, in one vectorised loop (x_row loaded once):
    S_z = J S_z + g_z x_row,  S_f = J S_f + g_f x_row,  G_z += g_c S_z,  G_f += g_c S_f."""
    for i in range(S_z.shape[0]):
        s_z = J * S_z[i] + g_z * x_row[i]
        s_f = J * S_f[i] + g_f * x_row[i]
        S_z[i] = s_z
        S_f[i] = s_f
        G_z[i] += g_c * s_z
        G_f[i] += g_c * s_f


@numba.njit(**JIT)
def _update_rows_pair(S_z0, S_f0, S_z1, S_f1, G_z, G_f, x_row0, x_row1, J0, J1,
                      g_z0, g_f0, g_z1, g_f1, g_c0, g_c1):
    """The rows of one unit for two batch elements at once: the gradient rows are loaded and
    stored once per pair (10-20% faster in float32 than one element at a time)."""
    for i in range(S_z0.shape[0]):
        s_z0 = J0 * S_z0[i] + g_z0 * x_row0[i]
        s_f0 = J0 * S_f0[i] + g_f0 * x_row0[i]
        s_z1 = J1 * S_z1[i] + g_z1 * x_row1[i]
        s_f1 = J1 * S_f1[i] + g_f1 * x_row1[i]
        S_z0[i] = s_z0
        S_f0[i] = s_f0
        S_z1[i] = s_z1
        S_f1[i] = s_f1
        G_z[i] += g_c0 * s_z0 + g_c1 * s_z1
        G_f[i] += g_c0 * s_f0 + g_c1 * s_f1


@numba.njit(**JIT)
def _update_matrix_pair(b, h0, h1, S_Wz, S_Wf, G_Wz, G_Wf, x_t, dc_dzpre, dc_dfpre, dc_dctm1,
                        keep, g_c_t):
    """Units h0..h1-1 of batch elements b and b + 1."""
    c = b + 1
    for h in range(h0, h1):
        _update_rows_pair(S_Wz[b, h], S_Wf[b, h], S_Wz[c, h], S_Wf[c, h], G_Wz[h], G_Wf[h],
                          x_t[b], x_t[c], keep[b] * dc_dctm1[b, h], keep[c] * dc_dctm1[c, h],
                          dc_dzpre[b, h], dc_dfpre[b, h], dc_dzpre[c, h], dc_dfpre[c, h],
                          g_c_t[b, h], g_c_t[c, h])


@numba.njit(**JIT)
def _update_matrix_units(b, h0, h1, S_Wz, S_Wf, G_Wz, G_Wf, x_t, dc_dzpre, dc_dfpre, dc_dctm1,
                         keep, g_c_t):
    """Units h0..h1-1 of batch element b: the (H, I) traces and gradients (odd B's last element)."""
    x_row = x_t[b]
    k = keep[b]
    for h in range(h0, h1):
        _update_rows(S_Wz[b, h], S_Wf[b, h], G_Wz[h], G_Wf[h], x_row, k * dc_dctm1[b, h],
                     dc_dzpre[b, h], dc_dfpre[b, h], g_c_t[b, h])


@numba.njit(**JIT)
def _update_vector_units(h0, h1, s_wz, s_wf, s_bz, s_bf, G_wz, G_wf, G_bz, G_bf,
                         c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t):
    """Units h0..h1-1, every batch element: the (H,) traces and gradients (a separate, tiny pass:
    interleaving these scalar updates with the row loops made the kernel ~15% slower)."""
    for b in range(dc_dctm1.shape[0]):
        for h in range(h0, h1):
            J = keep[b] * dc_dctm1[b, h]
            g_z = dc_dzpre[b, h]
            g_f = dc_dfpre[b, h]
            g_c = g_c_t[b, h]
            c = c_tm1[b, h]
            s = J * s_wz[b, h] + g_z * c
            s_wz[b, h] = s
            G_wz[h] += g_c * s
            s = J * s_wf[b, h] + g_f * c
            s_wf[b, h] = s
            G_wf[h] += g_c * s
            s = J * s_bz[b, h] + g_z
            s_bz[b, h] = s
            G_bz[h] += g_c * s
            s = J * s_bf[b, h] + g_f
            s_bf[b, h] = s
            G_bf[h] += g_c * s


@numba.njit(**JIT)
def step_serial(S_Wz, S_Wf, s_wz, s_wf, s_bz, s_bf, G_Wz, G_Wf, G_wz, G_wf, G_bz, G_bf,
                x_t, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t):
    """One thread: b outer (in pairs), h inner."""
    B, H = dc_dctm1.shape
    for b in range(0, B - 1, 2):
        _update_matrix_pair(b, 0, H, S_Wz, S_Wf, G_Wz, G_Wf, x_t, dc_dzpre, dc_dfpre, dc_dctm1,
                            keep, g_c_t)
    if B % 2 == 1:
        _update_matrix_units(B - 1, 0, H, S_Wz, S_Wf, G_Wz, G_Wf, x_t, dc_dzpre, dc_dfpre,
                             dc_dctm1, keep, g_c_t)
    _update_vector_units(0, H, s_wz, s_wf, s_bz, s_bf, G_wz, G_wf, G_bz, G_bf,
                         c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t)


@numba.njit(**JIT_PARALLEL)
def step_parallel(S_Wz, S_Wf, s_wz, s_wf, s_bz, s_bf, G_Wz, G_Wf, G_wz, G_wf, G_bz, G_bf,
                  x_t, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, keep, g_c_t, n_chunks):
    """n_chunks threads, each owning a block of units; b outer, h inner within the block."""
    B, H = dc_dctm1.shape
    for k in numba.prange(n_chunks):
        h0 = k * H // n_chunks
        h1 = (k + 1) * H // n_chunks
        for b in range(0, B - 1, 2):
            _update_matrix_pair(b, h0, h1, S_Wz, S_Wf, G_Wz, G_Wf, x_t, dc_dzpre, dc_dfpre,
                                dc_dctm1, keep, g_c_t)
        if B % 2 == 1:
            _update_matrix_units(B - 1, h0, h1, S_Wz, S_Wf, G_Wz, G_Wf, x_t, dc_dzpre, dc_dfpre,
                                 dc_dctm1, keep, g_c_t)
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


def trace_step_accumulate(traces: Traces, cache: CellCache, reset_t, g_c_t, grads: ELSTMParams):
    """Serial fused step; same contract as `rtrl_ref.rtrl.trace_step_accumulate` (in place)."""
    S, G, inputs = _prepare(traces, cache, reset_t, g_c_t, grads)
    step_serial(*S, *G, *inputs)
    return Traces(*S), ELSTMParams(*G)


def trace_step_accumulate_parallel(traces: Traces, cache: CellCache, reset_t, g_c_t,
                                   grads: ELSTMParams):
    """Parallel fused step (units split over Numba's threads); same contract, in place."""
    S, G, inputs = _prepare(traces, cache, reset_t, g_c_t, grads)
    step_parallel(*S, *G, *inputs, n_chunks_for(S[0].shape[1]))
    return Traces(*S), ELSTMParams(*G)
