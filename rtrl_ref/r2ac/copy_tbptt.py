"""Truncated BPTT on the copy task: the counterpart of the fully online RTRL learner.

`python -m rtrl_ref.copy_task --learner tbptt --window K` trains the same model (eLSTM, output
gate, readout to {0, 1, blank}) on the same sequences, but cuts each sequence of T = 2L steps into
unrolls of K steps (the last one shorter when K does not divide T). For each unroll:

    forward over the K steps from the carried cell c (no gradient flows into it: the cut),
    cross-entropy of every step, full BPTT inside the unroll (`rtrl_ref.bptt.bptt`),
    the global-norm clip and one Adam step.

The cell is carried across the cut, so the forward pass is the same as RTRL's; only the gradient
is truncated: a recall step's loss reaches no input older than the start of its unroll. A pattern
bit is recalled L steps after it was read, so TBPTT(K) can only learn the patterns whose bits and
recall steps fall into one unroll. RTRL makes an update per step; TBPTT one per unroll.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.bptt import bptt
from rtrl_ref.out_gate import immediate_g_c, out_gate
from rtrl_ref.r2ac.layers import ce_grad, linear, linear_backward
from rtrl_ref.r2ac.optim import adam_update, clip_by_global_norm
from rtrl_ref.unroll import elstm_forward


def tbptt_unroll(params, c_0, x, y, weight=None, backend: str = "numba"):
    """One unroll of K steps from the carried cell c_0 (B, H), treated as a constant.

    params: a `copy_online.CopyParams` (elstm, gate, readout); x (K, B, I) inputs, y (K, B)
    targets, weight (K, B) which targets count (None: all). Returns (loss summed over steps and
    rows, grads of params' type (summed, not clipped), c_K (B, H) the cell to carry on,
    predictions (K, B))."""
    K, B, _ = x.shape
    reset = np.zeros((K, B), bool)                                         # (K, B) no reset inside a sequence
    c, traj = elstm_forward(params.elstm, x, reset, c_0, backend=backend)  # c (K, B, H)
    h, gate_cache = out_gate(params.gate, x, c)                            # (K, B, H)
    logits, lin_cache = linear(params.readout, h)                          # (K, B, 3)
    flat_weight = None if weight is None else np.asarray(weight).reshape(-1)
    loss, g_logits, predictions = ce_grad(logits.reshape(K * B, -1), y.reshape(-1), flat_weight)
    g_h, g_readout = linear_backward(g_logits.reshape(K, B, -1), lin_cache, params.readout)
    g_c, _, g_gate = immediate_g_c(g_h, gate_cache, params.gate)           # g_c (K, B, H) immediate
    g_elstm = bptt(params.elstm, traj, reset, g_c, backend=backend).grads
    return loss, type(params)(g_elstm, g_gate, g_readout), c[-1], predictions.reshape(K, B)


def tbptt_batch(params, opt, batch, lr: float, clip: float, window: int, weights=None,
                backend: str = "numba"):
    """One batch of sequences: an unroll of `window` steps at a time, a clipped Adam step after
    each. weights (T, B): which targets the loss trains (None: all). Returns (params, opt,
    predictions (T, B), loss summed over the batch)."""
    T, B, _ = batch.inputs.shape
    dtype = params.elstm.W_z.dtype
    c = np.zeros((B, params.elstm.W_z.shape[0]), dtype)                    # (B, H) a new sequence
    predictions = np.empty((T, B), np.int64)                               # (T, B)
    total = 0.0
    for start in range(0, T, window):
        stop = min(start + window, T)
        x = batch.inputs[start:stop].astype(dtype)                         # (K, B, 3)
        loss, grads, c, predictions[start:stop] = tbptt_unroll(
            params, c, x, batch.targets[start:stop], None if weights is None else weights[start:stop], backend)
        clipped, _ = clip_by_global_norm(grads, clip)
        params, opt = adam_update(params, clipped, opt, lr)
        total += loss
    return params, opt, predictions, total
