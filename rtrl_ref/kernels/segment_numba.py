"""Carried-trace pass of the segment form (Numba + BLAS), chunked by batch element.

Reproduces the NumPy reference `rtrl_ref.rtrl.segment_carried_pass`: for every batch element b,
with coef = Jeff_0 * lam_0, decay = Jeff_0 * P_0 and u = P_s * dc_dpre_s (DESIGN.md section 2),

    grads.W_z  += coef[b, :, None] * S.W_z[b]                             (W_f likewise)
    S.W_z[b]    = decay[b, :, None] * S.W_z[b] + u_z[:, b, :]^T @ x[:, b, :]   (H x T) @ (T x I)

and for the vector traces (B, H), plain NumPy:
    grads.w_z = sum_b coef * S.w_z,   S.w_z = decay * S.w_z + sum_s u_z[s] * c_tm1[s]   (likewise)
    grads.b_z = sum_b coef * S.b_z,   S.b_z = decay * S.b_z + sum_s u_z[s]              (likewise)

Per batch element and trace matrix: one fused in-place pass (Numba) that adds coef * S to the
gradient and scales S by decay, then one BLAS GEMM that adds u^T x onto S itself (beta = 1,
through SciPy's BLAS wrapper on the transposed, Fortran-ordered view of the (H, I) block). Each
trace number comes from memory once; the GEMM finds its block in cache, and no GEMM output
buffer is written and read again. On the 2-vCPU machine this took 11.0 ms against 12.4 ms for a
GEMM into a (2H, I) buffer followed by a fused pass (B=32, H=256, I=257, T=50, float32).

Two variants of the fused pass (separate `def`s): `scale_serial` and `scale_parallel` (units split
into n_chunks blocks, one per thread); the GEMM uses BLAS's own threads.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg import blas as scipy_blas

from rtrl_ref.kernels.numba_config import (
    JIT, JIT_PARALLEL, as_input, as_output, kernel_dtype, n_chunks_for)
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import Traces, segment_vector_pass
from rtrl_ref.validate import check_array


@numba.njit(**JIT)
def _scale_units(h0, h1, S_b, G, coef_b, decay_b):
    """Rows h0..h1-1 of one (H, I) block: G += coef S;  S = decay S   (in place)."""
    for h in range(h0, h1):
        c = coef_b[h]
        d = decay_b[h]
        S_row = S_b[h]
        G_row = G[h]
        for i in range(S_row.shape[0]):
            s = S_row[i]
            G_row[i] += c * s
            S_row[i] = d * s


@numba.njit(**JIT)
def scale_serial(S_b, G, coef_b, decay_b):
    """One batch element's (H, I) trace block S_b, one thread; G (H, I); coef_b, decay_b (H,)."""
    _scale_units(0, S_b.shape[0], S_b, G, coef_b, decay_b)


@numba.njit(**JIT_PARALLEL)
def scale_parallel(S_b, G, coef_b, decay_b, n_chunks):
    """One batch element, n_chunks threads each owning a block of units."""
    H = S_b.shape[0]
    for k in numba.prange(n_chunks):
        _scale_units(k * H // n_chunks, (k + 1) * H // n_chunks, S_b, G, coef_b, decay_b)


_GEMM = {np.dtype(np.float32): scipy_blas.sgemm, np.dtype(np.float64): scipy_blas.dgemm}


def _add_product(S_b, V_b, x_b, gemm):
    """S_b (H, I) += V_b^T (H x T) @ x_b (T x I), in place. In Fortran order S_b^T (I, H) is
    x_b^T @ V_b, both operands already Fortran-ordered views, so BLAS copies nothing."""
    out = gemm(1.0, x_b.T, V_b.T, beta=1.0, c=S_b.T, trans_b=1, overwrite_c=1)
    if out.ctypes.data != S_b.ctypes.data:                          # would lose the update
        raise RuntimeError("carried pass: BLAS wrote a copy instead of the trace block in place")


def carry_traces(S_Wz, S_Wf, coef_in, decay_in, V, x_b, parallel: bool = False):
    """The (B, H, I) part, on prepared C-contiguous arrays of one dtype (no checks).

    S_Wz, S_Wf (B, H, I) updated in place; coef_in, decay_in (B, H); V (2, B, T, H) with
    V[0] = u_z and V[1] = u_f per batch element; x_b (B, T, I) the inputs per batch element.
    Returns the carried gradients (G_Wz, G_Wf), each (H, I).
    """
    B, H, I = S_Wz.shape
    gemm = _GEMM[S_Wz.dtype]
    G_Wz = np.zeros((H, I), S_Wz.dtype)                               # (H, I)
    G_Wf = np.zeros((H, I), S_Wz.dtype)                               # (H, I)
    n_chunks = n_chunks_for(H) if parallel else 0
    for b in range(B):
        for S, G, V_k in ((S_Wz, G_Wz, V[0]), (S_Wf, G_Wf, V[1])):
            if n_chunks == 0:
                scale_serial(S[b], G, coef_in[b], decay_in[b])
            else:
                scale_parallel(S[b], G, coef_in[b], decay_in[b], n_chunks)
            _add_product(S[b], V_k[b], x_b[b], gemm)
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

    # per batch element, contiguous: V[k, b] (T, H) and x_b[b] (T, I) (three 1.6 MB copies at
    # B=32, H=256, T=50 in float32, under 1 ms together)
    V = np.empty((2, B, T, H), dtype)                                 # (2, B, T, H)
    V[0] = u_z.transpose(1, 0, 2)
    V[1] = u_f.transpose(1, 0, 2)
    x_b = np.ascontiguousarray(x.transpose(1, 0, 2))                  # (B, T, I)
    G_Wz, G_Wf = carry_traces(S_Wz, S_Wf, coef_in, decay_in, V, x_b, parallel)
    s_wz, s_wf, s_bz, s_bf = s_vec
    g_vec, s_vec = segment_vector_pass(s_wz, s_wf, s_bz, s_bf, coef_in, decay_in, u_z, u_f, c_tm1)
    return ELSTMParams(G_Wz, G_Wf, *g_vec), Traces(S_Wz, S_Wf, *s_vec)


def segment_carried_pass(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """Serial fused pass; same contract as `rtrl_ref.rtrl.segment_carried_pass` (reuses traces_in)."""
    return _segment_pass(traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1, parallel=False)


def segment_carried_pass_parallel(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """Parallel fused pass (units split over Numba's threads); same contract."""
    return _segment_pass(traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1, parallel=True)
