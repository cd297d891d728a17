"""The PyTorch-eager formulation of the per-step update (goal 2's baseline; optional).

What a direct PyTorch port does, building trace-sized temporaries:

    S = J[..., None] * S + bmm(g[..., None], x[:, None, :])        (B, H, I) for W_z and W_f
    G += (g_c[..., None] * S).sum(0)

torch is optional and never imported unless this module's functions are called.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def to_torch(case):
    """StepCase of NumPy arrays -> (S, cache fields, keep, g_c, G) as torch tensors."""
    import torch

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    S = [t(a.copy()) for a in case.traces]
    G = [t(a.copy()) for a in case.grads]
    c = case.cache
    keep = t((~case.reset_t).astype(c.x_t.dtype))
    return S, (t(c.x_t), t(c.c_tm1), t(c.dc_dzpre), t(c.dc_dfpre), t(c.dc_dctm1)), keep, t(case.g_c_t), G


def step(S, cache, keep, g_c, G):
    """One eager step, in the formulation above; returns (S, G) as new / updated tensors."""
    import torch

    x_t, c_tm1, g_z, g_f, J = cache
    J = J * keep[:, None]                                             # (B, H)
    S_Wz = J[..., None] * S[0] + torch.bmm(g_z[..., None], x_t[:, None, :])   # (B, H, I)
    S_Wf = J[..., None] * S[1] + torch.bmm(g_f[..., None], x_t[:, None, :])   # (B, H, I)
    s_vec = [J * S[2] + g_z * c_tm1, J * S[3] + g_f * c_tm1, J * S[4] + g_z, J * S[5] + g_f]
    new_S = [S_Wz, S_Wf] + s_vec
    G = [G[0] + (g_c[..., None] * S_Wz).sum(0), G[1] + (g_c[..., None] * S_Wf).sum(0)] + [
        g + (g_c * s).sum(0) for g, s in zip(G[2:], s_vec)]
    return new_S, G


def step_numpy_io(case):
    """One eager step on a StepCase, results back as (Traces, ELSTMParams) of NumPy arrays."""
    S, cache, keep, g_c, G = to_torch(case)
    S, G = step(S, cache, keep, g_c, G)
    return Traces(*(a.numpy() for a in S)), ELSTMParams(*(a.numpy() for a in G))
