"""The eLSTM forward pass over T steps with a per-step, per-batch-element reset mask.

reset[t, b] = True means x[t, b] is the first input of a new episode: c_tm1 of that batch
element is zeroed before step t is computed (and so are its RTRL traces, see traces.py):
docs/derivation.md, Eqs. 1-6 and 10. The reference is a loop of `cell_step`; a backend with a
`forward_unroll` (numba: one input GEMM for all T steps) computes the same trajectory.
"""

from __future__ import annotations

from rtrl_ref.cell import CellCache, cell_step, stack_caches
from rtrl_ref.kernels import Backend, get_backend
from rtrl_ref.params import ELSTMParams
from rtrl_ref.validate import check_array, check_memory, check_reset
from rtrl_ref.xp import array_module


def check_sequence(p: ELSTMParams, x, reset, c_0=None):
    """Validate a sequence against the parameters; returns (T, B, I, H)."""
    p.validate("params")
    H, I = p.W_z.shape
    dtype = p.W_z.dtype
    check_array("x", x, (("T", None), ("B", None), ("I", I)), dtype)
    T, B = x.shape[:2]
    if T < 1 or B < 1:
        raise ValueError(f"x: expected T >= 1 and B >= 1, got shape {tuple(x.shape)}")
    check_reset("reset", reset, (("T", T), ("B", B)))
    if c_0 is not None:
        check_array("c_0", c_0, (("B", B), ("H", H)), dtype)
    return T, B, I, H


def elstm_forward(p: ELSTMParams, x, reset, c_0=None, validate: bool = True,
                  backend: str | Backend = "numpy"):
    """Run the eLSTM over x (T, B, I) from c_0 (B, H) (zeros if None).

    Returns (c (T, B, H), traj: CellCache with a leading T axis).
    """
    be = get_backend(backend)
    if validate:
        T, B, I, H = check_sequence(p, x, reset, c_0)
    else:
        (T, B, _), H = x.shape, p.W_z.shape[0]
    xp = array_module(x)
    # the trajectory: 7 arrays of (T, B, H); the reference loop holds them twice (steps, then stacked)
    copies = 7 * (2 if be.forward_unroll is None else 1)
    check_memory("elstm_forward", copies * T * B * H * x.dtype.itemsize,
                 f"{copies} arrays of (T, B, H) = ({T}, {B}, {H}) {x.dtype}", xp)
    c_tm1 = xp.zeros((B, H), x.dtype) if c_0 is None else c_0        # (B, H)
    if be.forward_unroll is not None:
        traj = be.forward_unroll(p, x, reset, c_tm1)
        return traj.c_t, traj
    caches: list[CellCache] = []
    for t in range(T):
        c_tm1 = xp.where(reset[t][:, None], 0, c_tm1).astype(x.dtype)  # (B, H)
        c_tm1, cache = cell_step(p, x[t], c_tm1)
        caches.append(cache)
    traj = stack_caches(caches)
    return traj.c_t, traj
