"""Fused RTRL steps of the IndRNN, minGRU and LRU (Numba): reset, forward and trace update in one call,
and the compiled gradient contraction.

Each kernel reproduces the NumPy reference `rtrl_ref.cells.drivers.rtrl_step` for its cell (the
cell's `step` after `mask_rows`, then `reset_traces` and `trace_update`; docs/derivation.md,
section 10): with keep_b = 1 - reset_t[b],

    s_tm1 = keep_b * s[b]                                               (B, H)     Eq. 10
    s_t, J_t, D_t                        the cell's forward and local partials     Eqs. 20-33
    S_t   = (keep_b J_t) * S_tm1 + D_t   for every trace field                     Eq. 19

    indrnn_kernel   h_t = tanh(W x_t + u h_tm1 + b)                       rtrl_ref.cells.indrnn (Eqs. 20-23)
    mingru_kernel   h_t = (1 - z_t) h_tm1 + z_t htilde_t                  rtrl_ref.cells.mingru (Eqs. 24-27)
    lru_kernel      h_t = lam h_tm1 + gamma (B_re + i B_im) x_t, complex  rtrl_ref.cells.lru    (Eqs. 28-33)

    accumulate_kernel   G += sum_b <g_s_t[b], S[b]> for one trace field, the sum over steps of the
                        cells' `grads_from_traces` (rtrl_ref.cells.interface.contract, Eq. 19)

Layout: the input projections are one BLAS GEMM each (`np.dot` into a work buffer), then one pass
over the rows b (outer) and units h (inner): the unit's scalars (activation, J_t, the local
partials), its vector traces, and its trace rows S[b, h, :] as one contiguous loop over I that LLVM
vectorises. Every trace row is read once and written once and nothing else is reused across
(b, h), so the pass has no row or unit blocking and no block-size constants. The contraction is a
separate call because g_s_t depends on s_t through the heads (an online learner computes it
between the two); it reads each trace row once, rows outer as the step. Work buffers (`make_work`)
are allocated once by the caller, so neither call allocates an array per step. Serial only: the
pass is bound by memory bandwidth (as the eLSTM's serial default in numba_backend).

Arithmetic follows the reference operation by operation, in the parameters' dtype (constants are
typed, so float32 stays float32, and no multiply-add is fused). float64 agrees to round-off, not
bit for bit: the GEMM matched NumPy's exactly where measured, but the activations call libm's
tanh, exp, cos, sin, while NumPy's SIMD tanh differs from libm's in the last bit for about 40% of
arguments (measured); where an activation saturates, 1 - h_t^2 turns that bit into a large
relative error of a tiny number, so tests compare against the unit scale (tests/test_cells_numba.py).
float32 agrees within tolerance('kernel', float32) of verify.compare. The contraction sums rows
into G one at a time (the reference sums over rows first), a round-off difference.

Complex arithmetic (LRU): state and traces are complex64/complex128 arrays, as in the reference.
The kernel reads and writes them as complex numbers but computes on explicit real and imaginary
parts with the textbook formula (a + ib)(c + id) = (ac - bd) + i(ad + bc): no intermediate is
promoted to complex128 in float32, and no C99 special-case rescaling enters. (NumPy's SIMD complex
multiply fuses a multiply-add: its products differ from this formula in the last bit for about a
quarter of arguments, measured; another round-off difference.) The unit coefficients
(lam = exp(-exp(nu)) (cos + i sin)(exp(theta)), gamma and their nu, theta derivatives) are
computed once per call, (H,) each, into the work buffer.

The state and the traces (and grads in the contraction) are updated in place and returned (callers
treat those inputs as consumed). `rtrl_step` is the thin wrapper with the drivers' signature,
`stepper` binds it to work buffers, `accumulate_grads` wraps the contraction, and `online_step`
gives both to rtrl_ref.cells.drivers.step_function (`backend="numba"`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np

from rtrl_ref.kernels.numba_config import JIT, as_input, as_output, kernel_dtype
from rtrl_ref.validate import check_array

# -------------------------------------------------------------------------------------------------
# kernels


@numba.njit(**JIT)
def indrnn_kernel(W, u, b_, x_t, reset_t, h, S_W, S_u, S_b, x_W):
    """IndRNN (rtrl_ref.cells.indrnn): h <- h_t, S_W, S_u, S_b <- traces_t, x_W <- x_t W^T (work).
    `b_` is the bias b (the name b indexes the batch here)."""
    np.dot(x_t, W.T, x_W)                                             # (B, H)
    B, H = h.shape
    I = x_t.shape[1]
    one = h.dtype.type(1)
    zero = h.dtype.type(0)
    for b in range(B):
        keep = zero if reset_t[b] else one
        x_b = x_t[b]
        for j in range(H):
            h_tm1 = h[b, j] * keep
            h_t = math.tanh(x_W[b, j] + u[j] * h_tm1 + b_[j])
            dh_dpre = one - h_t * h_t
            decay = dh_dpre * u[j] * keep                             # keep_b J_t
            h[b, j] = h_t
            S_u[b, j] = decay * S_u[b, j] + dh_dpre * h_tm1
            S_b[b, j] = decay * S_b[b, j] + dh_dpre
            S_row = S_W[b, j]
            for i in range(I):
                S_row[i] = decay * S_row[i] + dh_dpre * x_b[i]


@numba.njit(**JIT)
def mingru_kernel(W_z, W_h, b_z, b_h, x_t, reset_t, h, S_Wz, S_Wh, S_bz, S_bh, z_t, htilde_t):
    """minGRU (rtrl_ref.cells.mingru): h <- h_t, the four traces <- traces_t; work: z_t and
    htilde_t hold x_t W_z^T and x_t W_h^T on entry to the pass and z_t, htilde_t after it."""
    np.dot(x_t, W_z.T, z_t)                                           # (B, H) pre-activation of z
    np.dot(x_t, W_h.T, htilde_t)                                      # (B, H)
    B, H = h.shape
    I = x_t.shape[1]
    one = h.dtype.type(1)
    zero = h.dtype.type(0)
    half = h.dtype.type(0.5)
    for b in range(B):
        keep = zero if reset_t[b] else one
        x_b = x_t[b]
        for j in range(H):
            h_tm1 = h[b, j] * keep
            z = half * (math.tanh(half * (z_t[b, j] + b_z[j])) + one)   # sigmoid, as rtrl_ref.xp
            htilde = htilde_t[b, j] + b_h[j]
            dh_dzpre = (htilde - h_tm1) * z * (one - z)
            decay = (one - z) * keep                                  # keep_b J_t
            z_t[b, j] = z
            htilde_t[b, j] = htilde
            h[b, j] = (one - z) * h_tm1 + z * htilde
            S_bz[b, j] = decay * S_bz[b, j] + dh_dzpre
            S_bh[b, j] = decay * S_bh[b, j] + z
            S_z = S_Wz[b, j]
            S_h = S_Wh[b, j]
            for i in range(I):
                S_z[i] = decay * S_z[i] + dh_dzpre * x_b[i]
                S_h[i] = decay * S_h[i] + z * x_b[i]


@numba.njit(**JIT)
def _lru_units(nu, theta, lam, dlam_dnu, dlam_dtheta, gamma, dgamma_dnu):
    """The per-unit coefficients of the LRU step (rtrl_ref.cells.lru.step), (H,) each, in place."""
    two = gamma.dtype.type(2)
    for j in range(nu.shape[0]):
        decay = math.exp(nu[j])
        phase = math.exp(theta[j])
        radius = math.exp(-decay)                                     # |lam|
        lam_re = radius * math.cos(phase)
        lam_im = radius * math.sin(phase)
        g = math.sqrt(-math.expm1(-two * decay))                      # sqrt(1 - |lam|^2)
        lam[j] = complex(lam_re, lam_im)
        dlam_dnu[j] = complex(-decay * lam_re, -decay * lam_im)         # -exp(nu) lam
        dlam_dtheta[j] = complex(-phase * lam_im, phase * lam_re)       # i exp(theta) lam
        gamma[j] = g
        dgamma_dnu[j] = decay * math.exp(-two * decay) / g


@numba.njit(**JIT)
def lru_kernel(nu, theta, B_re, B_im, x_t, reset_t, h, S_nu, S_theta, S_Bre, S_Bim,
               u_re, u_im, lam, dlam_dnu, dlam_dtheta, gamma, dgamma_dnu):
    """LRU (rtrl_ref.cells.lru), complex state and traces: h <- h_t, traces <- traces_t; work:
    u_re, u_im (B, H) the real and imaginary parts of u_t, and the (H,) unit coefficients."""
    np.dot(x_t, B_re.T, u_re)                                         # (B, H) Re(u_t)
    np.dot(x_t, B_im.T, u_im)                                         # (B, H) Im(u_t)
    _lru_units(nu, theta, lam, dlam_dnu, dlam_dtheta, gamma, dgamma_dnu)
    B, H = h.shape
    I = x_t.shape[1]
    one = gamma.dtype.type(1)
    zero = gamma.dtype.type(0)
    for b in range(B):
        keep = zero if reset_t[b] else one
        x_b = x_t[b]
        for j in range(H):
            l_re = lam[j].real
            l_im = lam[j].imag
            h_re = h[b, j].real * keep                                # h_tm1
            h_im = h[b, j].imag * keep
            g = gamma[j]
            ur = u_re[b, j]
            ui = u_im[b, j]
            h[b, j] = complex((l_re * h_re - l_im * h_im) + g * ur, (l_re * h_im + l_im * h_re) + g * ui)
            d_re = l_re * keep                                        # keep_b J_t = keep_b lam
            d_im = l_im * keep
            a_re = dlam_dnu[j].real
            a_im = dlam_dnu[j].imag
            dg = dgamma_dnu[j]
            s = S_nu[b, j]                                            # + dlam_dnu h_tm1 + dgamma_dnu u_t
            S_nu[b, j] = complex((d_re * s.real - d_im * s.imag) + ((a_re * h_re - a_im * h_im) + dg * ur),
                                 (d_re * s.imag + d_im * s.real) + ((a_re * h_im + a_im * h_re) + dg * ui))
            a_re = dlam_dtheta[j].real
            a_im = dlam_dtheta[j].imag
            s = S_theta[b, j]                                         # + dlam_dtheta h_tm1
            S_theta[b, j] = complex((d_re * s.real - d_im * s.imag) + (a_re * h_re - a_im * h_im),
                                    (d_re * s.imag + d_im * s.real) + (a_re * h_im + a_im * h_re))
            S_re = S_Bre[b, j]
            S_im = S_Bim[b, j]
            for i in range(I):
                gx = g * x_b[i]
                s = S_re[i]                                           # + gamma x_t
                S_re[i] = complex((d_re * s.real - d_im * s.imag) + gx, d_re * s.imag + d_im * s.real)
                s = S_im[i]                                           # + i gamma x_t
                S_im[i] = complex(d_re * s.real - d_im * s.imag, (d_re * s.imag + d_im * s.real) + gx)


@numba.njit(**JIT)
def accumulate_kernel(g_s_t, S, G):
    """G[h, k] += sum_b <g_s_t[b, h], S[b, h, k]> for one trace field (rtrl_ref.cells.interface.contract,
    Eq. 19): S (B, H, K) real or complex, G (H, K) real, <g, s> = Re(conj(g) s) = g.re s.re + g.im s.im.
    Rows outer, units inner, as the step: S streams in memory order and G (H, K) is re-read from
    cache for each row (measured faster for complex traces than units outer, equal for real ones)."""
    B, H, K = S.shape
    for b in range(B):
        for h in range(H):
            G_h = G[h]
            g_re = g_s_t[b, h].real
            g_im = g_s_t[b, h].imag
            S_bh = S[b, h]
            for k in range(K):
                G_h[k] += g_re * S_bh[k].real + g_im * S_bh[k].imag


# -------------------------------------------------------------------------------------------------
# work buffers: allocated once, hold the step's local quantities after each call


class IndRNNWork(NamedTuple):
    x_W: np.ndarray          # (B, H) x_t W^T


class MinGRUWork(NamedTuple):
    z_t: np.ndarray          # (B, H) the update gate z_t
    htilde_t: np.ndarray     # (B, H) the candidate htilde_t


class LRUWork(NamedTuple):
    u_re: np.ndarray         # (B, H) Re(u_t)
    u_im: np.ndarray         # (B, H) Im(u_t)
    lam: np.ndarray          # (H,) complex, J_t of every row
    dlam_dnu: np.ndarray     # (H,) complex
    dlam_dtheta: np.ndarray  # (H,) complex
    gamma: np.ndarray        # (H,) real
    dgamma_dnu: np.ndarray   # (H,) real


class KernelSpec(NamedTuple):
    kernel: Callable                      # the compiled step: (*params, x_t, reset_t, s, *traces, *work)
    matrices: tuple[str, ...]             # the params' (H, I) fields; the others are (H,)
    complex_state: bool                   # state and traces complex64/complex128 (the LRU)
    work: type                            # the work NamedTuple
    unit_fields: tuple[str, ...] = ()     # the work's (H,) fields; the others are (B, H)
    complex_fields: tuple[str, ...] = ()  # the work's complex fields; the others are real


KERNELS = {
    "indrnn": KernelSpec(indrnn_kernel, ("W",), False, IndRNNWork),
    "mingru": KernelSpec(mingru_kernel, ("W_z", "W_h"), False, MinGRUWork),
    "lru": KernelSpec(lru_kernel, ("B_re", "B_im"), True, LRUWork,
                      ("lam", "dlam_dnu", "dlam_dtheta", "gamma", "dgamma_dnu"), ("lam", "dlam_dnu", "dlam_dtheta")),
}


def kernel_spec(cell) -> KernelSpec:
    """The kernel of a cell of rtrl_ref.cells (by its name); ValueError for a cell without one."""
    if cell.name not in KERNELS:
        raise ValueError(f"cell: no Numba kernel for {cell.name!r}; kernels exist for {tuple(KERNELS)}")
    return KERNELS[cell.name]


def state_dtype(spec: KernelSpec, dtype) -> np.dtype:
    """The state's and traces' dtype: the parameters' float dtype, or its complex for the LRU."""
    return np.result_type(dtype, np.complex64) if spec.complex_state else np.dtype(dtype)


def make_work(cell, p, B: int):
    """The work buffers of one kernel for params p and B rows (allocate once, reuse every step)."""
    spec = kernel_spec(cell)
    dtype = kernel_dtype(f"params.{spec.matrices[0]}", getattr(p, spec.matrices[0]))
    H = getattr(p, spec.matrices[0]).shape[0]
    fields = []
    for field in spec.work._fields:
        shape = (H,) if field in spec.unit_fields else (B, H)
        field_dtype = state_dtype(spec, dtype) if field in spec.complex_fields else dtype
        fields.append(np.zeros(shape, field_dtype))                  # (B, H) or (H,)
    return spec.work(*fields)


# -------------------------------------------------------------------------------------------------
# the wrapper with the drivers' signature


def _arguments(spec: KernelSpec, p, x_t, reset_t, s_tm1, traces, work):
    """Check shapes and dtypes (no finiteness scan: that would be a second pass) and return the
    kernel's arguments, C-contiguous; outputs copied only if not C-contiguous and writeable."""
    first = getattr(p, spec.matrices[0])
    dtype = kernel_dtype(f"params.{spec.matrices[0]}", first)
    if not (type(first) is np.ndarray and first.ndim == 2):
        check_array(f"params.{spec.matrices[0]}", first, (("H", None), ("I", None)), dtype, finite=False)
    H, I = first.shape
    params = [as_input(f"params.{f}", a, (H, I) if f in spec.matrices else (H,), dtype,
                       "H,I" if f in spec.matrices else "H") for f, a in zip(p._fields, p)]
    if not (type(x_t) is np.ndarray and x_t.ndim == 2):
        check_array("x_t", x_t, (("B", None), ("I", I)), dtype, finite=False)
    B = x_t.shape[0]
    x_t = as_input("x_t", x_t, (B, I), dtype, "B,I")
    if not (type(reset_t) is np.ndarray and reset_t.shape == (B,) and reset_t.dtype == np.bool_
            and reset_t.flags.c_contiguous):
        check_array("reset_t", reset_t, (("B", B),), finite=False)
        if np.dtype(reset_t.dtype) != np.dtype(bool):
            raise ValueError(f"reset_t: expected dtype bool, got {np.dtype(reset_t.dtype)}")
        reset_t = np.ascontiguousarray(reset_t)
    sdtype = state_dtype(spec, dtype)
    s = as_output("s_tm1", s_tm1, (B, H), sdtype, "B,H")
    if tuple(getattr(traces, "_fields", ())) != p._fields:
        raise ValueError(f"traces: expected a {type(p).__name__} of traces, got {type(traces).__name__}")
    S = [as_output(f"traces.{f}", a, (B, H, I) if f in spec.matrices else (B, H), sdtype,
                   "B,H,I" if f in spec.matrices else "B,H") for f, a in zip(p._fields, traces)]
    if not isinstance(work, spec.work):
        raise ValueError(f"work: expected a {spec.work.__name__} (make_work), got {type(work).__name__}")
    buffers = [as_output(f"work.{f}", a, (H,) if f in spec.unit_fields else (B, H),
                         sdtype if f in spec.complex_fields else dtype, "H" if f in spec.unit_fields else "B,H")
               for f, a in zip(work._fields, work)]
    return params, x_t, reset_t, s, S, buffers


def rtrl_step(cell, p, x_t, reset_t, s_tm1, traces, work=None):
    """One online step through the cell's kernel: the contract of rtrl_ref.cells.drivers.rtrl_step,
    except that s_tm1 and traces are updated in place and returned (consumed), and the third result
    is the work buffer (this step's local quantities) instead of the NumPy cache. Returns
    (s_t (B, H), traces_t, work). Pass `work` (make_work) to allocate nothing per step."""
    spec = kernel_spec(cell)
    if work is None:
        work = make_work(cell, p, np.shape(x_t)[0])
    params, x, reset, s, S, buffers = _arguments(spec, p, x_t, reset_t, s_tm1, traces, work)
    spec.kernel(*params, x, reset, s, *S, *buffers)
    return s, type(traces)(*S), spec.work(*buffers)


def stepper(cell, p, B: int):
    """rtrl_step bound to the cell and to work buffers for B rows: (p, x_t, reset_t, s_tm1, traces)
    -> (s_t, traces_t, work), in place, no allocation per step."""
    return functools.partial(rtrl_step, cell, work=make_work(cell, p, B))


def accumulate_grads(grads, g_s_t, traces):
    """grads + sum_b <g_s_t[b], traces[b]> for every field, in place (the sum of the cell's
    `grads_from_traces` over steps); grads None starts from zeros (allocated here). Returns grads."""
    if not hasattr(traces, "_fields"):
        raise ValueError(f"traces: expected a NamedTuple of traces, got {type(traces).__name__}")
    first = traces[0]
    check_array("traces." + traces._fields[0], first, (("B", None), ("H", None)) + (None,) * (first.ndim - 2),
                first.dtype, finite=False)
    B, H = first.shape[:2]
    g_s_t = as_input("g_s_t", g_s_t, (B, H), first.dtype, "B,H")
    if grads is None:
        grads = type(traces)(*(np.zeros(a.shape[1:], a.real.dtype) for a in traces))   # (H, I) or (H,) each
    out = []
    for field, S, G in zip(traces._fields, traces, grads):
        S = as_input(f"traces.{field}", S, (B, H) + S.shape[2:], first.dtype)
        G = as_output(f"grads.{field}", G, S.shape[1:], first.real.dtype)
        out.append(G)
        accumulate_kernel(g_s_t, S.reshape(B, H, -1), G.reshape(H, -1))   # a vector trace (B, H) as K = 1
    return type(traces)(*out)


def online_step(cell, p, B: int):
    """(step, accumulate, in_place) for rtrl_ref.cells.drivers.step_function: `stepper(cell, p, B)`
    and `accumulate_grads`, both in place."""
    return stepper(cell, p, B), accumulate_grads, True
