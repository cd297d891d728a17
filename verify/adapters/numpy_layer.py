"""A plain NumPy eLSTM layer with exact RTRL, in the oracle's layer protocol (docs/oracle.md).

Written as a user of the oracle would write it, without the project's reference functions:

    layer(params, x, reset, c_0, g_c) -> {"c": (T, B, H), "trace_*": (T, B, H[, I]),
                                          "final_trace_*": (B, H[, I]), "grad_*": parameter shape}
    step(params, x_t, reset_t, c_tm1, traces_tm1) -> (c_t, traces_t)      (the step protocol)

params holds W_z, W_f (H, I) and w_z, w_f, b_z, b_f (H,); x (T, B, I); reset (T, B) bool;
c_0 (B, H); g_c (T, B, H) the immediate gradients. The gradients are those of
sum_t sum_b <g_c[t, b], c_t[b]> through the recurrence, from the RTRL traces:

    S_t = J_t * S_tm1 + (dc_t / dpre_t) * (what multiplies the parameter),   grad = sum_t sum_b g_c * S_t

`layer(..., bug=NAME)` injects one of the mistakes of BUGS; verify.adapters.buggy_numpy exposes
each as its own callable (python -m verify.oracle fuzz verify.adapters.buggy_numpy:no_trace_reset).
"""

from __future__ import annotations

import numpy as np

FIELDS = ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")

BUGS = {
    "jacobian_typo": "the Jacobian as printed in the paper's first arXiv version: J_t = f_t + dc_dfpre * w_f, "
                     "without the dc_dzpre * w_z term",
    "no_trace_reset": "a reset zeroes the cell but not the traces",
    "c_t_for_c_tm1": "the w_z and w_f traces read c_t where c_tm1 belongs",
    "sign_of_term": "dc_dfpre = (z_t - c_tm1) f_t (1 - f_t): one term with the wrong sign",
    "outer_transposed": "the local term of the W traces is the outer product x_t dc_dpre (I, H), "
                        "reshaped to (H, I) instead of transposed",
    "float32_accumulation": "the gradient is accumulated in float32 whatever the inputs' dtype",
    "batch_leak": "the gradient multiplies the batch sums of g_c and of the traces: rows leak "
                  "into each other",
    "off_by_one_time": "the gradient is accumulated, and the trace stored, from the traces of "
                       "the step before: g_c[t] meets S_tm1",
    "mean_not_sum": "the gradient is averaged over the batch instead of summed",
    "bias_ignores_J": "the bias traces drop J_t * S_tm1: S^b_t = dc_dpre_t",
}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _step(p, x_t, reset_t, c_tm1, S, bug):
    """One step: reset, cell update and trace update. Returns (c_t, S_t)."""
    B, H = c_tm1.shape
    keep = (~reset_t).astype(x_t.dtype)                               # (B,)
    c_tm1 = c_tm1 * keep[:, None]                                     # (B, H)
    if bug != "no_trace_reset":
        S = {f: s * keep.reshape((B,) + (1,) * (s.ndim - 1)) for f, s in S.items()}
    I = x_t.shape[1]
    z_t = np.tanh(x_t @ p["W_z"].T + p["w_z"] * c_tm1 + p["b_z"])     # (B, H)
    f_t = _sigmoid(x_t @ p["W_f"].T + p["w_f"] * c_tm1 + p["b_f"])    # (B, H)
    c_t = f_t * c_tm1 + (1 - f_t) * z_t                               # (B, H)
    dz = (1 - f_t) * (1 - z_t * z_t)                                  # (B, H) dc_t/dzpre_t
    diff = (z_t - c_tm1) if bug == "sign_of_term" else (c_tm1 - z_t)
    df = diff * f_t * (1 - f_t)                                       # (B, H) dc_t/dfpre_t
    J = f_t + (0 if bug == "jacobian_typo" else dz * p["w_z"]) + df * p["w_f"]        # (B, H)
    c_in = c_t if bug == "c_t_for_c_tm1" else c_tm1                   # (B, H)
    if bug == "outer_transposed":
        local_z = (x_t[:, :, None] * dz[:, None, :]).reshape(B, H, I)   # (B, H, I) scrambled
        local_f = (x_t[:, :, None] * df[:, None, :]).reshape(B, H, I)
    else:
        local_z = dz[:, :, None] * x_t[:, None, :]                    # (B, H, I)
        local_f = df[:, :, None] * x_t[:, None, :]                    # (B, H, I)
    carry = 0.0 if bug == "bias_ignores_J" else 1.0
    S_t = {
        "W_z": J[:, :, None] * S["W_z"] + local_z,                    # (B, H, I)
        "W_f": J[:, :, None] * S["W_f"] + local_f,                    # (B, H, I)
        "w_z": J * S["w_z"] + dz * c_in,                              # (B, H)
        "w_f": J * S["w_f"] + df * c_in,                              # (B, H)
        "b_z": carry * J * S["b_z"] + dz,                             # (B, H)
        "b_f": carry * J * S["b_f"] + df,                             # (B, H)
    }
    return c_t, S_t


def step(params, x_t, reset_t, c_tm1, traces_tm1):
    """The step protocol: (c_t (B, H), traces_t {field: (B, H[, I])}) from step t-1's."""
    p = {f: np.asarray(params[f]) for f in FIELDS}
    return _step(p, np.asarray(x_t), np.asarray(reset_t, bool), np.asarray(c_tm1),
                 {f: np.asarray(traces_tm1[f]) for f in FIELDS}, "none")


def layer(params, x, reset, c_0, g_c, bug: str = "none") -> dict:
    """The layer protocol: c, traces at every step, final traces and the six gradients."""
    if bug != "none" and bug not in BUGS:
        raise ValueError(f"bug: expected 'none' or one of {sorted(BUGS)}, got {bug!r}")
    p = {f: np.asarray(params[f]) for f in FIELDS}
    x, reset, c_0, g_c = np.asarray(x), np.asarray(reset, bool), np.asarray(c_0), np.asarray(g_c)
    T, B, I = x.shape
    H = p["W_z"].shape[0]
    dtype = x.dtype
    acc = np.float32 if bug == "float32_accumulation" else dtype
    S = {f: np.zeros((B, H, I) if f in ("W_z", "W_f") else (B, H), dtype) for f in FIELDS}
    G = {f: np.zeros(p[f].shape, acc) for f in FIELDS}
    cs, S_all = [], {f: [] for f in FIELDS}
    c_tm1 = c_0.copy()                                                # (B, H)
    for t in range(T):
        c_t, S_t = _step(p, x[t], reset[t], c_tm1, S, bug)
        used = S if bug == "off_by_one_time" else S_t                 # the bug: S_tm1 at step t
        for f in FIELDS:
            if bug == "batch_leak":
                g = g_c[t].sum(0)                                     # (H,)
                s = used[f].sum(0)                                    # (H[, I])
                G[f] += ((g[:, None] if s.ndim == 2 else g) * s).astype(acc)
            else:
                gs = (g_c[t][:, :, None] if used[f].ndim == 3 else g_c[t]) * used[f]
                G[f] += gs.sum(0).astype(acc)
            S_all[f].append(used[f])
        cs.append(c_t)
        c_tm1, S = c_t, S_t
    scale = 1.0 / B if bug == "mean_not_sum" else 1.0
    out = {"c": np.stack(cs)}                                         # (T, B, H)
    out.update({f"trace_{f}": np.stack(S_all[f]) for f in FIELDS})    # (T, B, H[, I])
    out.update({f"final_trace_{f}": S[f] for f in FIELDS})            # (B, H[, I])
    out.update({f"grad_{f}": (G[f] * scale).astype(dtype) for f in FIELDS})
    return out


candidate = layer
