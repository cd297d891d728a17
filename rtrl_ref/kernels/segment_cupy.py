"""Carried-trace pass of the segment form (CuPy: cuBLAS batched GEMM + one fused RawKernel).

Reproduces the NumPy reference `rtrl_ref.traces.segment_carried_pass` (equations in
`rtrl_ref.kernels.segment_numba`). Batch elements are processed in chunks of k: one strided
batched GEMM (cuBLAS, through cupy.matmul) gives M = U[b0:b1] @ x_b[b0:b1], (k, 2H, T) @ (k, T, I),
then one kernel, one thread per flat (row of [W_z ; W_f], i) index, loops over the chunk's b:

    G[row, i] += coef[b, h] S[b, row, i];   S[b, row, i] = decay[b, h] S[b, row, i] + M[b, row, i]

in place in traces_in (allowed by the contract). The GEMM buffer holds k (2H, I) matrices, never
a second trace-sized buffer (k is chosen so it stays below MAX_CHUNK_BYTES); G accumulates over
chunks in batch order, so the result is deterministic.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.kernels.cupy_common import device_input, device_output, kernel_dtype, raw_kernel
from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces, segment_vector_pass

MAX_CHUNK_BYTES = 256 * 2**20

CARRY_SOURCE = r"""
extern "C" __global__
void carry(real* __restrict__ S_z, real* __restrict__ S_f, real* __restrict__ G,
           const real* __restrict__ M, const real* __restrict__ coef, const real* __restrict__ decay,
           const int b0, const int k, const int H, const int I)
{
    /* one thread per flat (row, i) index j of [W_z ; W_f], rows 0..2H-1: warps cover consecutive j,
       so every access is coalesced whatever I is */
    const long long HI = (long long)H * I;
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= 2 * HI) return;
    const int row = (int)(j / I);
    const int h = row < H ? row : row - H;
    real* S = row < H ? S_z : S_f;
    const long long hi = row < H ? j : j - HI;      /* flat (h, i) */
    real acc = 0;
    for (int c = 0; c < k; ++c) {
        const int b = b0 + c;
        const long long s_idx = (long long)b * HI + hi;
        const real s = S[s_idx];
        acc += coef[(long long)b * H + h] * s;
        S[s_idx] = decay[(long long)b * H + h] * s + M[(long long)c * 2 * HI + j];
    }
    G[j] += acc;
}
"""

THREADS = 128


def segment_carried_pass(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """Same contract as `rtrl_ref.traces.segment_carried_pass`; reuses traces_in's W_z, W_f memory."""
    import cupy

    if not isinstance(traces_in, Traces):
        raise ValueError(f"traces_in: expected a Traces container, got {type(traces_in).__name__}")
    dtype = kernel_dtype("traces_in.W_z", traces_in.W_z)
    if getattr(traces_in.W_z, "ndim", None) != 3:
        raise ValueError(f"traces_in.W_z: expected shape (B, H, I), got {tuple(traces_in.W_z.shape)}")
    B, H, I = traces_in.W_z.shape
    if getattr(u_z, "ndim", None) != 3:
        raise ValueError(f"u_z: expected shape (T, B={B}, H={H}), got {tuple(getattr(u_z, 'shape', ()))}")
    T = u_z.shape[0]
    S_z = device_output("traces_in.W_z", traces_in.W_z, (B, H, I), dtype, "B,H,I")
    S_f = device_output("traces_in.W_f", traces_in.W_f, (B, H, I), dtype, "B,H,I")
    s_wz, s_wf, s_bz, s_bf = (device_input(f"traces_in.{f}", getattr(traces_in, f), (B, H), dtype, "B,H")
                              for f in ("w_z", "w_f", "b_z", "b_f"))
    coef_in = device_input("coef_in", coef_in, (B, H), dtype, "B,H")
    decay_in = device_input("decay_in", decay_in, (B, H), dtype, "B,H")
    u_z = device_input("u_z", u_z, (T, B, H), dtype, "T,B,H")
    u_f = device_input("u_f", u_f, (T, B, H), dtype, "T,B,H")
    x = device_input("x", x, (T, B, I), dtype, "T,B,I")
    c_tm1 = device_input("c_tm1", c_tm1, (T, B, H), dtype, "T,B,H")

    U = cupy.empty((B, 2 * H, T), dtype)                              # (B, 2H, T)
    U[:, :H] = u_z.transpose(1, 2, 0)
    U[:, H:] = u_f.transpose(1, 2, 0)
    x_b = cupy.ascontiguousarray(x.transpose(1, 0, 2))                # (B, T, I)
    G = cupy.zeros((2 * H, I), dtype)                                 # (2H, I) [G_Wz ; G_Wf]
    k = int(max(1, min(B, MAX_CHUNK_BYTES // (2 * H * I * dtype.itemsize))))
    M = cupy.empty((k, 2 * H, I), dtype)                              # (k, 2H, I) GEMM buffer
    kernel = raw_kernel(CARRY_SOURCE, "carry", dtype.name)
    for b0 in range(0, B, k):
        n = min(k, B - b0)
        cupy.matmul(U[b0:b0 + n], x_b[b0:b0 + n], out=M[:n])
        kernel(((2 * H * I + THREADS - 1) // THREADS,), (THREADS,),
               (S_z, S_f, G, M, coef_in, decay_in, np.int32(b0), np.int32(n), np.int32(H), np.int32(I)))
    g_vec, s_vec = segment_vector_pass(s_wz, s_wf, s_bz, s_bf, coef_in, decay_in, u_z, u_f, c_tm1)
    return ELSTMParams(G[:H], G[H:], *g_vec), Traces(S_z, S_f, *s_vec)
