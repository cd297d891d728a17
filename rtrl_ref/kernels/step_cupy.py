"""Fused per-step RTRL kernel (CuPy RawKernel): reset + trace update + gradient accumulation.

Reproduces the NumPy reference `rtrl_ref.traces.trace_step_accumulate` (equations in
`rtrl_ref.kernels.step_numba`): with J_b = keep_b * dc_dctm1[b, h],

    S.W_z[b, h, i] = J_b S.W_z[b, h, i] + dc_dzpre[b, h] x_t[b, i]      (W_f with dc_dfpre)
    grads.W_z[h, i] += sum_b g_c_t[b, h] S.W_z[b, h, i]

One thread per (h, i, slice of b): consecutive threads take consecutive i (coalesced rows), each
thread loops over its slice of b and keeps the sum in a register. With one slice (small B*H*I) the
sum goes straight into the gradient; with n_slices > 1 (enough rows to keep the card busy) each
slice writes a partial sum and a second kernel adds the n partial sums in slice order. No atomics,
fixed summation order: deterministic. Slicing b gives large batches n times more threads in
flight, which is what a memory-bound loop needs; the partial sums cost 4 H I values per slice
against 4 B H I for the traces. A third small kernel does the (B, H) vector traces, one thread
per h. Traces and grads are updated in place on the device and returned.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.kernels.cupy_common import device_input, device_output, kernel_dtype, raw_kernel
from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces

MATRIX_SOURCE = r"""
extern "C" __global__
void step_matrix(real* __restrict__ S_z, real* __restrict__ S_f,
                 real* __restrict__ G_z, real* __restrict__ G_f,
                 const real* __restrict__ x, const real* __restrict__ J,
                 const real* __restrict__ dc_dzpre, const real* __restrict__ dc_dfpre,
                 const real* __restrict__ keep, const real* __restrict__ g_c,
                 const int B, const int H, const int I, const int chunk, const int accumulate)
{
    /* S_*: (B, H, I) traces; G_*: (H, I) gradients when accumulate, else (n_slices, H, I) partial sums */
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int h = blockIdx.y;
    const int slice = blockIdx.z;
    if (i >= I) return;
    const int b0 = slice * chunk;
    const int b1 = min(B, b0 + chunk);
    real acc_z = 0, acc_f = 0;
    #pragma unroll 4
    for (int b = b0; b < b1; ++b) {
        const long long bh = (long long)b * H + h;
        const long long k = bh * I + i;
        const real j = keep[b] * J[bh];
        const real x_bi = x[(long long)b * I + i];
        const real s_z = j * S_z[k] + dc_dzpre[bh] * x_bi;
        const real s_f = j * S_f[k] + dc_dfpre[bh] * x_bi;
        S_z[k] = s_z;
        S_f[k] = s_f;
        acc_z += g_c[bh] * s_z;
        acc_f += g_c[bh] * s_f;
    }
    const long long hi = ((long long)slice * H + h) * I + i;
    if (accumulate) {
        G_z[hi] += acc_z;
        G_f[hi] += acc_f;
    } else {
        G_z[hi] = acc_z;
        G_f[hi] = acc_f;
    }
}
"""

REDUCE_SOURCE = r"""
extern "C" __global__
void sum_slices(real* __restrict__ G_z, real* __restrict__ G_f,
                const real* __restrict__ P_z, const real* __restrict__ P_f,
                const int n_slices, const long long HI)
{
    /* G_*[k] += sum over slices s (in order) of P_*[s, k]; P_*: (n_slices, H, I) */
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= HI) return;
    real acc_z = 0, acc_f = 0;
    for (int s = 0; s < n_slices; ++s) {
        acc_z += P_z[s * HI + k];
        acc_f += P_f[s * HI + k];
    }
    G_z[k] += acc_z;
    G_f[k] += acc_f;
}
"""

VECTOR_SOURCE = r"""
extern "C" __global__
void step_vector(real* __restrict__ s_wz, real* __restrict__ s_wf,
                 real* __restrict__ s_bz, real* __restrict__ s_bf,
                 real* __restrict__ G_wz, real* __restrict__ G_wf,
                 real* __restrict__ G_bz, real* __restrict__ G_bf,
                 const real* __restrict__ c_tm1, const real* __restrict__ J,
                 const real* __restrict__ dc_dzpre, const real* __restrict__ dc_dfpre,
                 const real* __restrict__ keep, const real* __restrict__ g_c,
                 const int B, const int H)
{
    const int h = blockIdx.x * blockDim.x + threadIdx.x;
    if (h >= H) return;
    real a_wz = 0, a_wf = 0, a_bz = 0, a_bf = 0;
    for (int b = 0; b < B; ++b) {
        const long long k = (long long)b * H + h;
        const real j = keep[b] * J[k];
        const real v_wz = j * s_wz[k] + dc_dzpre[k] * c_tm1[k];
        const real v_wf = j * s_wf[k] + dc_dfpre[k] * c_tm1[k];
        const real v_bz = j * s_bz[k] + dc_dzpre[k];
        const real v_bf = j * s_bf[k] + dc_dfpre[k];
        s_wz[k] = v_wz; s_wf[k] = v_wf; s_bz[k] = v_bz; s_bf[k] = v_bf;
        a_wz += g_c[k] * v_wz; a_wf += g_c[k] * v_wf;
        a_bz += g_c[k] * v_bz; a_bf += g_c[k] * v_bf;
    }
    G_wz[h] += a_wz; G_wf[h] += a_wf; G_bz[h] += a_bz; G_bf[h] += a_bf;
}
"""

THREADS = 128
TARGET_THREADS = 2**20      # slice b until about this many threads are in flight (0: never slice)
MIN_CHUNK = 8               # at least this many rows per slice (partial sums stay <= 1/8 of the traffic)


def n_slices(B: int, H: int, I: int) -> int:
    """How many slices of b the matrix kernel uses: 1 when B H I already fills the card."""
    per_slice = H * THREADS * ((I + THREADS - 1) // THREADS)
    wanted = -(-TARGET_THREADS // per_slice) if TARGET_THREADS else 1
    return int(max(1, min(wanted, B // MIN_CHUNK)))


def trace_step_accumulate(traces: Traces, cache: CellCache, reset_t, g_c_t, grads: ELSTMParams):
    """Same contract as `rtrl_ref.traces.trace_step_accumulate`; traces and grads in place (device)."""
    import cupy

    if not isinstance(traces, Traces):
        raise ValueError(f"traces: expected a Traces container, got {type(traces).__name__}")
    dtype = kernel_dtype("traces.W_z", traces.W_z)
    if getattr(traces.W_z, "ndim", None) != 3:
        raise ValueError(f"traces.W_z: expected shape (B, H, I), got {tuple(traces.W_z.shape)}")
    B, H, I = traces.W_z.shape
    S = [device_output(f"traces.{f}", a, (B, H, I) if k < 2 else (B, H), dtype, "B,H,I")
         for k, (f, a) in enumerate(zip(Traces._fields, traces))]
    G = [device_output(f"grads.{f}", a, (H, I) if k < 2 else (H,), dtype, "H,I")
         for k, (f, a) in enumerate(zip(ELSTMParams._fields, grads))]
    x_t = device_input("cache.x_t", cache.x_t, (B, I), dtype, "B,I")
    c_tm1, dc_dzpre, dc_dfpre, J = (device_input(f"cache.{f}", getattr(cache, f), (B, H), dtype, "B,H")
                          for f in ("c_tm1", "dc_dzpre", "dc_dfpre", "dc_dctm1"))
    reset_t = cupy.asarray(reset_t)
    if tuple(reset_t.shape) != (B,) or reset_t.dtype != np.dtype(bool):
        raise ValueError(f"reset_t: expected a bool array of shape (B={B},), got "
                         f"{reset_t.dtype} {tuple(reset_t.shape)}")
    keep = (~reset_t).astype(dtype)                                   # (B,)
    g_c = device_input("g_c_t", g_c_t, (B, H), dtype, "B,H")
    dn = dtype.name
    n = n_slices(B, H, I)
    chunk = -(-B // n)
    n = -(-B // chunk)                                                # no empty slice
    P = (G[0], G[1]) if n == 1 else (cupy.empty((n, H, I), dtype), cupy.empty((n, H, I), dtype))
    raw_kernel(MATRIX_SOURCE, "step_matrix", dn)(
        ((I + THREADS - 1) // THREADS, H, n), (THREADS,),
        (S[0], S[1], P[0], P[1], x_t, J, dc_dzpre, dc_dfpre, keep, g_c, np.int32(B), np.int32(H), np.int32(I),
         np.int32(chunk), np.int32(n == 1)))
    if n > 1:
        raw_kernel(REDUCE_SOURCE, "sum_slices", dn)(
            ((H * I + THREADS - 1) // THREADS,), (THREADS,), (G[0], G[1], P[0], P[1], np.int32(n), np.int64(H * I)))
    raw_kernel(VECTOR_SOURCE, "step_vector", dn)(
        ((H + THREADS - 1) // THREADS,), (THREADS,),
        (S[2], S[3], S[4], S[5], G[2], G[3], G[4], G[5], c_tm1, J, dc_dzpre, dc_dfpre, keep, g_c,
         np.int32(B), np.int32(H)))
    return Traces(*S), ELSTMParams(*G)
