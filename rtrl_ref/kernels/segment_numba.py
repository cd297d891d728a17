"""Carried-trace pass of the segment form (Numba + BLAS), chunked by batch element.

Reproduces the NumPy reference `rtrl_ref.traces.segment_carried_pass`: for every batch element b,
with coef = Jeff_0 * lam_0, decay = Jeff_0 * P_0 and u = P_s * dc_dpre_s (docs/derivation.md,
Eqs. 14-15),

    M_b              = [u_z[:, b, :]^T ; u_f[:, b, :]^T] @ x[:, b, :]      (2H x T) @ (T x I)
    grads.W_z       += coef[b, :, None] * S.W_z[b]                        (W_f likewise)
    S.W_z[b]         = decay[b, :, None] * S.W_z[b] + M_b[:H]             (W_f with M_b[H:])

and for the vector traces (B, H), plain NumPy:
    grads.w_z = sum_b coef * S.w_z,   S.w_z = decay * S.w_z + sum_s u_z[s] * c_tm1[s]   (likewise)
    grads.b_z = sum_b coef * S.b_z,   S.b_z = decay * S.b_z + sum_s u_z[s]              (likewise)

One GEMM per batch element (BLAS through NumPy) into a (2H, I) buffer, then one fused
in-place pass over that element's trace rows: every trace number is read once and written once,
and no second trace-sized buffer exists. The traces_in arrays W_z, W_f are reused for traces_out
(allowed by the contract).

Two variants of the fused pass (separate `def`s): `carry_serial` and `carry_parallel` (units split
into n_chunks blocks, one per thread).

`segment_unroll` is the numba backend's whole segment form over one unroll: the coefficient sweep
(`adjoint_numba.segment_coefficients`), the two GEMMs of Eq. 13, and the carried pass above on
the coefficients as the sweep lays them out (no repacking, traces updated in place).
"""

from __future__ import annotations

import numba
import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.kernels.adjoint_numba import contiguous_cache, input_gemms, segment_coefficients
from rtrl_ref.kernels.numba_config import JIT, JIT_PARALLEL, as_input, as_output, kernel_dtype, n_chunks_for
from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces, carried_vector_pass, segment_vector_pass
from rtrl_ref.validate import check_array


@numba.njit(**JIT)
def _carry_row(S_row, G_row, M_row, coef, decay):
    """G_row += coef S_row;  S_row = decay S_row + M_row   (one (I,) row, in place)."""
    for i in range(S_row.shape[0]):
        s = S_row[i]
        G_row[i] += coef * s
        S_row[i] = decay * s + M_row[i]


@numba.njit(**JIT)
def _carry_units(h0, h1, S_Wz_b, S_Wf_b, G_Wz, G_Wf, M_b, coef_b, decay_b):
    H = S_Wz_b.shape[0]
    for h in range(h0, h1):
        _carry_row(S_Wz_b[h], G_Wz[h], M_b[h], coef_b[h], decay_b[h])
        _carry_row(S_Wf_b[h], G_Wf[h], M_b[H + h], coef_b[h], decay_b[h])


@numba.njit(**JIT)
def carry_serial(S_Wz_b, S_Wf_b, G_Wz, G_Wf, M_b, coef_b, decay_b):
    """One batch element, one thread: S_Wz_b, S_Wf_b (H, I); M_b (2H, I); coef_b, decay_b (H,)."""
    _carry_units(0, S_Wz_b.shape[0], S_Wz_b, S_Wf_b, G_Wz, G_Wf, M_b, coef_b, decay_b)


@numba.njit(**JIT_PARALLEL)
def carry_parallel(S_Wz_b, S_Wf_b, G_Wz, G_Wf, M_b, coef_b, decay_b, n_chunks):
    """One batch element, n_chunks threads each owning a block of units."""
    H = S_Wz_b.shape[0]
    for k in numba.prange(n_chunks):
        _carry_units(k * H // n_chunks, (k + 1) * H // n_chunks,
                     S_Wz_b, S_Wf_b, G_Wz, G_Wf, M_b, coef_b, decay_b)


def carry_traces(S_Wz, S_Wf, coef_in, decay_in, U, x, parallel: bool = False):
    """The (B, H, I) part, on prepared C-contiguous arrays of one dtype (no checks).

    S_Wz, S_Wf (B, H, I) updated in place; coef_in, decay_in (B, H); U (B, 2H, T) with rows
    [u_z^T ; u_f^T] per batch element (any strides BLAS accepts, e.g. a transposed view);
    x (T, B, I) (x[:, b, :] goes to BLAS with its row stride).
    Returns the carried gradients (G_Wz, G_Wf), each (H, I).
    """
    B, H, I = S_Wz.shape
    M_b = np.empty((2 * H, I), S_Wz.dtype)                            # (2H, I) per-element GEMM
    G_Wz = np.zeros((H, I), S_Wz.dtype)                               # (H, I)
    G_Wf = np.zeros((H, I), S_Wz.dtype)                               # (H, I)
    n_chunks = n_chunks_for(H) if parallel else 0
    for b in range(B):
        np.matmul(U[b], x[:, b, :], out=M_b)
        if n_chunks == 0:
            carry_serial(S_Wz[b], S_Wf[b], G_Wz, G_Wf, M_b, coef_in[b], decay_in[b])
        else:
            carry_parallel(S_Wz[b], S_Wf[b], G_Wz, G_Wf, M_b, coef_in[b], decay_in[b], n_chunks)
    return G_Wz, G_Wf


def _segment_pass(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1, parallel: bool):
    if not isinstance(traces_in, Traces):
        raise ValueError(f"traces_in: expected a Traces container, got {type(traces_in).__name__}")
    dtype = kernel_dtype("traces_in.W_z", traces_in.W_z)
    check_array("traces_in.W_z", traces_in.W_z, (("B", None), ("H", None), ("I", None)), dtype, finite=False)
    S_Wz = as_output("traces_in.W_z", traces_in.W_z, traces_in.W_z.shape, dtype)
    B, H, I = S_Wz.shape
    S_Wf = as_output("traces_in.W_f", traces_in.W_f, (B, H, I), dtype, "B,H,I")
    s_vec = [as_input(f"traces_in.{f}", getattr(traces_in, f), (B, H), dtype, "B,H")
             for f in ("w_z", "w_f", "b_z", "b_f")]
    coef_in = as_input("coef_in", coef_in, (B, H), dtype, "B,H")
    decay_in = as_input("decay_in", decay_in, (B, H), dtype, "B,H")
    if getattr(u_z, "ndim", None) != 3:
        check_array("u_z", u_z, (("T", None), ("B", B), ("H", H)), dtype, finite=False)
    T = u_z.shape[0]
    u_z = as_input("u_z", u_z, (T, B, H), dtype, "T,B,H")
    u_f = as_input("u_f", u_f, (T, B, H), dtype, "T,B,H")
    x = as_input("x", x, (T, B, I), dtype, "T,B,I")
    c_tm1 = as_input("c_tm1", c_tm1, (T, B, H), dtype, "T,B,H")

    # packed as (B, T, 2H), whose copy keeps H contiguous (much cheaper than a (B, 2H, T) copy with
    # T innermost); U[b] = V[b].T reaches BLAS as a transposed view
    V = np.empty((B, T, 2 * H), dtype)                                # (B, T, 2H)
    V[:, :, :H] = u_z.transpose(1, 0, 2)
    V[:, :, H:] = u_f.transpose(1, 0, 2)
    G_Wz, G_Wf = carry_traces(S_Wz, S_Wf, coef_in, decay_in, V.transpose(0, 2, 1), x, parallel)
    s_wz, s_wf, s_bz, s_bf = s_vec
    g_vec, s_vec = segment_vector_pass(s_wz, s_wf, s_bz, s_bf, coef_in, decay_in, u_z, u_f, c_tm1)
    return ELSTMParams(G_Wz, G_Wf, *g_vec), Traces(S_Wz, S_Wf, *s_vec)


def segment_carried_pass(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """Serial fused pass; same contract as `rtrl_ref.traces.segment_carried_pass` (reuses traces_in)."""
    return _segment_pass(traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1, parallel=False)


def segment_carried_pass_parallel(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """Parallel fused pass (units split over Numba's threads); same contract."""
    return _segment_pass(traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1, parallel=True)


def segment_unroll(p: ELSTMParams, traj: CellCache, reset, g_c, traces_in: Traces, parallel: bool = False):
    """Segment form over one unroll (Eqs. 12-15), inputs validated by the driver
    (`rtrl_ref.rtrl.rtrl_segment`); traces_in's (B, H, I) arrays are updated in place.

    Returns (inner_grads, g_x (T, B, I), g_c0 (B, H), lam (T, B, H), carried_grads, traces_out):
    inner_grads and g_x are the in-unroll BPTT part, carried_grads what the carried-in traces add.
    """
    traj = contiguous_cache(traj)
    g_c = np.ascontiguousarray(g_c)
    T, B, H = g_c.shape
    I = traj.x_t.shape[-1]
    dt = g_c.dtype
    keep = (~reset).astype(dt)                                        # (T, B)
    lam = np.empty((T, B, H), dt)                                     # (T, B, H)
    g_pre = np.empty((T, B, 2 * H), dt)                               # (T, B, 2H)
    g_vec = np.empty((4, H), dt)                                      # (4, H)
    V = np.empty((B, T, 2 * H), dt)                                   # (B, T, 2H) [u_z, u_f]
    coef_in = np.empty((B, H), dt)                                    # (B, H)
    decay_in = np.empty((B, H), dt)                                   # (B, H)
    u_sums = np.empty((4, B, H), dt)                                  # (4, B, H)
    segment_coefficients(g_c, keep, traj.c_tm1, traj.dc_dzpre, traj.dc_dfpre, traj.dc_dctm1, dt.type(1),
                         lam, g_pre, g_vec, V, coef_in, decay_in, u_sums)
    G, g_x = input_gemms(p, traj.x_t, g_pre)                          # (2H, I), (T, B, I)
    S_Wz = as_output("traces.W_z", traces_in.W_z, (B, H, I), dt, "B,H,I")
    S_Wf = as_output("traces.W_f", traces_in.W_f, (B, H, I), dt, "B,H,I")
    G_Wz, G_Wf = carry_traces(S_Wz, S_Wf, coef_in, decay_in, V.transpose(0, 2, 1), traj.x_t, parallel)
    g_vec_carried, s_vec = carried_vector_pass(traces_in[2:], coef_in, decay_in, u_sums)
    inner = ELSTMParams(G[:H], G[H:], *g_vec)
    carried = ELSTMParams(G_Wz, G_Wf, *g_vec_carried)
    return inner, g_x, coef_in, lam, carried, Traces(S_Wz, S_Wf, *s_vec)
