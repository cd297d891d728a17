"""A JAX eLSTM that writes oracle candidates: autograd BPTT and a tensor-form RTRL recursion.

Importing this module switches JAX to 64-bit mode (jax_enable_x64), so float64 cases run in
float64; float32 cases still run in float32.

    bptt   every gradient from jax.grad of the summed loss, through lax.scan
    rtrl   eLSTM gradients from the RTRL traces:  S_t = J_t * S_tm1 + (dc/dpre) x_t,
           grad = sum_t sum_b g_c[t, b] * S_t[b],  g_c = jax.grad of the readout loss w.r.t. c;
           the output gate, readout, x and c_0 gradients from jax.grad as in bptt
Bugs for the checker's negative tests: "no_wz_term" drops gz * w_z from the Jacobian J_t,
"no_trace_reset" zeroes the cell but not the traces at a reset.
"""

from __future__ import annotations

import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402  (after the x64 switch)

from verify.adapters import BUGS, METHODS, adapter_main  # noqa: E402

TRACE_FIELDS = ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")


def cell(p, x_t, c_tm1):
    z_t = jnp.tanh(x_t @ p["W_z"].T + p["w_z"] * c_tm1 + p["b_z"])          # (B, H)
    f_t = jax.nn.sigmoid(x_t @ p["W_f"].T + p["w_f"] * c_tm1 + p["b_f"])    # (B, H)
    return z_t, f_t, f_t * c_tm1 + (1 - f_t) * z_t


def forward(p, x, reset, c_0):
    """c (T, B, H) by lax.scan; the cell is zeroed before a step whose reset is True."""
    def step(c_tm1, inp):
        x_t, reset_t = inp
        c_tm1 = jnp.where(reset_t[:, None], 0.0, c_tm1)                    # (B, H)
        c_t = cell(p, x_t, c_tm1)[2]                                       # (B, H)
        return c_t, c_t
    return jax.lax.scan(step, c_0, (x, reset))[1]


def head_loss(q, V, x, c, y):
    """(loss, h): o = sigmoid(W_o [x; c] + b_o), h = o * c, summed softmax cross-entropy."""
    xc = jnp.concatenate([x, c], axis=-1)                                  # (T, B, I + H)
    h = jax.nn.sigmoid(xc @ q["W_o"].T + q["b_o"]) * c                     # (T, B, H)
    log_p = jax.nn.log_softmax(h @ V, axis=-1)                             # (T, B, K)
    return -jnp.take_along_axis(log_p, y[..., None], axis=-1).sum(), h


def total_loss(p, q, V, x, c_0, reset, y):
    """(loss, (c, h)) of the whole sequence."""
    c = forward(p, x, reset, c_0)                                          # (T, B, H)
    loss, h = head_loss(q, V, x, c, y)
    return loss, (c, h)


@jax.jit
def bptt(p, q, V, x, c_0, reset, y):
    """Loss, autograd gradients of (p, q, V, x, c_0), c, h and the immediate gradient g_c."""
    (loss, (c, h)), grads = jax.value_and_grad(total_loss, argnums=(0, 1, 2, 3, 4), has_aux=True)(
        p, q, V, x, c_0, reset, y)
    g_c = jax.grad(lambda c_: head_loss(q, V, x, c_, y)[0])(c)            # (T, B, H) immediate
    return loss, grads, c, h, g_c


@jax.jit
def rtrl(p, x, reset, c_0, g_c, wz_term, trace_reset):
    """Traces at every step (T, B, ...), final traces and the RTRL gradient of every field.

    wz_term and trace_reset are 1.0 for the correct recursion, 0.0 to inject the bugs (traced
    values, so a bug does not cost a recompile)."""
    B, H, I = x.shape[1], p["W_z"].shape[0], x.shape[2]
    zeros = {f: jnp.zeros((B, H, I) if f in ("W_z", "W_f") else (B, H), x.dtype) for f in TRACE_FIELDS}
    grads0 = {f: jnp.zeros(p[f].shape, x.dtype) for f in TRACE_FIELDS}

    def step(carry, inp):
        c_tm1, S, G = carry
        x_t, reset_t, g_c_t = inp
        keep = (~reset_t).astype(x.dtype)                                  # (B,)
        c_tm1 = c_tm1 * keep[:, None]                                      # (B, H)
        keep_S = 1 - trace_reset * (1 - keep)                              # (B,) bug: all ones
        S = {f: s * keep_S.reshape((B,) + (1,) * (s.ndim - 1)) for f, s in S.items()}
        z_t, f_t, c_t = cell(p, x_t, c_tm1)
        gz = (1 - f_t) * (1 - z_t ** 2)                                    # (B, H) dc/dz_pre
        gf = (c_tm1 - z_t) * f_t * (1 - f_t)                               # (B, H) dc/df_pre
        J = f_t + gf * p["w_f"] + wz_term * gz * p["w_z"]                  # (B, H)
        S = {
            "W_z": J[:, :, None] * S["W_z"] + gz[:, :, None] * x_t[:, None, :],   # (B, H, I)
            "W_f": J[:, :, None] * S["W_f"] + gf[:, :, None] * x_t[:, None, :],   # (B, H, I)
            "w_z": J * S["w_z"] + gz * c_tm1,                                    # (B, H)
            "w_f": J * S["w_f"] + gf * c_tm1,                                    # (B, H)
            "b_z": J * S["b_z"] + gz,                                            # (B, H)
            "b_f": J * S["b_f"] + gf,                                            # (B, H)
        }
        G = {f: G[f] + jnp.einsum("bh,bh...->h...", g_c_t, S[f]) for f in TRACE_FIELDS}
        return (c_t, S, G), S

    (_, S_T, G), S_all = jax.lax.scan(step, (c_0, zeros, grads0), (x, reset, g_c))
    return S_all, S_T, G


def candidate(case, method: str = "rtrl", bug: str = "none") -> dict:
    """Candidate arrays (docs/oracle.md) for an oracle Case, computed with JAX."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if bug not in BUGS:
        raise ValueError(f"bug: expected one of {BUGS}, got {bug!r}")
    a = {k: jnp.asarray(v) for k, v in case.inputs().items()}
    p = {f: a[f] for f in TRACE_FIELDS}
    q = {"W_o": a["W_o"], "b_o": a["b_o"]}
    loss, (g_p, g_q, g_V, g_x, g_c0), c, h, g_c = bptt(p, q, a["V"], a["x"], a["c_0"],
                                                       a["reset"], a["y"])
    out = {"c": c, "h": h, "loss": loss, "g_c": g_c, "grad_W_o": g_q["W_o"],
           "grad_b_o": g_q["b_o"], "grad_V": g_V, "grad_x": g_x, "grad_c_0": g_c0}
    if method == "bptt":
        out.update({f"grad_{f}": g_p[f] for f in TRACE_FIELDS})
    else:
        one = jnp.ones((), a["x"].dtype)
        S_all, S_T, G = rtrl(p, a["x"], a["reset"], a["c_0"], g_c,
                             one * (bug != "no_wz_term"), one * (bug != "no_trace_reset"))
        steps = np.asarray(case.trace_steps)
        out.update({f"trace_{f}": S_all[f][steps] for f in TRACE_FIELDS})
        out.update({f"final_trace_{f}": S_T[f] for f in TRACE_FIELDS})
        out.update({f"grad_{f}": G[f] for f in TRACE_FIELDS})
    return {k: np.asarray(v) for k, v in out.items()}


def main(argv=None) -> int:
    return adapter_main(argv, "verify.adapters.jax_elstm", "JAX", candidate)


if __name__ == "__main__":
    sys.exit(main())
