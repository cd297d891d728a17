"""Fused per-step RTRL kernel (CuPy RawKernel): reset + trace update + gradient accumulation.

Reproduces the NumPy reference `rtrl_ref.traces.trace_step_accumulate` (equations in
`rtrl_ref.kernels.step_numba`): with J_b = keep_b * dc_dctm1[b, h],

    S.W_z[b, h, i] = J_b S.W_z[b, h, i] + dc_dzpre[b, h] x_t[b, i]      (W_f with dc_dfpre)
    grads.W_z[h, i] += sum_b g_c_t[b, h] S.W_z[b, h, i]

One thread per (flat (h, i) index, slice of b): consecutive threads take consecutive (h, i), so
rows are fully coalesced whatever I is; each thread loops over its slice of b and keeps the sum in
a register. With one slice (small B) the sum goes straight into the gradient; with n_slices > 1
each slice writes a partial sum and a second kernel adds the n partial sums in slice order. No
atomics, fixed summation order: deterministic. Slicing b puts n times more threads in flight,
which is what a memory-bound loop needs; the partial sums cost 4 H I values per slice against
4 B H I for the traces (at least MIN_CHUNK rows per slice). The (B, H) vector traces run the same
way, one thread per (h, slice of b). Traces and grads are updated in place on the device and returned.
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
    /* S_*: (B, H, I) traces; G_*: (H, I) gradients when accumulate, else (n_slices, H, I) partial
       sums. One thread per flat (h, i) index j of a slice of b (blockIdx.y): warps cover
       consecutive j, so every row access is fully coalesced whatever I is. */
    const long long HI = (long long)H * I;
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int slice = blockIdx.y;
    if (j >= HI) return;
    const int h = (int)(j / I);
    const int i = (int)(j - (long long)h * I);
    const int b0 = slice * chunk;
    const int b1 = min(B, b0 + chunk);
    real acc_z = 0, acc_f = 0;
    #pragma unroll 4
    for (int b = b0; b < b1; ++b) {
        const long long bh = (long long)b * H + h;
        const long long k = (long long)b * HI + j;
        const real jac = keep[b] * J[bh];
        const real x_bi = x[(long long)b * I + i];
        const real s_z = jac * S_z[k] + dc_dzpre[bh] * x_bi;
        const real s_f = jac * S_f[k] + dc_dfpre[bh] * x_bi;
        S_z[k] = s_z;
        S_f[k] = s_f;
        acc_z += g_c[bh] * s_z;
        acc_f += g_c[bh] * s_f;
    }
    const long long out = (long long)slice * HI + j;
    if (accumulate) {
        G_z[out] += acc_z;
        G_f[out] += acc_f;
    } else {
        G_z[out] = acc_z;
        G_f[out] = acc_f;
    }
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
                 const int B, const int H, const int chunk, const int accumulate)
{
    /* s_*: (B, H) traces; G_*: (H,) gradients when accumulate, else (n_slices, H) partial sums.
       One thread per (h, slice of b). */
    const int h = blockIdx.x * blockDim.x + threadIdx.x;
    const int slice = blockIdx.y;
    if (h >= H) return;
    const int b0 = slice * chunk;
    const int b1 = min(B, b0 + chunk);
    real a_wz = 0, a_wf = 0, a_bz = 0, a_bf = 0;
    for (int b = b0; b < b1; ++b) {
        const long long k = (long long)b * H + h;
        const real jac = keep[b] * J[k];
        const real v_wz = jac * s_wz[k] + dc_dzpre[k] * c_tm1[k];
        const real v_wf = jac * s_wf[k] + dc_dfpre[k] * c_tm1[k];
        const real v_bz = jac * s_bz[k] + dc_dzpre[k];
        const real v_bf = jac * s_bf[k] + dc_dfpre[k];
        s_wz[k] = v_wz; s_wf[k] = v_wf; s_bz[k] = v_bz; s_bf[k] = v_bf;
        a_wz += g_c[k] * v_wz; a_wf += g_c[k] * v_wf;
        a_bz += g_c[k] * v_bz; a_bf += g_c[k] * v_bf;
    }
    const long long out = (long long)slice * H + h;
    if (accumulate) {
        G_wz[out] += a_wz; G_wf[out] += a_wf; G_bz[out] += a_bz; G_bf[out] += a_bf;
    } else {
        G_wz[out] = a_wz; G_wf[out] = a_wf; G_bz[out] = a_bz; G_bf[out] = a_bf;
    }
}
"""

REDUCE_SOURCE = r"""
extern "C" __global__
void sum_slices(real* __restrict__ G_a, real* __restrict__ G_b,
                const real* __restrict__ P_a, const real* __restrict__ P_b,
                const int n_slices, const long long n)
{
    /* G_*[k] += sum over slices s (in order) of P_*[s, k]; P_*: (n_slices, n) */
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    real acc_a = 0, acc_b = 0;
    for (int s = 0; s < n_slices; ++s) {
        acc_a += P_a[s * n + k];
        acc_b += P_b[s * n + k];
    }
    G_a[k] += acc_a;
    G_b[k] += acc_b;
}
"""

THREADS = 128
TARGET_THREADS = 2**20      # slice b until about this many threads are in flight (0: never slice)
MIN_CHUNK = 8               # at least this many rows per slice (partial sums stay <= 1/8 of the traffic)


def n_slices(B: int, n_per_slice: int) -> int:
    """How many slices of b a kernel with n_per_slice threads per slice uses (1: no partial sums)."""
    blocks = (n_per_slice + THREADS - 1) // THREADS
    wanted = -(-TARGET_THREADS // (blocks * THREADS)) if TARGET_THREADS else 1
    return int(max(1, min(wanted, B // MIN_CHUNK, 65535)))


def _launch_sliced(source: str, name: str, dtype, B: int, n_per_slice: int, S: list, G: list, inputs: tuple,
                   sizes: tuple):
    """Run a kernel over (n_per_slice threads) x (slices of b); with several slices its partial sums
    go to scratch buffers and sum_slices adds them into G in slice order (deterministic)."""
    import cupy

    n = n_slices(B, n_per_slice)
    chunk = -(-B // n)
    n = -(-B // chunk)                                                # no empty slice
    P = G if n == 1 else [cupy.empty((n, n_per_slice), dtype) for _ in G]
    blocks = (n_per_slice + THREADS - 1) // THREADS
    raw_kernel(source, name, dtype.name)(
        (blocks, n), (THREADS,), (*S, *P, *inputs, *(np.int32(v) for v in sizes), np.int32(chunk), np.int32(n == 1)))
    if n > 1:
        reduce = raw_kernel(REDUCE_SOURCE, "sum_slices", dtype.name)
        for a in range(0, len(G), 2):
            reduce((blocks,), (THREADS,), (G[a], G[a + 1], P[a], P[a + 1], np.int32(n), np.int64(n_per_slice)))


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
    _launch_sliced(MATRIX_SOURCE, "step_matrix", dtype, B, H * I, S[:2], G[:2],
                   (x_t, J, dc_dzpre, dc_dfpre, keep, g_c), (B, H, I))
    _launch_sliced(VECTOR_SOURCE, "step_vector", dtype, B, H, S[2:], G[2:],
                   (c_tm1, J, dc_dzpre, dc_dfpre, keep, g_c), (B, H))
    return Traces(*S), ELSTMParams(*G)
