"""One fully online step of the copy-task model in one compiled call (Numba).

The model of `rtrl_ref.r2ac.copy_online` (docs/derivation.md): the eLSTM (Eqs. 1-3) with the reset
mask (Eq. 10), the output gate (Eq. 4), a readout to K classes and the softmax cross-entropy summed
over the B rows. One call of `online_step_kernel` does, for one step t:

    keep = 1 - reset_t;  c_tm1 = c where keep, else 0                         (B, H)    Eq. 10
    pre = x_t [W_z ; W_f]^T                                                    (B, 2H)   one GEMM
    z_t, f_t, c_t, dc_dzpre, dc_dfpre, J_t                                     (B, H)    Eqs. 1-3, 5-6
    xc = [x_t ; c_t];  o_t = sigmoid(xc W_o^T + b_o);  h_t = o_t * c_t         (B, H)    Eq. 4, one GEMM
    logits = h_t W_y^T + b_y;  log_p = log_softmax(logits)                     (B, K)
    L_t = -sum_b log_p[b, y_t[b]];  g_logits = exp(log_p) - onehot(y_t)        (B, K)
    g_h = g_logits W_y;  G_W_y (+)= g_logits^T h_t;  G_b_y (+)= sum_b g_logits
    g_opre = g_h * c_t * o_t * (1 - o_t);  g_xc = g_opre W_o                   (B, I + H) one GEMM
    g_c = g_h * o_t + g_xc[:, I:]                                              (B, H)    Eq. 11
    G_W_o (+)= g_opre^T xc (one GEMM);  G_b_o (+)= sum_b g_opre
    traces and eLSTM gradients (+)= sum_b g_c * S                              Eqs. 7-9 (step_numba)
    optionally the global-norm clip and the Adam step of every parameter       one flat loop

with "(+)=" meaning "=" for the per-step gradient (the online update) and "+=" when accumulating
over steps (`accumulate=True`, e.g. to compare the summed gradient with BPTT).

Flat layout. Every parameter lives in one buffer `theta` (P,) in the order of the copy-task
parameter tree (W_z, W_f, w_z, w_f, b_z, b_f, W_o, b_o, W_y, b_y), so [W_z ; W_f] is one (2H, I)
matrix and the clip and Adam are one loop over P numbers; the gradient `grad` and the Adam moments
`m`, `v` share the layout. `OnlineStep` owns these and every work buffer, exposes the parameters,
gradients, traces and cell as views, and calls the kernel once per step (no array allocated per
step). The trace update is `step_numba.step_serial`, the kernel of the numba backend's
`trace_step_accumulate`, called from inside this kernel.

Adam and the clip follow `rtrl_ref.r2ac.optim` (`clip_by_global_norm`, then `adam_update`): the
norm in float64, the scale and every hyperparameter rounded to the parameters' dtype first, so
float32 parameters take the same float32 operations as the NumPy reference.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from rtrl_ref.kernels.numba_config import JIT
from rtrl_ref.kernels.step_numba import block_units, step_serial
from rtrl_ref.params import ELSTMParams, OutGateParams
from rtrl_ref.traces import Traces
from rtrl_ref.validate import check_array, check_float_dtype

# rows of the (N_WORK, B, H) work buffer: one (B, H) array per quantity of the step
C_TM1, Z, F, DC_DZPRE, DC_DFPRE, J, O, H_T, G_H, G_OPRE, G_C = range(11)
N_WORK = 11
WORK_ROWS = ("c_tm1", "z_t", "f_t", "dc_dzpre", "dc_dfpre", "dc_dctm1", "o_t", "h_t", "g_h", "g_opre", "g_c")

# slots of the (N_HYPER,) array of hyperparameters in the parameters' dtype, filled by the kernel
LR, BETA1, ONE_M_BETA1, BETA2, ONE_M_BETA2, EPS, CORRECTION1, CORRECTION2, SCALE = range(9)
N_HYPER = 9


def flat_size(H: int, I: int, K: int) -> int:
    """P: the number of parameters (and the length of theta, grad, m and v)."""
    return 2 * H * I + 4 * H + H * (I + H) + H + K * H + K


@numba.njit(**JIT)
def _offsets(H, I, K):
    """Start of every parameter in the flat layout (and the end, P)."""
    HI = H * I
    o_wz = 2 * HI
    o_Wo = o_wz + 4 * H
    o_bo = o_Wo + H * (I + H)
    o_Wy = o_bo + H
    o_by = o_Wy + K * H
    return o_wz, o_Wo, o_bo, o_Wy, o_by, o_by + K


@numba.njit(**JIT)
def _cell_views(flat, H, I):
    """The eLSTM's part of the flat layout: (W_z, W_f (H, I), w_z, w_f, b_z, b_f (H,))."""
    HI = H * I
    o_wz = 2 * HI
    return (flat[0:HI].reshape(H, I), flat[HI:o_wz].reshape(H, I), flat[o_wz:o_wz + H],
            flat[o_wz + H:o_wz + 2 * H], flat[o_wz + 2 * H:o_wz + 3 * H], flat[o_wz + 3 * H:o_wz + 4 * H])


@numba.njit(**JIT)
def _views(flat, H, I, K):
    """(W_zf (2H, I), w_z, w_f, b_z, b_f (H,), W_o (H, I + H), b_o (H,), W_y (K, H), b_y (K,))."""
    o_wz, o_Wo, o_bo, o_Wy, o_by, P = _offsets(H, I, K)
    W_zf = flat[0:o_wz].reshape(2 * H, I)
    _, _, w_z, w_f, b_z, b_f = _cell_views(flat, H, I)
    W_o = flat[o_Wo:o_bo].reshape(H, I + H)
    b_o = flat[o_bo:o_Wy]
    W_y = flat[o_Wy:o_by].reshape(K, H)
    b_y = flat[o_by:P]
    return W_zf, w_z, w_f, b_z, b_f, W_o, b_o, W_y, b_y


@numba.njit(**JIT)
def forward(theta, c, x_t, reset_t, y_t, keep, work, pre, xc, logits, log_p, predictions):
    """Cell (with the reset), output gate, readout, log-softmax: c <- c_t in place, the work rows
    C_TM1..H_T, logits, log_p and predictions filled. Returns the loss sum_b -log_p[b, y_t[b]]."""
    B, H = c.shape
    I = x_t.shape[1]
    K = logits.shape[1]
    W_zf, w_z, w_f, b_z, b_f, W_o, b_o, W_y, b_y = _views(theta, H, I, K)
    for b in range(B):
        keep[b] = 0.0 if reset_t[b] else 1.0
    np.dot(x_t, W_zf.T, pre)                                          # (B, 2H)
    for b in range(B):
        for i in range(I):
            xc[b, i] = x_t[b, i]
        for h in range(H):
            c_tm1 = c[b, h] if keep[b] != 0.0 else 0.0
            z_t = math.tanh(pre[b, h] + w_z[h] * c_tm1 + b_z[h])
            f_t = 0.5 * (math.tanh(0.5 * (pre[b, H + h] + w_f[h] * c_tm1 + b_f[h])) + 1.0)
            c_t = f_t * c_tm1 + (1 - f_t) * z_t
            dc_dzpre = (1 - f_t) * (1 - z_t * z_t)
            dc_dfpre = (c_tm1 - z_t) * f_t * (1 - f_t)
            work[C_TM1, b, h] = c_tm1
            work[Z, b, h] = z_t
            work[F, b, h] = f_t
            work[DC_DZPRE, b, h] = dc_dzpre
            work[DC_DFPRE, b, h] = dc_dfpre
            work[J, b, h] = f_t + dc_dzpre * w_z[h] + dc_dfpre * w_f[h]
            c[b, h] = c_t
            xc[b, I + h] = c_t
    o_t = work[O]
    np.dot(xc, W_o.T, o_t)                                            # (B, H) pre-activation
    loss = 0.0
    for b in range(B):
        for h in range(H):
            o_t[b, h] = 0.5 * (math.tanh(0.5 * (o_t[b, h] + b_o[h])) + 1.0)
            work[H_T, b, h] = o_t[b, h] * c[b, h]
        for k in range(K):
            s = 0.0
            for h in range(H):
                s += work[H_T, b, h] * W_y[k, h]
            logits[b, k] = s + b_y[k]
        top = logits[b, 0]
        for k in range(1, K):
            top = max(top, logits[b, k])
        total = 0.0
        for k in range(K):
            log_p[b, k] = logits[b, k] - top
            total += math.exp(log_p[b, k])
        lse = math.log(total)
        best = 0
        for k in range(K):
            log_p[b, k] = log_p[b, k] - lse
            if log_p[b, k] > log_p[b, best]:
                best = k
        predictions[b] = best
        loss -= log_p[b, y_t[b]]
    return loss


@numba.njit(**JIT)
def heads_backward(theta, grad, work, xc, g_xc, log_p, g_logits, y_t, accumulate):
    """Readout and output-gate backward: G_W_y, G_b_y, G_W_o, G_b_o (+)= and the work rows G_H,
    G_OPRE and G_C (the immediate gradient g_c, Eq. 11) filled."""
    _, B, H = work.shape
    K = log_p.shape[1]
    I = xc.shape[1] - H
    W_zf, w_z, w_f, b_z, b_f, W_o, b_o, W_y, b_y = _views(theta, H, I, K)
    G_Wzf, G_wz, G_wf, G_bz, G_bf, G_Wo, G_bo, G_Wy, G_by = _views(grad, H, I, K)
    g_h = work[G_H]
    g_opre = work[G_OPRE]
    o_t = work[O]
    for b in range(B):
        for k in range(K):
            g_logits[b, k] = math.exp(log_p[b, k]) - (1.0 if y_t[b] == k else 0.0)
        for h in range(H):
            g_h[b, h] = 0.0
        for k in range(K):
            g_k = g_logits[b, k]
            G_by[k] += g_k
            for h in range(H):
                G_Wy[k, h] += g_k * work[H_T, b, h]
                g_h[b, h] += g_k * W_y[k, h]
        for h in range(H):
            g_opre[b, h] = g_h[b, h] * xc[b, I + h] * o_t[b, h] * (1 - o_t[b, h])
            G_bo[h] += g_opre[b, h]
    np.dot(g_opre, W_o, g_xc)                                         # (B, I + H)
    for b in range(B):
        for h in range(H):
            work[G_C, b, h] = g_h[b, h] * o_t[b, h] + g_xc[b, I + h]
    if accumulate:
        for h in range(H):
            for b in range(B):
                g = g_opre[b, h]
                for j in range(I + H):
                    G_Wo[h, j] += g * xc[b, j]
    else:
        np.dot(g_opre.T, xc, G_Wo)                                    # (H, I + H)


@numba.njit(**JIT)
def traces_accumulate(grad, S_Wz, S_Wf, s_vec, x_t, keep, work, hb):
    """Reset, trace update and eLSTM gradient accumulation (Eqs. 7-10): step_numba.step_serial."""
    _, B, H = work.shape
    g_Wz, g_Wf, g_wz, g_wf, g_bz, g_bf = _cell_views(grad, H, x_t.shape[1])
    step_serial(S_Wz, S_Wf, s_vec[0], s_vec[1], s_vec[2], s_vec[3], g_Wz, g_Wf, g_wz, g_wf, g_bz, g_bf,
                x_t, work[C_TM1], work[DC_DZPRE], work[DC_DFPRE], work[J], keep, work[G_C], hb)


@numba.njit(**JIT)
def _sum_of_squares(a):
    """sum a^2 in float64, in eight interleaved partial sums (one running sum is a chain of
    dependent additions, four cycles each: 90 us for the 67k parameters at H = 256)."""
    n = a.shape[0]
    n8 = n - n % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(0, n8, 8):
        a0, a1, a2, a3 = np.float64(a[i]), np.float64(a[i + 1]), np.float64(a[i + 2]), np.float64(a[i + 3])
        a4, a5, a6, a7 = np.float64(a[i + 4]), np.float64(a[i + 5]), np.float64(a[i + 6]), np.float64(a[i + 7])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
        s4 += a4 * a4
        s5 += a5 * a5
        s6 += a6 * a6
        s7 += a7 * a7
    for i in range(n8, n):
        s0 += np.float64(a[i]) * np.float64(a[i])
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@numba.njit(**JIT)
def clip_adam(theta, grad, m, v, hyper, hyper_d, step):
    """Global-norm clip of grad (scale min(1, max_norm / (norm + 1e-6))) and one Adam step of theta.

    hyper (float64): lr, beta1, beta2, eps, max_norm; hyper_d (the parameters' dtype) receives them
    rounded to that dtype, so the arithmetic is that of the NumPy reference. step[0] (the Adam step
    count k) is incremented. Returns the norm before clipping; a non-finite norm changes nothing.
    """
    norm = math.sqrt(_sum_of_squares(grad))
    if not math.isfinite(norm):
        return norm
    scale = min(1.0, hyper[4] / (norm + 1e-6))
    k = step[0] + 1
    step[0] = k
    hyper_d[LR] = hyper[0]
    hyper_d[BETA1] = hyper[1]
    hyper_d[ONE_M_BETA1] = 1.0 - hyper[1]
    hyper_d[BETA2] = hyper[2]
    hyper_d[ONE_M_BETA2] = 1.0 - hyper[2]
    hyper_d[EPS] = hyper[3]
    hyper_d[CORRECTION1] = 1.0 - hyper[1] ** np.float64(k)
    hyper_d[CORRECTION2] = 1.0 - hyper[2] ** np.float64(k)
    hyper_d[SCALE] = scale
    lr, beta1, one_m_beta1 = hyper_d[LR], hyper_d[BETA1], hyper_d[ONE_M_BETA1]
    beta2, one_m_beta2, eps = hyper_d[BETA2], hyper_d[ONE_M_BETA2], hyper_d[EPS]
    correction1, correction2, scale_d = hyper_d[CORRECTION1], hyper_d[CORRECTION2], hyper_d[SCALE]
    for i in range(theta.shape[0]):
        g = grad[i] * scale_d                                         # scale_d = 1 (exactly) unless clipped
        m_i = beta1 * m[i] + one_m_beta1 * g
        v_i = beta2 * v[i] + one_m_beta2 * (g * g)
        m[i] = m_i
        v[i] = v_i
        theta[i] = theta[i] - lr * (m_i / correction1) / (np.sqrt(v_i / correction2) + eps)
    return norm


@numba.njit(**JIT)
def zero_step_grads(grad, H, I, K):
    """Zero every gradient except G_W_o, which the per-step GEMM overwrites."""
    o_wz, o_Wo, o_bo, o_Wy, o_by, P = _offsets(H, I, K)
    grad[:o_Wo] = 0.0
    grad[o_bo:] = 0.0


@numba.njit(**JIT)
def check_targets(y_t, K):
    """The first row whose target is outside [0, K), or -1."""
    for b in range(y_t.shape[0]):
        if y_t[b] < 0 or y_t[b] >= K:
            return b
    return -1


@numba.njit(**JIT)
def online_step_kernel(theta, grad, m, v, S_Wz, S_Wf, s_vec, c, x_t, reset_t, y_t, keep, work, pre, xc, g_xc,
                       logits, log_p, g_logits, predictions, hyper, hyper_d, step, hb, accumulate, update):
    """One online step (module docstring). Returns (loss, norm before clipping or NaN without
    update, first row with a bad target or -1: then nothing was changed)."""
    B, H = c.shape
    I = x_t.shape[1]
    K = logits.shape[1]
    bad = check_targets(y_t, K)
    if bad >= 0:
        return np.nan, np.nan, bad
    if not accumulate:
        zero_step_grads(grad, H, I, K)
    loss = forward(theta, c, x_t, reset_t, y_t, keep, work, pre, xc, logits, log_p, predictions)
    heads_backward(theta, grad, work, xc, g_xc, log_p, g_logits, y_t, accumulate)
    traces_accumulate(grad, S_Wz, S_Wf, s_vec, x_t, keep, work, hb)
    norm = np.nan
    if update:
        norm = clip_adam(theta, grad, m, v, hyper, hyper_d, step)
    return loss, norm, -1


def split_flat(flat: np.ndarray, H: int, I: int, K: int):
    """Views of a flat (P,) buffer: (ELSTMParams, OutGateParams, W_y (K, H), b_y (K,))."""
    o_wz, o_Wo, o_bo, o_Wy, o_by, P = _offsets.py_func(H, I, K)
    HI = H * I
    elstm = ELSTMParams(flat[:HI].reshape(H, I), flat[HI:o_wz].reshape(H, I),
                        *(flat[o_wz + k * H:o_wz + (k + 1) * H] for k in range(4)))
    gate = OutGateParams(flat[o_Wo:o_bo].reshape(H, I + H), flat[o_bo:o_Wy])
    return elstm, gate, flat[o_Wy:o_by].reshape(K, H), flat[o_by:P]


def _check_range(name: str, value, low: float = 0.0, high: float = np.inf, closed_low: bool = False) -> float:
    ok = (low <= value if closed_low else low < value) and value < high
    if not ok:
        raise ValueError(f"{name}: expected a value in {'[' if closed_low else '('}{low}, {high}), got {value!r}")
    return float(value)


class OnlineStep:
    """The fused online step for B rows: owns the parameters (copied in), gradients, Adam moments,
    cell, traces and work buffers; `step` runs one compiled call.

    elstm, gate: the eLSTM and output-gate parameters; W_y (K, H), b_y (K,): the readout. All of one
    float dtype, which every buffer takes. update: clip and Adam after each step (lr, max_norm,
    beta1, beta2, eps as `rtrl_ref.r2ac.optim`; lr and max_norm have no default: the task chooses
    them, e.g. the copy task's --lr and --clip); accumulate: sum the gradients over steps instead
    of holding the last step's. Views, updated in place by every step: `elstm`, `gate`, `W_y`, `b_y`
    (parameters), `grads_elstm`, `grads_gate`, `grads_W_y`, `grads_b_y`, `traces`, `c`, and the
    flat `theta`, `grad`, `m`, `v`; after a step also `predictions` (B,) and `norm`.
    """

    def __init__(self, elstm: ELSTMParams, gate: OutGateParams, W_y, b_y, B: int, *, lr: float,
                 max_norm: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 update: bool = True, accumulate: bool = False):
        if not isinstance(elstm, ELSTMParams):
            raise ValueError(f"elstm: expected an ELSTMParams, got {type(elstm).__name__}")
        if not isinstance(gate, OutGateParams):
            raise ValueError(f"gate: expected an OutGateParams, got {type(gate).__name__}")
        elstm.validate("elstm")
        H, I = elstm.W_z.shape
        dtype = check_float_dtype("elstm.W_z", elstm.W_z)
        gate.validate(H, I, dtype, "gate")
        check_array("W_y", W_y, (None, ("H", H)), dtype)
        K = W_y.shape[0]
        check_array("b_y", b_y, (("K", K),), dtype)
        if isinstance(B, bool) or not isinstance(B, (int, np.integer)) or B < 1:
            raise ValueError(f"B: expected an integer >= 1, got {B!r}")
        if K < 1:
            raise ValueError(f"W_y: expected at least 1 class (row), got {K}")
        B = int(B)
        hyper = (_check_range("lr", lr, closed_low=True), _check_range("beta1", beta1, 0.0, 1.0, True),
                 _check_range("beta2", beta2, 0.0, 1.0, True), _check_range("eps", eps, closed_low=True),
                 _check_range("max_norm", max_norm))
        self.B, self.H, self.I, self.K, self.dtype = B, H, I, K, dtype
        self.update, self.accumulate = bool(update), bool(accumulate)
        P = flat_size(H, I, K)
        self.theta = np.empty(P, dtype)                               # (P,)
        self.grad = np.zeros(P, dtype)                                # (P,)
        self.m = np.zeros(P, dtype)                                   # (P,)
        self.v = np.zeros(P, dtype)                                   # (P,)
        self.elstm, self.gate, self.W_y, self.b_y = split_flat(self.theta, H, I, K)
        for dst, src in zip((*self.elstm, *self.gate, self.W_y, self.b_y), (*elstm, *gate, W_y, b_y)):
            dst[...] = src
        self.grads_elstm, self.grads_gate, self.grads_W_y, self.grads_b_y = split_flat(self.grad, H, I, K)
        self.c = np.zeros((B, H), dtype)                              # (B, H)
        self._S_W = np.zeros((2, B, H, I), dtype)                     # S.W_z, S.W_f (B, H, I)
        self._s_vec = np.zeros((4, B, H), dtype)                      # S.w_z, S.w_f, S.b_z, S.b_f (B, H)
        self.traces = Traces(self._S_W[0], self._S_W[1], *self._s_vec)
        self.work = np.zeros((N_WORK, B, H), dtype)                   # rows: WORK_ROWS
        self._keep = np.zeros(B, dtype)                               # (B,)
        self._pre = np.zeros((B, 2 * H), dtype)                       # (B, 2H)
        self._xc = np.zeros((B, I + H), dtype)                        # (B, I + H)
        self._g_xc = np.zeros((B, I + H), dtype)                      # (B, I + H)
        self.logits = np.zeros((B, K), dtype)                         # (B, K)
        self.log_p = np.zeros((B, K), dtype)                          # (B, K)
        self.g_logits = np.zeros((B, K), dtype)                       # (B, K)
        self.predictions = np.zeros(B, np.int64)                      # (B,)
        self._x = np.zeros((B, I), dtype)                             # (B, I) x_t cast to dtype
        self._y = np.zeros(B, np.int64)                               # (B,)
        self._no_reset = np.zeros(B, bool)                            # (B,)
        self._hyper = np.array(hyper, np.float64)                     # lr, beta1, beta2, eps, max_norm
        self._hyper_d = np.zeros(N_HYPER, dtype)
        self._adam_step = np.zeros(1, np.int64)
        self._hb = block_units(I, np.dtype(dtype).itemsize)
        self.norm = float("nan")

    @property
    def lr(self) -> float:
        """Adam's learning rate for the following steps (settable: a schedule)."""
        return float(self._hyper[0])

    @lr.setter
    def lr(self, lr: float) -> None:
        self._hyper[0] = _check_range("lr", lr, closed_low=True)

    @property
    def adam_step(self) -> int:
        """Adam updates taken so far (k)."""
        return int(self._adam_step[0])

    @adam_step.setter
    def adam_step(self, k: int) -> None:
        self._adam_step[0] = k

    def moments(self):
        """(m, v) as views in the parameters' layout: each (ELSTMParams, OutGateParams, W_y, b_y)."""
        return split_flat(self.m, self.H, self.I, self.K), split_flat(self.v, self.H, self.I, self.K)

    def reset_state(self) -> None:
        """Zero the cell and every trace of every row (a new batch of sequences)."""
        self.c.fill(0)
        self._S_W.fill(0)
        self._s_vec.fill(0)

    def _inputs(self, x_t, reset_t, y_t):
        B, I = self.B, self.I
        if not (type(x_t) is np.ndarray and x_t.dtype == self.dtype and x_t.shape == (B, I)
                and x_t.flags.c_contiguous):
            check_array("x_t", x_t, (("B", B), ("I", I)), finite=False)
            check_float_dtype("x_t", x_t)
            np.copyto(self._x, x_t, casting="same_kind")
            x_t = self._x
        if reset_t is None:
            reset_t = self._no_reset
        elif not (type(reset_t) is np.ndarray and reset_t.dtype == np.bool_ and reset_t.shape == (B,)):
            check_array("reset_t", reset_t, (("B", B),), finite=False)
            raise ValueError(f"reset_t: expected dtype bool, got {np.dtype(reset_t.dtype)}")
        elif not reset_t.flags.c_contiguous:
            reset_t = np.ascontiguousarray(reset_t)
        if not (type(y_t) is np.ndarray and y_t.dtype == np.int64 and y_t.shape == (B,)
                and y_t.flags.c_contiguous):
            check_array("y_t", y_t, (("B", B),), finite=False)
            if np.dtype(y_t.dtype).kind not in "iu":
                raise ValueError(f"y_t: expected an integer dtype, got {np.dtype(y_t.dtype)}")
            np.copyto(self._y, y_t, casting="unsafe")
            if not np.array_equal(self._y, y_t):
                raise ValueError(f"y_t: expected class indices in [0, {self.K}), got {y_t.min()}..{y_t.max()}")
            y_t = self._y
        return x_t, reset_t, y_t

    def kernel_args(self, x_t, reset_t, y_t) -> tuple:
        """The arguments of `online_step_kernel` for one step (inputs checked, cast if needed)."""
        x_t, reset_t, y_t = self._inputs(x_t, reset_t, y_t)
        return (self.theta, self.grad, self.m, self.v, self._S_W[0], self._S_W[1], self._s_vec, self.c,
                x_t, reset_t, y_t, self._keep, self.work, self._pre, self._xc, self._g_xc,
                self.logits, self.log_p, self.g_logits, self.predictions,
                self._hyper, self._hyper_d, self._adam_step, self._hb, self.accumulate, self.update)

    def finish(self, args: tuple, loss: float, norm: float, bad: int) -> float:
        """Turn the kernel's status into errors; record the norm; return the loss."""
        if bad >= 0:
            raise ValueError(f"y_t: expected class indices in [0, {self.K}), got {int(args[10][bad])} in row {bad}")
        self.norm = norm
        if self.update and not math.isfinite(norm):
            raise ValueError(f"grads: expected a finite global norm, got {norm}")
        return loss

    def step(self, x_t, reset_t, y_t) -> float:
        """One online step on x_t (B, I), reset_t (B,) bool or None (no row starts a new sequence),
        y_t (B,) integer targets in [0, K). Returns the loss (cross-entropy summed over the rows)."""
        args = self.kernel_args(x_t, reset_t, y_t)
        return self.finish(args, *online_step_kernel(*args))


__all__ = ["OnlineStep", "online_step_kernel", "flat_size", "split_flat", "WORK_ROWS", "N_WORK"]
