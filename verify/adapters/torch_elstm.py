"""A PyTorch eLSTM that writes oracle candidates: autograd BPTT and a tensor-form RTRL recursion.

The same contract as verify.adapters.jax_elstm, written for PyTorch (a CPU build is enough):

    bptt   every gradient from torch.autograd of the summed loss over a Python loop of steps
    rtrl   eLSTM gradients from the RTRL traces (S_t = J_t * S_tm1 + (dc/dpre) x_t), with
           g_c = dL/dc_t from autograd through the output gate and readout only (c detached);
           output gate, readout, x and c_0 gradients from autograd as in bptt
Bugs: "no_wz_term" drops gz * w_z from J_t; "no_trace_reset" does not zero the traces at a reset.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from verify.adapters import BUGS, METHODS, adapter_main

TRACE_FIELDS = ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")


def cell(p, x_t, c_tm1):
    z_t = torch.tanh(x_t @ p["W_z"].T + p["w_z"] * c_tm1 + p["b_z"])        # (B, H)
    f_t = torch.sigmoid(x_t @ p["W_f"].T + p["w_f"] * c_tm1 + p["b_f"])     # (B, H)
    return z_t, f_t, f_t * c_tm1 + (1 - f_t) * z_t


def forward(p, x, reset, c_0):
    c_tm1, cs = c_0, []
    for t in range(x.shape[0]):
        c_tm1 = torch.where(reset[t][:, None], torch.zeros_like(c_tm1), c_tm1)   # (B, H)
        c_tm1 = cell(p, x[t], c_tm1)[2]                                    # (B, H)
        cs.append(c_tm1)
    return torch.stack(cs)                                                 # (T, B, H)


def head_loss(q, V, x, c, y):
    xc = torch.cat([x, c], dim=-1)                                         # (T, B, I + H)
    h = torch.sigmoid(xc @ q["W_o"].T + q["b_o"]) * c                      # (T, B, H)
    log_p = torch.log_softmax(h @ V, dim=-1)                               # (T, B, K)
    return -log_p.gather(-1, y[..., None]).sum(), h


def rtrl(p, x, reset, c_0, g_c, bug="none"):
    T, B, I = x.shape
    H = p["W_z"].shape[0]
    S = {f: x.new_zeros((B, H, I) if f in ("W_z", "W_f") else (B, H)) for f in TRACE_FIELDS}
    G = {f: torch.zeros_like(p[f]) for f in TRACE_FIELDS}
    S_all = {f: [] for f in TRACE_FIELDS}
    c_tm1 = c_0
    for t in range(T):
        keep = (~reset[t]).to(x.dtype)                                     # (B,)
        c_tm1 = c_tm1 * keep[:, None]                                      # (B, H)
        if bug != "no_trace_reset":
            S = {f: s * keep.reshape((B,) + (1,) * (s.dim() - 1)) for f, s in S.items()}
        z_t, f_t, c_t = cell(p, x[t], c_tm1)
        gz = (1 - f_t) * (1 - z_t ** 2)                                    # (B, H)
        gf = (c_tm1 - z_t) * f_t * (1 - f_t)                               # (B, H)
        J = f_t + gf * p["w_f"] + (0 if bug == "no_wz_term" else gz * p["w_z"])   # (B, H)
        x_t = x[t]
        S = {
            "W_z": J[:, :, None] * S["W_z"] + gz[:, :, None] * x_t[:, None, :],   # (B, H, I)
            "W_f": J[:, :, None] * S["W_f"] + gf[:, :, None] * x_t[:, None, :],   # (B, H, I)
            "w_z": J * S["w_z"] + gz * c_tm1,                                    # (B, H)
            "w_f": J * S["w_f"] + gf * c_tm1,                                    # (B, H)
            "b_z": J * S["b_z"] + gz,                                            # (B, H)
            "b_f": J * S["b_f"] + gf,                                            # (B, H)
        }
        for f in TRACE_FIELDS:
            G[f] = G[f] + torch.einsum("bh,bh...->h...", g_c[t], S[f])
            S_all[f].append(S[f])
        c_tm1 = c_t
    return {f: torch.stack(v) for f, v in S_all.items()}, S, G


def candidate(case, method: str = "rtrl", bug: str = "none") -> dict:
    """Candidate arrays (docs/oracle.md) for an oracle Case, computed with PyTorch."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if bug not in BUGS:
        raise ValueError(f"bug: expected one of {BUGS}, got {bug!r}")
    a = {k: torch.from_numpy(np.array(v)) for k, v in case.inputs().items()}
    p = {f: a[f].requires_grad_() for f in TRACE_FIELDS}
    q = {"W_o": a["W_o"].requires_grad_(), "b_o": a["b_o"].requires_grad_()}
    V, x, c_0 = a["V"].requires_grad_(), a["x"].requires_grad_(), a["c_0"].requires_grad_()
    c = forward(p, x, a["reset"], c_0)
    loss, h = head_loss(q, V, x, c, a["y"])
    leaves = [*p.values(), q["W_o"], q["b_o"], V, x, c_0]
    grads = torch.autograd.grad(loss, leaves)
    g_p = dict(zip(TRACE_FIELDS, grads[:6]))
    c_leaf = c.detach().requires_grad_()
    g_c = torch.autograd.grad(head_loss(q, V, x.detach(), c_leaf, a["y"])[0], c_leaf)[0]   # (T, B, H)
    out = {"c": c, "h": h, "loss": loss, "g_c": g_c, "grad_W_o": grads[6], "grad_b_o": grads[7],
           "grad_V": grads[8], "grad_x": grads[9], "grad_c_0": grads[10]}
    if method == "bptt":
        out.update({f"grad_{f}": g_p[f] for f in TRACE_FIELDS})
    else:
        with torch.no_grad():
            S_all, S_T, G = rtrl({f: v.detach() for f, v in p.items()}, x.detach(), a["reset"],
                                 c_0.detach(), g_c, bug)
        steps = torch.from_numpy(np.asarray(case.trace_steps))
        out.update({f"trace_{f}": S_all[f][steps] for f in TRACE_FIELDS})
        out.update({f"final_trace_{f}": S_T[f] for f in TRACE_FIELDS})
        out.update({f"grad_{f}": G[f] for f in TRACE_FIELDS})
    return {k: v.detach().numpy() for k, v in out.items()}


def main(argv=None) -> int:
    return adapter_main(argv, "verify.adapters.torch_elstm", "PyTorch", candidate)


if __name__ == "__main__":
    sys.exit(main())
